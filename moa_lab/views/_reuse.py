"""How answers relate: similarity within a layer and to the final answer, and what each call reused.

Invariant: every number comes from ``moa_lab._analysis`` (one definition of each measure, shared with
replay and experiments); model text reaches plotly escaped and only as hover text.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.views._html import check_node, reuse_line
from moa_lab.views._layout import (
    LEGEND_BELOW,
    answered,
    empty,
    layout,
)
from moa_lab.views._style import clip, esc_plot, model_colors

__all__ = ["attribution", "evolution", "reference_reuse"]


def evolution(trace: Trace) -> go.Figure:
    """How the answer evolved: per-layer pairwise similarity, similarity to the final, length.

    Top: for each proposer layer, the TF-IDF cosine between its responses (high = the agents agree,
    low = diverse). Bottom left: each call's similarity to the final answer, with the layer mean
    (convergence) and the layer's mean pairwise similarity. Bottom right: response length in words.
    Up to four layers' heatmaps sit side by side; beyond that a menu picks the layer.
    """
    proposer_layers = sorted({trace[n].layer for n in answered(trace) if trace[n].role == "proposer"})
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
    replied = answered(trace)
    layers = sorted({trace[n].layer for n in replied})
    if to_final:
        figure.add_scatter(
            x=[trace[n].layer for n in to_final],
            y=list(to_final.values()),
            mode="markers",
            marker={"color": [colors[trace[n].model] for n in to_final], "size": 8, "opacity": 0.75},
            hovertext=[
                f"{esc_plot(n)} · {esc_plot(trace[n].model)}: {v:.2f}" for n, v in to_final.items()
            ],
            hoverinfo="text",
            name="each call vs final",
            row=2,
            col=1,
        )
        means = [sum(v for n, v in to_final.items() if trace[n].layer == layer) for layer in layers]
        counts = [sum(1 for n in to_final if trace[n].layer == layer) for layer in layers]
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
        x=[trace[n].layer for n in replied],
        y=[len(_analysis.words(trace[n].response)) for n in replied],
        boxpoints="all",
        jitter=0.3,
        pointpos=0,
        marker={"color": "#4E79A7", "size": 5},
        line={"color": "#4E79A7"},
        hovertext=[esc_plot(n) for n in replied],
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
    return layout(
        figure,
        "How the answer evolved · TF-IDF cosine: 1 = same words, 0 = nothing in common",
        height=800,
        legend=LEGEND_BELOW,
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
    targets = [n for n in trace.calls() if trace.references(n) and trace[n].response is not None]
    width = max((len(trace.references(n)) for n in targets), default=0)
    figure = go.Figure()
    if not targets:
        return empty(
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
            f"({esc_plot(trace[c.source].model)}) as reference {c.position}"
            f"<br>{esc_plot(reuse_line(c))}"
            for c in row
        ]
        for row in cells
    ]
    small = len(targets) <= 30 and width <= 12
    figure.add_heatmap(
        z=grid(measure),
        x=[f"ref {i}" for i in range(1, width + 1)],
        y=[f"{esc_plot(n)} {esc_plot(clip(trace[n].model, 16))}" for n in targets],
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
    return layout(
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
        return empty(
            figure,
            f"{esc_plot(node or 'this trace')} read no references: layer 1 sees only the user's prompt.",
            "What the call reused",
        )
    reuse = _analysis.attribution(trace)
    labels = [
        f"{i}. {esc_plot(s)}<br>{esc_plot(clip(trace[s].model, 20))}"
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
    return layout(
        figure,
        f"What {esc_plot(node)} ({esc_plot(data.model)}) reused from each reference",
        barmode="group",
        height=400,
        yaxis={"range": [0, 1.1], "title": {"text": "share / score (0-1)"}},
    )
