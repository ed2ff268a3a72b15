"""The reuse measures (carried, copied, BLEU, TF-IDF) and the similarity of a trace's answers.

See the package docstring for what each measure means.
"""

from __future__ import annotations

import itertools
import math
import operator
import re
import weakref
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import compress, repeat
from typing import Any

import networkx as nx
import numpy as np

from moa_lab._trace import Trace

__all__ = [
    "REUSE_MEASURES",
    "Reuse",
    "TfIdf",
    "attribution",
    "bleu",
    "carried",
    "copied",
    "layer_diversity",
    "layer_similarity",
    "references",
    "similarity_to_final",
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
_MAX_N = 4
_MIN_RUN = 3
#: Readers whose edges ``attribution`` scores together (one count per n-gram order and block).
_BLOCK = 16


def words(text: str | None) -> list[str]:
    """The lower-cased words of a text (what every measure counts)."""
    return _WORD.findall((text or "").lower())


class _Profile:
    """A text's words and its 1..4-grams, computed once per text.

    ``grams[n - 1]`` holds the text's n-grams as a set in which the k-th repeat of an n-gram
    (k >= 1) is tagged ``"<n-gram>\0k"``: the size of the intersection of two texts' sets is then
    the clipped count of the n-grams they share, found in one set intersection (in C).
    """

    __slots__ = ("grams", "runs", "tokens")

    def __init__(self, text: str | None):
        self.tokens = words(text)
        # n-grams as space-joined strings: a str caches its hash, a tuple would rehash at every lookup.
        joined = [self.tokens] + [
            [" ".join(gram) for gram in zip(*(self.tokens[i:] for i in range(n)), strict=False)]
            for n in range(2, _MAX_N + 1)
        ]
        self.runs = joined[_MIN_RUN - 1]
        self.grams = [_occurrences(grams) for grams in joined]


def _occurrences(grams: list[str]) -> frozenset[str]:
    """The n-grams once each, plus ``"<n-gram>\0k"`` for the k-th repeat (``\0`` is in no word)."""
    counts = Counter(grams)
    repeats = [f"{gram}\0{k}" for gram, count in counts.items() if count > 1 for k in range(1, count)]
    return frozenset(counts).union(repeats)


def _shared(a: _Profile, b: _Profile, n: int) -> int:
    """Clipped count of the n-grams two texts share (the min of both counts, summed)."""
    return len(a.grams[n - 1] & b.grams[n - 1])


def _measures(source: _Profile, target: _Profile) -> tuple[float, float, float]:
    """``carried`` and ``copied`` of the source into the target, ``bleu`` of the target against it."""
    # An n-gram both texts have is made of (n-1)-grams both have: once an order shares nothing,
    # the higher ones share nothing either.
    shared = [_shared(source, target, 1)]
    for n in range(2, _MAX_N + 1):
        shared.append(_shared(source, target, n) if shared[-1] else 0)
    carried, bleu = _scores(
        np.array(shared, dtype=np.float64)[:, None],
        np.array([len(source.tokens)]),
        np.array([len(target.tokens)]),
    )
    copied = _copied(source, target) if shared[_MIN_RUN - 1] else 0.0
    return float(carried[0]), copied, float(bleu[0])


def _scores(
    shared: np.ndarray, source_words: np.ndarray, target_words: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``carried`` and ``bleu`` of edges, from the clipped counts of the 1..4-grams each shares
    (``shared``, one row per n) and the words of its source and of its target.

    The one definition of both numbers, for one pair of texts or for many edges at once. The count
    is symmetric: it serves ``carried`` (a share of the source's) and ``bleu`` (of the target's).
    """
    order = np.arange(1, _MAX_N + 1)[:, None]
    pairs = np.maximum(source_words - 1, 0).astype(np.float64)
    carried = np.divide(shared[1], pairs, out=np.zeros(pairs.shape), where=pairs > 0)
    totals = np.maximum(target_words[None, :] - order + 1, 0).astype(np.float64)
    smooth = (order > 1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log((shared + smooth) / (totals + smooth))
    # Summed row by row, in order: the same sum for one pair as for a block of edges.
    log_sum = logs[0] + logs[1] + logs[2] + logs[3]
    bleu = np.where(shared[0] > 0, np.exp(log_sum / _MAX_N), 0.0)
    return carried, bleu


def _dot(a: dict[str, float], b: dict[str, float], common: Iterable[str]) -> float:
    """The cosine of unit vectors ``a`` and ``b`` over the words they share (others count 0)."""
    # Looked up and multiplied in C: this runs once per edge of a trace.
    products = map(operator.mul, map(a.get, common, repeat(0.0)), map(b.get, common, repeat(0.0)))
    return min(sum(products), 1.0)


def _copied(source: _Profile, target: _Profile) -> float:
    # A source word counts when some run of _MIN_RUN words through it appears verbatim in the target.
    # The runs found are picked in C; only they are walked in Python.
    found = compress(itertools.count(), map(target.grams[_MIN_RUN - 1].__contains__, source.runs))
    covered = reach = 0
    for start in found:
        covered += start + _MIN_RUN - max(start, reach)
        reach = start + _MIN_RUN
    return covered / len(source.tokens) if source.tokens else 0.0


def carried(source: str, target: str) -> float:
    """Share of the source's word bigrams that reappear in the target (ROUGE-2 recall)."""
    return _measures(_Profile(source), _Profile(target))[0]


def copied(source: str, target: str) -> float:
    """Share of the source's words that lie in a run of 3+ words found verbatim in the target."""
    return _measures(_Profile(source), _Profile(target))[1]


def bleu(candidate: str, reference: str) -> float:
    """BLEU-like precision of ``candidate`` against one ``reference`` (smoothed, no brevity penalty)."""
    return _measures(_Profile(reference), _Profile(candidate))[2]


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
        a, b = self.vectors[min(i, j)], self.vectors[max(i, j)]  # one order: exactly symmetric
        return _dot(a, b, a.keys() & b.keys())


@dataclass(frozen=True, slots=True)
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
    """The per-trace text work: TF-IDF over the responses, every call's references, and attribution
    on demand."""

    def __init__(self, trace: Trace):
        self.nodes = trace.calls()
        texts = [trace.call(n).response for n in self.nodes] + [trace.final]
        self.tfidf = TfIdf(texts)
        self.slot = {n: i for i, n in enumerate(self.nodes)}
        self.read = {n: trace.references(n) for n in self.nodes}
        self.reuse: dict[tuple[str, str], Reuse] | None = None

    def coded(
        self, profiles: list[_Profile], readers: list[int]
    ) -> tuple[list[list[np.ndarray]], list[tuple[np.ndarray, np.ndarray]], list[int]]:
        """Each call's 1..4-gram sets (of its ``profiles``, in node order) as arrays of ids, each
        call's TF-IDF vector as (word ids, weights), and how many ids each of the five has.

        Only what some of the ``readers`` (slots) has can be shared along an edge, so only that
        gets an id: of a layer of 5,000 answers read by one aggregator, a few hundred items.
        """
        grams = [_coded([p.grams[order] for p in profiles], readers)[0] for order in range(_MAX_N)]
        words, weights = _coded(self.tfidf.vectors[: len(self.nodes)], readers)
        sizes = [
            1 + max((int(a.max()) for a in coded if len(a)), default=0) for coded in [*grams, words]
        ]
        return grams, list(zip(words, weights, strict=True)), sizes

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
    if texts.reuse is not None:
        return texts.reuse
    found: dict[tuple[str, str], Reuse] = {}
    readers = [(n, read) for n, read in texts.read.items() if read]
    # The n-gram profiles live as long as this function: the trace keeps only the numbers.
    profiles = [_Profile(trace.call(n).response) for n in texts.nodes] if readers else []
    grams, vectors, sizes = (
        texts.coded(profiles, [texts.slot[n] for n, _ in readers]) if readers else ([], [], [])
    )
    scratch = [np.full(size, -1, dtype=np.int32) for size in sizes]
    words = np.array([len(p.tokens) for p in profiles])
    # A block of readers at a time: what their references share with them, counted by numpy.
    for at in range(0, len(readers), _BLOCK):
        block = readers[at : at + _BLOCK]
        targets = [texts.slot[n] for n, _ in block]
        sources = list(dict.fromkeys(texts.slot[s] for _, read in block for s in read))
        column = {n: j for j, n in enumerate(targets)}
        row = {n: i for i, n in enumerate(sources)}
        edges = [(source, target, p) for target, read in block for p, source in enumerate(read, 1)]
        rows = np.array([row[texts.slot[s]] for s, _, _ in edges], dtype=np.intp)
        columns = np.array([column[texts.slot[t]] for _, t, _ in edges], dtype=np.intp)

        shared = np.stack(
            [
                _overlap(order, sources, targets, weighted=False, column=column)[rows, columns]
                for order, column in zip(grams, scratch, strict=False)
            ]
        )
        carried, bleu = _scores(
            shared, words[np.array(sources)][rows], words[np.array(targets)][columns]
        )
        cosines = _overlap(vectors, sources, targets, weighted=True, column=scratch[-1])
        cosines = np.minimum(cosines[rows, columns], 1.0)
        copying = shared[_MIN_RUN - 1] > 0
        for (source, target, position), carry, copy, score, cosine in zip(
            edges, carried.tolist(), copying.tolist(), bleu.tolist(), cosines.tolist(), strict=True
        ):
            found[source, target] = Reuse(
                source=source,
                target=target,
                position=position,
                carried=carry,
                copied=(
                    _copied(profiles[texts.slot[source]], profiles[texts.slot[target]]) if copy else 0.0
                ),
                bleu=score,
                tfidf=cosine,
            )
    texts.reuse = found
    return found


def _coded(
    texts: list[frozenset[str]] | list[dict[str, float]], readers: list[int]
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The items (of a set, or keys of a dict) that each text shares with some of the ``readers``
    as int32 ids, the same id for the same item; and for dicts, their values (else empty)."""
    items = frozenset().union(*(texts[i] for i in readers))
    index = dict(zip(items, range(len(items)), strict=True))
    ids, values = [], []
    for text in texts:
        mine = (text.keys() if isinstance(text, dict) else text) & items
        ids.append(np.fromiter(map(index.__getitem__, mine), dtype=np.int32, count=len(mine)))
        if isinstance(text, dict):  # the same set, iterated again: the same order
            values.append(np.fromiter(map(text.__getitem__, mine), dtype=np.float64, count=len(mine)))
    return ids, values


def _overlap(
    coded: list[np.ndarray] | list[tuple[np.ndarray, np.ndarray]],
    source_slots: list[int],
    target_slots: list[int],
    *,
    weighted: bool,
    column: np.ndarray,
) -> np.ndarray:
    """Every source against every target (texts of ``coded`` by slot), a matrix: how many item ids
    they share, or (``weighted``: texts as (ids, weights)) the dot product of their weights.
    ``column`` is scratch space: -1 for every id, and so again on return.

    Only the targets' ids can count: a dense matrix says which target holds which of them, and
    each id a source holds adds its row. The cost grows with the sources' ids x the targets, so
    callers pass few targets at a time.
    """
    sources, targets = [coded[i] for i in source_slots], [coded[j] for j in target_slots]
    source_ids = [t[0] for t in sources] if weighted else sources
    target_ids = [t[0] for t in targets] if weighted else targets
    columns = np.unique(np.concatenate(target_ids))
    # Where each id's column is, by lookup (searching the columns is slower); then -1 again.
    column[columns] = np.arange(len(columns), dtype=np.int32)
    width = len(targets)
    held = np.zeros((len(columns), width))  # which target holds which id (with what weight)
    held[column[np.concatenate(target_ids)], _owners(target_ids)] = (
        np.concatenate([t[1] for t in targets]) if weighted else 1.0
    )
    at = column[np.concatenate(source_ids)]
    column[columns] = -1
    kept = at >= 0
    found = held[at[kept]]  # for each id a source holds, the targets that hold it too
    if weighted:
        found *= np.concatenate([t[1] for t in sources])[kept, None]
    # Summed per source with one bincount (no BLAS: its threads only wait on a shared machine).
    slots = (_owners(source_ids)[kept, None] * width + np.arange(width)).ravel()
    return np.bincount(slots, weights=found.ravel(), minlength=len(sources) * width).reshape(
        len(sources), width
    )


def _owners(ids: list[np.ndarray]) -> np.ndarray:
    """For the concatenation of ``ids``, which of them each element came from."""
    return np.repeat(np.arange(len(ids)), [len(i) for i in ids])


def references(trace: Trace) -> dict[str, list[str]]:
    """Every call's references in the order it read them (``Trace.references``, for all, memoized)."""
    return _texts(trace).read


def layer_similarity(
    trace: Trace, layer: int, *, first: int | None = None
) -> tuple[list[str], list[list[float]]]:
    """The calls of a layer that answered and their pairwise TF-IDF cosine (1.0 on the diagonal).

    ``first``: only the first that many answers (the matrix grows with the square of its calls).
    """
    texts = _texts(trace)
    nodes = [c.id for c in trace.records(layer) if c.response is not None][:first]
    matrix = [[1.0 if a == b else texts.cosine(a, b) for b in nodes] for a in nodes]
    return nodes, matrix


def layer_diversity(trace: Trace, layer: int) -> float | None:
    """The mean TF-IDF cosine over all pairs of a layer's answers (None under two answers).

    Exact and linear in the answers: with unit vectors, the sum over pairs of their dot products is
    ``(|sum of the vectors|^2 - the number of non-empty vectors) / 2``.
    """
    texts = _texts(trace)
    nodes = [c.id for c in trace.records(layer) if c.response is not None]
    if len(nodes) < 2:
        return None
    total: Counter[str] = Counter()
    norms = 0
    for node in nodes:
        vector = texts.tfidf.vectors[texts.slot[node]]
        total.update(vector)
        norms += 1 if vector else 0
    pairs = len(nodes) * (len(nodes) - 1) / 2
    return min(max((sum(v * v for v in total.values()) - norms) / 2 / pairs, 0.0), 1.0)


def similarity_to_final(trace: Trace) -> dict[str, float]:
    """TF-IDF cosine of every answered call's response to the final answer (empty if none)."""
    if trace.final is None:
        return {}
    texts = _texts(trace)
    return {n: texts.cosine(n, None) for n in texts.nodes if trace.call(n).response is not None}
