"""The spend figure: tokens, latency and cost by depth (layer, round or step) and by model.

Invariant: a pure function of the trace; only calls this run sent count as spent: the tokens and
cost of cache hits and of calls a replay reused from its source run are drawn apart (each its own
series), and their latency, which was spent by an earlier run, is never drawn as this run's. A cost
row is drawn only when some cost is known and not zero (free local models say "free" instead).
"""

from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab._trace import Call, Trace
from moa_lab.views._graph_marks import depth_ticks
from moa_lab.views._layout import LEGEND_BELOW, empty, layout, out_tokens
from moa_lab.views._style import esc_plot

__all__ = ["model_labels", "usage"]

#: How a call came to be in the trace, and how its share of tokens and cost is drawn.
_ORIGINS = (
    ("sent", "", 1.0),
    ("cache", "/", 0.55),
    ("reused", "x", 0.55),
)
_TOKENS = (
    ("prompt tokens", "#4E79A7", "sent", lambda d: d.prompt_tokens or 0),
    ("completion tokens", "#F28E2B", "sent", out_tokens),
    ("tokens served from cache", "#BAB0AC", "cache", lambda d: (d.prompt_tokens or 0) + out_tokens(d)),
    ("tokens reused from the source run", "#B6A6D8", "reused",
     lambda d: (d.prompt_tokens or 0) + out_tokens(d)),
)  # fmt: skip
_COSTS = (
    ("cost spent", "sent"),
    ("cost saved by the cache", "cache"),
    ("cost saved by reuse", "reused"),
)
_LABEL_WIDTH = 16


def _origin(call: Call) -> str:
    return "reused" if call.reused else "cache" if call.cache_hit else "sent"


def model_labels(models: list[str]) -> dict[str, str]:
    """Short, distinct axis labels for model names: the part after the last ``/``, broken over two
    lines at a ``-`` when long; the escaped full name where shortening would make two alike."""
    labels: dict[str, list[str]] = {}
    for model in models:
        short = model.rsplit("/", 1)[-1] or model
        cut = short.rfind("-", 4, _LABEL_WIDTH + 1)
        long = len(short) > _LABEL_WIDTH and cut > 0
        labels[model] = [short[:cut], short[cut:]] if long else [short]
    if len({"".join(parts) for parts in labels.values()}) < len(labels):
        return {m: esc_plot(m) for m in models}
    return {m: "<br>".join(esc_plot(part) for part in parts) for m, parts in labels.items()}


def _depth_names(trace: Trace) -> dict[int, str]:
    ticks, text = depth_ticks(trace)
    return {depth: label.split("<br>")[0] for depth, label in zip(ticks, text, strict=True)}


def _sums(trace: Trace, key: Callable[[Call], str], amount: Callable[[Call], float], origin: str):
    totals: dict[str, float] = {}
    for call in trace.records():
        if _origin(call) == origin:
            totals[key(call)] = totals.get(key(call), 0) + amount(call)
    return totals


