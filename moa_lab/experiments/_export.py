"""Export an experiment's answers in AlpacaEval's model-outputs format.

Invariant: each record is ``{"instruction", "output", "generator"}`` with the instruction exactly as
the dataset gave it (AlpacaEval matches outputs to its own instructions by this text), one file per
config, so ``alpaca_eval --model_outputs FILE`` can evaluate it as it is. Only real answers go in:
failed or empty outputs and repeated instructions are left out and counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from moa_lab._errors import ConfigError
from moa_lab._text import safe_file_name
from moa_lab._trace.files import write_atomically

if TYPE_CHECKING:
    from moa_lab.experiments._results import ExperimentResult

__all__ = ["AlpacaEvalFile", "alpaca_eval_outputs", "export_alpaca_eval"]


@dataclass(frozen=True)
class AlpacaEvalFile:
    """One config's model-outputs file and what was left out of it (and why)."""

    config: str
    path: Path
    written: int
    """Records in the file."""
    failed: list[str] = field(default_factory=list)
    """Item ids left out because the run failed or gave no answer."""
    duplicates: list[str] = field(default_factory=list)
    """Item ids left out because an earlier item has the same instruction (AlpacaEval matches
    outputs to its instructions by text, so a second copy would be read as the first's)."""

    def warnings(self) -> list[str]:
        """One line per kind of item left out, for a user to read."""
        lines = []
        if self.failed:
            lines.append(
                f"{self.config}: left {len(self.failed)} failed or empty item(s) out of {self.path} "
                f"({', '.join(self.failed[:5])}{', …' if len(self.failed) > 5 else ''})"
            )
        if self.duplicates:
            lines.append(
                f"{self.config}: left {len(self.duplicates)} item(s) with a repeated instruction out "
                f"of {self.path} ({', '.join(self.duplicates[:5])}"
                f"{', …' if len(self.duplicates) > 5 else ''})"
            )
        return lines


def _outputs(result: ExperimentResult, config: str) -> tuple[list[dict[str, str]], list[str], list[str]]:
    names = [c.name for c in result.candidates]
    if config not in names:
        raise ConfigError(f"no config {config!r} in this experiment; choose one of: {', '.join(names)}")
    rows = result.rows[result.rows["config"] == config]
    outputs = dict(zip(rows["item"], rows["output"], strict=True))
    records: list[dict[str, str]] = []
    failed: list[str] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for item in result.dataset.items:
        output = outputs.get(item.id)
        if not isinstance(output, str) or not output.strip():
            failed.append(item.id)
        elif item.instruction in seen:
            duplicates.append(item.id)
        else:
            seen.add(item.instruction)
            records.append({"instruction": item.instruction, "output": output, "generator": config})
    return records, failed, duplicates


def alpaca_eval_outputs(result: ExperimentResult, config: str) -> list[dict[str, str]]:
    """One config's answers as AlpacaEval model outputs (``[{instruction, output, generator}]``).

    Items whose run failed or gave no answer, and items repeating an earlier instruction, are left
    out (``export_alpaca_eval`` counts them); raises ``ConfigError`` for an unknown config.
    """
    return _outputs(result, config)[0]


def export_alpaca_eval(
    result: ExperimentResult, directory: str | Path, *, configs: list[str] | None = None
) -> list[AlpacaEvalFile]:
    """Write one model-outputs file per config (every config, or the ones named) into a directory.

    File names are the config names made safe on every OS (``llama3:8b-q4`` becomes
    ``llama3-8b-q4-<hash>.json``; ``GPT-4o`` and ``gpt-4o`` stay two files where case is ignored);
    each ``AlpacaEvalFile`` says what was left out and why.
    """
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name in configs or [c.name for c in result.candidates]:
        records, failed, duplicates = _outputs(result, name)
        path = target / f"{safe_file_name(name)}.json"
        write_atomically(path, json.dumps(records, indent=2, ensure_ascii=False) + "\n")
        written.append(AlpacaEvalFile(name, path, len(records), failed, duplicates))
    return written
