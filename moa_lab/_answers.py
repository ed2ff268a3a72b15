"""Reading the short answer a response states: a number (``\\boxed{42}``, ``Answer: 42``) or a choice.

Shared by the experiments' scorers and the debate strategy's majority vote, so both read an answer
the same way. Invariant: pure functions of text; None (never a guess) when nothing is stated.
"""

from __future__ import annotations

import re
from fractions import Fraction

__all__ = ["as_number", "extract_answer", "short_answer"]

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:\s*/\s*\d+)?"
#: Where a stated final answer is looked for first, most explicit first.
_ANSWER_PATTERNS = [
    r"\\boxed\{\s*\$?(" + _NUMBER + r")",
    r"####\s*\$?(" + _NUMBER + r")",
    r"(?i)(?:final answer|answer)\s*(?:is|:|=)?\s*\**\s*\$?\s*(" + _NUMBER + r")",
]


def as_number(text: str) -> Fraction | None:
    """The exact value of a numeral (``1,234``, ``-0.5``, ``3/4``), or None."""
    cleaned = text.replace(",", "").replace(" ", "")
    try:
        if "/" in cleaned:
            top, bottom = cleaned.split("/")
            return Fraction(int(top), int(bottom)) if int(bottom) else None
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def extract_answer(text: str | None) -> str | None:
    """The answer a response states: ``\\boxed{}``, ``#### n``, ``Answer: n``, else its last number."""
    if not text:
        return None
    for pattern in _ANSWER_PATTERNS:
        found = re.findall(pattern, text)
        if found:
            return found[-1].strip()
    numbers = re.findall(r"(?<![\w.])" + _NUMBER, text)
    return numbers[-1].strip() if numbers else None


_CHOICE = re.compile(r"\(([A-Z])\)")


def short_answer(text: str | None) -> str | None:
    """A response's short answer for a vote: its last ``(X)`` choice, else its stated number
    (normalised, so ``1,000`` and ``1000.0`` agree), else None (a long, free-form answer)."""
    if not text:
        return None
    choices = _CHOICE.findall(text)
    if choices:
        return choices[-1]
    stated = extract_answer(text)
    value = as_number(stated) if stated is not None else None
    if value is None:
        return None
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
