"""``moa-lab export TRACE... --format openinference [--endpoint URL | --out FILE]``: traces as
OpenInference spans, to Arize Phoenix or any OpenTelemetry backend, or to a JSON-lines file."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``export TRACE... [--format openinference] [--endpoint URL | --out FILE] [--project P]``."""
    command = subparsers.add_parser(
        "export",
        help="send traces to Arize Phoenix or any OpenTelemetry backend (OpenInference spans)",
        description=(
            "One span per run, per layer (a debate's round, a search's step) and per call, with the "
            "OpenInference conventions; the data-flow edges become span links. Needs the otel extra. "
            "Without --endpoint or --out the spans go to $OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else "
            "$PHOENIX_COLLECTOR_ENDPOINT, else a local Phoenix (http://127.0.0.1:6006/v1/traces); "
            "$OTEL_EXPORTER_OTLP_HEADERS holds a backend's API key, if it needs one."
        ),
    )
    command.add_argument("traces", metavar="TRACE", nargs="+", help="trace files (a run's journal too)")
    command.add_argument(
        "--format", default="openinference", choices=["openinference"], help="the only one so far"
    )
    where = command.add_mutually_exclusive_group()
    where.add_argument("--endpoint", metavar="URL", help="an OTLP/HTTP traces URL")
    where.add_argument("--out", metavar="FILE", help="write the spans as JSON lines, one span a line")
    command.add_argument("--project", metavar="NAME", help="the Phoenix project to put the traces in")
    command.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from moa_lab._errors import MoaLabError
    from moa_lab._trace import Trace, describe_os_error
    from moa_lab._trace.files import write_atomically

    traces = [Trace.load(path) for path in args.traces]  # all readable before anything is sent
    # The spans of every trace are gathered first and the file is written whole or not at all: a
    # full disk leaves neither an empty file nor half of one, and an existing file stays as it was.
    out = io.StringIO() if args.out else None
    for path, trace in zip(args.traces, traces, strict=True):
        done = trace.to_otel(endpoint=args.endpoint, out=out, project=args.project)
        print(f"{done.trace_id} {done.spans} spans ({done.calls} calls, {done.links} links) {path}")
    if out is not None:
        target = Path(args.out)
        try:
            write_atomically(target, out.getvalue())
        except OSError as exc:
            raise MoaLabError(
                f"cannot write the spans to {args.out}: {describe_os_error(exc, target)}"
            ) from None
    count = f"{len(traces)} traces" if len(traces) > 1 else "the trace"
    print(f"exported {count} to {args.out or done.destination}", file=sys.stderr)
    return 0
