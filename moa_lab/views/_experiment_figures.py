"""Figures of an experiment: quality against cost with the Pareto front, per-config bars, ablations.

Every figure is a pure function of an experiment's per-config table (``result.table()``, or the
``ExperimentResult`` itself) returning a ``plotly.graph_objects.Figure``. Invariant: config names come
from user files, so they are escaped before they become plotly text; a figure that needs a column
the table lacks (a cost without prices, accuracy on an open-ended set) fails with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from moa_lab._errors import ConfigError
from moa_lab.experiments import ExperimentResult, pareto_front
from moa_lab.views._layout import layout
from moa_lab.views._style import PALETTE, esc

__all__ = [
    "COST_AXES",
    "bars_figure",
    "by_layers_figure",
    "by_proposers_figure",
    "experiment_figures",
    "pareto_figure",
    "write_figures",
]

#: What quality can be plotted against, and how the axis is labelled.
COST_AXES = {
    "cost": "mean cost per item ($)",
    "tokens": "mean tokens per item (prompt + completion, every call)",
    "latency": "mean latency per item (s, critical path)",
}
_LABELS = {
    "accuracy": "accuracy",
    "win_rate": "win rate against the baseline",
    "mean_length": "mean answer length (characters)",
    **COST_AXES,
}


def _table(source: ExperimentResult | pd.DataFrame) -> pd.DataFrame:
    return source.table() if isinstance(source, ExperimentResult) else source


def _quality(table: pd.DataFrame, quality: str | None) -> str:
    """The quality column to plot: the one asked for, else accuracy, else win rate."""
    if quality is None:
        quality = next((q for q in ("accuracy", "win_rate") if _has(table, q)), None)
        if quality is None:
            raise ConfigError(
                "the table has neither accuracy nor win_rate; score a QA dataset or run with a judge"
            )
    if not _has(table, quality):
        raise ConfigError(f"the experiment table has no {quality!r} values to plot")
    return quality


def _has(table: pd.DataFrame, column: str) -> bool:
    return column in table and bool(table[column].notna().any())


def _error_bars(table: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    low, high = f"{metric}_low", f"{metric}_high"
    if low not in table or high not in table:
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": (table[high] - table[metric]).clip(lower=0).tolist(),
        "arrayminus": (table[metric] - table[low]).clip(lower=0).tolist(),
        "thickness": 1.2,
    }


def _layout(figure: go.Figure, title: str, x: str, y: str) -> go.Figure:
    return layout(
        figure,
        title,
        xaxis_title=x,
        yaxis_title=y,
        legend={"orientation": "h", "y": -0.2},
        margin={"t": 60, "b": 40},
    )


def pareto_figure(
    source: ExperimentResult | pd.DataFrame, *, x: str = "cost", quality: str | None = None
) -> go.Figure:
    """Quality against cost, tokens or latency per config; the Pareto front is drawn and marked."""
    table = _table(source)
    if x not in COST_AXES:
        raise ConfigError(f"x must be one of {', '.join(COST_AXES)}, got {x!r}")
    if not _has(table, x):
        hint = " (no prices are known for these models; use x='tokens')" if x == "cost" else ""
        raise ConfigError(f"the experiment table has no {x} values{hint}")
    quality = _quality(table, quality)
    rows = table[table[x].notna() & table[quality].notna()]
    front = set(pareto_front(list(rows[x]), list(rows[quality])))
    names = [esc(name) for name in rows.index]
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=rows[x],
            y=rows[quality],
            mode="markers+text",
            text=names,
            textposition="top center",
            marker={
                "size": 11,
                "color": [PALETTE[0] if i in front else "#BAB0AC" for i in range(len(rows))],
                "line": {"width": 1, "color": "white"},
            },
            error_y=_error_bars(rows, quality),
            name="configs",
            hovertemplate="%{text}<br>" + x + " %{x:.4g}<br>" + quality + " %{y:.3f}<extra></extra>",
        )
    )
    ordered = sorted(front, key=lambda i: rows[x].iloc[i])
    figure.add_trace(
        go.Scatter(
            x=[rows[x].iloc[i] for i in ordered],
            y=[rows[quality].iloc[i] for i in ordered],
            mode="lines",
            line={"shape": "hv", "color": PALETTE[0], "dash": "dot"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    return _layout(figure, f"{_LABELS[quality]} against {x}", COST_AXES[x], _LABELS[quality])


def bars_figure(source: ExperimentResult | pd.DataFrame, *, metric: str | None = None) -> go.Figure:
    """One bar per config for a metric, with its bootstrap interval as error bars when it has one."""
    table = _table(source)
    metric = _quality(table, metric) if metric in (None, "accuracy", "win_rate") else metric
    if not _has(table, metric):
        raise ConfigError(f"the experiment table has no {metric!r} values to plot")
    rows = table[table[metric].notna()]
    colors = [PALETTE[1] if layers == 1 else PALETTE[0] for layers in rows["layers"]]
    figure = go.Figure(
        go.Bar(
            x=[esc(name) for name in rows.index],
            y=rows[metric],
            error_y=_error_bars(rows, metric),
            marker_color=colors,
            hovertemplate="%{x}: %{y:.3f}<extra></extra>",
        )
    )
    label = _LABELS.get(metric, metric)
    return _layout(figure, f"{label} per config (orange: single models)", "config", label)


def _ablation(table: pd.DataFrame, along: str, group: str, quality: str | None) -> go.Figure:
    quality = _quality(table, quality)
    rows = table[table[quality].notna()]
    figure = go.Figure()
    for number, (value, part) in enumerate(rows.groupby(group, sort=True)):
        part = part.sort_values(along)
        figure.add_trace(
            go.Scatter(
                x=part[along],
                y=part[quality],
                mode="lines+markers+text",
                text=[esc(name) for name in part.index],
                textposition="top center",
                error_y=_error_bars(part, quality),
                name=f"{group} = {value}",
                line={"color": PALETTE[number % len(PALETTE)]},
            )
        )
    figure.update_xaxes(dtick=1)
    title = f"{_LABELS[quality]} by number of {along}"
    return _layout(figure, title, f"{along} (a single model is 1)", _LABELS[quality])


def by_layers_figure(
    source: ExperimentResult | pd.DataFrame, *, quality: str | None = None
) -> go.Figure:
    """Quality against the number of layers, one line per number of proposers."""
    return _ablation(_table(source), "layers", "proposers", quality)


def by_proposers_figure(
    source: ExperimentResult | pd.DataFrame, *, quality: str | None = None
) -> go.Figure:
    """Quality against the number of proposers, one line per number of layers."""
    return _ablation(_table(source), "proposers", "layers", quality)


def experiment_figures(source: ExperimentResult | pd.DataFrame) -> dict[str, go.Figure]:
    """Every figure the table supports, by file stem: quality against cost axes, bars, ablations."""
    table = _table(source)
    figures: dict[str, go.Figure] = {}
    qualities = [q for q in ("accuracy", "win_rate") if _has(table, q)]
    for quality in qualities:
        for axis in COST_AXES:
            if _has(table, axis):
                figures[f"{quality}-vs-{axis}"] = pareto_figure(table, x=axis, quality=quality)
        figures[f"{quality}-bars"] = bars_figure(table, metric=quality)
        if table["layers"].nunique() > 1:
            figures[f"{quality}-by-layers"] = by_layers_figure(table, quality=quality)
        if table["proposers"].nunique() > 1:
            figures[f"{quality}-by-proposers"] = by_proposers_figure(table, quality=quality)
    if not qualities:
        figures["tokens-bars"] = bars_figure(table, metric="tokens")
    return figures


def write_figures(figures: dict[str, go.Figure], directory: str | Path) -> list[Path]:
    """Write each figure as ``<name>.html``, with plotly.js once beside them so they open offline."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for name, figure in figures.items():
        path = target / f"{name}.html"
        figure.write_html(path, include_plotlyjs="directory", full_html=True)
        written.append(path)
    return written
