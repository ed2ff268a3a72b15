"""``moa-lab experiment CONFIG --dataset FILE``: run a comparison from a YAML file, print the table.

CONFIG is a YAML (or JSON) file listing what to compare::

    configs:                      # required: presets, config files, inline configs, single models
      - local                     # a preset name
      - {preset: moa-lite, name: lite, with_singles: true}   # also each proposer alone
      - {file: configs/big.yaml, name: big}
      - {config: {proposers: [a, b], aggregator: c, layers: 2}, name: inline}
      - {single: {model: gpt-4o-mini}, name: mini}
      - {preset: local, variants: true}   # MoA, MoA-Lite, Self-MoA, LLM-ranker, debate of its agents
    dataset: arithmetic           # optional; --dataset wins
    judge: {model: gpt-4o-mini}   # optional pairwise judge (an agent, or a model name)
    baseline: mini                # optional; default the first single model; 'reference' = the
                                  # dataset's reference outputs (AlpacaEval)
    system: "End with 'Answer: <number>'."   # optional system message before every item
    concurrency: 8                # optional
    max_tokens: 128               # optional cap set on every agent of every config

Invariant: stdout carries only the table; progress, the run directory and the figure paths go to
stderr; a bad CONFIG fails with one line naming the entry and the field.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from moa_lab._config import Agent, MoAConfig, load_config, preset
from moa_lab._errors import ConfigError
from moa_lab.experiments._configs import Candidate, paper_variants, singles
from moa_lab.experiments._export import export_alpaca_eval

__all__ = ["add_command", "load_experiment_file"]

_TOP_KEYS = {"configs", "dataset", "judge", "baseline", "system", "concurrency", "max_tokens"}
_SOURCES = ("preset", "file", "config", "single")
_ENTRY_KEYS = {*_SOURCES, "name", "with_singles", "variants"}


def _capped(config: MoAConfig, max_tokens: int | None) -> MoAConfig:
    if max_tokens is None:
        return config
    data = config.model_dump(mode="json")
    data["proposers"] = [[dict(a, max_tokens=max_tokens) for a in layer] for layer in data["proposers"]]
    data["aggregator"] = dict(data["aggregator"], max_tokens=max_tokens)
    return MoAConfig.from_dict(data, source="max_tokens")


def _entry(entry: Any, where: str, folder: Path, max_tokens: int | None) -> list[Candidate]:
    if isinstance(entry, str):
        entry = {"preset": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: an entry is a preset name or a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - _ENTRY_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; use {', '.join(sorted(_ENTRY_KEYS))}")
    given = [key for key in _SOURCES if key in entry]
    if len(given) != 1:
        raise ConfigError(f"{where}: give exactly one of {', '.join(_SOURCES)}")
    source = given[0]
    value = entry[source]
    if source == "preset":
        config = preset(str(value))
        default_name = str(value)
    elif source == "file":
        path = Path(str(value))
        config = load_config(path if path.is_absolute() else folder / path)
        default_name = path.stem
    elif source == "config":
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: 'config' must be a mapping of MoAConfig fields")
        config = MoAConfig.from_dict(value, source=where)
        default_name = f"config-{where.rsplit(' ', 1)[-1]}"
    else:
        try:
            agent = Agent.model_validate(value)
        except ValueError as exc:
            raise ConfigError(
                f"{where}: 'single' is not a valid agent ({exc.errors()[0]['msg']})"
            ) from None
        candidate = Candidate.single(agent, entry.get("name"))
        return [Candidate(candidate.name, _capped(candidate.config, max_tokens), alone=0)]
    config = _capped(config, max_tokens)
    name = str(entry.get("name") or default_name)
    if entry.get("variants"):
        found = paper_variants(config, prefix=f"{entry['name']}-" if entry.get("name") else "")
    else:
        found = [Candidate(name, config)]
    if entry.get("with_singles") or entry.get("variants"):
        found = singles(config, prefix=f"{entry['name']}-" if entry.get("name") else "") + found
    return found


def load_experiment_file(path: str | Path) -> dict[str, Any]:
    """Read an experiment CONFIG file into ``experiment()`` keyword arguments (plus ``dataset``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such experiment file")
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or not isinstance(data.get("configs"), list) or not data["configs"]:
        raise ConfigError(f"{path}: the file needs a non-empty 'configs:' list of presets or configs")
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown}; use {', '.join(sorted(_TOP_KEYS))}")
    max_tokens = data.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        raise ConfigError(f"{path}: max_tokens must be a whole number >= 1, got {max_tokens!r}")
    candidates: list[Candidate] = []
    for number, entry in enumerate(data["configs"], start=1):
        for candidate in _entry(entry, f"{path}: configs item {number}", path.parent, max_tokens):
            if all(c.name != candidate.name or c.to_dict() != candidate.to_dict() for c in candidates):
                candidates.append(candidate)
    options: dict[str, Any] = {"configs": candidates}
    judge = data.get("judge")
    if judge is not None:
        try:
            options["judge"] = Agent.model_validate(judge)
        except ValueError as exc:
            raise ConfigError(f"{path}: judge: not a valid agent ({exc.errors()[0]['msg']})") from None
    for key in ("dataset", "baseline", "system", "concurrency"):
        if data.get(key) is not None:
            options[key] = data[key]
    return options


def _run_experiment(args: argparse.Namespace) -> int:
    # Imported here so that registering the command does not load pandas for every moa-lab command.
    from moa_lab.cli import call_options
    from moa_lab.experiments._runner import experiment

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
    cache, progress = call_options(args)
    result = experiment(
        options.pop("configs"),
        dataset,
        run_dir=args.out,
        cache=cache,
        progress=progress,
        **options,
    )
    print(result.table().to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"run directory: {result.run_dir}", file=sys.stderr)
    if args.alpaca_eval:
        for path in export_alpaca_eval(result, args.alpaca_eval):
            print(f"alpaca_eval outputs: {path}", file=sys.stderr)
    if not args.no_figures:
        try:
            from moa_lab.views.experiments import experiment_figures, write_figures
        except ImportError:
            print("figures skipped: install the views extra (plotly) to write them", file=sys.stderr)
        else:
            folder = Path(args.figures) if args.figures else result.run_dir / "figures"
            for path in write_figures(experiment_figures(result), folder):
                print(f"figure: {path}", file=sys.stderr)
    return 0


def add_command(subparsers: Any) -> None:
    """Add ``moa-lab experiment CONFIG --dataset FILE``."""
    from moa_lab.cli import add_call_options

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
