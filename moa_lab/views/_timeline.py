"""The timeline: when each call waited and when it was served, rows grouped by layer (round, step).

Invariant: a pure function of the trace; waiting is never drawn as work. A call's bar starts when the
endpoint began serving it (``served_at``, or ``sent_at`` when the endpoint does not say), and what
came before (a free slot, the model busy with other calls, failed attempts and their backoff) is a
hatched grey bar; calls that sent nothing (cache hits, a replay's reused answers) are marks, not bars.
Trace text reaches plotly escaped.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from moa_lab._trace import Trace
from moa_lab.views._layout import LEGEND_BELOW, by_layer, depth_word, layout
from moa_lab.views._style import ERROR_COLOR, HIT_COLOR, clip, esc_plot, model_colors

__all__ = ["timeline"]

REUSED_COLOR = "#7C3AED"


def _begun(data: Any) -> float | None:
    """When the endpoint began working on the call (None: not recorded, or nothing was sent)."""
    return data.served_at if data.served_at is not None else data.sent_at


def timeline(trace: Trace) -> go.Figure:
    """One row per call: a hatched bar while it waited, a bar in its model's colour while served.

    Waiting covers a free concurrency slot, the local model serving other calls one at a time, and
    failed attempts with their backoff. Where the endpoint reports prefill and decode times
    (llama.cpp's ``timings``), the lighter first part of the bar is the prefill. Cache hits and
    reused answers are marks at the moment they were taken. The call that ended each layer is
    outlined and a dotted line marks the layer's end.
    """
    nodes = trace.calls()
    figure = go.Figure()
    if not nodes:
        return layout(figure, "Timeline (no calls yet)")
    if trace.graph.graph.get("imported"):
        figure.add_annotation(
            text="this run was imported from a log that records no times",
            showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
        )  # fmt: skip
        return layout(figure, "Timeline (no times recorded)", height=240)
    word = depth_word(trace)
    colors = model_colors(trace)
    start = min(trace[n].started_at for n in nodes)
    labels = {n: f"{esc_plot(n)} {esc_plot(clip(trace[n].model, 18))}" for n in nodes}
    sent = [n for n in nodes if not trace[n].cache_hit]
    taken = [n for n in nodes if trace[n].cache_hit]

    def end(node: str) -> float:
        data = trace[node]
        return (data.ended_at or data.started_at) - start

    layers = by_layer(trace)
    layer_end = {layer: max(end(n) for n in mine) for layer, mine in layers.items()}
    closers = {max(mine, key=end) for mine in layers.values()}
    unknown = [n for n in sent if _begun(trace[n]) is None]
    queued = [n for n in sent if n not in unknown and _begun(trace[n]) - trace[n].started_at > 1e-3]
    figure.add_bar(
        y=[labels[n] for n in queued],
        x=[_begun(trace[n]) - trace[n].started_at for n in queued],
        base=[trace[n].started_at - start for n in queued],
        orientation="h",
        marker={"color": "#f3f4f6", "pattern": {"shape": "/", "fgcolor": "#9ca3af", "size": 6},
                "line": {"width": 0}},
        name="waiting (for a slot, the model, or a retry)",
        hovertext=[_wait_hover(trace, n, start) for n in queued],
        hoverinfo="text",
    )  # fmt: skip
    for model, color in colors.items():
        mine = [n for n in sent if trace[n].model == model]
        if not mine:
            continue
        begins = {n: (_begun(trace[n]) or trace[n].started_at) - start for n in mine}
        prefill = {n: _prefill(trace[n]) for n in mine}
        split = [n for n in mine if prefill[n] is not None]
        if split:
            figure.add_bar(
                y=[labels[n] for n in split],
                x=[max(prefill[n], 0.002) for n in split],
                base=[begins[n] for n in split],
                orientation="h",
                marker={"color": color, "opacity": 0.45, "line": {"width": 0}},
                name=f"{esc_plot(model)}: prefill",
                legendgroup=model,
                hoverinfo="skip",
                showlegend=False,
            )
        figure.add_bar(
            y=[labels[n] for n in mine],
            x=[max(end(n) - begins[n] - (prefill[n] or 0.0), 0.002) for n in mine],
            base=[begins[n] + (prefill[n] or 0.0) for n in mine],
            orientation="h",
            customdata=mine,
            marker={
                "color": color,
                "line": {
                    "color": [ERROR_COLOR if trace[n].error else "#111827" for n in mine],
                    "width": [2 if trace[n].error or n in closers else 0 for n in mine],
                },
                "pattern": {
                    "shape": ["x" if n in unknown else "" for n in mine],
                    "fgcolor": "#ffffff",
                    "size": 5,
                },
            },
            hovertext=[_serve_hover(trace, n, start, n in closers, word) for n in mine],
            hoverinfo="text",
            name=esc_plot(model),
            legendgroup=model,
        )
    for reused, color, name in (
        (False, HIT_COLOR, "cache hit"),
        (True, REUSED_COLOR, "reused (replay)"),
    ):
        mine = [n for n in taken if trace[n].reused == reused]
        if mine:
            figure.add_scatter(
                y=[labels[n] for n in mine],
                x=[end(n) for n in mine],
                mode="markers",
                marker={"symbol": "diamond-open" if reused else "circle-open", "size": 11,
                        "color": color, "line": {"width": 2.5}},
                name=name,
                customdata=mine,
                hovertext=[_taken_hover(trace, n, name) for n in mine],
                hoverinfo="text",
            )  # fmt: skip
    # Shapes and annotations go in as one list: plotly's add_vline is quadratic in their number.
    figure.update_layout(
        shapes=[
            {"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1,
             "line": {"color": "#9ca3af", "width": 1, "dash": "dot"}}
            for at in layer_end.values()
        ],
        annotations=[
            {"x": at, "y": labels[layers[layer][0]], "text": f"{word} {layer} done",
             "showarrow": False, "xanchor": "left", "yanchor": "middle", "xshift": 3,
             "font": {"size": 10, "color": "#6b7280"}}
            for layer, at in layer_end.items()
        ],
    )  # fmt: skip
    known = [n for n in sent if n not in unknown]
    serving = sum(end(n) - (_begun(trace[n]) - start) for n in known)
    waiting = sum(_begun(trace[n]) - trace[n].started_at for n in known)
    wall = max(layer_end.values())
    if unknown:
        note = "✕ hatched: recorded by an older moa_lab, so waiting and serving are not told apart"
    else:
        note = f"{serving:.2f} s serving and {waiting:.2f} s waiting in all"
    height = int(min(max(280, 22 * len(nodes) + 170), 1400))
    return layout(
        figure,
        f"Timeline · wall {wall:.2f} s<br><span style='font-size:12px;color:#6b7280'>{note}; "
        f"outlined: the call that ended its {word}</span>",
        barmode="overlay",
        height=height,
        xaxis={"title": {"text": "seconds since the run started"}, "rangemode": "tozero"},
        yaxis={
            "autorange": "reversed",
            "categoryorder": "array",
            "categoryarray": [labels[n] for n in nodes],
            "tickfont": {"size": 10},
        },
        # below the axis title whatever the height: 50 px under the plot area, in its own units
        legend=LEGEND_BELOW | {"y": -50 / (height - 75 - 90)},
        margin={"t": 75, "b": 90},
        bargap=0.25,
        showlegend=True,
    )


def _prefill(data: Any) -> float | None:
    """Seconds of prompt processing, from the endpoint's own ``timings`` (llama.cpp), if given."""
    timings = data.timings or {}
    value = timings.get("prompt_ms")
    return value / 1000 if isinstance(value, (int, float)) and value >= 0 else None


def _wait_hover(trace: Trace, node: str, start: float) -> str:
    data = trace[node]
    waited = _begun(data) - data.started_at
    why = []
    if data.retry_waits:
        why.append(f"{len(data.retry_waits)} failed attempt(s), backoff {sum(data.retry_waits):.2f} s")
    if data.served_at is not None and data.sent_at is not None and data.served_at > data.sent_at:
        why.append(f"{data.served_at - data.sent_at:.2f} s queued at the endpoint")
    reason = f" ({'; '.join(why)})" if why else ""
    return (
        f"<b>{esc_plot(node)}</b> waited {waited:.2f} s before being served{reason}<br>"
        f"+{data.started_at - start:.2f} s → +{_begun(data) - start:.2f} s"
    )


def _serve_hover(trace: Trace, node: str, start: float, closer: bool, word: str) -> str:
    data = trace[node]
    begun = _begun(data)
    first = (begun or data.started_at) - start
    last = (data.ended_at or data.started_at) - start
    lines = [f"<b>{esc_plot(node)}</b> · {esc_plot(data.model)}"]
    if begun is None:
        lines.append(f"+{first:.2f} s → +{last:.2f} s ({last - first:.2f} s, waiting not recorded)")
    else:
        lines.append(f"served +{first:.2f} s → +{last:.2f} s ({last - first:.2f} s)")
    prefill = _prefill(data)
    if prefill is not None:
        decode = (data.timings or {}).get("predicted_ms")
        tail = f", decode {decode / 1000:.2f} s" if isinstance(decode, (int, float)) else ""
        lines.append(f"prefill {prefill:.2f} s{tail}")
    if closer:
        lines.append(f"ended its {word}")
    if data.error:
        lines.append(f"error: {esc_plot(clip(data.error, 80))}")
    return "<br>".join(lines)


def _taken_hover(trace: Trace, node: str, what: str) -> str:
    data = trace[node]
    took = "" if data.latency is None else f"<br>took {data.latency:.2f} s when first made"
    source = f" of {esc_plot(data.origin)}" if data.reused and data.origin else ""
    return f"<b>{esc_plot(node)}</b> · {what}{source}: nothing sent{took}"
