"""The ``moa-lab`` command line: ``run`` a mixture and ``show`` a trace.

Invariant: stdout carries only results (the answer, or a summary); progress and the trace path go
to stderr; any failure is one line ``moa-lab: error: ...`` and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

from moa_lab._config import PRESETS, build_config
from moa_lab._engine import DEFAULT_PRESET, run
from moa_lab._errors import MoaLabError, RunError
from moa_lab._local import PROGRESS_ENV
from moa_lab._trace import Trace

__all__ = ["add_call_options", "call_options", "main", "print_result", "summary"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moa-lab", description="Run, inspect and replay Mixture-of-Agents runs."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_cmd = commands.add_parser("run", help="run a mixture on a prompt and print its answer")
    run_cmd.add_argument("prompt", metavar="PROMPT")
    source = run_cmd.add_mutually_exclusive_group()
    source.add_argument("--preset", choices=sorted(PRESETS), help=f"default: {DEFAULT_PRESET}")
    source.add_argument("--config", metavar="FILE", help="a YAML, JSON or TOML config file")
    run_cmd.add_argument("--base-url", metavar="URL", help="endpoint for every agent")
    run_cmd.add_argument("--api-key-env", metavar="VAR", help="variable holding the API key")
    run_cmd.add_argument("--proposers", metavar="M1,M2,...", help="proposer models of every layer")
    run_cmd.add_argument("--aggregator", metavar="M", help="aggregator model")
    run_cmd.add_argument("--layers", type=int, metavar="L", help="layers, the aggregator's included")
    run_cmd.add_argument("--temperature", type=float, metavar="T")
    run_cmd.add_argument("--max-tokens", type=int, metavar="N")
    run_cmd.add_argument("--trace-out", metavar="PATH", help="where to write the trace JSON")
    run_cmd.add_argument("--json", action="store_true", help="print {answer, trace} as JSON")
    add_call_options(run_cmd)

    show_cmd = commands.add_parser("show", help="summarize a trace layer by layer")
    show_cmd.add_argument("trace", metavar="TRACE")
    show_cmd.set_defaults(handler=_show)
    run_cmd.set_defaults(handler=_run)
    for add_command in _command_modules():
        add_command(commands)
    return parser


def _command_modules():
    """The ``add_command(subparsers)`` functions of the modules that bring their own subcommand."""
    from moa_lab._local import add_command as local_model
    from moa_lab._replay import add_command as replay
    from moa_lab.experiments import add_command as experiment
    from moa_lab.views import add_command as view

    return [view, replay, experiment, local_model]


def add_call_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that makes calls shares: the cache and the progress bars."""
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the call cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="call cache directory")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def call_options(args: argparse.Namespace) -> tuple[object, bool]:
    """``(cache, progress)`` from the shared options; ``--quiet`` also hides the local model's bars."""
    if args.quiet:
        os.environ[PROGRESS_ENV] = "0"
    return (False if args.no_cache else (args.cache_dir or True)), not args.quiet


def print_result(trace: Trace, as_json: bool) -> None:
    """The answer on stdout (or ``{answer, trace}`` as JSON), the trace path on stderr."""
    if as_json:
        print(json.dumps({"answer": trace.final, "trace": str(trace.path)}, ensure_ascii=False))
    else:
        print(trace.final)
    print(f"trace: {trace.path}", file=sys.stderr)


def _run(args: argparse.Namespace) -> int:
    config = build_config(
        preset_name=args.preset,
        config_file=args.config,
        base_url=args.base_url,
        api_key_env=args.api_key_env,
        proposers=[m.strip() for m in args.proposers.split(",") if m.strip()]
        if args.proposers
        else None,
        aggregator=args.aggregator,
        layers=args.layers,
        temperature=args.temperature,
        max_tokens=args.max_tokens,
        default_preset=DEFAULT_PRESET,
    )
    cache, progress = call_options(args)
    trace = run(args.prompt, config, cache=cache, trace_path=args.trace_out or True, progress=progress)
    print_result(trace, args.json)
    return 0


def summary(trace: Trace) -> str:
    """A readable per-layer summary: models, tokens, latency, cache hits, errors and the answer."""
    lines = [
        f"run {trace.run_id} ({trace.status}), {trace.layers} layers",
        f"prompt: {_clip(trace.prompt, 100)}",
        "",
        f"{'node':<7}{'role':<11}{'model':<34}{'in':>6}{'out':>6}{'secs':>7}  cache  note",
    ]
    for layer in range(1, trace.layers + 1):
        for node in trace.calls(layer):
            data = trace[node]
            usage = data["usage"] or {}
            latency = data.get("latency")
            note = f"error: {data['error']}" if data["error"] else _clip(data["response"] or "", 50)
            lines.append(
                f"{node:<7}{data['role']:<11}{_clip(data['model'], 33):<34}"
                f"{usage.get('prompt_tokens', '-'):>6}{usage.get('completion_tokens', '-'):>6}"
                f"{latency if latency is None else f'{latency:.2f}':>7}  "
                f"{'hit' if data['cache_hit'] else '-':<5}  {note}"
            )
    totals = trace.totals()
    cost = "unknown" if totals["cost"] is None else f"${totals['cost']:.4f}"
    saved = "unknown" if totals["saved_cost"] is None else f"${totals['saved_cost']:.4f}"
    lines += [
        "",
        f"{totals['calls']} calls, {totals['cache_hits']} from cache, {totals['errors']} errors; "
        f"{totals['prompt_tokens']} prompt + {totals['completion_tokens']} completion tokens sent; "
        f"cost {cost} (cache saved {saved}); wall {totals['wall_time']:.2f}s",
        "",
        "final answer:",
        trace.final if trace.final is not None else "(none: the run did not finish)",
    ]
    return "\n".join(lines)


def _clip(text: str, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def _show(args: argparse.Namespace) -> int:
    print(summary(Trace.load(args.trace)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``moa-lab``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except RunError as exc:
        path = getattr(exc.trace, "path", None)
        kept = f" (the trace keeps the finished calls: {path})" if path else ""
        print(f"moa-lab: error: {exc}{kept}", file=sys.stderr)
        return 1
    except MoaLabError as exc:
        print(f"moa-lab: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("moa-lab: interrupted; finished calls are kept in the trace", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
