"""Which part of a call's answer came from which of its references, against all of them at once.

The answer is cut into spans, each credited to the one reference it was most likely copied from, or
to none (new text); each reference's share of the answer's words follows from the spans.

Invariant: the spans tile the answer (their texts, joined, give it back), every word is credited to
at most one reference, and the shares and the new share add up to 1 (all 0.0 for an answer without
words). The cost grows linearly with the answer and the references together.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from moa_lab._analysis._measures import _WORD
from moa_lab._errors import TraceError
from moa_lab._trace import Trace

__all__ = ["MIN_RUN", "Provenance", "Span", "provenance", "provenance_of"]

#: A run of this many words or more, found verbatim in a reference, counts as copied from it.
MIN_RUN = 4
#: Between two spans of one reference within a sentence, fewer new words than this (an edited word,
#: a word inserted) join them: the sentence was taken with an edit.
_GAP = 3
#: What ends a sentence, for the rule above: a stop mark before whitespace, or a line break.
_SENTENCE_END = re.compile(r"[.!?]\s|\n")


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of an answer, credited to one reference or to none."""

    start: int
    """Offset of its first character in the answer (characters, not bytes)."""
    end: int
    """Offset just past its last character: ``answer[start:end] == text``."""
    text: str
    """The answer's text over that range (whitespace and marks after its last word included)."""
    source: str | None
    """The reference (node id) it most likely came from; None: new, found in no reference."""
    score: float
    """Share of its words found verbatim in ``source`` in runs of ``MIN_RUN`` words or more, in
    [0, 1]; below 1 where a few edited words were taken in with it; 0.0 for new text."""
    words: int
    """How many words it holds."""
    also: tuple[str, ...] = ()
    """Other references that hold the same words verbatim just as well (``source`` was read first)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data (``also`` as a list)."""
        return {
            "start": self.start,
            "end": self.end,
            "text": self.text,
            "source": self.source,
            "score": self.score,
            "words": self.words,
            "also": list(self.also),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Span:
        """The span that ``to_dict`` gave."""
        return cls(**{**data, "also": tuple(data.get("also", ()))})


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where a call's answer came from: its spans in order and each reference's share of its words."""

    node: str | None
    """The call whose answer this is (None for texts given directly, ``provenance_of``)."""
    references: tuple[str, ...]
    """The references it read, in the order it read them."""
    spans: tuple[Span, ...]
    """The answer cut into spans, in order; empty when it has no text."""
    shares: Mapping[str, float] = field(default_factory=dict)
    """For every reference, in order, the share of the answer's words credited to it, in [0, 1]."""
    new: float = 0.0
    """Share of the answer's words found in no reference: ``1 - sum(shares)`` (0.0 with no words)."""
    words: int = 0
    """How many words the answer has (the words of ``moa_lab._analysis.words``)."""

    def to_dict(self) -> dict[str, Any]:
        """Plain data, JSON-ready."""
        return {
            "node": self.node,
            "references": list(self.references),
            "spans": [span.to_dict() for span in self.spans],
            "shares": dict(self.shares),
            "new": self.new,
            "words": self.words,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """The provenance that ``to_dict`` gave."""
        return cls(
            node=data["node"],
            references=tuple(data["references"]),
            spans=tuple(Span.from_dict(span) for span in data["spans"]),
            shares=dict(data["shares"]),
            new=data["new"],
            words=data["words"],
        )


def provenance(trace: Trace, node: str) -> Provenance:
    """Which spans of ``node``'s answer came from which of the references it read (``provenance_of``).

    A call that read nothing has one new span (or none, without text); a reference that failed
    (no response) holds no words. Raises TraceError when the trace has no such call.
    """
    if node not in trace.graph:
        raise TraceError(f"no call {node!r} in this trace; its calls are {', '.join(trace.calls()[:8])}")
    read = trace.references(node)
    return replace(provenance_of(trace[node].response, {r: trace[r].response for r in read}), node=node)


def provenance_of(answer: str | None, references: Mapping[str, str | None]) -> Provenance:
    """Cut ``answer`` into spans, each credited to the reference (of ``references``: name -> text,
    in the order they were read) it was most likely copied from, or to none.

    Method: copied runs against all references at once, then tiling by the longest run.

    1. Words are those of ``moa_lab._analysis.words`` (lower-cased, punctuation and markup
       ignored). Every run of ``MIN_RUN`` words of the answer (a shingle, Broder 1997) is looked up
       in one hash index of the shingles the references share with the answer: for each position,
       the set of
       references holding it. Consecutive positions held by one reference form a *run* copied from
       it (the common test of copy detection: a 4-word sequence rarely recurs by chance).
    2. Each word goes to the reference whose run through it is longest (the rule of Greedy String
       Tiling, Wise 1993, used by JPlag: the longest match is the strongest evidence); on a tie, the
       reference read first, the others named in ``Span.also``. Words in no run are new.
    3. Words in a row with one source form a span; fewer than ``_GAP`` new words between two spans
       of one source within a sentence (an edited word) join them, lowering the span's ``score``.

    Every step is a pass over the texts or a set operation, so the cost grows linearly with the
    answer and the references together (plus, per position, the references holding it). Texts are
    matched verbatim: a paraphrase counts as new, which is what "new" here means: wording found in
    no reference.
    """
    names = tuple(references)
    text = answer or ""
    # Offsets as ints and words as strings, not kept match objects: the garbage collector walks
    # every live match object again and again (twice the time of this step on a 400 KB answer).
    found = _WORD.findall(text)
    tokens = _lower(found)
    starts = [match.start() for match in _WORD.finditer(text)]
    ends = [start + len(word) for start, word in zip(starts, found, strict=True)]
    if not tokens:
        spans = (Span(0, len(text), text, None, 0.0, 0),) if text else ()
        return Provenance(None, names, spans, dict.fromkeys(names, 0.0), 0.0, 0)
    runs = _runs(_shingles(tokens), [references[name] for name in names])
    label = _tile(len(tokens), runs)
    pieces = _absorb(_pieces(label), starts, ends, text)
    begins = [starts[first] if at else 0 for at, (_, first, _) in enumerate(pieces)]
    stops = [*begins[1:], len(text)]
    holders = _holders(pieces, runs)
    spans = tuple(
        Span(
            start=start,
            end=end,
            text=text[start:end],
            source=None if source < 0 else names[source],
            score=0.0 if source < 0 else float((label[first:last] >= 0).mean()),
            words=last - first,
            also=tuple(names[r] for r in sorted(holders[at])),
        )
        for at, ((source, first, last), start, end) in enumerate(zip(pieces, begins, stops, strict=True))
    )
    credited = [0] * (len(names) + 1)  # the last counts new words (source -1)
    for span, (source, _, _) in zip(spans, pieces, strict=True):
        credited[source] += span.words
    shares = {name: count / len(tokens) for name, count in zip(names, credited, strict=False)}
    new = credited[-1] / len(tokens)
    return Provenance(None, names, spans, shares, new, len(tokens))


def _lower(found: list[str]) -> list[str]:
    """Words lower-cased one by one: lower-casing a whole text first can split a word ("İ" becomes
    "i" and a combining dot), and the answer and its references must be cut alike."""
    return [word.lower() for word in found]


def _shingles(tokens: Sequence[str]) -> list[str]:
    """The runs of ``MIN_RUN`` words of a text, space-joined (a str caches its hash), in order."""
    return list(map(" ".join, zip(*(tokens[k:] for k in range(MIN_RUN)), strict=False)))


def _runs(shingles: list[str], texts: Sequence[str | None]) -> list[tuple[int, int, int]]:
    """Every run of the answer found in a reference, as (reference, first word, past last word).

    Only the shingles the answer has are indexed: a reference's others are dropped in one set
    intersection, so a layer of thousands of references costs its text and little memory. The
    references holding a shingle are a bit set (an int: bit r for reference r), which the garbage
    collector need not walk and which compares in one step.
    """
    wanted = set(shingles)
    holding: dict[str, int] = {}
    for reference, text in enumerate(texts):
        bit = 1 << reference
        for shingle in wanted.intersection(_shingles(_lower(_WORD.findall(text or "")))):
            holding[shingle] = holding.get(shingle, 0) | bit
    runs: list[tuple[int, int, int]] = []
    started: dict[int, int] = {}  # reference -> where its current run began
    before = 0
    # Inside a run, or between runs, the set is the one before: most positions cost one comparison.
    for at, here in enumerate(map(holding.get, shingles, itertools.repeat(0))):
        if here == before:
            continue
        for reference in _members(before & ~here):
            runs.append((reference, started.pop(reference), at - 1 + MIN_RUN))
        for reference in _members(here & ~before):
            started[reference] = at
        before = here
    runs.extend((reference, begun, len(shingles) - 1 + MIN_RUN) for reference, begun in started.items())
    return runs


def _members(bits: int) -> list[int]:
    """The references of a bit set, lowest first."""
    found = []
    while bits:
        low = bits & -bits
        found.append(low.bit_length() - 1)
        bits ^= low
    return found


def _tile(count: int, runs: list[tuple[int, int, int]]) -> np.ndarray:
    """Each word's source (-1: new): the reference of the longest run through it, the first-read
    on a tie."""
    label = np.full(count, -1, dtype=np.int64)
    # Painted from the weakest run to the strongest: the strongest is painted last and stays.
    for reference, first, last in sorted(runs, key=lambda run: (run[2] - run[1], -run[0])):
        label[first:last] = reference
    return label


def _pieces(label: np.ndarray) -> list[tuple[int, int, int]]:
    """The words grouped into (source, first word, past last word) where the source stays the same."""
    cuts = np.flatnonzero(label[1:] != label[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(label)]
    return [(int(label[a]), a, b) for a, b in itertools.pairwise(bounds)]


def _absorb(
    pieces: list[tuple[int, int, int]], starts: list[int], ends: list[int], text: str
) -> list[tuple[int, int, int]]:
    """Join A, a few new words, A into one piece of A when no sentence ends between them."""
    joined: list[tuple[int, int, int]] = []
    for piece in pieces:
        if len(joined) >= 2 and _an_edit(joined[-2], joined[-1], piece, starts, ends, text):
            joined[-2:] = [(piece[0], joined[-2][1], piece[2])]
        elif joined and joined[-1][0] == piece[0]:
            joined[-1] = (piece[0], joined[-1][1], piece[2])
        else:
            joined.append(piece)
    return joined


def _an_edit(
    left: tuple[int, int, int], gap: tuple[int, int, int], right: tuple[int, int, int],
    starts: list[int], ends: list[int], text: str,
) -> bool:  # fmt: skip
    """Whether ``gap`` is a few new words inside one sentence between two pieces of one reference."""
    return (
        gap[0] < 0
        and gap[2] - gap[1] < _GAP
        and left[0] == right[0] >= 0
        and not _SENTENCE_END.search(text, ends[left[2] - 1], starts[right[1]])
    )


def _holders(pieces: list[tuple[int, int, int]], runs: list[tuple[int, int, int]]) -> list[set[int]]:
    """For each piece credited to a reference, the other references with one run over all of it."""
    holders: list[set[int]] = [set() for _ in pieces]
    firsts = [first for _, first, _ in pieces]
    for reference, first, last in runs:
        at = bisect.bisect_left(firsts, first)
        while at < len(pieces) and pieces[at][2] <= last:
            if 0 <= pieces[at][0] != reference:
                holders[at].add(reference)
            at += 1
    return holders
