"""The layer graph: who read whom, coloured by model, sized by tokens, edges weighted by reuse.

Invariant: model text reaches plotly escaped and only through ``hovertext`` (never a
``hovertemplate``, which would expand ``%{...}`` written by a model); node traces carry
``meta=NODE_TRACE`` and their node ids in ``customdata``, which the widgets and the HTML export use.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.views._html import check_node, reuse_line
from moa_lab.views._layout import (
    count,
    hover_text,
    layer_names,
    layout,
    out_tokens,
)
from moa_lab.views._style import ERROR_COLOR, HIT_COLOR, clip, esc_plot, model_colors

__all__ = ["EDGES_UP_TO", "NODE_TRACE", "SELECTED_TRACE", "layer_graph", "node_positions"]

#: ``meta`` of the layer graph's node traces (their ``customdata`` holds node ids).
NODE_TRACE = "moa:nodes"
#: ``meta`` of the layer graph's ring around the selected node (empty when none is selected).
SELECTED_TRACE = "moa:selected"

_EDGE = "#5B6B7F"
_EDGE_BINS = 5
_LABELS_UP_TO = 80  # node ids are printed under the markers up to this many calls
#: A node's hover previews four lines of its response up to this many calls, one line beyond.
_PREVIEWS_UP_TO = 1_000
#: Up to this many drawn edges, each has a hover point (the call panels list what was reused).
_EDGE_HOVERS_UP_TO = 5_000
#: Beyond this many edges the graph draws only each call's strongest references (a person sees
#: no more lines, and each costs the page a hover point).
EDGES_UP_TO = 15_000


def _node_hover(trace: Trace, node: str, lines: int) -> str:
    data = trace[node]
    latency = data.latency
    facts = [
        f"<b>{esc_plot(node)}</b> · {esc_plot(data.role)} · {esc_plot(data.model)}",
        f"tokens {count(data.prompt_tokens)} in / {count(data.completion_tokens)} out · "
        + ("latency –" if latency is None else f"{latency:.2f} s"),
    ]
    if data.cache_hit:
        facts.append("<b>cache hit</b> (not sent)")
    if data.error:
        facts.append(f"<b>error:</b> {esc_plot(clip(data.error, 90))}")
    if data.response is not None:
        facts += ["―――", hover_text(data.response, lines)]
    return "<br>".join(facts)


def node_positions(trace: Trace) -> dict[str, tuple[float, float]]:
    """Where each call sits in the layer graph: x is its layer, y its row (the aggregator centred)."""
    rows = max((trace[n].index + 1 for n in trace.calls() if trace[n].role != "aggregator"), default=1)
    return {
        node: (
            float(trace[node].layer),
            (rows - 1) / 2 if trace[node].role == "aggregator" else float(trace[node].index),
        )
        for node in trace.calls()
    }


def _highlighted(trace: Trace, highlight: str | Iterable[str] | None) -> set[str]:
    if highlight is None:
        return set()
    chosen = {highlight} if isinstance(highlight, str) else set(highlight)
    for node in chosen:
        check_node(trace, node)
    return chosen


def _sizes(
    trace: Trace, nodes: list[str], positions: dict[str, tuple[float, float]]
) -> dict[str, float]:
    """Marker sizes: area grows with output tokens; markers shrink when columns or rows get crowded."""
    largest = max((out_tokens(trace[n]) for n in nodes), default=0) or 1
    extent = max((max(x, y + 1) for x, y in positions.values()), default=1)
    scale = min(1.0, max(0.35, 8 / extent))
    return {n: scale * (12 + 26 * math.sqrt(out_tokens(trace[n]) / largest)) for n in nodes}


def _edge_lines(
    edges: list[tuple[str, str]], positions: dict[str, tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the edges as one polyline broken by NaN (numpy: plotly validates it fast)."""
    xy = np.full((len(edges), 3, 2), np.nan)
    for row, (source, target) in enumerate(edges):
        xy[row, 0], xy[row, 1] = positions[source], positions[target]
    return xy[:, :, 0].ravel(), xy[:, :, 1].ravel()


