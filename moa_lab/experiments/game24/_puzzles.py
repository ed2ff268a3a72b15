"""Game of 24's puzzles, made by exact rational search, and one solution of each.

Invariant: ``puzzles()`` is every multiset of four numbers 1..13 that can make 24 with + - * / and
brackets, each number used once (1,362 of them: the paper's list), and ``solve`` only ever returns
an expression that ``check`` accepts.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from functools import cache
from itertools import combinations, combinations_with_replacement

__all__ = ["puzzles", "solve"]

_TARGET = Fraction(24)
#: Puzzles use the numbers of a deck's ranks, as in the paper (ace to king).
_SMALLEST, _LARGEST = 1, 13


# --- puzzles and solutions ---------------------------------------------------------------------


def _bracket(expression: str) -> str:
    return expression if expression.isdigit() else f"({expression})"


def _splits(numbers: tuple[int, ...]) -> Iterator[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Each way to part `numbers` into two non-empty sub-multisets, once (not also mirrored)."""
    seen = set()
    rest = range(1, len(numbers))
    for size in range(len(numbers) - 1):
        # Index 0 always goes left, so a split and its mirror image are not both produced.
        for chosen in combinations(rest, size):
            left = (0, *chosen)
            part = (
                tuple(numbers[i] for i in left),
                tuple(n for i, n in enumerate(numbers) if i not in left),
            )
            if part not in seen:
                seen.add(part)
                yield part


@cache
def _values(numbers: tuple[int, ...]) -> dict[Fraction, str]:
    """Every value reachable from `numbers` (each used once), with one expression reaching it."""
    if len(numbers) == 1:
        return {Fraction(numbers[0]): str(numbers[0])}
    reached: dict[Fraction, str] = {}
    for left, right in _splits(numbers):
        for a, a_text in _values(left).items():
            for b, b_text in _values(right).items():
                x, y = _bracket(a_text), _bracket(b_text)
                reached.setdefault(a + b, f"{x} + {y}")
                reached.setdefault(a - b, f"{x} - {y}")
                reached.setdefault(b - a, f"{y} - {x}")
                reached.setdefault(a * b, f"{x} * {y}")
                if b:
                    reached.setdefault(a / b, f"{x} / {y}")
                if a:
                    reached.setdefault(b / a, f"{y} / {x}")
    return reached


def _partners(x: Fraction) -> Iterator[tuple[Fraction, str]]:
    """Each y that makes 24 with x in one operation, and the operation (x and y as {x} and {y})."""
    yield _TARGET - x, "{x} + {y}"
    yield x - _TARGET, "{x} - {y}"
    yield x + _TARGET, "{y} - {x}"
    if x:
        yield _TARGET / x, "{x} * {y}"
        yield x / _TARGET, "{x} / {y}"
        yield _TARGET * x, "{y} / {x}"


@cache
def _solution(numbers: tuple[int, ...]) -> str | None:
    """One expression that makes 24 from `numbers` (sorted, two or more), or None."""
    # The last operation joins two parts; rather than list every value of the whole set, look each
    # partner of the smaller part's values up in the larger part's table (this keeps puzzles() fast).
    for left, right in _splits(numbers):
        small, large = sorted((_values(left), _values(right)), key=len)
        for x, x_text in small.items():
            for y, form in _partners(x):
                if y in large:
                    return form.format(x=_bracket(x_text), y=_bracket(large[y]))
    return None


def puzzles() -> list[str]:
    """Every Game of 24 puzzle: the 1,362 multisets of four numbers 1-13 that can make 24."""
    # combinations_with_replacement yields ascending tuples in lexicographic order, so the list is
    # sorted by the tuple of numbers ("1 1 1 8" first), not by the paper's difficulty rank.
    return [
        " ".join(map(str, numbers))
        for numbers in combinations_with_replacement(range(_SMALLEST, _LARGEST + 1), 4)
        if _solution(numbers) is not None
    ]


def solve(puzzle: str) -> str | None:
    """One expression that makes 24 from the puzzle's four numbers (e.g. "4 5 6 10"), or None."""
    if not re.fullmatch(r"\s*[0-9]+(\s+[0-9]+){3}\s*", puzzle):
        raise ValueError(f"a puzzle is four whole numbers separated by spaces, got {puzzle!r}")
    return _solution(tuple(sorted(int(n) for n in puzzle.split())))
