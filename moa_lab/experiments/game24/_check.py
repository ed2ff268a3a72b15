"""The official Game of 24 judge, reproduced without evaluating code.

Invariant: ``check`` gives the verdict of the official judge (``Game24Task.test_output`` in
princeton-nlp/tree-of-thought-llm, src/tot/tasks/game24.py, run with the sympy 1.12 that the
repository pins) for every answer written with + - * /, parentheses and decimal numerals; it never
evaluates code and never raises.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

__all__ = ["check"]

_TARGET = Fraction(24)


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
