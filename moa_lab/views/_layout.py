"""The look every figure shares: one layout helper, the empty figure, and small per-call helpers.

Invariant: every figure of ``moa_lab.views`` (trace, compare and experiment figures) gets its title,
fonts, legend and margins from ``layout``, so they read as one family; trace strings reach plotly
escaped (``esc_plot``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from moa_lab._trace import Call, Trace
from moa_lab.views._steps import depth_word
from moa_lab.views._style import FONT, clip, esc_plot

__all__ = [
    "LEGEND_BELOW",
    "answered",
    "by_layer",
    "count",
    "depth_word",
    "empty",
    "hover_text",
    "layer_names",
    "layout",
    "out_tokens",
    "sum_by",
    "tex_safe",
]

_HOVER_LINES = 4

#: Legend under the plots, for figures of several panels (above, it would cover their titles).
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.09, "xanchor": "left", "x": 0}


def layout(
    figure: go.Figure,
    title: str,
    *,
    margin: dict | None = None,
    legend: dict | None = None,
    **options: Any,
) -> go.Figure:
    """Give a figure the shared look: title top left, fonts, a legend above (or ``legend``), margins."""
    figure.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.01, "xanchor": "left", "font": {"size": 16}},
        font={"family": FONT, "size": 12, "color": "#1f2937"},
        hoverlabel={"font": {"family": FONT, "size": 12}, "align": "left"},
        legend=legend
        or {"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "right", "x": 1},
        margin={"l": 60, "r": 20, "t": 80, "b": 50} | (margin or {}),
        **options,
    )
    return tex_safe(figure)


def _no_dollar(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("$", "&#36;")
    if isinstance(value, (list, tuple)) and any(isinstance(v, str) and "$" in v for v in value):
        return [_no_dollar(v) for v in value]
    return value


def tex_safe(figure: go.Figure) -> go.Figure:
    """Keep plotly from reading text as LaTeX: in JupyterLab (which loads MathJax) a title holding
    two ``$`` ("spent $0.01, saved $0.02") is typeset as math and vanishes. Every ``$`` in titles,
    annotations, axis and tick labels, names, texts and hovers becomes ``&#36;``, which plotly shows
    as a dollar sign after its math check."""
    lay = figure.layout
    if lay.title and lay.title.text and "$" in lay.title.text:
        lay.title.text = _no_dollar(lay.title.text)
    for note in lay.annotations or ():
        if note.text and "$" in note.text:
            note.text = _no_dollar(note.text)
    for axis in [k for k in lay.to_plotly_json() if k.startswith(("xaxis", "yaxis"))]:
        box = lay[axis]
        if box.title and box.title.text and "$" in box.title.text:
            box.title.text = _no_dollar(box.title.text)
        if box.ticktext is not None:
            box.ticktext = _no_dollar(list(box.ticktext))
    for data in figure.data:
        for field in ("name", "text", "hovertext", "hovertemplate"):
            value = getattr(data, field, None)
            if value is not None and "$" in str(value):
                setattr(data, field, _no_dollar(list(value) if isinstance(value, tuple) else value))
    return figure


def empty(figure: go.Figure, message: str, title: str) -> go.Figure:
    """A figure with nothing to plot, saying why in its middle."""
    figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return layout(figure, title, height=240)


def sum_by(
    trace: Trace,
    nodes: list[str],
    key: Callable[[str], str],
    amount: Callable[[dict[str, Any]], float],
    cached: bool,
) -> defaultdict[str, float]:
    """Per category (``key`` of a node), the ``amount`` of the calls sent, or served from cache."""
    totals: defaultdict[str, float] = defaultdict(int)  # token counts stay whole numbers
    for node in nodes:
        if trace[node].cache_hit == cached:
            totals[key(node)] += amount(trace[node])
    return totals


def by_layer(trace: Trace) -> dict[int, list[str]]:
    """The calls of each layer in run order (one pass; ``trace.calls(layer)`` sorts every time)."""
    layers: dict[int, list[str]] = {}
    for node in trace.calls():
        layers.setdefault(trace[node].layer, []).append(node)
    return layers


def layer_names(trace: Trace) -> dict[int, str]:
    """Short layer labels: ``L2``, and ``L3 (agg.)`` for the aggregator's layer."""
    return {
        layer: f"L{layer} (agg.)" if trace[nodes[0]].role == "aggregator" else f"L{layer}"
        for layer, nodes in by_layer(trace).items()
    }


def answered(trace: Trace) -> list[str]:
    """The calls that have a response, in run order."""
    return [n for n in trace.calls() if trace[n].response is not None]


def out_tokens(data: Call) -> int:
    """Completion tokens of a call (0 when unknown), for sizes and sums."""
    return data.completion_tokens or 0


def count(value: int | None) -> str:
    """A token count for hovers, ``–`` when unknown."""
    return "–" if value is None else str(value)


def hover_text(text: str | None, lines: int = _HOVER_LINES) -> str:
    """The first ``lines`` lines of a text, each clipped, escaped and joined with ``<br>`` for plotly."""
    found = []
    for line in (text or "").strip().splitlines():
        if line.strip():
            found.append(clip(line, 90))
            if len(found) > lines:
                found[lines:] = ["…"]
                break
    return "<br>".join(esc_plot(line) for line in found)
