"""Word-level diff of two texts, exact for ordinary answers and about linear for very long ones.

Invariant: joining the ``equal`` and ``insert`` runs gives back the new text, ``equal`` and
``delete`` the old one up to whitespace.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections import Counter

__all__ = ["word_diff"]

#: Diff tokens: a word or one punctuation mark, with the whitespace after it.
_DIFF_TOKEN = re.compile(r"(?:\w+(?:['’]\w+)*|[^\w\s])\s*|\s+")


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """Word-level diff of two texts as ``(op, text)`` runs, op in ``equal``/``delete``/``insert``.

    Joining the ``equal`` and ``insert`` runs gives back ``new``; ``equal`` and ``delete`` give ``old``
    up to whitespace (the same words, broken at the same places). Texts of up to about 2,000 words
    each get ``difflib``'s diff; longer ones are first cut at passages they share in the same order
    (``_match``), so the cost grows about linearly with the texts, not with their product.
    """
    a = _DIFF_TOKEN.findall(old or "")
    b = _DIFF_TOKEN.findall(new or "")
    opcodes: list[tuple[str, int, int, int, int]] = []
    _match([t.rstrip() for t in a], [t.rstrip() for t in b], 0, len(a), 0, len(b), opcodes, 0)
    # Pieces are gathered per run and joined once: adding strings run by run would be quadratic.
    runs: list[tuple[str, list[str]]] = []

    def add(op: str, pieces: list[str]) -> None:
        if not pieces:
            return
        if runs and runs[-1][0] == op:
            runs[-1][1].extend(pieces)
        else:
            runs.append((op, pieces))

    for tag, i1, i2, j1, j2 in opcodes:
        if tag != "equal":
            add("delete", a[i1:i2])
            add("insert", b[j1:j2])
            continue
        # Equal words may differ in the whitespace after them. Where only ``old`` has some, it is
        # deleted, and where only ``new`` has some before more of ``old``, inserted: so ``old``
        # neither loses nor gains a break between two of its words.
        start = j1
        for i, j in zip(range(i1, i2), range(j1, j2), strict=True):
            spaced = a[i][-1].isspace()
            if spaced != b[j][-1].isspace() and (spaced or i + 1 < len(a)):
                word = b[j].rstrip()
                add("equal", [*b[start:j], word])
                if spaced:
                    add("delete", [a[i][len(word) :]])
                else:
                    add("insert", [b[j][len(word) :]])
                start = j + 1
        add("equal", b[start:j2])
    return [(op, "".join(pieces)) for op, pieces in runs]


#: Up to this many token pairs (old tokens x new tokens), a diff is difflib's, exact: about 2,000
#: words against 2,000, a tenth of a second. ``difflib`` grows with the product of the lengths.
_EXACT_PAIRS = 4_000_000
#: Between anchors, a part is diffed exactly up to this many token pairs, else cut again.
_GAP_PAIRS = 1_000_000
#: Anchors are runs of this many tokens found exactly once in each text.
_ANCHOR = 3
#: Cuts at anchors nest at most this deep; a part still too big after that is replaced whole.
_MAX_DEPTH = 8


def _match(
    a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int,
    out: list[tuple[str, int, int, int, int]], depth: int,
) -> None:  # fmt: skip
    """Append the opcodes that turn ``a[alo:ahi]`` into ``b[blo:bhi]`` to ``out``, in order.

    Small enough: ``difflib``. Too big: keep the common head and tail, then cut both at the runs of
    ``_ANCHOR`` tokens that occur once in each and in the same order (patience diff: the longest
    increasing chain of such anchors) and match the parts between anchors the same way. Every level
    is linear in its part, and a part that has no anchor is replaced whole, so the cost stays bounded.
    """
    if alo == ahi or blo == bhi:
        if alo < ahi or blo < bhi:
            out.append(("replace", alo, ahi, blo, bhi))
        return
    if (ahi - alo) * (bhi - blo) <= (_EXACT_PAIRS if depth == 0 else _GAP_PAIRS):
        matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            out.append((tag, alo + i1, alo + i2, blo + j1, blo + j2))
        return
    head = 0
    while alo + head < ahi and blo + head < bhi and a[alo + head] == b[blo + head]:
        head += 1
    tail = 0
    while ahi - tail > alo + head and bhi - tail > blo + head and a[ahi - tail - 1] == b[bhi - tail - 1]:
        tail += 1
    if head or tail:
        if head:
            out.append(("equal", alo, alo + head, blo, blo + head))
        _match(a, b, alo + head, ahi - tail, blo + head, bhi - tail, out, depth)
        if tail:
            out.append(("equal", ahi - tail, ahi, bhi - tail, bhi))
        return
    anchors = _anchors(a, b, alo, ahi, blo, bhi) if depth < _MAX_DEPTH else []
    if not anchors:
        out.append(("replace", alo, ahi, blo, bhi))
        return
    for i, j in anchors:
        _match(a, b, alo, i, blo, j, out, depth + 1)
        out.append(("equal", i, i + 1, j, j + 1))
        alo, blo = i + 1, j + 1
    _match(a, b, alo, ahi, blo, bhi, out, depth + 1)


def _anchors(
    a: list[str], b: list[str], alo: int, ahi: int, blo: int, bhi: int
) -> list[tuple[int, int]]:
    """Positions (i, j) starting a run of ``_ANCHOR`` tokens found once in each part, in both orders.

    The longest chain increasing in both i and j (patience sorting, n log n), so no two cross.
    """

    def grams(seq: list[str], lo: int, hi: int) -> list[tuple[str, ...]]:
        return list(zip(*(seq[lo + k : hi] for k in range(_ANCHOR)), strict=False))

    in_a, in_b = grams(a, alo, ahi), grams(b, blo, bhi)
    once_a = {g for g, n in Counter(in_a).items() if n == 1}
    count_b = Counter(in_b)
    at_b = {g: blo + j for j, g in enumerate(in_b) if count_b[g] == 1 and g in once_a}
    pairs = [(alo + i, at_b[g]) for i, g in enumerate(in_a) if g in at_b]
    # Patience sorting: tops[k] is the smallest j ending an increasing chain of length k + 1.
    tops: list[int] = []
    ends: list[int] = []  # index into pairs of the chain end behind each top
    before: list[int] = []  # for each pair, the pair before it in its best chain (-1: none)
    for index, (_, j) in enumerate(pairs):
        k = bisect.bisect_left(tops, j)
        before.append(ends[k - 1] if k else -1)
        if k == len(tops):
            tops.append(j)
            ends.append(index)
        else:
            tops[k], ends[k] = j, index
    chain = []
    index = ends[-1] if ends else -1
    while index >= 0:
        chain.append(pairs[index])
        index = before[index]
    return chain[::-1]
