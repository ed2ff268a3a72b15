"""Experiment files: a YAML (or JSON) file listing what to compare, read into ``experiment()`` arguments.

``moa-lab experiment CONFIG --dataset FILE`` reads one; so does ``load_experiment_file``::

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

Invariant: a bad file fails with one line naming the entry and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from moa_lab._config import Agent, MoAConfig, load_config
from moa_lab._errors import ConfigError
from moa_lab._presets import preset
from moa_lab.experiments._configs import Candidate, paper_variants, singles

__all__ = ["load_experiment_file"]

_TOP_KEYS = {"configs", "dataset", "judge", "baseline", "system", "concurrency", "max_tokens"}
_SOURCES = ("preset", "file", "config", "single")
_ENTRY_KEYS = {*_SOURCES, "name", "with_singles", "variants"}


def _capped(config: MoAConfig, max_tokens: int | None) -> MoAConfig:
    if max_tokens is None:
        return config
    data = config.to_dict()
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
