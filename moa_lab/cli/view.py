"""``moa-lab view TRACE [--html OUT.html] [--open]``: a trace as one self-contained HTML page."""

from __future__ import annotations

import argparse
import webbrowser
from pathlib import Path
from typing import Any

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``view TRACE [--html OUT.html] [--open]``."""
    command = subparsers.add_parser("view", help="write a trace as one self-contained HTML page")
    command.add_argument("trace", metavar="TRACE")
    command.add_argument(
        "--html", metavar="OUT.html", help="where to write the page (default: TRACE.html)"
    )
    command.add_argument("--open", action="store_true", help="then open the page in a web browser")
    command.set_defaults(handler=_view)


def _view(args: argparse.Namespace) -> int:
    from moa_lab._errors import MoaLabError
    from moa_lab._trace import Trace
    from moa_lab._trace.files import describe_os_error

    trace = Trace.load(args.trace)
    try:
        from moa_lab.views import export_html
    except ImportError as exc:
        raise MoaLabError(
            f"moa-lab view needs plotly ({exc.name} is missing); install the views extra: "
            "pip install 'moa_lab[views]'"
        ) from None
    source = Path(args.trace)
    out = Path(args.html) if args.html else source.with_suffix(".html")
    if out.resolve() == source.resolve():
        if args.html:
            raise MoaLabError(
                f"--html {out} is the trace itself; writing the page there would destroy the trace: "
                "give another --html path"
            )
        out = source.with_name(f"{source.name}.view.html")  # t.html (a trace) -> t.html.view.html
    try:
        out = export_html(trace, out)
    except OSError as exc:
        raise MoaLabError(f"cannot write the page to {out}: {describe_os_error(exc, out)}") from None
    print(out)
    if args.open:
        webbrowser.open(out.resolve().as_uri())
    return 0
