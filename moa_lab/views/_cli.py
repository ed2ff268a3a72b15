"""The ``moa-lab view`` command: write a trace as one self-contained HTML page.

Invariant: importing this module is cheap (no plotly, no ipywidgets), so the CLI can always add the
command; the page is built only when the command runs, and a missing views extra is one clear line.
"""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

from moa_lab._errors import MoaLabError
from moa_lab._trace import Trace

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``view TRACE [--html OUT.html] [--open]`` to the CLI's subparsers."""
    command = subparsers.add_parser("view", help="write a trace as one self-contained HTML page")
    command.add_argument("trace", metavar="TRACE")
    command.add_argument(
        "--html", metavar="OUT.html", help="where to write the page (default: TRACE.html)"
    )
    command.add_argument("--open", action="store_true", help="then open the page in a web browser")
    command.set_defaults(handler=_view)


def _view(args: argparse.Namespace) -> int:
    trace = Trace.load(args.trace)
    try:
        from moa_lab.views._export import export_html
    except ImportError as exc:
        raise MoaLabError(
            f"moa-lab view needs plotly ({exc.name} is missing); install the views extra: "
            "pip install 'moa_lab[views]'"
        ) from None
    out = export_html(trace, args.html or Path(args.trace).with_suffix(".html"))
    print(out)
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0
