"""The timeline: one bar per call from its start to its end, rows grouped by layer.

Invariant: a pure function of the trace; model names reach plotly escaped.
"""

from __future__ import annotations

import plotly.graph_objects as go

from moa_lab._trace import Trace
from moa_lab.views._layout import (
    by_layer,
    layout,
)
from moa_lab.views._style import ERROR_COLOR, HIT_COLOR, clip, esc_plot, model_colors

__all__ = ["timeline"]


def timeline(trace: Trace) -> go.Figure:
    """One bar per call from its start to its end, rows grouped by layer, bars coloured by model.

    A grey tail shows how long a call then waited for the slowest call of its layer (the layer's
    barrier); the slowest call of each layer, which sets the pace, is outlined.
    """
    nodes = trace.calls()
    figure = go.Figure()
    if not nodes:
        return layout(figure, "Timeline (no calls yet)")
    colors = model_colors(trace)
    start = min(trace[n].started_at for n in nodes)

    def span(node: str) -> tuple[float, float]:
        data = trace[node]
        return data.started_at - start, (data.ended_at or data.started_at) - start

    layer_end: dict[int, float] = {}
    stragglers: set[str] = set()
    layers = by_layer(trace)
    for layer, mine in layers.items():
        slowest = max(mine, key=lambda n: span(n)[1])
        stragglers.add(slowest)
        layer_end[layer] = span(slowest)[1]
    labels = {n: f"{esc_plot(n)} {esc_plot(clip(trace[n].model, 18))}" for n in nodes}
    waits = [n for n in nodes if layer_end[trace[n].layer] - span(n)[1] > 1e-6]
    figure.add_bar(
        y=[labels[n] for n in waits],
        x=[layer_end[trace[n].layer] - span(n)[1] for n in waits],
        base=[span(n)[1] for n in waits],
        orientation="h",
        marker={"color": "#e5e7eb"},
        name="waiting for the layer's slowest call",
        hoverinfo="skip",
    )
    for model, color in colors.items():
        mine = [n for n in nodes if trace[n].model == model]
        figure.add_bar(
            y=[labels[n] for n in mine],
            x=[max(span(n)[1] - span(n)[0], 0.002) for n in mine],
            base=[span(n)[0] for n in mine],
            orientation="h",
            customdata=mine,
            marker={
                "color": color,
                "line": {
                    "color": [ERROR_COLOR if trace[n].error else "#111827" for n in mine],
                    "width": [2 if trace[n].error or n in stragglers else 0 for n in mine],
                },
            },
            hovertext=[
                f"<b>{esc_plot(n)}</b> · {esc_plot(model)}<br>+{span(n)[0]:.2f} s → +{span(n)[1]:.2f} s "
                f"({span(n)[1] - span(n)[0]:.2f} s)"
                + (" · slowest of its layer" if n in stragglers else "")
                + ("<br>cache hit" if trace[n].cache_hit else "")
                + (f"<br>error: {esc_plot(clip(trace[n].error, 80))}" if trace[n].error else "")
                for n in mine
            ],
            hoverinfo="text",
            name=esc_plot(model),
        )
    hits = [n for n in nodes if trace[n].cache_hit]
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
            {"x": end, "y": labels[layers[layer][0]], "text": f"layer {layer} done",
             "showarrow": False, "xanchor": "left", "yanchor": "middle", "xshift": 3,
             "font": {"size": 10, "color": "#6b7280"}}
            for layer, end in layer_end.items()
        ],
    )  # fmt: skip
    return layout(
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
