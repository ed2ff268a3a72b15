"""Figures of an experiment: quality against cost with the Pareto front, per-config bars, ablations.

Every figure is a pure function of an experiment's per-config table (``result.table()``, or the
``ExperimentResult`` itself; the table's ``model`` and ``sampling`` columns tell single models apart)
returning a ``plotly.graph_objects.Figure``. Points that would sit on each other share one label, and
labels are never clipped by the plot's edge.

Invariant: config names come from user files, so they are escaped before they become plotly text,
and reach it only as text values (never inside a hover template); a figure that needs a column the
table lacks (a cost without prices, accuracy on an open-ended set) fails with one line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from moa_lab._errors import ConfigError
from moa_lab.experiments import ExperimentResult, pareto_front
from moa_lab.views._layout import LEGEND_BELOW, layout
from moa_lab.views._placing import place_labels
from moa_lab.views._style import PALETTE, clip, esc_plot

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


def _settings(table: pd.DataFrame) -> dict[str, tuple[str, str, bool]]:
    """Per single-model config of ``table``: its model, its sampling, and whether its label must show
    them (another single config runs the same model with other settings, as ``singles`` of a Self-MoA
    config makes)."""
    if "model" not in table or "sampling" not in table:
        return {}
    singles = table[table["model"].fillna("") != ""]
    models = list(singles["model"])
    return {
        name: (row["model"], row["sampling"], models.count(row["model"]) > 1)
        for name, row in singles.iterrows()
    }


def _label(name: str, settings: dict[str, tuple[str, str, bool]]) -> str:
    """A config's label: its name (clipped), and its sampling when that tells it apart."""
    _, sampling, needed = settings.get(name, ("", "", False))
    shown = esc_plot(clip(name, 30))
    return f"{shown}<br>{esc_plot(sampling)}" if needed and sampling else shown


def _hover(name: str, settings: dict[str, tuple[str, str, bool]], *facts: str) -> str:
    model, sampling, _ = settings.get(name, ("", "", False))
    head = [f"<b>{esc_plot(name)}</b>"] + ([esc_plot(f"{model} {sampling}".strip())] if model else [])
    return "<br>".join(head + list(facts))


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


#: The interval columns of a metric that has one (``summarize`` names them).
_INTERVALS = {"accuracy": ("accuracy_low", "accuracy_high"), "win_rate": ("win_low", "win_high")}


def _error_bars(table: pd.DataFrame, metric: str) -> dict[str, Any] | None:
    low, high = _INTERVALS.get(metric, (f"{metric}_low", f"{metric}_high"))
    if low not in table or high not in table:
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": (table[high] - table[metric]).clip(lower=0).tolist(),
        "arrayminus": (table[metric] - table[low]).clip(lower=0).tolist(),
        "thickness": 1.2,
    }


def _layout(figure: go.Figure, title: str, x: str, y: str, **options: Any) -> go.Figure:
    return layout(
        figure,
        title,
        xaxis_title=x,
        yaxis_title=y,
        legend=LEGEND_BELOW | {"y": -0.16},
        margin={"t": 60, "b": 60},
        **({"height": 500} | options),
    )


def _named(figure: go.Figure, xs: list[float], ys: list[float], rows: pd.DataFrame, metric: str,
           texts: list[str]) -> None:  # fmt: skip
    """Give the points room and their names: padded axes, and one text label per group of points
    that would overlap, each at the spot around its point where it covers least (``place_labels``)."""
    low, high = _bounds(rows, metric)
    x_range, y_range = _padded(xs, xs, xs, 0.12), _padded(ys, low, high, 0.15)
    labels = place_labels(list(zip(xs, ys, strict=True)), texts, x_range, y_range,
                          list(zip(low, high, strict=True)))  # fmt: skip
    figure.add_scatter(
        x=[a.x for a in labels], y=[a.y for a in labels], text=[a.text for a in labels],
        textposition=[a.position for a in labels], hoverinfo="skip", showlegend=False,
        # Invisible markers the size of the points: plotly sets text off by its marker's radius.
        mode="markers+text", marker={"size": 11, "opacity": 0},
        textfont={"size": 11, "color": "#374151"}, cliponaxis=False, name="config names",
    )  # fmt: skip
    figure.update_xaxes(range=x_range)
    figure.update_yaxes(range=y_range)


def _padded(values: list[float], low: list[float], high: list[float], room: float) -> list[float]:
    """An axis range around the values and their intervals, with ``room`` (a share) for labels."""
    lo, hi = min(low + values), max(high + values)
    pad = ((hi - lo) or abs(hi) or 1.0) * room
    return [lo - pad, hi + pad]


