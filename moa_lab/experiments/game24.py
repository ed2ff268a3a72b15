"""Game of 24, the Tree-of-Thoughts benchmark: its puzzles, a solver, the official judge, its logs.

The task and the logs come from Yao et al. 2023, "Tree of Thoughts: Deliberate Problem Solving with
Large Language Models" (arXiv 2305.10601), code release princeton-nlp/tree-of-thought-llm: four
numbers from 1 to 13 are to be combined with + - * / into 24, each used exactly once.

Invariant: ``check`` gives the verdict of the official judge (``Game24Task.test_output`` in
src/tot/tasks/game24.py, run with the sympy 1.12 that the repository pins) for every answer written
with + - * /, parentheses and decimal numerals; it never evaluates code and never raises. The
puzzles are made by exact rational search, not read from the paper's files.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from itertools import combinations, combinations_with_replacement
from pathlib import Path
from typing import Any

from moa_lab._errors import MoaLabError

__all__ = [
    "LogError",
    "SampleRun",
    "ToTSearch",
    "ToTStep",
    "Usage",
    "check",
    "puzzles",
    "read_ranked_puzzles",
    "read_sample_log",
    "read_tot_log",
    "solve",
]

_TARGET = Fraction(24)
#: Puzzles use the numbers of a deck's ranks, as in the paper (ace to king).
_SMALLEST, _LARGEST = 1, 13


class LogError(MoaLabError, ValueError):
    """A Tree-of-Thoughts log file (or the paper's puzzle table) is malformed."""


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


# --- the official judge ------------------------------------------------------------------------

#: A number as CPython's tokenizer reads one (underscores, exponents and suffixes are left out).
_NUMERAL = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")
#: Whitespace CPython's tokenizer skips inside a line.
_BLANKS = " \t\f"
_SIGNS_AND_BLANKS = "+-" + _BLANKS
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}
_EXACT: dict[str, Callable[[Fraction, Fraction], Fraction]] = {
    "+": Fraction.__add__,
    "-": Fraction.__sub__,
    "*": Fraction.__mul__,
    "/": Fraction.__truediv__,
}
# Where the official judge's Python gives up on nesting, so that it returns 0. CPython's tokenizer
# allows 200 open brackets and sympy wraps every numeral in one more ("Integer(8)"). The other two
# limits were measured on CPython 3.11 with sympy 1.12 (parser stack: 28 per bracket, 1 per sign;
# compiler recursion: 2,977 signs); other Python versions draw these lines a little elsewhere.
_MAX_BRACKETS = 199
_BRACKET_COST, _PARSER_BUDGET, _MAX_SIGNS = 28, 5951, 2977
#: mpmath reads a decimal with more fraction digits than this by another, inexact route.
_MAX_FRACTION_DIGITS = 400

#: A number as sympy holds it: its exact value, and the binary precision of a Float (0: a Rational).
_Number = tuple[Fraction, int]


def _round(value: Fraction, precision: int) -> Fraction:
    """`value` to `precision` significant bits, ties to even (mpmath's round_nearest)."""
    if not value:
        return value
    numerator, denominator = abs(value.numerator), value.denominator
    shift = precision - numerator.bit_length() + denominator.bit_length()
    while True:
        scaled, scale = (
            (numerator << shift, denominator) if shift >= 0 else (numerator, denominator << -shift)
        )
        quotient, remainder = divmod(scaled, scale)
        if quotient.bit_length() <= precision:
            break
        shift -= 1
    if 2 * remainder > scale or (2 * remainder == scale and quotient & 1):
        quotient += 1
    rounded = Fraction(quotient, 1 << shift) if shift >= 0 else Fraction(quotient << -shift)
    return rounded if value > 0 else -rounded


def _numeral(text: str) -> _Number | None:
    """The number sympy makes of a numeral: Integer, or Float with 15+ significant digits."""
    try:
        if "." not in text:
            # CPython reads "01" as two numbers in a row, a syntax error ("00" is zero).
            if text[0] == "0" and text.strip("0"):
                return None
            return Fraction(int(text)), 0
        whole, fraction = text.split(".")
        if len(fraction) > _MAX_FRACTION_DIGITS:
            return None
        digits = whole + fraction
        exact = Fraction(int(digits or "0"), 10 ** len(fraction))
    except ValueError:
        # Past sys.get_int_max_str_digits(): sympy cannot read the numeral either.
        return None
    significant = max(15, len(digits.lstrip("0")) or 1)
    precision = max(1, round((significant + 1) * 3.3219280948873626))  # mpmath's dps_to_prec
    return _round(exact, precision), precision


def _combine(operator: str, left: _Number, right: _Number) -> _Number | None:
    """`left operator right` as sympy 1.12 computes it; None on division by zero."""
    (x, x_precision), (y, y_precision) = left, right
    if operator == "/" and not y:
        # sympy gives zoo or nan. Only dividing by that again gets a finite value (0), and that
        # takes a fifth number or a 0 in the puzzle, so no puzzle of four numbers 1-13 reaches 24.
        return None
    if not (x_precision or y_precision):
        return _EXACT[operator](x, y), 0
    if operator == "/" and not x_precision:
        # Rational.__truediv__ computes x * (1/y) for a Float y: two roundings, not one.
        inverse = _round(1 / y, y_precision)
        return _round(_round(x, y_precision) * inverse, y_precision), y_precision
    # A Float op a Rational rounds the Rational first; two Floats work at the larger precision.
    precision = max(x_precision, y_precision)
    x, y = _round(x, precision), _round(y, precision)
    return _round(_EXACT[operator](x, y), precision), precision


