"""``moa-lab experiment CONFIG --dataset FILE``: run a comparison from a YAML file, print the table.

Invariant: stdout carries only the table; progress, the run directory and the figure paths go to
stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from moa_lab.cli._options import add_call_options, call_options

__all__ = ["add_command"]


def _run_experiment(args: argparse.Namespace) -> int:
    from moa_lab._config import Agent
    from moa_lab._errors import ConfigError
    from moa_lab._text import terminal_safe
    from moa_lab.experiments import experiment, export_alpaca_eval, load_experiment_file

    options = load_experiment_file(args.config)
    dataset = args.dataset or options.pop("dataset", None)
    options.pop("dataset", None)
    if dataset is None:
        raise ConfigError("give the dataset: --dataset FILE (or a shipped name such as arithmetic)")
    if args.judge:
        options["judge"] = Agent(
            model=args.judge, **({"base_url": args.judge_base_url} if args.judge_base_url else {})
        )
    for key in ("baseline", "concurrency", "limit"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    shared = call_options(args)
    result = experiment(
        options.pop("configs"),
        dataset,
        run_dir=args.out,
        cache=shared.cache,
        progress=shared.progress,
        **options,
    )
    print(terminal_safe(result.table().to_string(float_format=lambda v: f"{v:.4g}")))
    print(f"run directory: {result.run_dir}", file=sys.stderr)
    if args.alpaca_eval:
        for exported in export_alpaca_eval(result, args.alpaca_eval):
            for warning in exported.warnings():
                print(f"moa-lab: warning: {warning}", file=sys.stderr)
            print(f"alpaca_eval outputs: {exported.path} ({exported.written} items)", file=sys.stderr)
    if not args.no_figures:
        try:
            from moa_lab.views import experiment_figures, write_figures
        except ImportError:
            print("figures skipped: install the views extra (plotly) to write them", file=sys.stderr)
        else:
            folder = Path(args.figures) if args.figures else result.run_dir / "figures"
            for path in write_figures(experiment_figures(result), folder):
                print(f"figure: {path}", file=sys.stderr)
    return 0


def add_command(subparsers: Any) -> None:
    """Add ``experiment CONFIG --dataset FILE [options]``."""
    command = subparsers.add_parser(
        "experiment",
        help="compare configs on a dataset; print the table and write the figures",
        description=(
            "Run every config listed in CONFIG (a YAML file: configs:, optional judge:, baseline:, "
            "system:, max_tokens:) on every item of the dataset, through the call cache; print one "
            "row per config and write figures into the run directory. A re-run resumes."
        ),
    )
    command.add_argument("config", metavar="CONFIG", help="YAML file listing the configs to compare")
    command.add_argument(
        "--dataset", metavar="FILE", help="JSONL/JSON dataset, or arithmetic/instructions"
    )
    command.add_argument("--limit", type=int, metavar="N", help="only the first N items")
    command.add_argument(
        "--out", metavar="DIR", help="run directory (default: experiments/<dataset>-<hash>)"
    )
    command.add_argument("--concurrency", type=int, metavar="N", help="(config, item) runs at once")
    command.add_argument("--judge", metavar="MODEL", help="judge model for pairwise win rates")
    command.add_argument("--judge-base-url", metavar="URL", help="endpoint of the judge model")
    command.add_argument("--baseline", metavar="NAME", help="config the judge compares against")
    command.add_argument("--figures", metavar="DIR", help="where figures go (default: run dir/figures)")
    command.add_argument("--no-figures", action="store_true", help="do not write figures")
    command.add_argument("--alpaca-eval", metavar="DIR", help="also write AlpacaEval model outputs here")
    add_call_options(command)
    command.set_defaults(handler=_run_experiment)
