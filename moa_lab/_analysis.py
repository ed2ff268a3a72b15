"""Text measures that say how much a call reused its references and how answers converge.

Pure Python (``re``, ``collections``, ``difflib``, ``math``): no plotting and no ML dependency, so
replay, experiments and the views all share one definition of each number. ``docs/views.md`` says
what each measure means and how to read it.

- ``carried``: share of the *source's* word bigrams that reappear in the target (ROUGE-2 recall with
  the source as reference): how much of the source the target carried forward.
- ``copied``: share of the source's words that lie in a run of at least three words found verbatim
  in the target, in any order: copy-paste, not paraphrase. (``word_diff``, the in-order view, uses
  ``difflib`` matching blocks.)
- ``bleu``: BLEU-like precision of the target against the source alone (geometric mean of clipped
  1..4-gram precisions, add-one smoothed for n > 1, no brevity penalty): how much of the target's
  wording could have come from that source.
- ``tfidf``: cosine of TF-IDF word vectors, the IDF taken over the trace's responses: topical
  similarity, order-free, discounting words every response uses.

Invariant: every measure is in [0, 1], is 0.0 (never an error) for empty or missing text, and depends
only on the texts (TF-IDF also on the trace's responses), so results are memoized per trace content.
"""

from __future__ import annotations

import difflib
import math
import re
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import networkx as nx

from moa_lab._trace import Trace

__all__ = [
    "REUSE_MEASURES",
    "Reuse",
    "TfIdf",
    "attribution",
    "bleu",
    "carried",
    "copied",
    "layer_similarity",
    "similarity_to_final",
    "word_diff",
    "words",
]

#: What each attribution number means, in one line (the views show these in legends and hovers).
REUSE_MEASURES: dict[str, str] = {
    "carried": "share of the source's word pairs that reappear in the target (ROUGE-2 recall)",
    "copied": "share of the source's words copied verbatim, in runs of 3+ words",
    "bleu": "BLEU-like precision: share of the target's 1-4-word phrases found in the source",
    "tfidf": "TF-IDF cosine: shared vocabulary, weighted by how rare each word is in the trace",
}

_WORD = re.compile(r"\w+(?:['’]\w+)*")
#: Diff tokens: a word or one punctuation mark, with the whitespace after it.
_DIFF_TOKEN = re.compile(r"(?:\w+(?:['’]\w+)*|[^\w\s])\s*|\s+")
_MAX_N = 4
_MIN_RUN = 3


def words(text: str | None) -> list[str]:
    """The lower-cased words of a text (what every measure counts)."""
    return _WORD.findall((text or "").lower())


class _Profile:
    """A text's words and its 1..4-gram counts, computed once per text."""

    __slots__ = ("grams", "repeated", "runs", "tokens")

    def __init__(self, text: str | None):
        self.tokens = words(text)
        # n-grams as space-joined strings: a str caches its hash, a tuple would rehash at every lookup.
        joined = [self.tokens] + [
            [" ".join(gram) for gram in zip(*(self.tokens[i:] for i in range(n)), strict=False)]
            for n in range(2, _MAX_N + 1)
        ]
        self.runs = joined[_MIN_RUN - 1]
        self.grams = [Counter(grams) for grams in joined]
        self.repeated = [{g: c for g, c in grams.items() if c > 1} for grams in self.grams]

    def total(self, n: int) -> int:
        return max(len(self.tokens) - n + 1, 0)


def _shared(a: _Profile, b: _Profile, n: int) -> int:
    """Clipped count of the n-grams two texts share (the min of both counts, summed)."""
    # Most n-grams occur once: count the common ones with a set intersection (in C), then add what
    # n-grams repeated in both texts contribute beyond one.
    ra, rb = a.repeated[n - 1], b.repeated[n - 1]
    extra = sum(min(ra[g], rb[g]) - 1 for g in ra.keys() & rb.keys()) if ra and rb else 0
    return len(a.grams[n - 1].keys() & b.grams[n - 1].keys()) + extra


def _carried(source: _Profile, target: _Profile) -> float:
    total = source.total(2)
    return _shared(source, target, 2) / total if total else 0.0


def _copied(source: _Profile, target: _Profile) -> float:
    # A source word counts when some run of _MIN_RUN words through it appears verbatim in the target.
    found = target.grams[_MIN_RUN - 1]
    covered = reach = 0
    for start, gram in enumerate(source.runs):
        if gram in found:
            covered += start + _MIN_RUN - max(start, reach)
            reach = start + _MIN_RUN
    return covered / len(source.tokens) if source.tokens else 0.0


def _bleu(candidate: _Profile, reference: _Profile) -> float:
    log_sum = 0.0
    for n in range(1, _MAX_N + 1):
        total = candidate.total(n)
        matched = _shared(candidate, reference, n)
        if n == 1 and not matched:
            return 0.0
        smooth = 0 if n == 1 else 1
        log_sum += math.log((matched + smooth) / (total + smooth))
    return math.exp(log_sum / _MAX_N)


def carried(source: str, target: str) -> float:
    """Share of the source's word bigrams that reappear in the target (ROUGE-2 recall)."""
    return _carried(_Profile(source), _Profile(target))


def copied(source: str, target: str) -> float:
    """Share of the source's words that lie in a run of 3+ words found verbatim in the target."""
    return _copied(_Profile(source), _Profile(target))


def bleu(candidate: str, reference: str) -> float:
    """BLEU-like precision of ``candidate`` against one ``reference`` (smoothed, no brevity penalty)."""
    return _bleu(_Profile(candidate), _Profile(reference))


