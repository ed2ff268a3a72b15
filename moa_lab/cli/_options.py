"""Options and output shared by the subcommands that make calls: cache, progress, the result line.

Invariant: what the options mean reaches the library as values (``CallOptions``), never through
environment variables, so the same run behaves the same from the CLI and from Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["CallOptions", "add_call_options", "call_options", "print_result"]


@dataclass(frozen=True)
class CallOptions:
    """The ``cache`` and ``progress`` arguments the library's run functions take."""

    cache: Any
    """True (the default folder), False (``--no-cache``) or the folder of ``--cache-dir``."""
    progress: bool
    """False with ``--quiet``: no progress display at all, the local model's included."""


def add_call_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that makes calls shares: the cache and the progress display."""
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the call cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="call cache directory")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def call_options(args: argparse.Namespace) -> CallOptions:
    """The values the shared options stand for."""
    return CallOptions(
        cache=False if args.no_cache else (args.cache_dir or True), progress=not args.quiet
    )


def print_result(trace: Any, as_json: bool) -> None:
    """The answer on stdout (or ``{answer, trace}`` as JSON), the trace path on stderr."""
    if as_json:
        print(json.dumps({"answer": trace.final, "trace": str(trace.path)}, ensure_ascii=False))
    else:
        print(trace.final)
    print(f"trace: {trace.path}", file=sys.stderr)