def _money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def usage(trace: Trace) -> go.Figure:
    """Tokens, latency and cost by depth (left) and by model (right).

    Tokens and cost of cache hits (hatched /) and of calls a replay reused (hatched x) are drawn
    apart from what this run sent; latency counts only the calls sent. The cost row is left out
    when no cost is known or every cost is zero, and the title says which ("free", "unknown"). A
    trace whose calls record none of these (an imported search) gives a figure that says so.
    """
    records = trace.records()
    if not any(c.usage is not None or c.latency is not None or c.cost for c in records):
        return empty(go.Figure(), _nothing(trace), "Spend")
    depths = _depth_names(trace)
    models = model_labels(list(dict.fromkeys(c.model for c in records)))
    known = [c.cost for c in records if c.cost is not None]
    priced = any(cost > 0 for cost in known)
    rows = 3 if priced else 2
    word = _word(depths)
    titles = [
        f"{what} by {by}{unit}"
        for what, unit in (("Tokens", ""), ("Latency", " (s, calls sent)"), ("Cost", " ($)"))
        for by in (word, "model")
    ]
    figure = make_subplots(rows=rows, cols=2, horizontal_spacing=0.1, vertical_spacing=0.2,
                           subplot_titles=titles[: 2 * rows])  # fmt: skip
    groupings = ((1, lambda c: depths.get(c.layer, str(c.layer))), (2, lambda c: models[c.model]))
    for col, key in groupings:
        categories = list(dict.fromkeys(key(c) for c in records))
        for name, color, origin, amount in _TOKENS:
            totals = _sums(trace, key, amount, origin)
            if origin != "sent" and not totals:
                continue
            pattern = next(p for o, p, _ in _ORIGINS if o == origin)
            figure.add_bar(
                x=categories, y=[totals.get(c, 0) for c in categories], name=name, legendgroup=name,
                showlegend=col == 1, marker={"color": color, "pattern": {"shape": pattern}},
                row=1, col=col,
            )  # fmt: skip
        sent = [c for c in records if c.sent and c.latency is not None]
        figure.add_box(
            x=[key(c) for c in sent], y=[c.latency for c in sent], boxpoints="all", jitter=0.4,
            pointpos=0, marker={"color": "#4E79A7", "size": 5}, line={"color": "#4E79A7"},
            name="latency", showlegend=False, hovertext=[esc_plot(c.id) for c in sent],
            hoverinfo="y+text", row=2, col=col,
        )  # fmt: skip
        # The same category order in every row (a category's first call may be a cache hit).
        figure.update_xaxes(categoryorder="array", categoryarray=categories, tickangle=0, col=col)
        if priced:
            for name, origin in _COSTS:
                totals = _sums(trace, key, lambda c: c.cost or 0.0, origin)
                if origin != "sent" and not any(totals.values()):
                    continue
                pattern, opacity = next((p, o) for g, p, o in _ORIGINS if g == origin)
                figure.add_bar(
                    x=categories, y=[totals.get(c, 0) for c in categories], name=name,
                    legendgroup=name, showlegend=col == 1, opacity=opacity,
                    marker={"color": "#59A14F", "pattern": {"shape": pattern}}, row=3, col=col,
                )  # fmt: skip
    figure.update_yaxes(rangemode="tozero")
    unknown = any(c.cost is None and not c.error for c in records)
    if priced and unknown:
        figure.add_annotation(
            text="some costs are unknown (no price for these models): pass prices=... in the config",
            xref="paper", yref="paper", x=0.5, y=-0.08, showarrow=False, font={"color": "#92400e"},
        )  # fmt: skip
    return layout(
        figure,
        _title(trace, priced, unknown),
        barmode="stack",
        height=800 if priced else 600,
        legend=LEGEND_BELOW | {"y": -0.12},
        margin={"b": 110},
    )


def _nothing(trace: Trace) -> str:
    """Why an imported run (say) has no spend to draw, with the totals its source gave, if any."""
    told = ((trace.graph.graph.get("imported") or {}).get("spent")) or {}
    known = [f"{told[k]:,} {k.replace('_', ' ')}" for k in ("prompt_tokens", "completion_tokens")
             if isinstance(told.get(k), int)]  # fmt: skip
    if isinstance(told.get("cost"), (int, float)):
        known.append(f"${told['cost']:.2f}")
    whole = f"<br>its source gives the whole run: {', '.join(known)}" if known else ""
    return f"The calls of this trace record no tokens, latency or cost (an imported run?){whole}"


def _word(depths: dict[int, str]) -> str:
    words = {name.split()[0] for name in depths.values() if name != "aggregator"}
    return words.pop() if len(words) == 1 else "depth"


def _title(trace: Trace, priced: bool, unknown: bool) -> str:
    totals = trace.totals()
    sent = "?" if totals.sent_tokens is None else f"{totals.sent_tokens:,}"
    parts = [f"Spend · {sent} tokens sent"]
    if not priced:
        parts.append("cost unknown (no prices)" if unknown else "free (no cost per token)")
        return " · ".join(parts)
    parts.append(f"spent {_money(totals.spent)}")
    for origin, what in (("cache", "saved by the cache"), ("reused", "saved by reuse")):
        saved = [c.cost for c in trace.records() if _origin(c) == origin]
        if saved:
            total = None if any(s is None for s in saved) else sum(saved)
            parts.append(f"{what} {_money(total)}")
    return " · ".join(parts)