def _bounds(rows: pd.DataFrame, metric: str) -> tuple[list[float], list[float]]:
    """Each row's interval of ``metric`` (the value itself where it has none)."""
    low, high = _INTERVALS.get(metric, (f"{metric}_low", f"{metric}_high"))
    values = rows[metric].tolist()
    if low not in rows or high not in rows:
        return values, values
    return rows[low].fillna(rows[metric]).tolist(), rows[high].fillna(rows[metric]).tolist()


def pareto_figure(
    source: ExperimentResult | pd.DataFrame, *, x: str = "cost", quality: str | None = None
) -> go.Figure:
    """Quality against cost, tokens or latency per config; the Pareto front is drawn and marked.

    Configs whose points would overlap share one label.
    """
    table = _table(source)
    if x not in COST_AXES:
        raise ConfigError(f"x must be one of {', '.join(COST_AXES)}, got {x!r}")
    if not _has(table, x):
        hint = " (no prices are known for these models; use x='tokens')" if x == "cost" else ""
        raise ConfigError(f"the experiment table has no {x} values{hint}")
    quality = _quality(table, quality)
    settings = _settings(table)
    rows = table[table[x].notna() & table[quality].notna()]
    front = set(pareto_front(list(rows[x]), list(rows[quality])))
    xs, ys = rows[x].tolist(), rows[quality].tolist()
    figure = go.Figure()
    figure.add_trace(
        go.Scatter(
            x=xs,
            y=ys,
            mode="markers",
            marker={
                "size": 11,
                "color": [PALETTE[0] if i in front else "#BAB0AC" for i in range(len(rows))],
                "line": {"width": 1, "color": "white"},
            },
            error_y=_error_bars(rows, quality),
            name="configs (blue: on the Pareto front)",
            text=[esc_plot(name) for name in rows.index],
            hovertext=[
                _hover(name, settings, f"{x} {vx:.4g}", f"{quality} {vy:.3f}")
                for name, vx, vy in zip(rows.index, xs, ys, strict=True)
            ],
            hoverinfo="text",
        )
    )
    ordered = sorted(front, key=lambda i: xs[i])
    figure.add_trace(
        go.Scatter(
            x=[xs[i] for i in ordered],
            y=[ys[i] for i in ordered],
            mode="lines",
            line={"shape": "hv", "color": PALETTE[0], "dash": "dot"},
            name="Pareto front",
            hoverinfo="skip",
        )
    )
    if len(rows):
        _named(figure, xs, ys, rows, quality, [_label(name, settings) for name in rows.index])
    return _layout(figure, f"{_LABELS[quality]} against {x}", COST_AXES[x], _LABELS[quality])


def bars_figure(source: ExperimentResult | pd.DataFrame, *, metric: str | None = None) -> go.Figure:
    """One bar per config for a metric, with its bootstrap interval as error bars when it has one.

    Bars lie along the configs' names (read across, however long), in the table's order.
    """
    table = _table(source)
    metric = _quality(table, metric) if metric in (None, "accuracy", "win_rate") else metric
    if not _has(table, metric):
        raise ConfigError(f"the experiment table has no {metric!r} values to plot")
    settings = _settings(table)
    rows = table[table[metric].notna()]
    colors = [PALETTE[1] if layers == 1 else PALETTE[0] for layers in rows["layers"]]
    figure = go.Figure(
        go.Bar(
            y=[_label(name, settings).replace("<br>", " · ") for name in rows.index],
            x=rows[metric],
            orientation="h",
            error_x=_error_bars(rows, metric),
            marker_color=colors,
            text=[esc_plot(name) for name in rows.index],
            hovertext=[
                _hover(name, settings, f"{metric} {value:.3f}")
                for name, value in zip(rows.index, rows[metric], strict=True)
            ],
            hoverinfo="text",
            textposition="none",
        )
    )
    figure.update_yaxes(autorange="reversed", automargin=True)
    label = _LABELS.get(metric, metric)
    return _layout(
        figure,
        f"{label} per config (orange: single models)",
        label,
        "",
        height=int(min(max(320, 34 * len(rows) + 160), 1200)),
    )


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
                mode="lines+markers",
                text=[esc_plot(name) for name in part.index],
                hovertext=[
                    _hover(name, {}, f"{along} {a}", f"{quality} {q:.3f}")
                    for name, a, q in zip(part.index, part[along], part[quality], strict=True)
                ],
                hoverinfo="text",
                error_y=_error_bars(part, quality),
                name=f"{group} = {value}",
                line={"color": PALETTE[number % len(PALETTE)]},
            )
        )
    if len(rows):
        xs, ys = rows[along].astype(float).tolist(), rows[quality].tolist()
        _named(figure, xs, ys, rows, quality, [esc_plot(clip(name, 30)) for name in rows.index])
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