def _arithmetic(text: str) -> _Number | None:
    """The value sympy.simplify gives `text` (+ - * /, brackets, numerals), or None if it fails.

    Operator precedence parsing with explicit stacks: linear in len(text), no recursion.
    """
    numbers: list[_Number] = []
    # Open brackets "(", binary operators, and runs of signs as ("sign", count, negative).
    pending: list[tuple[str, int, bool]] = []
    depth = signs = 0

    def reduce() -> bool:
        nonlocal signs
        kind, count, negative = pending.pop()
        if kind == "sign":
            signs -= count
            value, precision = numbers[-1]
            numbers[-1] = (-value if negative else value), precision
            return True
        right = numbers.pop()
        result = _combine(kind, numbers[-1], right)
        if result is None:
            return False
        numbers[-1] = result
        return True

    i, end = 0, len(text)
    expect_number = True
    while i < end:
        char = text[i]
        if char in _BLANKS or (char == "\r" and depth):
            # Python reads "\r" as a line break, and brackets join lines into one.
            i += 1
        elif char == "#" and depth:  # a comment runs to the next line break
            line_break = text.find("\r", i)
            i = end if line_break < 0 else line_break
        elif char in "#\r":
            # Outside brackets a comment or a line break ends the expression: only blank lines and
            # comments may follow.
            if not _only_comments(text[i:]):
                return None
            break
        elif expect_number and char in "+-":
            count, negative = 0, False
            while i < end and text[i] in _SIGNS_AND_BLANKS:
                if text[i] != "-" and text[i] != "+":
                    i += 1
                    continue
                count += 1
                negative ^= text[i] == "-"
                i += 1
            pending.append(("sign", count, negative))
            signs += count
        elif expect_number and char == "(":
            depth += 1
            if depth > _MAX_BRACKETS:
                return None
            pending.append(("(", 0, False))
            i += 1
        elif expect_number:
            match = _NUMERAL.match(text, i)
            if match is None or signs > _MAX_SIGNS or depth * _BRACKET_COST + signs > _PARSER_BUDGET:
                return None
            number = _numeral(match.group())
            if number is None:
                return None
            numbers.append(number)
            i = match.end()
            expect_number = False
        elif char in _PRECEDENCE:
            while pending and (
                pending[-1][0] == "sign" or _PRECEDENCE.get(pending[-1][0], 0) >= _PRECEDENCE[char]
            ):
                if not reduce():
                    return None
            pending.append((char, 0, False))
            expect_number = True
            i += 1
        elif char == ")":
            while pending and pending[-1][0] != "(":
                if not reduce():
                    return None
            if not pending:
                return None
            pending.pop()
            depth -= 1
            i += 1
        else:
            return None
    if expect_number:
        return None
    while pending:
        if pending[-1][0] == "(" or not reduce():
            return None
    return numbers[0]


def _only_comments(text: str) -> bool:
    """Whether every line of `text` (lines end at "\r") is blank or a comment."""
    return all(line.lstrip(_BLANKS)[:1] in ("", "#") for line in text.split("\r"))


def _string_content(text: str) -> str | None:
    """The content of `text` if it is one plain string literal (then comments at most), else None."""
    quote = text[:3] if text[:3] in ("'''", '"""') else text[0]
    close = text.find(quote, len(quote))
    if close < 0:
        return None
    content = text[len(quote) : close]
    # Escapes and line breaks inside the literal are left out: sympy fails on or rewrites them.
    if "\\" in content or "\r" in content or not _only_comments(text[close + len(quote) :]):
        return None
    return content


def _sympy_value(expression: str) -> _Number | None:
    """The value of sympy.simplify(expression), or None where it raises or is not a number."""
    # sympify strips the text (any Unicode whitespace) before Python's tokenizer sees it.
    text = expression.strip()
    if text[:1] in ("'", '"'):
        # Python evaluates a string literal to a str, and simplify sympifies that str once more.
        content = _string_content(text)
        return None if content is None else _arithmetic(content.strip())
    return _arithmetic(text)


def check(puzzle: str, output: str) -> bool:
    """Whether `output` solves `puzzle`, judged as the Tree-of-Thoughts code judges it.

    The official judge (``test_output`` in princeton-nlp/tree-of-thought-llm, src/tot/tasks/game24.py;
    Yao et al. 2023, arXiv 2305.10601) takes the last line of the stripped output, lower-cases it,
    deletes every "answer: " and everything from the first "=", and requires the digit runs
    (``re.findall(r'\\d+')``, compared as sorted strings) to be exactly the puzzle's; then it scores
    1 if ``sympy.simplify(expression) == 24`` and 0 if that is false or raises. This function
    repeats the text handling verbatim and evaluates + - * /, brackets, signs and decimal numerals
    itself, with exact fractions for integers and sympy 1.12's binary Floats for decimals (so
    "2.4/0.1" is not 24 but "0.5*48" is; under sympy 1.13+ no decimal answer equals 24). Python
    comments ("# ...") and one quoted expression are read as sympy reads them.

    Notation outside the game that sympy would evaluate is judged False: powers ("**", "^"),
    factorials ("!"), floor division ("//", also "/ /"), "%", names, exponents ("2.4e1"), "_" in
    numerals, string tricks beyond one plain literal. Division by zero is False (sympy's zoo and
    nan cannot come back to 24 with four numbers 1-13). Unicode signs such as × ÷ − make sympy
    fail, so they are False for both. Never raises.
    """
    expression = output.strip().split("\n")[-1].lower().replace("answer: ", "").partition("=")[0]
    if sorted(re.findall(r"\d+", expression)) != sorted(re.findall(r"\d+", puzzle)):
        return False
    value = _sympy_value(expression)
    # In sympy 1.12 a Float equals an Integer when their values are equal.
    return value is not None and value[0] == _TARGET


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
