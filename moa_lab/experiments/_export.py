"""Export an experiment's answers in AlpacaEval's model-outputs format.

Invariant: each record is ``{"instruction", "output", "generator"}`` with the instruction exactly as
the dataset gave it (AlpacaEval matches outputs to its own instructions by this text), one file per
config, so ``alpaca_eval --model_outputs FILE`` can evaluate it as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from moa_lab._errors import ConfigError

if TYPE_CHECKING:
    from moa_lab.experiments._results import ExperimentResult

__all__ = ["alpaca_eval_outputs", "export_alpaca_eval"]


def alpaca_eval_outputs(result: ExperimentResult, config: str) -> list[dict[str, str]]:
    """One config's answers as AlpacaEval model outputs; items it failed on are left out."""
    names = [c.name for c in result.candidates]
    if config not in names:
        raise ConfigError(f"no config {config!r} in this experiment; choose one of: {', '.join(names)}")
    rows = result.rows[result.rows["config"] == config]
    outputs = dict(zip(rows["item"], rows["output"], strict=True))
    return [
        {"instruction": item.instruction, "output": outputs[item.id], "generator": config}
        for item in result.dataset.items
        if isinstance(outputs.get(item.id), str)
    ]


def export_alpaca_eval(
    result: ExperimentResult, directory: str | Path, *, configs: list[str] | None = None
) -> list[Path]:
    """Write ``<config>.json`` model-output files (every config, or the ones named) into a directory."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in configs or [c.name for c in result.candidates]:
        path = target / f"{name}.json"
        records = alpaca_eval_outputs(result, name)
        path.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n", "utf-8")
        written.append(path)
    return written
