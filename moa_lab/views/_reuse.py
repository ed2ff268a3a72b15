"""How answers relate: similarity within a layer and to the final answer, and what each call reused.

Invariant: every number comes from ``moa_lab._analysis`` (one definition of each measure, shared with
replay and experiments); model text reaches plotly escaped and only as hover text.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.views._html import check_node, measures_line, reuse_line, strongest_references
from moa_lab.views._layout import (
    LEGEND_BELOW,
    answered,
    depth_word,
    empty,
    layout,
)
from moa_lab.views._style import clip, esc_plot, model_colors

__all__ = [
    "COLUMNS_UP_TO",
    "HEATMAP_UP_TO",
    "ROWS_UP_TO",
    "attribution",
    "evolution",
    "reference_reuse",
]

#: A similarity heatmap shows at most this many answers of a layer: more is more than anyone reads,
#: and its cells grow with the square of the answers (a 5,000-answer layer made a 472 MB heatmap).
HEATMAP_UP_TO = 40


#: Roles whose calls of one depth answer the same question side by side (their similarity means
#: agreement): MoA's proposers, a debate's debaters (a search's thoughts extend different states).
_PARALLEL = frozenset({"proposer", "debater"})

#: The attribution heatmap keeps a row per call up to this many calls, then a row per layer.
ROWS_UP_TO = 60
#: ... and a column per reference number up to this many, then ranges of reference numbers.
COLUMNS_UP_TO = 50


def _shown(answers: int) -> str:
    """What a layer's heatmap leaves out, if anything, for its title."""
    return f" (the first {HEATMAP_UP_TO} of {answers:,})" if answers > HEATMAP_UP_TO else ""


