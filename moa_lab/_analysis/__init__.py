"""Text measures that say how much a call reused its references and how answers converge.

Python and numpy (``re``, ``collections``, ``difflib``, ``math``; numpy counts what many edges share
at once): no plotting and no ML dependency, so replay, experiments and the views all share one
definition of each number. ``docs/views.md`` says what each measure means and how to read it.

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
- ``provenance``: the answer of a call cut into spans, each credited to the reference it was copied
  from (verbatim runs of ``MIN_RUN`` words, against all references at once) or to none (new), and
  each reference's share of the answer's words.

Invariant: every measure is in [0, 1], is 0.0 (never an error) for empty or missing text, and depends
only on the texts (TF-IDF also on the trace's responses), so results are memoized per trace content.
"""

from __future__ import annotations

from moa_lab._analysis._diff import word_diff
from moa_lab._analysis._measures import (
    REUSE_MEASURES,
    Reuse,
    TfIdf,
    attribution,
    bleu,
    carried,
    copied,
    layer_diversity,
    layer_similarity,
    references,
    similarity_to_final,
    words,
)
from moa_lab._analysis._spans import MIN_RUN, Provenance, Span, provenance, provenance_of

__all__ = [
    "MIN_RUN",
    "REUSE_MEASURES",
    "Provenance",
    "Reuse",
    "Span",
    "TfIdf",
    "attribution",
    "bleu",
    "carried",
    "copied",
    "layer_diversity",
    "layer_similarity",
    "provenance",
    "provenance_of",
    "references",
    "similarity_to_final",
    "word_diff",
    "words",
]