def _drawn(
    trace: Trace,
    edges: list[tuple[str, str]],
    weights: dict[tuple[str, str], float],
    picked: set[tuple[str, str]],
) -> tuple[list[tuple[str, str]], int | None]:
    """The edges to draw and, when there are more than ``EDGES_UP_TO``, how many each call kept.

    Each call then keeps its strongest references by ``weights`` (its first ones without weights),
    as many as the budget allows, and every edge the ranker picked.
    """
    if len(edges) <= EDGES_UP_TO:
        return edges, None
    read = {target: sources for target, sources in _analysis.references(trace).items() if sources}
    keep = max(1, EDGES_UP_TO // len(read))
    drawn = set(picked)
    for target, sources in read.items():
        # Strongest first, then in the order read (sorted() is stable).
        mine = sorted(((s, target) for s in sources), key=lambda e: -weights.get(e, 0.0))
        drawn.update(mine[:keep])
    return [e for e in edges if e in drawn], keep


def layer_graph(
    trace: Trace,
    *,
    highlight: str | Iterable[str] | None = None,
    selected: str | None = None,
    measure: str | None = "carried",
    title: str | None = None,
) -> go.Figure:
    """The run as a graph: layers as columns, agents as rows, the aggregator last.

    Node colour is the model, size the output tokens; a green ring marks a cache hit and a red cross
    an error. Edge width and opacity show ``measure`` (a key of ``REUSE_MEASURES``, on its absolute
    0-1 scale; None draws plain edges). ``highlight`` (node ids) dims everything else;
    ``selected`` (a node id) draws a ring around that node. Node traces carry ``meta=NODE_TRACE``
    and their node ids in ``customdata``. Beyond ``EDGES_UP_TO`` edges, each call's strongest
    references are drawn (the title says how many).
    """
    if measure is not None and measure not in _analysis.REUSE_MEASURES:
        raise TraceError(
            f"unknown measure {measure!r}; choose one of {sorted(_analysis.REUSE_MEASURES)}"
        )
    positions = node_positions(trace)
    chosen = _highlighted(trace, highlight)
    colors = model_colors(trace)
    nodes = trace.calls()
    sizes = _sizes(trace, nodes, positions)
    figure = go.Figure()

    every_edge = list(trace.graph.edges)
    reuse = _analysis.attribution(trace) if measure is not None else {}
    weights = (
        {e: getattr(reuse[e], measure) if e in reuse else 0.0 for e in every_edge} if measure else {}
    )
    picked = {(trace[n].picked, n) for n in nodes if trace[n].picked}
    edges, kept = _drawn(trace, every_edge, weights, picked)
    faded = [e for e in edges if chosen and not (e[0] in chosen and e[1] in chosen)]
    skipped = set(faded) | picked
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for edge in edges:
        if edge not in skipped:
            level = (
                # Absolute, not relative to the strongest edge: a call that copied nothing draws
                # thin edges even when every edge is equally thin.
                min(int(weights.get(edge, 0.5) * _EDGE_BINS), _EDGE_BINS - 1) if measure else 2
            )
            groups[level].append(edge)
    if faded:
        xs, ys = _edge_lines(faded, positions)
        figure.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": _EDGE, "width": 1},
            opacity=0.08,
            hoverinfo="skip",
            showlegend=False,
            name="other edges",
        )
    for level in sorted(groups):
        strength = (level + 0.5) / _EDGE_BINS
        xs, ys = _edge_lines(groups[level], positions)
        figure.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": _EDGE, "width": 0.6 + 5 * strength},
            opacity=0.15 + 0.7 * strength,
            hoverinfo="skip",
            showlegend=False,
            name=f"edges with {measure or 'no measure'} in bin {level + 1} of {_EDGE_BINS}",
        )
    if picked:
        xs, ys = _edge_lines(sorted(picked), positions)
        figure.add_scatter(
            x=xs,
            y=ys,
            mode="lines",
            line={"color": "#E3A21A", "width": 4},
            name="picked by the ranker",
            hoverinfo="skip",
        )
    if edges and len(edges) <= _EDGE_HOVERS_UP_TO:
        # Invisible points along each edge carry its hover: where it comes from and what was reused.
        along = [
            (
                positions[s][0] + 0.62 * (positions[t][0] - positions[s][0]),
                positions[s][1] + 0.62 * (positions[t][1] - positions[s][1]),
                f"<b>{esc_plot(s)} → {esc_plot(t)}</b> "
                f"(reference {trace.graph.edges[s, t].get('position', '?')})"
                + (f"<br>{esc_plot(reuse_line(reuse[s, t]))}" if (s, t) in reuse else ""),
            )
            for s, t in edges
        ]
        figure.add_scatter(
            x=[a[0] for a in along],
            y=[a[1] for a in along],
            hovertext=[a[2] for a in along],
            mode="markers",
            marker={"size": 9, "color": _EDGE, "opacity": 0},
            hoverinfo="text",
            showlegend=False,
            name="edge details",
        )

    labels = len(nodes) <= _LABELS_UP_TO
    preview = 4 if len(nodes) <= _PREVIEWS_UP_TO else 1
    for model, color in colors.items():
        mine = [n for n in nodes if trace[n].model == model]
        figure.add_scatter(
            x=[positions[n][0] for n in mine],
            y=[positions[n][1] for n in mine],
            customdata=mine,
            hovertext=[_node_hover(trace, n, preview) for n in mine],
            hoverinfo="text",
            text=[esc_plot(n) for n in mine] if labels else None,
            textposition="bottom center",
            textfont={"size": 10, "color": "#6b7280"},
            mode="markers+text" if labels else "markers",
            marker={
                "color": color,
                "size": [sizes[n] for n in mine],
                "symbol": ["diamond" if trace[n].role == "aggregator" else "circle" for n in mine],
                "line": {"color": "white", "width": 1.5},
                "opacity": [1.0 if not chosen or n in chosen else 0.25 for n in mine],
            },
            name=esc_plot(model),
            meta=NODE_TRACE,
        )

    def overlay(subset: list[str], name: str, marker: dict[str, Any], meta: str | None = None) -> None:
        figure.add_scatter(
            x=[positions[n][0] for n in subset],
            y=[positions[n][1] for n in subset],
            customdata=subset,
            mode="markers",
            marker=marker,
            name=name,
            hoverinfo="skip",
            showlegend=bool(subset),
            meta=meta,
        )

    hits = [n for n in nodes if trace[n].cache_hit]
    overlay(
        hits,
        "cache hit",
        {
            "symbol": "circle-open",
            "size": [sizes[n] + 8 for n in hits],
            "color": HIT_COLOR,
            "line": {"width": 2.5},
        },
    )
    errors = [n for n in nodes if trace[n].error]
    overlay(errors, "error", {"symbol": "x", "size": 13, "color": ERROR_COLOR, "line": {"width": 1}})
    ring = [check_node(trace, selected)] if selected else []
    overlay(
        ring,
        "selected",
        {
            "symbol": "circle-open",
            "size": [sizes[n] + 14 for n in ring],
            "color": "#111827",
            "line": {"width": 3},
        },
        SELECTED_TRACE,
    )

    layer_count = max(trace.layers, max((trace[n].layer for n in nodes), default=1))
    names = layer_names(trace)
    ticks = list(range(1, layer_count + 1))
    ticktext = ["aggregator" if "agg" in names.get(x, "") else f"layer {x}" for x in ticks]
    rows = 1 + max((p[1] for p in positions.values()), default=0)
    edge_note = (
        f"edge width: {measure} (0 = nothing carried forward, 1 = all of it)"
        if measure and edges
        else "edges: references"
    )
    if kept is not None:
        strongest = f"{kept} strongest" if measure else f"first {kept}"
        edge_note += f" · of {len(every_edge):,} edges, each call's {strongest} drawn"
    layout(
        figure,
        title or f"How the answer was built · {edge_note}",
        height=int(min(max(330, 70 * rows + 170), 900)),
        hovermode="closest",
        clickmode="event",
        showlegend=True,
        xaxis={
            "tickvals": ticks,
            "ticktext": ticktext,
            "showgrid": False,
            "zeroline": False,
            "range": [0.5, layer_count + 0.5],
        },
        yaxis={"visible": False, "autorange": "reversed", "range": [rows - 0.4, -0.6]},
    )
    if len(ticks) > 12:
        figure.update_xaxes(tickvals=None, ticktext=None, title_text="layer")
    return figure
