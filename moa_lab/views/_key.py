"""The key to the layer graph and to the reuse measures, for the explorer and the HTML export.

The export is the page people share, so it explains itself: what a node's size and an edge's width
mean (read off the figure as drawn), and what each measure (``_analysis.REUSE_MEASURES``) counts.

Invariant: the key is read from the figure it explains (marker sizes, line widths and names), so it
cannot describe a mark the graph does not draw; numbers and fixed text only, trace strings escaped.
"""

from __future__ import annotations

import re
from typing import Any

from moa_lab import _analysis
from moa_lab._trace import Trace
from moa_lab.views._graph import KEY, NODE_TRACE
from moa_lab.views._html import wrap
from moa_lab.views._style import esc

__all__ = ["graph_key_html", "keyed", "measures_key_html"]

_EDGE_NAME = re.compile(r"edges with (\w+) in bin (\d+) of (\d+)")
_LABELS = {"carried": "carried", "copied": "copied", "bleu": "BLEU", "tfidf": "TF-IDF"}


def _circle(size: float) -> str:
    box = size + 2
    return (
        f'<svg width="{box:.0f}" height="{box:.0f}" style="vertical-align:middle">'
        f'<circle cx="{box / 2:.1f}" cy="{box / 2:.1f}" r="{size / 2:.1f}" fill="#9ca3af"/></svg>'
    )


def _line(width: float, opacity: float) -> str:
    return (
        '<svg width="34" height="12" style="vertical-align:middle">'
        f'<line x1="1" y1="6" x2="33" y2="6" stroke="#5B6B7F" stroke-width="{width:.1f}" '
        f'stroke-opacity="{opacity:.2f}"/></svg>'
    )


def _sizes(trace: Trace, figure: Any) -> list[tuple[int, float]]:
    """(output tokens, marker size) of the smallest, a middle and the largest node drawn."""
    drawn: dict[int, float] = {}
    for data in figure.data:
        if data.meta != NODE_TRACE or data.customdata is None:
            continue
        sizes = data.marker.size
        for at, node in enumerate(data.customdata):
            size = sizes[at] if isinstance(sizes, (list, tuple)) else sizes
            if node in trace and isinstance(size, (int, float)):
                drawn[trace[node].completion_tokens or 0] = float(size)
    if not drawn:
        return []
    tokens = sorted(drawn)
    picked = sorted({tokens[0], tokens[len(tokens) // 2], tokens[-1]})
    return [(t, drawn[t]) for t in picked]


def graph_key_html(trace: Trace, figure: Any, *, styled: bool = True) -> str:
    """What the layer graph's node sizes and edge widths mean, with samples drawn at the sizes and
    widths the figure uses; ``""`` when it draws neither."""
    parts = []
    sizes = _sizes(trace, figure)
    if len(sizes) > 1:
        samples = " ".join(f"{_circle(size)} {tokens:,}" for tokens, size in sizes)
        parts.append(f"<span><b>node size</b>: output tokens (area grows with them): {samples}</span>")
    bins = []
    for data in figure.data:
        found = _EDGE_NAME.fullmatch(str(data.name or ""))
        if found and data.mode == "lines" and data.line.width is not None:
            level, count = int(found.group(2)), int(found.group(3))
            bins.append((found.group(1), level, count, data.line.width, data.opacity or 1.0))
    if bins:
        measure = bins[0][0]
        samples = " ".join(
            f"{_line(width, opacity)} {(level - 1) / count:.1f}–{level / count:.1f}"
            for _, level, count, width, opacity in sorted(bins, key=lambda b: b[1])
        )
        meaning = _analysis.REUSE_MEASURES.get(measure, "")
        parts.append(
            f'<span><b>edge width</b>: <abbr title="{esc(meaning)}">{esc(_LABELS.get(measure, measure))}'
            f"</abbr> of that edge, 0 to 1: {samples}</span>"
        )
    if any(call.role == "aggregator" for call in trace.records()):
        parts.append("<span>◆ the aggregator</span>")

    def ringed(name: str) -> int:
        return next((len(d.customdata or ()) for d in figure.data if d.name == name), 0)

    hits, reused = ringed("cache hit"), ringed("reused from the source run")
    if reused:
        parts.append(
            f"<span>rings mark answers sent nothing: {hits:,} cache hits "
            f"and {reused:,} answers this replay reused from its source run (violet)</span>"
        )
    if not parts:
        return ""
    return wrap(f'<div class="moa-key">{" · ".join(parts)}</div>', styled)


def keyed(trace: Trace, figure: Any, *, styled: bool = True) -> str:
    """``graph_key_html`` for a page that shows it beside ``figure``: the figure's own legend entry for
    size or edge width (one sample each) is hidden where the key says the same, with samples at the
    sizes and widths drawn. Changes ``figure`` in place; returns the key."""
    key = graph_key_html(trace, figure, styled=styled)
    said = {"size": "<b>node size</b>" in key, "edge width": "<b>edge width</b>" in key}
    for data in figure.data:
        if data.legendgroup == KEY and said.get(str(data.name).split(":")[0]):
            data.showlegend = False
    return key


def measures_key_html(*, styled: bool = True) -> str:
    """What the four reuse numbers (carried, copied, BLEU, TF-IDF) count, one line each."""
    rows = "".join(
        f"<dt>{esc(_LABELS.get(name, name))}</dt><dd>{esc(meaning)}</dd>"
        for name, meaning in _analysis.REUSE_MEASURES.items()
    )
    return wrap(
        '<div class="moa-key"><b>What the numbers mean</b> (for an edge source → target: how much '
        f'the target reused the source; each 0 to 1)<dl class="moa-measures">{rows}</dl>'
        '<div class="moa-muted">Surface measures: they see shared words, not shared ideas, and '
        "cannot tell a right answer from a wrong one. Use them to find where to look, then read "
        "the texts.</div></div>",
        styled,
    )
