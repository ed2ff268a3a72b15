"""``moa-lab run PROMPT``: run a mixture on a prompt and print its answer."""

from __future__ import annotations

import argparse
from typing import Any

from moa_lab.cli._options import add_call_options, call_options, print_result

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
        proposers=[m.strip() for m in args.proposers.split(",") if m.strip()]
        if args.proposers
        else None,
        aggregator=args.aggregator,
        model=args.model,
        layers=args.layers,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        default_preset="moa-lite" if remote else DEFAULT_PRESET,
    )
    options = call_options(args)
    trace = run(
        args.prompt,
        config,
        cache=options.cache,
        trace_path=args.trace_out or True,
        progress=options.progress,
    )
    return print_result(trace, args.json)