def evolution(trace: Trace) -> go.Figure:
    """How the answer evolved: per-layer pairwise similarity, similarity to the final, length.

    Top: for each layer of proposers (or round of debaters), the TF-IDF cosine between its responses
    (high = the agents agree, low = diverse); a search has no such row. Bottom left: each call's
    similarity to the final answer, with the layer mean (convergence) and the layer's mean pairwise
    similarity. Bottom right: response length in words. Up to four layers' heatmaps sit side by
    side; beyond that a menu picks the layer. A heatmap shows at most the first ``HEATMAP_UP_TO``
    answers of its layer, and says so: the mean similarity within each layer (the dashed line)
    still counts every pair.
    """
    counts = Counter(trace[n].layer for n in answered(trace) if trace[n].role in _PARALLEL)
    proposer_layers = sorted(counts)
    side_by_side = 1 <= len(proposer_layers) <= 4
    width = len(proposer_layers) if side_by_side else 1
    word = depth_word(trace)
    # Without a layer of parallel answers (a search) there is no heatmap row: one row, two panels.
    low = 2 if proposer_layers else 1
    bottom = [{"colspan": width}] + [None] * (width - 1) + [{"colspan": width}] + [None] * (width - 1)
    figure = make_subplots(
        rows=low,
        cols=2 * width,
        specs=[[{"colspan": 2}, None] * width, bottom] if proposer_layers else [bottom],
        row_heights=[0.55, 0.45] if proposer_layers else None,
        vertical_spacing=0.16,
        horizontal_spacing=0.06,
        subplot_titles=[
            f"{word.capitalize()} {layer}: similarity between answers{_shown(counts[layer])}"
            for layer in proposer_layers[:width]
        ]
        + ["Similarity to the final answer", "Response length (words)"],
    )
    # Four decimals are more than a colour shows and keep a big trace's page small; numpy arrays
    # keep plotly from copying and checking every cell of every layer's menu entry.
    similarity = {
        layer: (names, np.round(np.array(matrix, dtype=np.float64).reshape(len(names), -1), 4))
        for layer in proposer_layers
        for names, matrix in [_analysis.layer_similarity(trace, layer, first=HEATMAP_UP_TO)]
    }
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
            name=f"{word} {layer}",
            hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>",
            row=1,
            col=1 + 2 * number,
        )
    if not side_by_side and proposer_layers:
        buttons = [
            {
                "label": f"{word} {layer}{_shown(counts[layer])}",
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
        figure.layout.annotations[0].text = "Similarity between the answers of the chosen layer" + (
            f" (at most its first {HEATMAP_UP_TO})" if max(counts.values()) > HEATMAP_UP_TO else ""
        )

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
            row=low,
            col=1,
        )
        means = [sum(v for n, v in to_final.items() if trace[n].layer == layer) for layer in layers]
        per_layer = [sum(1 for n in to_final if trace[n].layer == layer) for layer in layers]
        figure.add_scatter(
            x=layers,
            y=[m / c for m, c in zip(means, per_layer, strict=True)],
            mode="lines+markers",
            line={"color": "#111827", "width": 2.5},
            name=f"{word} mean vs final (convergence)",
            row=low,
            col=1,
        )
    diversity = [
        (layer, mean)
        for layer in proposer_layers
        if (mean := _analysis.layer_diversity(trace, layer)) is not None
    ]
    if diversity:
        figure.add_scatter(
            x=[d[0] for d in diversity],
            y=[d[1] for d in diversity],
            mode="lines+markers",
            line={"color": "#9C755F", "width": 2, "dash": "dash"},
            name=f"mean similarity within the {word} (1 - diversity)",
            row=low,
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
        row=low,
        col=1 + width,
    )
    figure.update_xaxes(title_text=word, dtick=1, row=low)
    figure.update_yaxes(range=[0, 1.05], title_text="TF-IDF cosine", row=low, col=1)
    figure.update_yaxes(rangemode="tozero", row=low, col=1 + width)
    if proposer_layers:
        figure.update_yaxes(autorange="reversed", row=1)
    return layout(
        figure,
        "How the answer evolved · TF-IDF cosine: 1 = same words, 0 = nothing in common",
        height=800 if proposer_layers else 480,
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
    hover shows all four numbers. Beyond ``ROWS_UP_TO`` calls a row is a layer (the mean of its
    calls), and beyond ``COLUMNS_UP_TO`` references a column is a range of reference numbers (the
    mean of its cells); the title then says the heatmap is summarised.
    """
    if measure not in _analysis.REUSE_MEASURES:
        raise TraceError(
            f"unknown measure {measure!r}; choose one of {sorted(_analysis.REUSE_MEASURES)}"
        )
    reuse = _analysis.attribution(trace)
    read = _analysis.references(trace)
    references = {n: read[n] for n in trace.calls() if trace[n].response is not None}
    targets = [n for n, read in references.items() if read]
    width = max((len(references[n]) for n in targets), default=0)
    figure = go.Figure()
    if not targets:
        return empty(
            figure,
            "No call read references (a one-layer run, or the run stopped in layer 1).",
            "Attribution",
        )
    if len(targets) <= ROWS_UP_TO:
        rows = [(f"{esc_plot(n)} {esc_plot(clip(trace[n].model, 16))}", [n]) for n in targets]
    else:
        layers: dict[int, list[str]] = {}
        for target in targets:
            layers.setdefault(trace[target].layer, []).append(target)
        word = depth_word(trace)
        rows = [(f"{word} {layer} · {len(mine):,} calls", mine) for layer, mine in layers.items()]
    step = -(-width // COLUMNS_UP_TO)
    columns = [
        (f"ref {start + 1}" if step == 1 else f"{start + 1}-{min(start + step, width)}",
         range(start, min(start + step, width)))
        for start in range(0, width, step)
    ]  # fmt: skip
    cells = [
        [
            [
                reuse[edge]
                for target in mine
                for at in spots
                if at < len(references[target]) and (edge := (references[target][at], target)) in reuse
            ]
            for _, spots in columns
        ]
        for _, mine in rows
    ]

    def grid(name: str) -> list[list[float | None]]:
        return [
            [sum(getattr(c, name) for c in cell) / len(cell) if cell else None for cell in row]
            for row in cells
        ]

    def hover(cell: list[_analysis.Reuse], row: str, column: str) -> str:
        if not cell:
            return ""
        if len(cell) == 1:
            (c,) = cell
            return (
                f"<b>{esc_plot(c.target)}</b> read <b>{esc_plot(c.source)}</b> "
                f"({esc_plot(trace[c.source].model)}) as reference {c.position}"
                f"<br>{esc_plot(reuse_line(c))}"
            )
        means = {
            name: sum(getattr(c, name) for c in cell) / len(cell) for name in _analysis.REUSE_MEASURES
        }
        line = esc_plot(measures_line(**means))
        return f"<b>{row}</b>, {column}: the mean of {len(cell):,} edges<br>{line}"

    small = len(rows) <= 30 and len(columns) <= 12 and all(len(c) <= 1 for row in cells for c in row)
    summarised = []
    if len(targets) > ROWS_UP_TO:
        summarised.append(f"rows are layers (the mean of their calls, {len(targets):,} in all)")
    if step > 1:
        summarised.append(f"columns are ranges of reference numbers (1-{width:,})")
    figure.add_heatmap(
        z=grid(measure),
        x=[label for label, _ in columns],
        y=[label for label, _ in rows],
        text=[[esc_plot(c[0].source) if c else "" for c in row] for row in cells] if small else None,
        texttemplate="%{text}<br>%{z:.2f}" if small else None,
        hovertext=[
            [hover(cell, label, column) for cell, (column, _) in zip(row, columns, strict=True)]
            for row, (label, _) in zip(cells, rows, strict=True)
        ],
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
    title = "What each call reused from its references · " + (
        f"summarised: {'; '.join(summarised)}" if summarised else "cell: the reference's id and score"
    )
    return layout(
        figure,
        title,
        height=int(min(max(300, 34 * len(rows) + 160), 1400)),
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
        margin={"t": 110 if step == 1 else 150},
    )


def reference_reuse(trace: Trace, node: str | None = None) -> go.Figure:
    """For one call (default: the aggregator), the four reuse measures of each of its references.

    Of more than ``COLUMNS_UP_TO`` references, the ``COLUMNS_UP_TO`` it carried most from (in the
    order it read them), and the title says so.
    """
    node = check_node(trace, node) if node else trace.aggregator() or (trace.calls() or [None])[-1]
    figure = go.Figure()
    read = trace.references(node) if node else []
    if not read:
        return empty(
            figure,
            f"{esc_plot(node or 'this trace')} read no references: layer 1 sees only the user's prompt.",
            "What the call reused",
        )
    reuse = _analysis.attribution(trace)
    references = strongest_references(node, read, reuse, COLUMNS_UP_TO)
    labels = [f"{i}. {esc_plot(s)}<br>{esc_plot(clip(trace[s].model, 20))}" for i, s in references]
    for (name, meaning), color in zip(
        _analysis.REUSE_MEASURES.items(), ("#4E79A7", "#F28E2B", "#59A14F", "#B07AA1"), strict=True
    ):
        values = [getattr(reuse[s, node], name) if (s, node) in reuse else 0.0 for _, s in references]
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
        f"What {esc_plot(node)} ({esc_plot(data.model)}) reused from "
        + (
            f"the {len(references)} of its {len(read):,} references it carried most from"
            if len(references) < len(read)
            else "each reference"
        ),
        barmode="group",
        height=400,
        yaxis={"range": [0, 1.1], "title": {"text": "share / score (0-1)"}},
    )