class TfIdf:
    """TF-IDF vectors of a few texts; ``cosine(i, j)`` compares texts i and j.

    IDF is smoothed as ``log((1 + N) / (1 + df)) + 1`` (scikit-learn's default), term frequency is
    the raw count, and vectors are L2-normalized, so the cosine is a plain dot product.
    """

    def __init__(self, texts: Sequence[str | None]):
        counts = [Counter(words(text)) for text in texts]
        frequency: Counter[str] = Counter()
        for count in counts:
            frequency.update(count.keys())
        size = len(counts)
        idf = {word: math.log((1 + size) / (1 + df)) + 1 for word, df in frequency.items()}
        self.vectors: list[dict[str, float]] = []
        for count in counts:
            vector = {word: tf * idf[word] for word, tf in count.items()}
            norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
            self.vectors.append({word: v / norm for word, v in vector.items()})

    def cosine(self, i: int, j: int) -> float:
        """Cosine similarity of texts i and j (0.0 when either has no words)."""
        a, b = self.vectors[i], self.vectors[j]
        if len(a) > len(b):
            a, b = b, a
        return min(sum(v * b[w] for w, v in a.items() if w in b), 1.0)


@dataclass(frozen=True)
class Reuse:
    """How much ``target`` reused ``source``, its reference number ``position`` (see REUSE_MEASURES)."""

    source: str
    target: str
    position: int
    carried: float
    copied: float
    bleu: float
    tfidf: float

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        return asdict(self)


class _TraceTexts:
    """The per-trace text work: profiles, TF-IDF over the responses, attribution on demand."""

    def __init__(self, trace: Trace):
        self.nodes = trace.calls()
        texts = [trace.call(n).response for n in self.nodes] + [trace.final]
        self.profiles = {n: _Profile(text) for n, text in zip(self.nodes, texts, strict=False)}
        self.final = _Profile(trace.final)
        self.tfidf = TfIdf(texts)
        self.slot = {n: i for i, n in enumerate(self.nodes)}
        self.reuse: dict[tuple[str, str], Reuse] | None = None

    def cosine(self, a: str | None, b: str | None) -> float:
        final = len(self.nodes)
        return self.tfidf.cosine(
            final if a is None else self.slot[a], final if b is None else self.slot[b]
        )


_memo: weakref.WeakKeyDictionary[nx.DiGraph, tuple[tuple, _TraceTexts]] = weakref.WeakKeyDictionary()


def _texts(trace: Trace) -> _TraceTexts:
    """The trace's text work, recomputed when a response, the edge count or the final answer changed."""
    graph = trace.graph
    # Edges only ever arrive with a new node, so counting them is enough (and cheap on big traces).
    signature = (
        tuple((n, d["call"].response) for n, d in graph.nodes(data=True)),
        graph.number_of_edges(),
        trace.final,
    )
    cached = _memo.get(graph)
    if cached is not None and cached[0] == signature:
        return cached[1]
    texts = _TraceTexts(trace)
    _memo[graph] = (signature, texts)
    return texts


def attribution(trace: Trace) -> dict[tuple[str, str], Reuse]:
    """For every edge source -> target of the trace, how much the target reused the source."""
    texts = _texts(trace)
    if texts.reuse is None:
        found: dict[tuple[str, str], Reuse] = {}
        for target in texts.nodes:
            for position, source in enumerate(trace.references(target), start=1):
                src, tgt = texts.profiles[source], texts.profiles[target]
                found[source, target] = Reuse(
                    source=source,
                    target=target,
                    position=position,
                    carried=_carried(src, tgt),
                    copied=_copied(src, tgt),
                    bleu=_bleu(tgt, src),
                    tfidf=texts.cosine(source, target),
                )
        texts.reuse = found
    return texts.reuse


def layer_similarity(trace: Trace, layer: int) -> tuple[list[str], list[list[float]]]:
    """The calls of a layer that answered and their pairwise TF-IDF cosine (1.0 on the diagonal)."""
    texts = _texts(trace)
    nodes = [c.id for c in trace.records(layer) if c.response is not None]
    matrix = [[1.0 if a == b else texts.cosine(a, b) for b in nodes] for a in nodes]
    return nodes, matrix


def similarity_to_final(trace: Trace) -> dict[str, float]:
    """TF-IDF cosine of every answered call's response to the final answer (empty if none)."""
    if trace.final is None:
        return {}
    texts = _texts(trace)
    return {n: texts.cosine(n, None) for n in texts.nodes if trace.call(n).response is not None}


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """Word-level diff of two texts as ``(op, text)`` runs, op in ``equal``/``delete``/``insert``.

    Joining the ``equal`` and ``insert`` runs gives back ``new``; ``equal`` and ``delete`` give ``old``
    up to whitespace.
    """
    a = _DIFF_TOKEN.findall(old or "")
    b = _DIFF_TOKEN.findall(new or "")
    matcher = difflib.SequenceMatcher(
        None, [t.rstrip() for t in a], [t.rstrip() for t in b], autojunk=False
    )
    runs: list[tuple[str, str]] = []

    def add(op: str, text: str) -> None:
        if not text:
            return
        if runs and runs[-1][0] == op:
            runs[-1] = (op, runs[-1][1] + text)
        else:
            runs.append((op, text))

    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            add("equal", "".join(b[j1:j2]))
            continue
        add("delete", "".join(a[i1:i2]))
        add("insert", "".join(b[j1:j2]))
    return runs
