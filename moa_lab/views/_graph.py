"""The layer graph: who read whom, for every strategy (MoA layers, debate rounds, search steps).

Depth runs left to right (named for the strategy), agents down; colour is the model, size the tokens
written, edge width the reuse measure, and the marks say what a call is (cache hit, reused by a
replay, cut off, pruned, on the chosen path, the decision). A search's evaluators sit small beside
the calls they judge (``_positions``); what each mark and label says comes from ``_graph_marks``.

Invariant: model text reaches plotly escaped and only through ``hovertext`` (never a
``hovertemplate``, which would expand ``%{...}`` written by a model); every call is drawn in exactly
one node trace, which carries ``meta=NODE_TRACE`` and its node ids in ``customdata`` (the widgets and
the HTML export use them); the legend sits below the plot, clear of the title.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.views._graph_marks import GraphNotes, depth_ticks, graph_title, node_hover, node_label
from moa_lab.views._html import check_node, reuse_line
from moa_lab.views._layout import layout
from moa_lab.views._positions import largest_written, marker_sizes, node_positions, satellite
from moa_lab.views._style import ERROR_COLOR, HIT_COLOR, esc_plot, model_colors

__all__ = [
    "EDGES_UP_TO",
    "KEY",
    "NODE_TRACE",
    "REUSED_COLOR",
    "SELECTED_TRACE",
    "layer_graph",
    "node_positions",
]

#: ``meta`` of the layer graph's node traces (their ``customdata`` holds node ids).
NODE_TRACE = "moa:nodes"
#: ``meta`` of the layer graph's ring around the selected node (empty when none is selected).
SELECTED_TRACE = "moa:selected"
#: ``legendgroup`` of the legend entries that only explain the marks (they draw nothing).
KEY = "moa:key"
#: Ring of a call a replay took from its source run (not sent, as a cache hit, but not the cache).
REUSED_COLOR = "#7C3AED"
_CUT_COLOR = "#D97706"
_CHOSEN_COLOR = "#D62728"
_DECIDED_COLOR = "#E3A21A"

_EDGE = "#5B6B7F"
_EDGE_BINS = 5
_LABELS_UP_TO = 80  # node ids are printed under the markers up to this many calls on rows
#: A node's hover previews four lines of its response up to this many calls, one line beyond.
_PREVIEWS_UP_TO = 1_000
#: Up to this many drawn edges, each has a hover point (the call panels list what was reused).
_EDGE_HOVERS_UP_TO = 5_000
#: Beyond this many edges the graph draws only each call's strongest references (a person sees
#: no more lines, and each costs the page a hover point).
EDGES_UP_TO = 15_000


def _highlighted(trace: Trace, highlight: str | Iterable[str] | None) -> set[str]:
    if highlight is None:
        return set()
    chosen = {highlight} if isinstance(highlight, str) else set(highlight)
    for node in chosen:
        check_node(trace, node)
    return chosen


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


def _lines(figure: go.Figure, edges: list, positions: dict, name: str, **style: Any) -> None:
    xs, ys = _edge_lines(edges, positions)
    figure.add_scatter(x=xs, y=ys, mode="lines", hoverinfo="skip", name=name, **style)


def _edges(
    figure: go.Figure,
    trace: Trace,
    positions: dict[str, tuple[float, float]],
    chosen: set[str],
    measure: str | None,
    notes: GraphNotes,
) -> tuple[int, int | None]:
    """Draw the edges: by reuse, to evaluators, faded, picked, the chosen path; their hover points.
    Returns how many edges the trace has and, when thinned, how many each call kept."""
    every_edge = list(trace.graph.edges)
    reuse = _analysis.attribution(trace) if measure is not None else {}
    weights = (
        {e: getattr(reuse[e], measure) if e in reuse else 0.0 for e in every_edge} if measure else {}
    )
    nodes = trace.calls()
    picked = {(trace[n].picked, n) for n in nodes if trace[n].picked}
    on_path = set(notes.path)
    path = {e for e in every_edge if e[0] in on_path and e[1] in on_path}
    edges, kept = _drawn(trace, every_edge, weights, picked)
    faded = [e for e in edges if chosen and not (e[0] in chosen and e[1] in chosen)]
    judged = [e for e in edges if satellite(trace[e[1]]) and e not in faded]
    skipped = set(faded) | picked | path | set(judged)
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for edge in edges:
        if edge not in skipped:
            # Absolute, not relative to the strongest edge: a call that copied nothing draws thin
            # edges even when every edge is equally thin.
            level = min(int(weights.get(edge, 0.5) * _EDGE_BINS), _EDGE_BINS - 1) if measure else 2
            groups[level].append(edge)
    if faded:
        _lines(figure, faded, positions, "other edges", line={"color": _EDGE, "width": 1},
               opacity=0.08, showlegend=False)  # fmt: skip
    if judged:
        _lines(figure, judged, positions, "to evaluators", line={"color": _EDGE, "width": 0.5},
               opacity=0.18, showlegend=False)  # fmt: skip
    for level in sorted(groups):
        strength = (level + 0.5) / _EDGE_BINS
        _lines(
            figure, groups[level], positions,
            f"edges with {measure or 'no measure'} in bin {level + 1} of {_EDGE_BINS}",
            line={"color": _EDGE, "width": 0.6 + 5 * strength}, opacity=0.15 + 0.7 * strength,
            showlegend=False,
        )  # fmt: skip
    if picked:
        _lines(figure, sorted(picked), positions, "picked by the ranker",
               line={"color": _DECIDED_COLOR, "width": 4})  # fmt: skip
    if path:
        _lines(figure, sorted(path), positions, "the chosen path",
               line={"color": _CHOSEN_COLOR, "width": 4})  # fmt: skip
    hovered = [e for e in edges if e not in judged]
    if hovered and len(hovered) <= _EDGE_HOVERS_UP_TO:
        # Invisible points along each edge carry its hover: where it comes from and what was reused.
        along = [
            (
                positions[s][0] + 0.62 * (positions[t][0] - positions[s][0]),
                positions[s][1] + 0.62 * (positions[t][1] - positions[s][1]),
                f"<b>{esc_plot(s)} → {esc_plot(t)}</b> "
                f"(reference {trace.graph.edges[s, t].get('position', '?')})"
                + (f"<br>{esc_plot(reuse_line(reuse[s, t]))}" if (s, t) in reuse else ""),
            )
            for s, t in hovered
        ]
        figure.add_scatter(
            x=[a[0] for a in along], y=[a[1] for a in along], hovertext=[a[2] for a in along],
            mode="markers", marker={"size": 9, "color": _EDGE, "opacity": 0}, hoverinfo="text",
            showlegend=False, name="edge details",
        )  # fmt: skip
    return len(every_edge), kept


def _nodes(
    figure: go.Figure,
    trace: Trace,
    positions: dict[str, tuple[float, float]],
    sizes: dict[str, float],
    chosen: set[str],
    notes: GraphNotes,
    labels: dict[str, str] | None,
) -> None:
    """One node trace per model (every call in exactly one), ``labels`` under the calls."""
    nodes = trace.calls()
    preview = 4 if len(nodes) <= _PREVIEWS_UP_TO else 1
    for model, color in model_colors(trace).items():
        mine = [n for n in nodes if trace[n].model == model]
        figure.add_scatter(
            x=[positions[n][0] for n in mine],
            y=[positions[n][1] for n in mine],
            customdata=mine,
            hovertext=[node_hover(trace, n, preview, notes) for n in mine],
            hoverinfo="text",
            text=[labels.get(n, "") for n in mine] if labels else None,
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
            cliponaxis=False,
            name=esc_plot(model),
            meta=NODE_TRACE,
        )


def _marks(
    figure: go.Figure,
    trace: Trace,
    positions: dict[str, tuple[float, float]],
    sizes: dict[str, float],
    notes: GraphNotes,
    selected: str | None,
) -> None:
    """Rings and crosses over the nodes, each with a legend entry when it marks something."""

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

    def ring(subset: list[str], name: str, color: str, grow: float, width: float = 2.5) -> None:
        overlay(subset, name, {"symbol": "circle-open", "size": [sizes[n] + grow for n in subset],
                               "color": color, "line": {"width": width}})  # fmt: skip

    ring(notes.hits, "cache hit", HIT_COLOR, 8)
    ring(notes.reused, "reused from the source run", REUSED_COLOR, 8)
    ring(notes.cut, "✂ cut off at max_tokens", _CUT_COLOR, 4, 2)
    decided = [n for n in [notes.decision.get("chosen")] if n in positions]
    ring(decided, "the chosen answer", _DECIDED_COLOR, 12, 3)
    # A pruned call is hollow: a white disc inside its marker leaves a ring of the model's colour.
    overlay(notes.pruned, "pruned calls",
            {"color": "white", "opacity": 1, "line": {"width": 0},
             "size": [sizes[n] * 0.6 for n in notes.pruned]})  # fmt: skip
    figure.data[-1].showlegend = False
    ring(notes.path, "on the chosen path", _CHOSEN_COLOR, 4, 3)
    figure.data[-1].showlegend = False  # the chosen path's edges carry the legend entry
    if notes.pruned:  # a legend entry for the hollow markers
        figure.add_scatter(
            x=[None], y=[None], mode="markers", hoverinfo="skip", name="pruned: no state kept",
            legendgroup=KEY,
            marker={"symbol": "circle-open", "size": 12, "color": "#6b7280", "line": {"width": 2}},
        )  # fmt: skip
    cross = {"symbol": "x", "size": 13, "color": ERROR_COLOR, "line": {"width": 1}}
    overlay(notes.errors, "error", cross)
    selected_ring = [check_node(trace, selected)] if selected else []
    overlay(
        selected_ring,
        "selected",
        {"symbol": "circle-open", "size": [sizes[n] + 14 for n in selected_ring],
         "color": "#111827", "line": {"width": 3}},
        SELECTED_TRACE,
    )  # fmt: skip


def _key(figure: go.Figure, trace: Trace, measure: str | None, edges: int) -> None:
    """Legend entries saying what node size and edge width stand for."""
    written = largest_written(trace)
    figure.add_scatter(
        x=[None], y=[None], mode="markers", hoverinfo="skip", legendgroup=KEY,
        marker={"size": 14, "color": "#d1d5db", "line": {"color": "#9ca3af", "width": 1}},
        name=f"size: tokens written (largest {written:,})" if written else "size: no tokens recorded",
    )  # fmt: skip
    if edges:
        figure.add_scatter(
            x=[None], y=[None], mode="lines", hoverinfo="skip", legendgroup=KEY,
            line={"color": _EDGE, "width": 3},
            name=f"edge width: {measure}, 0 to 1 (what was carried on)" if measure else "edge: read",
        )  # fmt: skip


def layer_graph(
    trace: Trace,
    *,
    highlight: str | Iterable[str] | None = None,
    selected: str | None = None,
    measure: str | None = "carried",
    title: str | None = None,
) -> go.Figure:
    """The run as a graph: depth (layer, round or step) as columns, agents as rows.

    Node colour is the model, size the tokens written; labels give the id, what tells apart agents
    of one model (temperature, seed, max_tokens, or the sample) and ✂ for an answer cut off at
    max_tokens. Rings mark cache hits, calls a replay reused from its source run, cut-off answers
    and the chosen answer; a red cross an error. A search's pruned calls are hollow, its chosen
    path red, and its evaluators small beside the calls they judge. Edge width and opacity show
    ``measure`` (a key of ``REUSE_MEASURES``, on its absolute 0-1 scale; None draws plain edges).
    ``highlight`` (node ids) dims everything else; ``selected`` (a node id) draws a ring around
    that node. Beyond ``EDGES_UP_TO`` edges, each call's strongest references are drawn (the
    subtitle says how many).
    """
    if measure is not None and measure not in _analysis.REUSE_MEASURES:
        raise TraceError(
            f"unknown measure {measure!r}; choose one of {sorted(_analysis.REUSE_MEASURES)}"
        )
    positions = node_positions(trace)
    chosen = _highlighted(trace, highlight)
    notes = GraphNotes.of(trace)
    sizes = marker_sizes(trace, positions)
    figure = go.Figure()
    edges, kept = _edges(figure, trace, positions, chosen, measure, notes)
    on_rows = [n for n in positions if not satellite(trace[n])]
    labels = {n: node_label(trace[n], notes) for n in on_rows} if len(on_rows) <= _LABELS_UP_TO else None
    _nodes(figure, trace, positions, sizes, chosen, notes, labels)
    _marks(figure, trace, positions, sizes, notes, selected)
    _key(figure, trace, measure, edges)

    ticks, ticktext = depth_ticks(trace)
    rows = 1 + max((y for y in (p[1] for p in positions.values())), default=0)
    beside = any(satellite(trace[n]) for n in positions)
    notes_line = [f"every call: {esc_plot(notes.common)}"] if notes.common else []
    if kept is not None:
        strongest = f"{kept} strongest" if measure else f"first {kept}"
        notes_line.append(f"of {edges:,} edges, each call's {strongest} drawn")
    # A row holds its marker and the lines of its label.
    lines = max((label.count("<br>") + 1 for label in labels.values()), default=1) if labels else 0
    row_height = 56 + 12 * lines
    height = int(min(max(340, row_height * rows + 220), 1000))
    layout(
        figure,
        title or graph_title(trace, notes),
        height=height,
        hovermode="closest",
        clickmode="event",
        showlegend=True,
        # Below the plot: above it, a legend of several long model names covers the title.
        legend={"orientation": "h", "yanchor": "top", "y": -54 / (height - 160), "xanchor": "left",
                "x": 0, "itemsizing": "constant"},
        margin={"t": 90 if notes_line else 70, "b": 110},
        xaxis={
            "tickvals": ticks,
            "ticktext": ticktext,
            "showgrid": False,
            "zeroline": False,
            "range": [0.5, ticks[-1] + (0.75 if beside else 0.5)],
        },
        # Reversed (row 0 on top), with room under the last row for its labels.
        yaxis={"visible": False, "autorange": False, "range": [rows - 0.55 + 0.22 * lines, -0.6]},
    )  # fmt: skip
    if notes_line:
        figure.layout.title.subtitle = {"text": " · ".join(notes_line), "font": {"size": 12}}
    if len(ticks) > 12:
        word = ticktext[0].split()[0] if ticktext else "layer"
        figure.update_xaxes(tickvals=None, ticktext=None, title_text=word)
    return figure
