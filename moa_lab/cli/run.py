"""``moa-lab run PROMPT``: run a mixture on a prompt and print its answer."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from moa_lab.cli._options import add_call_options, call_options, print_result, text_argument

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``run PROMPT [--preset NAME | --config FILE] [overrides] [call options]``."""
    command = subparsers.add_parser("run", help="run a mixture on a prompt and print its answer")
    command.add_argument("prompt", metavar="PROMPT")
    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--preset",
        metavar="NAME",
        help="a named config (default: local; moa-lite when --base-url or models are given)",
    )
    source.add_argument("--config", metavar="FILE", help="a YAML, JSON or TOML config file")
    command.add_argument("--base-url", metavar="URL", help="endpoint for every agent")
    command.add_argument("--api-key-env", metavar="VAR", help="variable holding the API key")
    command.add_argument("--proposers", metavar="M1,M2,...", help="proposer models of every layer")
    command.add_argument("--aggregator", metavar="M", help="aggregator model")
    command.add_argument("--model", metavar="M", help="every agent's model (any preset)")
    command.add_argument("--layers", type=int, metavar="L", help="layers, the aggregator's included")
    command.add_argument("--temperature", type=float, metavar="T")
    command.add_argument("--max-tokens", type=int, metavar="N")
    command.add_argument("--trace-out", metavar="PATH", help="where to write the trace JSON")
    command.add_argument("--json", action="store_true", help="print {answer, trace} as JSON")
    command.add_argument(
        "--stream",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the answer as the aggregator writes it (default: when stdout is a terminal)",
    )
    add_call_options(command)
    command.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from moa_lab._presets import build_config
    from moa_lab._run import DEFAULT_PRESET, run

    # Naming endpoints, models or a key means a remote mixture: start from the paper's settings
    # (MoA-Lite), not from the local preset's brief prompt, short caps and shared seeds.
    remote = args.base_url or args.proposers or args.aggregator or args.model or args.api_key_env

    config = build_config(
        preset_name=args.preset,
        config_file=args.config,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        proposers=[
            m.strip() for m in text_argument("--proposers", args.proposers).split(",") if m.strip()
        ]
        if args.proposers
        else None,
        aggregator=args.aggregator and text_argument("--aggregator", args.aggregator),
        model=args.model and text_argument("--model", args.model),
        layers=args.layers,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        default_preset="moa-lite" if remote else DEFAULT_PRESET,
    )
    options = call_options(args)
    live = args.stream if args.stream is not None else sys.stdout.isatty()
    printer = AnswerStream() if live and not args.json else None
    trace = run(
        args.prompt,
        config,
        cache=options.cache,
        trace_path=args.trace_out or True,
        progress=options.progress,
        on_call=printer,
    )
    if printer is not None and printer.printed(trace):
        return print_result(trace, args.json, answer_printed=True)
    return print_result(trace, args.json)


class AnswerStream:
    """Writes the aggregator's answer to stdout as it streams in (an ``on_call`` hook).

    Only aggregator calls stream to stdout (a debate decided by vote and a search have none: their
    answer is printed whole at the end). A retry that starts over is said on stderr and the answer
    starts again on a new line.
    """

    def __init__(self) -> None:
        self.node: str | None = None
        self.written = ""
        self.restarts = 0

    def __call__(self, trace: Any, node: str) -> None:
        from moa_lab._text import terminal_safe

        flight = trace.in_flight.get(node)
        if flight is None or flight.call.role != "aggregator" or node != (self.node or node):
            return
        self.node = node
        if flight.restarts != self.restarts:
            self.restarts, self.written = flight.restarts, ""
            print("\nmoa-lab: the stream broke; the answer starts over", file=sys.stderr, flush=True)
        new = flight.text[len(self.written) :]
        if new:
            text = new.lstrip() if not self.written else new
            sys.stdout.write(terminal_safe(text) if sys.stdout.isatty() else text)
            sys.stdout.flush()
            self.written = flight.text

    def printed(self, trace: Any) -> bool:
        """True when what streamed out is the final answer, ended with a newline; otherwise (no
        aggregator streamed, or the answer differs, e.g. reasoning tags stripped) starts a new line
        so the final answer can be printed whole."""
        if not self.written:
            return False
        sys.stdout.write("\n")
        sys.stdout.flush()
        if self.written.strip() == (trace.final or "").strip():
            return True
        print("moa-lab: the final answer, without what the stream held besides:", file=sys.stderr)
        return False
