"""Figures of a trace: pure functions ``trace -> plotly.graph_objects.Figure``.

Each figure reads only the trace (and the text measures of ``moa_lab._analysis``), so it can be
tested as data and rebuilt at any time, even while a run is still adding calls.

Invariant: trace strings reach plotly escaped, and model text only through ``hovertext`` (never a
``hovertemplate``, which would expand ``%{...}`` written by a model).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.views._html import check_node, reuse_line
from moa_lab.views._style import ERROR_COLOR, FONT, HIT_COLOR, clip, esc_plot, model_colors

__all__ = [
    "NODE_TRACE",
    "SELECTED_TRACE",
    "attribution",
    "evolution",
    "layer_graph",
    "node_positions",
    "reference_reuse",
    "timeline",
    "usage",
]

#: ``meta`` of the layer graph's node traces (their ``customdata`` holds node ids).
NODE_TRACE = "moa:nodes"
#: ``meta`` of the layer graph's ring around the selected node (empty when none is selected).
SELECTED_TRACE = "moa:selected"

_EDGE = "#5B6B7F"
_EDGE_BINS = 5
_LABELS_UP_TO = 80  # node ids are printed under the markers up to this many calls
_HOVER_LINES = 4


#: Legend under the plots, for figures of several panels (above, it would cover their titles).
_LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.09, "xanchor": "left", "x": 0}


def _layout(
    figure: go.Figure,
    title: str,
    *,
    margin: dict | None = None,
    legend: dict | None = None,
    **options: Any,
) -> go.Figure:
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
    return figure


def _empty(figure: go.Figure, message: str, title: str) -> go.Figure:
    """A figure with nothing to plot, saying why in its middle."""
    figure.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5)
    return _layout(figure, title, height=240)


def _sum_by(
    trace: Trace,
    nodes: list[str],
    key: Callable[[str], str],
    amount: Callable[[dict[str, Any]], float],
    cached: bool,
) -> defaultdict[str, float]:
    """Per category (``key`` of a node), the ``amount`` of the calls sent, or served from cache."""
    totals: defaultdict[str, float] = defaultdict(int)  # token counts stay whole numbers
    for node in nodes:
        if trace[node]["cache_hit"] == cached:
            totals[key(node)] += amount(trace[node])
    return totals


def _by_layer(trace: Trace) -> dict[int, list[str]]:
    """The calls of each layer in run order (one pass; ``trace.calls(layer)`` sorts every time)."""
    layers: dict[int, list[str]] = {}
    for node in trace.calls():
        layers.setdefault(trace[node]["layer"], []).append(node)
    return layers


def _layer_names(trace: Trace) -> dict[int, str]:
    """Short layer labels: ``L2``, and ``L3 (agg.)`` for the aggregator's layer."""
    return {
        layer: f"L{layer} (agg.)" if trace[nodes[0]]["role"] == "aggregator" else f"L{layer}"
        for layer, nodes in _by_layer(trace).items()
    }


def _answered(trace: Trace) -> list[str]:
    return [n for n in trace.calls() if trace[n]["response"] is not None]


def _out_tokens(data: dict[str, Any]) -> int:
    return int((data.get("usage") or {}).get("completion_tokens") or 0)


def _hover_text(text: str | None) -> str:
    """The first lines of a text, each clipped, escaped and joined with ``<br>`` for plotly."""
    lines = [clip(line, 90) for line in (text or "").strip().splitlines() if line.strip()]
    shown = lines[:_HOVER_LINES] + (["…"] if len(lines) > _HOVER_LINES else [])
    return "<br>".join(esc_plot(line) for line in shown)


def _node_hover(trace: Trace, node: str) -> str:
    data = trace[node]
    usage = data.get("usage") or {}
    latency = data.get("latency")
    facts = [
        f"<b>{esc_plot(node)}</b> · {esc_plot(data['role'])} · {esc_plot(data['model'])}",
        f"tokens {usage.get('prompt_tokens', '–')} in / {usage.get('completion_tokens', '–')} out · "
        + ("latency –" if latency is None else f"{latency:.2f} s"),
    ]
    if data["cache_hit"]:
        facts.append("<b>cache hit</b> (not sent)")
    if data["error"]:
        facts.append(f"<b>error:</b> {esc_plot(clip(data['error'], 90))}")
    if data["response"] is not None:
        facts += ["―――", _hover_text(data["response"])]
    return "<br>".join(facts)


