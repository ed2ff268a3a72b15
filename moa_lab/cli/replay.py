"""``moa-lab replay TRACE [edits] [--dry-run]``: replay a trace with edits; send only what they reach."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from moa_lab.cli._options import add_call_options, call_options, print_result, text_argument

__all__ = ["add_command", "edits_from_args"]


def add_command(subparsers: Any) -> None:
    """Add ``replay TRACE [edits] [--dry-run]``."""
    cmd = subparsers.add_parser(
        "replay",
        help="replay a trace with edits, sending only the calls they reach",
        description="Replay a trace with edits. Only the edited calls and the calls that read them "
        "are sent; every other answer is taken from the trace. Prints the new final answer.",
    )
    cmd.add_argument("trace", metavar="TRACE", help="a trace JSON file")
    cmd.add_argument("--aggregator-prompt", metavar="FILE", help="new template of the final aggregator")
    cmd.add_argument("--proposer-prompt", metavar="FILE", help="new template of proposers of layers > 1")
    cmd.add_argument("--prompt", metavar="TEXT", help="ask this question instead")
    cmd.add_argument(
        "--system",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "FILE"),
        help="replace a node's system prompt with the file's text (repeatable)",
    )
    cmd.add_argument(
        "--user",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "TEXT"),
        help="replace a node's user message (repeatable)",
    )
    cmd.add_argument(
        "--model",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "MODEL"),
        help="call a node with another model (repeatable)",
    )
    cmd.add_argument(
        "--temperature",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "T"),
        help="change a node's temperature (repeatable)",
    )
    cmd.add_argument(
        "--max-tokens",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "N"),
        help="change a node's max_tokens (repeatable)",
    )
    cmd.add_argument(
        "--add-proposer",
        nargs=2,
        action="append",
        default=[],
        metavar=("LAYER", "MODEL"),
        help="append a proposer (a copy of the layer's first, with MODEL) to a layer or 'all'",
    )
    cmd.add_argument(
        "--remove-proposer",
        action="append",
        default=[],
        metavar="NODE",
        help="remove the proposer at NODE (repeatable)",
    )
    cmd.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="send keys to this host for this replay although you have not approved it (repeatable; "
        "http://HOST[:PORT] for a plain-http endpoint)",
    )
    cmd.add_argument("--trace-out", metavar="PATH", help="where to write the new trace JSON")
    cmd.add_argument("--dry-run", action="store_true", help="print the plan only; send nothing")
    cmd.add_argument("--json", action="store_true", help="print {answer, trace} (or the plan) as JSON")
    add_call_options(cmd)
    cmd.set_defaults(handler=_replay_command)


def _read(option: str, path: str) -> str:
    from moa_lab._errors import ConfigError

    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{option}: {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at "
            f"{exc.start}); save it as UTF-8"
        ) from None


def _number(option: str, value: str, kind: type) -> Any:
    from moa_lab._errors import ConfigError

    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a {kind.__name__}") from None


def edits_from_args(args: argparse.Namespace) -> list[Any]:
    """The edits the replay command's options ask for, in a fixed order."""
    from moa_lab import (
        AddProposer,
        AggregatorTemplate,
        NodeMessage,
        NodeParams,
        ProposerTemplate,
        RemoveProposer,
        UserPrompt,
    )

    edits: list[Any] = []
    if args.aggregator_prompt:
        edits.append(AggregatorTemplate(_read("--aggregator-prompt", args.aggregator_prompt)))
    if args.proposer_prompt:
        edits.append(ProposerTemplate(_read("--proposer-prompt", args.proposer_prompt)))
    if args.prompt is not None:
        edits.append(UserPrompt(text_argument("--prompt", args.prompt)))
    edits += [NodeMessage(node, "system", _read("--system", path)) for node, path in args.system]
    edits += [NodeMessage(node, "user", text_argument("--user", text)) for node, text in args.user]
    edits += [NodeParams(node, model=text_argument("--model", m)) for node, m in args.model]
    edits += [NodeParams(n, temperature=_number("--temperature", t, float)) for n, t in args.temperature]
    edits += [NodeParams(n, max_tokens=_number("--max-tokens", m, int)) for n, m in args.max_tokens]
    for layer, model in args.add_proposer:
        where = None if layer == "all" else _number("--add-proposer", layer, int)
        edits.append(AddProposer(text_argument("--add-proposer", model), layer=where))
    edits += [RemoveProposer(node) for node in args.remove_proposer]
    return edits


def _replay_command(args: argparse.Namespace) -> int:
    from moa_lab import plan, replay
    from moa_lab._text import terminal_safe
    from moa_lab._trace import Trace

    source = Trace.load(args.trace)
    edits = edits_from_args(args)
    options = call_options(args)
    if args.dry_run:
        planned = plan(source, edits, cache=options.cache)
        shown = json.dumps(planned.to_dict()) if args.json else terminal_safe(str(planned))
        print(shown)
        return 0
    trace = replay(
        source,
        edits,
        cache=options.cache,
        trace_path=args.trace_out or True,
        progress=options.progress,
        allow_hosts=args.allow_host,
    )
    return print_result(trace, args.json)
