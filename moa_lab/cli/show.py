"""``moa-lab show TRACE``: a readable per-layer summary of a trace on stdout."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``show TRACE``."""
    command = subparsers.add_parser("show", help="summarize a trace layer by layer")
    command.add_argument("trace", metavar="TRACE")
    command.set_defaults(handler=_show)


def _show(args: argparse.Namespace) -> int:
    from moa_lab._trace import Trace
    from moa_lab.views._text import summary_text

    print(summary_text(Trace.load(args.trace)))
    return 0
