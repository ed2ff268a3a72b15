"""``search_tree``: a Tree-of-Thoughts search as the paper draws it (Yao et al. 2023, Figure 2).

Depth (the step) runs left to right; every proposed state is a node under the state it extends. Kept
states are filled and coloured by their value, pruned ones hollow and grey with their branch faded,
the path to the best final state drawn thick; hovering a node shows the thought, its value and the
whole partial solution.

Invariant: state text reaches plotly only through ``esc_plot``/``hover_text``.
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from moa_lab._tot.tree import ROOT, thought_tree
from moa_lab._trace import Trace
from moa_lab.views._layout import empty, hover_text, layout
from moa_lab.views._style import clip, esc_plot

__all__ = ["search_tree"]

#: Meta tag of the state markers (their node ids in ``customdata``, as the layer graph's nodes).
STATE_TRACE = "moa:states"
_CHOSEN = "#D62728"
_PRUNED = "#c4c9d0"


def _rows(tree: Any) -> dict[str, float]:
    """A row per node: leaves in depth-first order, each parent at the middle of its children."""
    rows: dict[str, float] = {}
    next_leaf = [0.0]

    def place(node: str) -> float:
        children = sorted(tree.successors(node), key=lambda n: tree.nodes[n]["rank"])
        if not children:
            rows[node] = next_leaf[0]
            next_leaf[0] += 1
        else:
            spots = [place(child) for child in children]
            rows[node] = (spots[0] + spots[-1]) / 2
        return rows[node]

    place(ROOT)
    for node in tree:  # a state whose parent is not in the trace: below the rest
        if node not in rows:
            rows[node] = next_leaf[0]
            next_leaf[0] += 1
    return rows


def _value_label(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.3g}"


def search_tree(trace: Trace, *, height: int | None = None) -> go.Figure:
    """The tree of thoughts of a search trace (a ``ToTConfig`` run or an imported ToT log).

    Nodes are states (``thought_tree``): colour is the log10 of the value (the evaluator's score),
    hollow grey marks a pruned state, a red outline and thick edges the path to the best final
    state, a star a final output. A trace without a search gives a figure that says so.
    """
    tree = thought_tree(trace)
    title = "Tree-of-Thoughts search"
    if tree.number_of_nodes() <= 1:
        return empty(go.Figure(), "this run has no search tree (not a Tree-of-Thoughts run)", title)
    rows = _rows(tree)
    data = tree.nodes
    judge = _judge(trace)
    figure = go.Figure()
    for chosen in (False, True):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for u, v in tree.edges:
            if (data[u]["chosen"] and data[v]["chosen"]) != chosen:
                continue
            xs += [data[u]["step"], data[v]["step"], None]
            ys += [rows[u], rows[v], None]
        figure.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": _CHOSEN if chosen else "#aab2bd", "width": 3.5 if chosen else 1},
                opacity=1 if chosen else 0.6,
                hoverinfo="skip",
                name="path to the best output" if chosen else "extends",
                showlegend=chosen,
            )
        )
    values = [d["value"] for _, d in tree.nodes(data=True) if d["value"] is not None]
    low = math.log10(max(min(values, default=1e-3), 1e-3))
    high = math.log10(max(max(values, default=1.0), 1e-3))
    for kept in (False, True):
        nodes = [n for n in tree if n != ROOT and data[n]["kept"] == kept]
        if not nodes:
            continue
        figure.add_trace(
            go.Scatter(
                x=[data[n]["step"] for n in nodes],
                y=[rows[n] for n in nodes],
                mode="markers+text" if kept else "markers",
                text=[_value_label(data[n]["value"]) + _verdict(judge, data[n]) for n in nodes]
                if kept
                else None,
                textposition="top center",
                textfont={"size": 10, "color": "#374151"},
                marker={
                    "size": [16 if data[n]["output"] else 11 for n in nodes],
                    "symbol": ["star" if data[n]["output"] else "circle" for n in nodes],
                    "color": [math.log10(max(data[n]["value"] or 1e-3, 1e-3)) for n in nodes]
                    if kept
                    else "white",
                    "colorscale": "Viridis",
                    "cmin": low,
                    "cmax": max(high, low + 1),
                    "colorbar": {"title": {"text": "value<br>(log10)"}, "thickness": 12, "len": 0.6}
                    if kept
                    else None,
                    "showscale": kept,
                    "line": {
                        "color": [_CHOSEN if data[n]["chosen"] else _PRUNED for n in nodes],
                        "width": [3 if data[n]["chosen"] else 1.5 for n in nodes],
                    },
                },
                customdata=nodes,
                meta=STATE_TRACE,
                hovertext=[_hover(n, data[n]) for n in nodes],
                hoverinfo="text",
                name="kept (colour: value)" if kept else "pruned",
            )
        )
    figure.add_trace(
        go.Scatter(
            x=[0],
            y=[rows[ROOT]],
            mode="markers+text",
            text=[esc_plot(clip(trace.prompt, 24))],
            textposition="middle left",
            marker={"size": 13, "color": "#1f2937", "symbol": "square"},
            hovertext=[f"<b>input</b><br>{hover_text(trace.prompt)}"],
            hoverinfo="text",
            name="input",
            showlegend=False,
        )
    )
    steps = max(d["step"] for _, d in tree.nodes(data=True))
    counts = [sum(1 for _, d in tree.nodes(data=True) if d["step"] == s) for s in range(1, steps + 1)]
    kept_counts = [
        sum(1 for _, d in tree.nodes(data=True) if d["step"] == s and d["kept"])
        for s in range(1, steps + 1)
    ]
    figure.update_xaxes(
        tickvals=list(range(steps + 1)),
        ticktext=["input"]
        + [
            f"step {s}<br>{k} of {n} kept"
            for s, (n, k) in enumerate(zip(counts, kept_counts, strict=True), 1)
        ],
        range=[-0.6, steps + 0.3],
        showgrid=False,
        zeroline=False,
    )
    figure.update_yaxes(visible=False, autorange="reversed")
    leaves = sum(1 for n in tree if tree.out_degree(n) == 0)
    best = next((d for _, d in tree.nodes(data=True) if d["chosen"] and d["output"]), None)
    verdict = ""
    if judge is not None and best is not None:
        verdict = "; the best output is " + ("correct" if judge(best["state"]) else "wrong")
    return layout(
        figure,
        f"{title}: {tree.number_of_nodes() - 1} states proposed, {sum(kept_counts)} kept{verdict}",
        height=height or min(max(320, 16 * leaves + 150), 2400),
        margin={"l": 110, "r": 30},
    )


def _judge(trace: Trace) -> Any:
    """The task's checker of a final state, when the task has one (Game of 24), else None."""
    config = trace.graph.graph.get("config") or {}
    if config.get("strategy") != "tot" or config.get("task") != "game24":
        return None
    from moa_lab.experiments.game24 import check

    return lambda state: check(trace.prompt, state)


def _verdict(judge: Any, data: dict[str, Any]) -> str:
    if judge is None or not data["output"]:
        return ""
    return " ✓" if judge(data["state"]) else " ✗"


def _hover(node: str, data: dict[str, Any]) -> str:
    fate = "kept" if data["kept"] else "pruned"
    if data["chosen"]:
        fate += ", on the path to the best output"
    elif data["output"]:
        fate += ", a final output"
    value = "unknown" if data["value"] is None else f"{data['value']:.4g}"
    return (
        f"<b>{esc_plot(node)}</b> step {data['step']} · value {value} · {fate}<br>"
        f"<i>thought</i>: {hover_text(data['thought'])}<br>"
        f"<i>state so far</i>:<br>{hover_text(data['state'])}<br>"
        f"<span style='color:#6b7280'>proposed by {esc_plot(data['call'] or '')}</span>"
    )