def node_positions(trace: Trace) -> dict[str, tuple[float, float]]:
    """Where each call sits in the layer graph: x is its layer, y its row (the aggregator centred)."""
    rows = max(
        (trace[n]["index"] + 1 for n in trace.calls() if trace[n]["role"] != "aggregator"), default=1
    )
    return {
        node: (
            float(trace[node]["layer"]),
            (rows - 1) / 2 if trace[node]["role"] == "aggregator" else float(trace[node]["index"]),
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
    largest = max((_out_tokens(trace[n]) for n in nodes), default=0) or 1
    extent = max((max(x, y + 1) for x, y in positions.values()), default=1)
    scale = min(1.0, max(0.35, 8 / extent))
    return {n: scale * (12 + 26 * math.sqrt(_out_tokens(trace[n]) / largest)) for n in nodes}


def _edge_lines(
    edges: list[tuple[str, str]], positions: dict[str, tuple[float, float]]
) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates of the edges as one polyline broken by NaN (numpy: plotly validates it fast)."""
    xy = np.full((len(edges), 3, 2), np.nan)
    for row, (source, target) in enumerate(edges):
        xy[row, 0], xy[row, 1] = positions[source], positions[target]
    return xy[:, :, 0].ravel(), xy[:, :, 1].ravel()


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
    and their node ids in ``customdata``.
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

    edges = list(trace.graph.edges)
    reuse = _analysis.attribution(trace) if measure is not None else {}
    weights = {e: getattr(reuse[e], measure) if e in reuse else 0.0 for e in edges} if measure else {}
    picked = {(trace[n]["picked"], n) for n in nodes if trace[n].get("picked")}
    faded = [e for e in edges if chosen and not (e[0] in chosen and e[1] in chosen)]
    groups: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for edge in edges:
        if edge not in faded and edge not in picked:
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
    if edges:
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
    for model, color in colors.items():
        mine = [n for n in nodes if trace[n]["model"] == model]
        figure.add_scatter(
            x=[positions[n][0] for n in mine],
            y=[positions[n][1] for n in mine],
            customdata=mine,
            hovertext=[_node_hover(trace, n) for n in mine],
            hoverinfo="text",
            text=[esc_plot(n) for n in mine] if labels else None,
            textposition="bottom center",
            textfont={"size": 10, "color": "#6b7280"},
            mode="markers+text" if labels else "markers",
            marker={
                "color": color,
                "size": [sizes[n] for n in mine],
                "symbol": ["diamond" if trace[n]["role"] == "aggregator" else "circle" for n in mine],
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

    hits = [n for n in nodes if trace[n]["cache_hit"]]
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
    errors = [n for n in nodes if trace[n]["error"]]
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

    layer_count = max(trace.layers, max((trace[n]["layer"] for n in nodes), default=1))
    names = _layer_names(trace)
    ticks = list(range(1, layer_count + 1))
    ticktext = ["aggregator" if "agg" in names.get(x, "") else f"layer {x}" for x in ticks]
    rows = 1 + max((p[1] for p in positions.values()), default=0)
    edge_note = (
        f"edge width: {measure} (0 = nothing carried forward, 1 = all of it)"
        if measure and edges
        else "edges: references"
    )
    _layout(
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


def timeline(trace: Trace) -> go.Figure:
    """One bar per call from its start to its end, rows grouped by layer, bars coloured by model.

    A grey tail shows how long a call then waited for the slowest call of its layer (the layer's
    barrier); the slowest call of each layer, which sets the pace, is outlined.
    """
    nodes = trace.calls()
    figure = go.Figure()
    if not nodes:
        return _layout(figure, "Timeline (no calls yet)")
    colors = model_colors(trace)
    start = min(trace[n]["started_at"] for n in nodes)

    def span(node: str) -> tuple[float, float]:
        data = trace[node]
        return data["started_at"] - start, (data["ended_at"] or data["started_at"]) - start

    layer_end: dict[int, float] = {}
    stragglers: set[str] = set()
    by_layer = _by_layer(trace)
    for layer, mine in by_layer.items():
        slowest = max(mine, key=lambda n: span(n)[1])
        stragglers.add(slowest)
        layer_end[layer] = span(slowest)[1]
    labels = {n: f"{esc_plot(n)} {esc_plot(clip(trace[n]['model'], 18))}" for n in nodes}
    waits = [n for n in nodes if layer_end[trace[n]["layer"]] - span(n)[1] > 1e-6]
    figure.add_bar(
        y=[labels[n] for n in waits],
        x=[layer_end[trace[n]["layer"]] - span(n)[1] for n in waits],
        base=[span(n)[1] for n in waits],
        orientation="h",
        marker={"color": "#e5e7eb"},
        name="waiting for the layer's slowest call",
        hoverinfo="skip",
    )
    for model, color in colors.items():
        mine = [n for n in nodes if trace[n]["model"] == model]
        figure.add_bar(
            y=[labels[n] for n in mine],
            x=[max(span(n)[1] - span(n)[0], 0.002) for n in mine],
            base=[span(n)[0] for n in mine],
            orientation="h",
            customdata=mine,
            marker={
                "color": color,
                "line": {
                    "color": [ERROR_COLOR if trace[n]["error"] else "#111827" for n in mine],
                    "width": [2 if trace[n]["error"] or n in stragglers else 0 for n in mine],
                },
            },
            hovertext=[
                f"<b>{esc_plot(n)}</b> · {esc_plot(model)}<br>+{span(n)[0]:.2f} s → +{span(n)[1]:.2f} s "
                f"({span(n)[1] - span(n)[0]:.2f} s)"
                + (" · slowest of its layer" if n in stragglers else "")
                + ("<br>cache hit" if trace[n]["cache_hit"] else "")
                + (f"<br>error: {esc_plot(clip(trace[n]['error'], 80))}" if trace[n]["error"] else "")
                for n in mine
            ],
            hoverinfo="text",
            name=esc_plot(model),
        )
    hits = [n for n in nodes if trace[n]["cache_hit"]]
    if hits:
        figure.add_scatter(
            y=[labels[n] for n in hits],
            x=[span(n)[0] for n in hits],
            mode="markers",
            marker={"symbol": "circle-open", "size": 11, "color": HIT_COLOR, "line": {"width": 2.5}},
            name="cache hit",
            hoverinfo="skip",
        )
    # Shapes and annotations go in as one list: plotly's add_vline is quadratic in their number.
    figure.update_layout(
        shapes=[
            {"type": "line", "xref": "x", "yref": "paper", "x0": end, "x1": end, "y0": 0, "y1": 1,
             "line": {"color": "#9ca3af", "width": 1, "dash": "dot"}}
            for end in layer_end.values()
        ],
        annotations=[
            {"x": end, "y": labels[by_layer[layer][0]], "text": f"layer {layer} done",
             "showarrow": False, "xanchor": "left", "yanchor": "middle", "xshift": 3,
             "font": {"size": 10, "color": "#6b7280"}}
            for layer, end in layer_end.items()
        ],
    )  # fmt: skip
    return _layout(
        figure,
        f"Timeline · wall {max(layer_end.values()):.2f} s · outlined: the slowest call of each layer",
        barmode="overlay",
        height=int(min(max(260, 22 * len(nodes) + 140), 1400)),
        xaxis={"title": {"text": "seconds since the run started"}, "rangemode": "tozero"},
        yaxis={
            "autorange": "reversed",
            "categoryorder": "array",
            "categoryarray": [labels[n] for n in nodes],
            "tickfont": {"size": 10},
        },
        bargap=0.25,
    )


def usage(trace: Trace) -> go.Figure:
    """Tokens, latency and cost by layer (left) and by model (right); cache-saved cost shown apart.

    Tokens and cost of cache hits are drawn hatched: they were not spent on this run. Latency counts
    only calls that were sent.
    """
    nodes = trace.calls()
    names = _layer_names(trace)
    figure = make_subplots(
        rows=3,
        cols=2,
        horizontal_spacing=0.1,
        vertical_spacing=0.12,
        subplot_titles=(
            "Tokens by layer",
            "Tokens by model",
            "Latency by layer (s, calls sent)",
            "Latency by model (s, calls sent)",
            "Cost by layer ($)",
            "Cost by model ($)",
        ),
    )
    groupings = (
        (1, lambda n: names[trace[n]["layer"]]),
        (2, lambda n: esc_plot(trace[n]["model"])),
    )
    series = (
        (
            "prompt tokens",
            "#4E79A7",
            "",
            lambda d: (d.get("usage") or {}).get("prompt_tokens") or 0,
            False,
        ),
        ("completion tokens", "#F28E2B", "", _out_tokens, False),
        (
            "tokens served from cache",
            "#BAB0AC",
            "/",
            lambda d: sum(
                (d.get("usage") or {}).get(k) or 0 for k in ("prompt_tokens", "completion_tokens")
            ),
            True,
        ),
    )
    unknown_cost = any(trace[n]["cost"] is None and not trace[n]["error"] for n in nodes)
    for col, key in groupings:
        categories = list(dict.fromkeys(key(n) for n in nodes))
        for name, color, pattern, amount, cached in series:
            totals = _sum_by(trace, nodes, key, amount, cached)
            figure.add_bar(
                x=categories,
                y=[totals[c] for c in categories],
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                marker={"color": color, "pattern": {"shape": pattern}},
                row=1,
                col=col,
            )
        sent = [n for n in nodes if not trace[n]["cache_hit"] and trace[n].get("latency") is not None]
        figure.add_box(
            x=[key(n) for n in sent],
            y=[trace[n]["latency"] for n in sent],
            boxpoints="all",
            jitter=0.4,
            pointpos=0,
            marker={"color": "#4E79A7", "size": 5},
            line={"color": "#4E79A7"},
            name="latency",
            showlegend=False,
            hovertext=[esc_plot(n) for n in sent],
            hoverinfo="y+text",
            row=2,
            col=col,
        )
        # The same category order in all three rows (a category's first call may be a cache hit).
        figure.update_xaxes(categoryorder="array", categoryarray=categories, col=col)
        for name, cached, pattern in (("cost spent", False, ""), ("cost saved by the cache", True, "/")):
            totals = _sum_by(trace, nodes, key, lambda d: d["cost"] or 0.0, cached)
            figure.add_bar(
                x=categories,
                y=[totals[c] for c in categories],
                name=name,
                legendgroup=name,
                showlegend=col == 1,
                marker={"color": "#59A14F", "pattern": {"shape": pattern}},
                opacity=0.55 if cached else 1.0,
                row=3,
                col=col,
            )
    figure.update_yaxes(rangemode="tozero")
    if unknown_cost:
        figure.add_annotation(
            text="some costs are unknown (no price for these models): pass MoAConfig(prices=...)",
            xref="paper",
            yref="paper",
            x=0.5,
            y=0.12,
            showarrow=False,
            font={"color": "#92400e"},
        )
    totals = trace.totals()
    spent = "unknown" if totals["cost"] is None else f"${totals['cost']:.4f}"
    saved = "unknown" if totals["saved_cost"] is None else f"${totals['saved_cost']:.4f}"
    return _layout(
        figure,
        f"Spend · {totals['prompt_tokens'] + totals['completion_tokens']} tokens sent · "
        f"cost {spent} · saved by the cache {saved}",
        barmode="stack",
        height=800,
        legend=_LEGEND_BELOW,
        margin={"b": 90},
    )


def evolution(trace: Trace) -> go.Figure:
    """How the answer evolved: per-layer pairwise similarity, similarity to the final, length.

    Top: for each proposer layer, the TF-IDF cosine between its responses (high = the agents agree,
    low = diverse). Bottom left: each call's similarity to the final answer, with the layer mean
    (convergence) and the layer's mean pairwise similarity. Bottom right: response length in words.
    Up to four layers' heatmaps sit side by side; beyond that a menu picks the layer.
    """
    proposer_layers = sorted(
        {trace[n]["layer"] for n in _answered(trace) if trace[n]["role"] == "proposer"}
    )
    side_by_side = 1 <= len(proposer_layers) <= 4
    width = len(proposer_layers) if side_by_side else 1
    figure = make_subplots(
        rows=2,
        cols=2 * width,
        specs=[
            [{"colspan": 2}, None] * width,
            [{"colspan": width}] + [None] * (width - 1) + [{"colspan": width}] + [None] * (width - 1),
        ],
        row_heights=[0.55, 0.45],
        vertical_spacing=0.16,
        horizontal_spacing=0.06,
        subplot_titles=[
            f"Layer {layer}: similarity between answers" for layer in proposer_layers[:width]
        ]
        + ["Similarity to the final answer", "Response length (words)"],
    )
    similarity = {layer: _analysis.layer_similarity(trace, layer) for layer in proposer_layers}
    labels = {layer: [esc_plot(n) for n in names] for layer, (names, _) in similarity.items()}
    # Side by side: one heatmap per layer. More layers: one heatmap whose data a menu swaps.
    for number, layer in enumerate(proposer_layers if side_by_side else proposer_layers[:1]):
        names, matrix = similarity[layer]
        figure.add_heatmap(
            z=matrix,
            x=labels[layer],
            y=labels[layer],
            coloraxis="coloraxis",
            texttemplate="%{z:.2f}" if len(names) <= 8 else None,
            name=f"layer {layer}",
            hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
            row=1,
            col=1 + 2 * number,
        )
    if not side_by_side and proposer_layers:
        buttons = [
            {
                "label": f"layer {layer}",
                "method": "restyle",
                "args": [{"z": [similarity[layer][1]], "x": [labels[layer]], "y": [labels[layer]]}, [0]],
            }
            for layer in proposer_layers
        ]
        figure.update_layout(
            updatemenus=[
                {"buttons": buttons, "x": 0, "y": 1.12, "xanchor": "left", "yanchor": "bottom"}
            ],
        )
        figure.layout.annotations[0].text = "Similarity between the answers of the chosen layer"

    to_final = _analysis.similarity_to_final(trace)
    colors = model_colors(trace)
    answered = _answered(trace)
    layers = sorted({trace[n]["layer"] for n in answered})
    if to_final:
        figure.add_scatter(
            x=[trace[n]["layer"] for n in to_final],
            y=list(to_final.values()),
            mode="markers",
            marker={"color": [colors[trace[n]["model"]] for n in to_final], "size": 8, "opacity": 0.75},
            hovertext=[
                f"{esc_plot(n)} · {esc_plot(trace[n]['model'])}: {v:.2f}" for n, v in to_final.items()
            ],
            hoverinfo="text",
            name="each call vs final",
            row=2,
            col=1,
        )
        means = [sum(v for n, v in to_final.items() if trace[n]["layer"] == layer) for layer in layers]
        counts = [sum(1 for n in to_final if trace[n]["layer"] == layer) for layer in layers]
        figure.add_scatter(
            x=layers,
            y=[m / c for m, c in zip(means, counts, strict=True)],
            mode="lines+markers",
            line={"color": "#111827", "width": 2.5},
            name="layer mean vs final (convergence)",
            row=2,
            col=1,
        )
    diversity = []
    for layer, (names, matrix) in similarity.items():
        pairs = [matrix[i][j] for i in range(len(names)) for j in range(i + 1, len(names))]
        if pairs:
            diversity.append((layer, sum(pairs) / len(pairs)))
    if diversity:
        figure.add_scatter(
            x=[d[0] for d in diversity],
            y=[d[1] for d in diversity],
            mode="lines+markers",
            line={"color": "#9C755F", "width": 2, "dash": "dash"},
            name="mean similarity within the layer (1 - diversity)",
            row=2,
            col=1,
        )
    figure.add_box(
        x=[trace[n]["layer"] for n in answered],
        y=[len(_analysis.words(trace[n]["response"])) for n in answered],
        boxpoints="all",
        jitter=0.3,
        pointpos=0,
        marker={"color": "#4E79A7", "size": 5},
        line={"color": "#4E79A7"},
        hovertext=[esc_plot(n) for n in answered],
        hoverinfo="y+text",
        name="words per response",
        showlegend=False,
        row=2,
        col=1 + width,
    )
    figure.update_xaxes(title_text="layer", dtick=1, row=2)
    figure.update_yaxes(range=[0, 1.05], title_text="TF-IDF cosine", row=2, col=1)
    figure.update_yaxes(rangemode="tozero", row=2, col=1 + width)
    figure.update_yaxes(autorange="reversed", row=1)
    return _layout(
        figure,
        "How the answer evolved · TF-IDF cosine: 1 = same words, 0 = nothing in common",
        height=800,
        legend=_LEGEND_BELOW,
        margin={"b": 90},
        coloraxis={
            "colorscale": "Blues",
            "cmin": 0,
            "cmax": 1,
            "colorbar": {"title": {"text": "cosine"}, "len": 0.5, "y": 0.78},
        },
    )


def attribution(trace: Trace, measure: str = "carried") -> go.Figure:
    """What every call with references reused from each: rows are calls, columns reference numbers.

    A cell is the chosen measure (``REUSE_MEASURES``) for the reference the call saw at that
    position, so a column that stays dark is a position bias; a menu switches the measure and the
    hover shows all four numbers.
    """
    if measure not in _analysis.REUSE_MEASURES:
        raise TraceError(
            f"unknown measure {measure!r}; choose one of {sorted(_analysis.REUSE_MEASURES)}"
        )
    reuse = _analysis.attribution(trace)
    targets = [n for n in trace.calls() if trace.references(n) and trace[n]["response"] is not None]
    width = max((len(trace.references(n)) for n in targets), default=0)
    figure = go.Figure()
    if not targets:
        return _empty(
            figure,
            "No call read references (a one-layer run, or the run stopped in layer 1).",
            "Attribution",
        )
    cells: list[list[_analysis.Reuse | None]] = []
    for target in targets:
        row: list[_analysis.Reuse | None] = [reuse.get((s, target)) for s in trace.references(target)]
        cells.append(row + [None] * (width - len(row)))

    def grid(name: str) -> list[list[float | None]]:
        return [[None if c is None else getattr(c, name) for c in row] for row in cells]

    hover = [
        [
            ""
            if c is None
            else f"<b>{esc_plot(c.target)}</b> read <b>{esc_plot(c.source)}</b> "
            f"({esc_plot(trace[c.source]['model'])}) as reference {c.position}"
            f"<br>{esc_plot(reuse_line(c))}"
            for c in row
        ]
        for row in cells
    ]
    small = len(targets) <= 30 and width <= 12
    figure.add_heatmap(
        z=grid(measure),
        x=[f"ref {i}" for i in range(1, width + 1)],
        y=[f"{esc_plot(n)} {esc_plot(clip(trace[n]['model'], 16))}" for n in targets],
        text=[[esc_plot(c.source) if c else "" for c in row] for row in cells] if small else None,
        texttemplate="%{text}<br>%{z:.2f}" if small else None,
        hovertext=hover,
        hoverinfo="text",
        colorscale="Purples",
        zmin=0,
        zmax=1,
        xgap=2,
        ygap=2,
        colorbar={"title": {"text": measure}},
    )
    buttons = [
        {"label": name, "method": "restyle", "args": [{"z": [grid(name)], "colorbar.title.text": name}]}
        for name in _analysis.REUSE_MEASURES
    ]
    return _layout(
        figure,
        "What each call reused from its references · cell: the reference's id and score",
        height=int(min(max(300, 34 * len(targets) + 160), 1400)),
        updatemenus=[
            {
                "buttons": buttons,
                "x": 0,
                "y": 1.02,
                "xanchor": "left",
                "yanchor": "bottom",
                "active": list(_analysis.REUSE_MEASURES).index(measure),
            }
        ],
        yaxis={"autorange": "reversed", "tickfont": {"size": 10}},
        xaxis={"side": "top"},
        margin={"t": 110},
    )


def reference_reuse(trace: Trace, node: str | None = None) -> go.Figure:
    """For one call (default: the aggregator), the four reuse measures of each of its references."""
    node = check_node(trace, node) if node else trace.aggregator() or (trace.calls() or [None])[-1]
    figure = go.Figure()
    references = trace.references(node) if node else []
    if not references:
        return _empty(
            figure,
            f"{esc_plot(node or 'this trace')} read no references: layer 1 sees only the user's prompt.",
            "What the call reused",
        )
    reuse = _analysis.attribution(trace)
    labels = [
        f"{i}. {esc_plot(s)}<br>{esc_plot(clip(trace[s]['model'], 20))}"
        for i, s in enumerate(references, 1)
    ]
    for (name, meaning), color in zip(
        _analysis.REUSE_MEASURES.items(), ("#4E79A7", "#F28E2B", "#59A14F", "#B07AA1"), strict=True
    ):
        values = [getattr(reuse[s, node], name) if (s, node) in reuse else 0.0 for s in references]
        figure.add_bar(
            x=labels,
            y=values,
            name=name,
            marker={"color": color},
            hovertext=esc_plot(meaning),
            hoverinfo="y+text+name",
            texttemplate="%{y:.2f}",
            textposition="outside",
        )
    data = trace[node]
    return _layout(
        figure,
        f"What {esc_plot(node)} ({esc_plot(data['model'])}) reused from each reference",
        barmode="group",
        height=400,
        yaxis={"range": [0, 1.1], "title": {"text": "share / score (0-1)"}},
    )
