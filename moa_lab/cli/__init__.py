"""The ``moa-lab`` command line: one module per subcommand on top of the library.

Each subcommand module has ``add_command(subparsers)`` (argparse only, cheap to import) and a
handler that imports what it needs when it runs, so ``moa-lab --help`` loads nothing heavy.

Invariant: stdout carries only results (the answer, a summary, a table); progress and file paths go
to stderr; any failure is one line ``moa-lab: error: ...`` and a non-zero exit status. Only this
package imports ``argparse``; the library never imports it.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence

from moa_lab.cli import approve, experiment, export, imports, local_model, replay, run, show, view

__all__ = ["main"]

#: The subcommand modules, in the order ``--help`` lists them.
_COMMANDS = (run, show, view, replay, experiment, imports, export, local_model, approve)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moa-lab", description="Run, inspect and replay Mixture-of-Agents runs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in _COMMANDS:
        command.add_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``moa-lab``; returns the exit status."""
    from moa_lab._errors import MoaLabError, RunError
    from moa_lab._text import terminal_safe

    args = _parser().parse_args(argv)

    def one_line(message: object, *_: object, **__: object) -> None:
        print(terminal_safe(f"moa-lab: warning: {message}"), file=sys.stderr)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = one_line  # a cache that cannot be written, and the like
            return args.handler(args)
    except RunError as exc:
        path = getattr(exc.trace, "path", None)
        kept = f" (the trace keeps the finished calls: {path})" if path else ""
        print(terminal_safe(f"moa-lab: error: {exc}{kept}"), file=sys.stderr)
        return 1
    except MoaLabError as exc:
        print(terminal_safe(f"moa-lab: error: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("moa-lab: interrupted; finished calls are kept in the trace", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``moa-lab show ... | head``): stop quietly, as ``cat`` would. Point
        # stdout at /dev/null so Python's own flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
