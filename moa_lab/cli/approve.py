"""``moa-lab approve HOST VARIABLE``: let the key in VARIABLE go to HOST from now on, in replays too."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``approve HOST VARIABLE`` (and ``approve --list``)."""
    command = subparsers.add_parser(
        "approve",
        help="let an API key variable go to a host that a replayed trace names",
        description=(
            "A trace names endpoints and the variable holding each key. Replays send a key only to "
            "hosts you have used it with or approved here. The record holds names only, never keys."
        ),
    )
    command.add_argument(
        "host",
        metavar="HOST",
        nargs="?",
        help="host[:port], e.g. api.example.com (https); http://HOST[:PORT] to let a key go in clear",
    )
    command.add_argument("variable", metavar="VARIABLE", nargs="?", help="e.g. OPENAI_API_KEY")
    command.add_argument("--list", action="store_true", help="print the approved pairs")
    command.set_defaults(handler=_approve)


def _approve(args: argparse.Namespace) -> int:
    from moa_lab._approvals import KNOWN_PAIRS, approvals_file, approve, approved_pairs, named_host
    from moa_lab._errors import ConfigError

    if args.list:
        for host, variable in sorted(set(KNOWN_PAIRS) | approved_pairs()):
            print(f"{host} {variable}")
        return 0
    if not args.host or not args.variable:
        raise ConfigError("give the host and the variable: moa-lab approve HOST VARIABLE")
    host = named_host(args.host)
    approve([(host, args.variable)], strict=True)
    print(f"approved: ${args.variable} may go to {host} ({approvals_file()})", file=sys.stderr)
    return 0
