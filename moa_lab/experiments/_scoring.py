"""Scoring answers: exact/numeric match for questions, a pairwise LLM judge, bootstrap intervals.

Invariant: the judge sees every pair in both orders and a candidate's score on an item is the mean
over the two orders it could read (1 win, 0.5 tie, 0 loss), so a judge that always prefers the
first (or second) response scores every candidate exactly 0.5; a failed or unreadable judgment, like
an answer with no number to check, is counted apart and left out of the rate, never scored as a tie
or a miss; the model text put into the judge prompt is never interpreted (no ``str.format`` on it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

import numpy as np

from moa_lab._answers import as_number, extract_answer

__all__ = [
    "JUDGE_SYSTEM",
    "JUDGE_USER",
    "bootstrap_ci",
    "extract_answer",
    "is_correct",
    "judge_messages",
    "pareto_front",
    "parse_verdict",
    "score_answer",
]


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s.-]", " ", text.lower()).split()).strip(".")


def is_correct(response: str | None, answer: str) -> bool:
    """Whether a response states the answer: numerically equal if both are numbers, else same words."""
    return bool(score_answer(response, answer))


def score_answer(response: str | None, answer: str) -> bool | None:
    """True or False when the response states an answer to compare; None when it states none
    (no response, or no number in it for a numeric answer), so it can be counted apart."""
    if not response:
        return None
    expected = as_number(answer)
    if expected is not None:
        stated = extract_answer(response)
        value = as_number(stated) if stated is not None else None
        return None if value is None else value == expected
    normal = _normal(answer)
    lines = [_normal(line) for line in response.strip().splitlines() if line.strip()]
    return bool(lines) and (lines[-1] == normal or lines[-1].endswith(" " + normal))


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its percentile bootstrap interval; NaNs for no values."""
    data = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if data.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(data.mean()), float(low), float(high)


def pareto_front(costs: Sequence[float], qualities: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (cost no higher and quality no lower), cheapest first.

    Points with a missing cost or quality are left out.
    """
    points = [
        (c, q, i)
        for i, (c, q) in enumerate(zip(costs, qualities, strict=True))
        if c is not None and q is not None and not (math.isnan(c) or math.isnan(q))
    ]
    front = []
    best = -math.inf
    for _cost, quality, index in sorted(points, key=lambda p: (p[0], -p[1])):
        if quality > best:
            front.append(index)
            best = quality
    return front


#: The judge's instructions (AlpacaEval/MT-Bench style pairwise comparison).
JUDGE_SYSTEM = (
    "You are a fair and careful judge. You compare two responses to the same instruction and decide "
    "which one is better: more helpful, more correct, clearer. The order in which the responses are "
    "shown and their length must not affect your decision. Reply with one letter only: A if "
    "Response A is better, B if Response B is better."
)
JUDGE_USER = (
    "[Instruction]\n{instruction}\n\n[Response A]\n{a}\n\n[Response B]\n{b}\n\n"
    "Which response is better? Reply with A or B."
)


def judge_messages(instruction: str, a: str, b: str) -> list[dict[str, str]]:
    """The judge's chat messages for one ordered pair."""
    user = JUDGE_USER
    # Fill the slots one at a time from a split, so braces in model text are never read as slots.
    head, rest = user.split("{instruction}")
    middle, tail = rest.split("{a}")
    middle2, end = tail.split("{b}")
    content = head + instruction + middle + a + middle2 + b + end
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


Verdict = Literal["A", "B", "tie"]


def parse_verdict(text: str | None) -> Verdict | None:
    """A, B or tie from a judge's reply; None when it cannot be read."""
    if not text:
        return None
    stripped = text.strip()
    stated = [
        r"^\W*([AB])\W*$",
        r"(?i)(?:verdict|better response|answer|winner)\s*(?:is|:)?\s*\W*\b([AB])\b",
        r"\b([AB])\W*\s+(?:is|was)\s+(?:the\s+)?(?:better|superior|preferred)\b",
        r"\b([AB])\W*\s+wins\b",
    ]
    for pattern in stated:
        match = re.search(pattern, stripped)
        if match:
            return match.group(1).upper()  # type: ignore[return-value]
    if re.search(r"(?i)\b(tie|equally good|equally helpful|both are equal)\b", stripped):
        return "tie"
    # No verdict stated: a reply that opens with a letter and names no other picks it; any other
    # ("Response A is longer, but Response B ...") is unreadable, never scored by its first mention.
    opening = re.match(r"\W*([AB])\b", stripped)
    named = set(re.findall(r"\b([AB])\b", stripped))
    return opening.group(1) if opening and len(named) == 1 else None  # type: ignore[return-value]
