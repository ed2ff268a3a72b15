"""Datasets of prompts to run mixtures on: the AlpacaEval shape and a question/answer shape.

A file is JSONL (one object a line) or JSON (a list of objects). An AlpacaEval item has
``instruction``, optional ``input`` and an optional reference ``output``; a QA item has ``question``
and ``answer``. Invariant: a loaded dataset is one shape only, every item has a unique id, and a
malformed file fails with one line naming the file, the line (or item) and what to fix.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from moa_lab._errors import MoaLabError

__all__ = ["SHIPPED", "Dataset", "DatasetError", "Item", "load_dataset"]

#: Datasets that ship with moa_lab as files, loadable by name (``game24`` is made by code).
SHIPPED = {"arithmetic": "arithmetic.jsonl", "instructions": "instructions.jsonl"}


class DatasetError(MoaLabError, ValueError):
    """A dataset file is missing or malformed."""


@dataclass(frozen=True)
class Item:
    """One prompt of a dataset, with what a good answer is, when known."""

    id: str
    prompt: str
    """What the mixture is asked: the instruction (and its input), or the question."""
    instruction: str
    """The instruction or question as the file gave it (AlpacaEval export writes this back)."""
    input: str | None = None
    """The AlpacaEval ``input`` appended to the instruction, if any."""
    reference: str | None = None
    """A reference output (AlpacaEval) to compare against, if any."""
    answer: str | None = None
    """The exact answer of a QA item, as text."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Any other fields of the item, kept as they were."""


@dataclass(frozen=True)
class Dataset:
    """A named list of items of one shape (``qa`` has answers to score; ``instruct`` does not)."""

    name: str
    shape: Literal["qa", "instruct", "puzzle"]
    items: tuple[Item, ...]
    checker: str | None = None
    """How an answer is judged when the items have no single answer: ``game24`` (the paper's
    Game of 24 checker); None scores the items' answers."""

    def __len__(self) -> int:
        return len(self.items)

    def head(self, count: int) -> Dataset:
        """The first ``count`` items as a dataset of the same name."""
        return Dataset(self.name, self.shape, self.items[:count], self.checker)

    def sample(self, count: int, *, seed: int = 0) -> Dataset:
        """``count`` items drawn without replacement by a seeded shuffle (the same every time)."""
        chosen = random.Random(seed).sample(self.items, min(count, len(self.items)))
        return Dataset(self.name, self.shape, tuple(chosen), self.checker)

    def score(self, item: Item, output: str | None) -> bool | None:
        """Whether ``output`` answers ``item``; None when there is nothing to score (no answer
        stated, no known answer)."""
        if self.checker == "game24":
            from moa_lab.experiments.game24 import check

            return check(item.instruction, output) if output else None
        if item.answer is None:
            return None
        from moa_lab.experiments._scoring import score_answer

        return score_answer(output, item.answer)

    def __repr__(self) -> str:
        return f"<Dataset {self.name!r}: {len(self)} {self.shape} items>"


def _records(path: Path) -> list[tuple[str, Any]]:
    """(where, record) pairs: ``line N`` for JSONL, ``item N`` for a JSON list."""
    try:
        text = path.read_text("utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text; save the dataset as UTF-8 JSON or JSONL") from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, list):
            raise DatasetError(
                f"{path}: a .json dataset must be a list of objects; use .jsonl for lines"
            )
        return [(f"item {n}", record) for n, record in enumerate(data, start=1)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((f"line {number}", json.loads(line)))
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}: line {number} is not valid JSON ({exc.msg})") from None
    return records


def _text(value: Any, name: str, where: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DatasetError(f"{where}: '{name}' must be text, got {type(value).__name__}")
    return str(value)


def _item(record: Any, where: str, number: int) -> tuple[str, Item]:
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: an item must be a JSON object, got {type(record).__name__}")
    if "question" in record:
        shape = "qa"
        if "answer" not in record:
            raise DatasetError(f"{where}: a 'question' item needs an 'answer'")
        instruction = _text(record["question"], "question", where)
        answer: str | None = _text(record["answer"], "answer", where)
        extra_input, reference, prompt = None, None, instruction
        known = {"id", "question", "answer"}
    elif "instruction" in record:
        shape = "instruct"
        instruction = _text(record["instruction"], "instruction", where)
        raw_input = record.get("input")
        extra_input = _text(raw_input, "input", where) if raw_input not in (None, "") else None
        raw_reference = record.get("output")
        reference = _text(raw_reference, "output", where) if raw_reference is not None else None
        answer = None
        prompt = f"{instruction}\n\n{extra_input}" if extra_input else instruction
        known = {"id", "instruction", "input", "output"}
    else:
        raise DatasetError(
            f"{where}: an item needs 'instruction' (AlpacaEval shape) or 'question' and 'answer' (QA)"
        )
    if not prompt.strip():
        raise DatasetError(f"{where}: the {'question' if shape == 'qa' else 'instruction'} is empty")
    item_id = _text(record.get("id", f"{number:04d}"), "id", where)
    extra = {k: v for k, v in record.items() if k not in known}
    return shape, Item(item_id, prompt, instruction, extra_input, reference, answer, extra)


def game24_dataset() -> Dataset:
    """Every Game of 24 puzzle (1,362, made by code), each judged by the paper's checker."""
    from moa_lab.experiments.game24 import puzzles

    items = tuple(
        Item(f"{number:04d}", puzzle, puzzle, extra={"puzzle": puzzle})
        for number, puzzle in enumerate(puzzles(), start=1)
    )
    return Dataset("game24", "puzzle", items, checker="game24")


def load_dataset(source: str | Path, *, limit: int | None = None) -> Dataset:
    """Load a .jsonl/.json dataset file, or a shipped one by name (``arithmetic``, ``instructions``,
    ``game24``: every Game of 24 puzzle, judged by the paper's checker)."""
    if source == "game24":
        dataset = game24_dataset()
        return dataset.head(limit) if limit is not None else dataset
    if isinstance(source, str) and source in SHIPPED:
        name = source
        path = Path(str(resources.files("moa_lab") / "data" / SHIPPED[source]))
    else:
        path = Path(source)
        name = path.stem
    if not path.is_file():
        shipped = ", ".join(sorted(SHIPPED))
        raise DatasetError(f"{path}: no such dataset file (or give a shipped one by name: {shipped})")
    if path.suffix.lower() not in (".json", ".jsonl"):
        raise DatasetError(f"{path}: unknown dataset format {path.suffix!r}; use .jsonl or .json")
    records = _records(path)
    if not records:
        raise DatasetError(f"{path}: the dataset has no items")
    shapes: set[str] = set()
    items: list[Item] = []
    seen: dict[str, str] = {}
    for number, (where, record) in enumerate(records, start=1):
        shape, item = _item(record, f"{path}: {where}", number)
        shapes.add(shape)
        if len(shapes) > 1:
            raise DatasetError(
                f"{path}: {where} mixes the QA and AlpacaEval shapes; keep one shape per file"
            )
        if item.id in seen:
            raise DatasetError(f"{path}: {where} repeats the id {item.id!r} of {seen[item.id]}")
        seen[item.id] = where
        items.append(item)
    dataset = Dataset(name, "qa" if "qa" in shapes else "instruct", tuple(items))
    return dataset.head(limit) if limit is not None else dataset
