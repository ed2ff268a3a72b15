"""Reading the Tree-of-Thoughts paper's Game of 24 run logs (IO, chain of thought, ToT search).

Invariant: a log reads into frozen dataclasses that write back to exactly the log's JSON, and a
malformed file is one ``LogError`` line naming the file and the entry.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab._errors import MoaLabError

__all__ = [
    "LogError",
    "SampleRun",
    "ToTSearch",
    "ToTStep",
    "Usage",
    "read_ranked_puzzles",
    "read_sample_log",
    "read_tot_log",
]


class LogError(MoaLabError, ValueError):
    """A Tree-of-Thoughts log file (or the paper's puzzle table) is malformed."""


# --- the run logs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """Tokens and dollars a run had spent so far (the log's ``usage_so_far``, cumulative)."""

    completion_tokens: int
    prompt_tokens: int
    cost: float

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Usage:
        """Read a ``usage_so_far`` object; LogError if it is malformed."""
        return cls(
            completion_tokens=_field(data, "completion_tokens", int),
            prompt_tokens=_field(data, "prompt_tokens", int),
            cost=_field(data, "cost", float),
        )

    def to_dict(self) -> dict[str, Any]:
        """The ``usage_so_far`` object."""
        return {
            "completion_tokens": self.completion_tokens,
            "prompt_tokens": self.prompt_tokens,
            "cost": self.cost,
        }


@dataclass(frozen=True)
class ToTStep:
    """One breadth-first step: the states kept before, every proposal with its value, those kept."""

    step: int
    kept_before: tuple[str, ...]
    proposals: tuple[tuple[str, float], ...]
    kept: tuple[str, ...]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToTStep:
        """Read one entry of a search's ``steps``; LogError if it is malformed."""
        new_ys = _strings(data, "new_ys")
        values = _field(data, "values", list)
        if len(values) != len(new_ys) or not all(_is_number(v) for v in values):
            raise LogError(
                f"'values' must be {len(new_ys)} numbers, one per 'new_ys', got {values!r:.80}"
            )
        return cls(
            step=_field(data, "step", int),
            kept_before=_strings(data, "ys"),
            proposals=tuple(zip(new_ys, map(float, values), strict=True)),
            kept=_strings(data, "select_new_ys"),
        )

    def to_dict(self, puzzle: str) -> dict[str, Any]:
        """The step in the log's schema (which repeats the puzzle as ``x``)."""
        return {
            "step": self.step,
            "x": puzzle,
            "ys": list(self.kept_before),
            "new_ys": [state for state, _ in self.proposals],
            "values": [value for _, value in self.proposals],
            "select_new_ys": list(self.kept),
        }


@dataclass(frozen=True)
class ToTSearch:
    """One Tree-of-Thoughts search on one puzzle, as the official ``run.py`` logs it."""

    index: int
    puzzle: str
    steps: tuple[ToTStep, ...]
    outputs: tuple[str, ...]
    judged_correct: tuple[bool, ...]
    usage: Usage

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ToTSearch:
        """Read one entry of a ToT log; LogError if it is malformed."""
        raw_steps = _field(data, "steps", list)
        if not raw_steps:
            raise LogError("'steps' is empty, so the puzzle is unknown")
        steps = []
        for number, raw_step in enumerate(raw_steps):
            steps.append(_within(f"step {number}", ToTStep.from_dict, raw_step))
        given = {_within(f"step {n}", _field, s, "x", str) for n, s in enumerate(raw_steps)}
        if len(given) != 1:
            raise LogError(f"the steps disagree about the puzzle 'x': {sorted(given)}")
        outputs = _strings(data, "ys")
        return cls(
            index=_field(data, "idx", int),
            puzzle=given.pop(),
            steps=tuple(steps),
            outputs=outputs,
            judged_correct=_judgements(data, "infos", len(outputs)),
            usage=_within("'usage_so_far'", Usage.from_dict, _field(data, "usage_so_far", dict)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry in the log's schema."""
        return {
            "steps": [step.to_dict(self.puzzle) for step in self.steps],
            "idx": self.index,
            "ys": list(self.outputs),
            "infos": [{"r": int(correct)} for correct in self.judged_correct],
            "usage_so_far": self.usage.to_dict(),
        }


@dataclass(frozen=True)
class SampleRun:
    """The samples of an IO or chain-of-thought run on one puzzle, and the log's own 0/1 verdicts."""

    index: int
    outputs: tuple[str, ...]
    judged_correct: tuple[bool, ...]
    usage: Usage

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SampleRun:
        """Read one entry of an IO log (verdicts in ``accs``) or a CoT log (``infos``)."""
        outputs = _strings(data, "ys")
        key = "accs" if "accs" in data else "infos"
        return cls(
            index=_field(data, "idx", int),
            outputs=outputs,
            judged_correct=_judgements(data, key, len(outputs)),
            usage=_within("'usage_so_far'", Usage.from_dict, _field(data, "usage_so_far", dict)),
        )

    def to_dict(self) -> dict[str, Any]:
        """The entry in the current ``run.py`` schema (verdicts as ``infos``)."""
        return {
            "idx": self.index,
            "ys": list(self.outputs),
            "infos": [{"r": int(correct)} for correct in self.judged_correct],
            "usage_so_far": self.usage.to_dict(),
        }


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _field(data: Mapping[str, Any], key: str, kind: type) -> Any:
    """data[key], checked to be of `kind` (an int is a float too, a bool is no number)."""
    if not isinstance(data, Mapping):
        raise LogError(f"expected a JSON object, got {type(data).__name__}")
    if key not in data:
        raise LogError(f"missing {key!r}")
    value = data[key]
    if kind is float and _is_number(value):
        return float(value)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise LogError(f"{key!r} must be {kind.__name__}, got {type(value).__name__}")
    return value


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    values = _field(data, key, list)
    if not all(isinstance(value, str) for value in values):
        raise LogError(f"{key!r} must be a list of strings")
    return tuple(values)


def _judgements(data: Mapping[str, Any], key: str, count: int) -> tuple[bool, ...]:
    """A list of 0/1 verdicts (``{"r": 0|1}`` objects, or bare 0/1 as in the IO log's ``accs``)."""
    raw = _field(data, key, list)
    verdicts = [item.get("r") if isinstance(item, Mapping) else item for item in raw]
    if len(verdicts) != count or not all(type(v) in (int, bool) and v in (0, 1) for v in verdicts):
        raise LogError(f"{key!r} must hold one 0/1 verdict per output ({count}), got {raw!r:.80}")
    return tuple(bool(v) for v in verdicts)


def _within(where: str, read: Callable[..., Any], *args: Any) -> Any:
    """read(*args), with `where` put in front of a LogError's message."""
    try:
        return read(*args)
    except LogError as error:
        raise LogError(f"{where}: {error}") from None


def _read_entries(path: str | Path, read: Callable[[Any], Any]) -> list[Any]:
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise LogError(
            f"{path}: not a JSON log ({error}); pass a file written by the ToT run.py"
        ) from None
    if not isinstance(entries, list):
        raise LogError(f"{path}: a ToT log is a JSON list of entries, got {type(entries).__name__}")
    return [_within(f"{path}: entry {i}", read, entry) for i, entry in enumerate(entries)]


def read_tot_log(path: str | Path) -> list[ToTSearch]:
    """The searches of a Tree-of-Thoughts BFS log (e.g. ..._propose1_value3_greedy5_....json)."""
    return _read_entries(path, ToTSearch.from_dict)


def read_sample_log(path: str | Path) -> list[SampleRun]:
    """The runs of an IO or CoT sampling log (e.g. ..._naive_standard_sample_100_....json)."""
    return _read_entries(path, SampleRun.from_dict)


def read_ranked_puzzles(path: str | Path) -> list[str]:
    """The puzzles of the paper's 24.csv in rank order; item i is the puzzle of the logs' idx i."""
    path = Path(path)
    with path.open(encoding="utf-8", newline="") as file:
        rows = csv.DictReader(file)
        if "Puzzles" not in (rows.fieldnames or ()):
            raise LogError(f"{path}: no 'Puzzles' column in the header; pass the paper's 24.csv")
        ranked = [row["Puzzles"] for row in rows]
    for number, puzzle in enumerate(ranked, start=2):
        if not isinstance(puzzle, str) or not re.fullmatch(r"[0-9]+( [0-9]+){3}", puzzle):
            raise LogError(f"{path}: line {number}: 'Puzzles' is not four numbers: {puzzle!r:.80}")
    return ranked
