"""Generate the datasets shipped in ``moa_lab/data/``.

Run ``python -m moa_lab.experiments._make_datasets`` to rewrite them.

Invariant: the arithmetic answers are computed by the code that writes the question, from a fixed
seed, so every answer is right by construction and the files are byte-for-byte reproducible.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

__all__ = ["DATA_DIR", "SEED", "arithmetic_items", "instruction_items", "main"]

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
SEED = 20240607

_NAMES = ["Ana", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jun", "Kofi", "Lena"]
_THINGS = ["apples", "pencils", "marbles", "stickers", "cookies", "books", "stamps", "shells"]


def _sum_and_give(rng: random.Random) -> tuple[str, int]:
    name, other, thing = *rng.sample(_NAMES, 2), rng.choice(_THINGS)
    start, bought, given = rng.randint(12, 60), rng.randint(5, 40), rng.randint(3, 11)
    question = (
        f"{name} has {start} {thing}, buys {bought} more, then gives {given} to {other}. "
        f"How many {thing} does {name} have now?"
    )
    return question, start + bought - given


def _boxes(rng: random.Random) -> tuple[str, int]:
    boxes, per_box, loose, thing = (
        rng.randint(3, 12),
        rng.randint(6, 24),
        rng.randint(1, 9),
        rng.choice(_THINGS),
    )
    question = (
        f"A shop has {boxes} boxes with {per_box} {thing} in each box and {loose} loose {thing}. "
        f"How many {thing} does the shop have in total?"
    )
    return question, boxes * per_box + loose


def _share(rng: random.Random) -> tuple[str, int]:
    people, each, thing = rng.randint(3, 9), rng.randint(4, 15), rng.choice(_THINGS)
    left = rng.randint(0, people - 1)
    total = people * each + left
    question = (
        f"{total} {thing} are shared equally among {people} children, and the ones that cannot be "
        f"shared equally are kept aside. How many {thing} does each child get?"
    )
    return question, each


def _shopping(rng: random.Random) -> tuple[str, int]:
    name = rng.choice(_NAMES)
    pens, pen_price, notebooks, notebook_price = (
        rng.randint(2, 9),
        rng.randint(2, 6),
        rng.randint(1, 5),
        rng.randint(3, 12),
    )
    paid = ((pens * pen_price + notebooks * notebook_price) // 10 + 1) * 10
    question = (
        f"{name} buys {pens} pens at ${pen_price} each and {notebooks} notebooks at ${notebook_price} "
        f"each, and pays with ${paid}. How many dollars of change does {name} get?"
    )
    return question, paid - pens * pen_price - notebooks * notebook_price


def _speed(rng: random.Random) -> tuple[str, int]:
    speed, hours, half = rng.randint(15, 45) * 2, rng.randint(1, 4), rng.random() < 0.5
    span = f"{hours} hours" + (" and 30 minutes" if half else "")
    question = f"A train travels at {speed} km per hour for {span}. How many kilometres does it travel?"
    return question, speed * hours + (speed // 2 if half else 0)


def _percent(rng: random.Random) -> tuple[str, int]:
    price = rng.randint(2, 30) * 20
    off = rng.choice([10, 15, 20, 25, 30, 40, 50])
    question = (
        f"A jacket costs ${price}. It is on sale for {off}% off. What is the sale price in dollars?"
    )
    return question, price * (100 - off) // 100


def _ages(rng: random.Random) -> tuple[str, int]:
    name, other = rng.sample(_NAMES, 2)
    age, gap, years = rng.randint(6, 20), rng.randint(2, 9), rng.randint(3, 12)
    question = (
        f"{name} is {age} years old and {other} is {gap} years older. "
        f"How old will {other} be in {years} years?"
    )
    return question, age + gap + years


def _expression(rng: random.Random) -> tuple[str, int]:
    a, b, c, d = rng.randint(11, 99), rng.randint(2, 9), rng.randint(10, 60), rng.randint(2, 12)
    question = f"What is {a} × {b} − {c} + {d} × {d}?"
    return question, a * b - c + d * d


_KINDS: list[tuple[str, Callable[[random.Random], tuple[str, int]]]] = [
    ("sum-and-give", _sum_and_give),
    ("boxes", _boxes),
    ("share", _share),
    ("shopping", _shopping),
    ("speed", _speed),
    ("percent", _percent),
    ("ages", _ages),
    ("expression", _expression),
]


def arithmetic_items(count: int = 40, seed: int = SEED) -> list[dict]:
    """``count`` word problems (``question``, ``answer``), the kinds taken in turn, answers computed."""
    rng = random.Random(seed)
    items = []
    for number in range(count):
        kind, make = _KINDS[number % len(_KINDS)]
        question, answer = make(rng)
        items.append(
            {"id": f"arith-{number + 1:02d}", "kind": kind, "question": question, "answer": answer}
        )
    return items


_INSTRUCTIONS = [
    ("Explain to a ten-year-old why the sky is blue.", None),
    ("Write a haiku about a lighthouse in winter.", None),
    ("Give three practical tips for a first-time manager.", None),
    (
        "Summarize the following text in one sentence.",
        "The printing press, introduced in Europe by Johannes Gutenberg around 1440, made books cheaper "
        "and faster to produce, spreading literacy and helping ideas travel across the continent.",
    ),
    ("What are the pros and cons of working from home?", None),
    ("Write a polite email declining a meeting invitation.", None),
    ("Explain the difference between a list and a tuple in Python.", None),
    ("Suggest a name for a bakery that specialises in sourdough, and explain the choice.", None),
    ("Translate the following sentence into French.", "The library opens at nine o'clock tomorrow."),
    ("Describe the water cycle in four steps.", None),
    ("Write a short story opening, two sentences long, set on a night train.", None),
    ("How can I make my morning routine more productive?", None),
    ("Explain what a Mixture-of-Experts model is in plain language.", None),
    (
        "Rewrite the following sentence to be more concise.",
        "Due to the fact that it was raining, we made the decision to stay inside the house.",
    ),
    ("List five questions to ask at the end of a job interview.", None),
    ("Why do leaves change colour in autumn?", None),
    ("Give a recipe idea for a quick vegetarian dinner.", None),
    ("Explain recursion with a short example.", None),
    ("What should I consider when adopting a dog?", None),
    ("Write a limerick about a forgetful robot.", None),
]


def instruction_items() -> list[dict]:
    """The open-ended instructions in the AlpacaEval shape (``instruction``, optional ``input``)."""
    items = []
    for number, (instruction, extra) in enumerate(_INSTRUCTIONS, start=1):
        item = {"id": f"instr-{number:02d}", "instruction": instruction}
        if extra:
            item["input"] = extra
        items.append(item)
    return items


def _write(path: Path, items: list[dict]) -> None:
    path.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items), "utf-8")


def main() -> None:
    """Write ``arithmetic.jsonl`` and ``instructions.jsonl`` into ``moa_lab/data``."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    _write(DATA_DIR / "arithmetic.jsonl", arithmetic_items())
    _write(DATA_DIR / "instructions.jsonl", instruction_items())


if __name__ == "__main__":
    main()
