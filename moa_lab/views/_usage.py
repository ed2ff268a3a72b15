"""The spend figure: tokens, latency and cost by layer and by model, cache savings apart.

Invariant: a pure function of the trace; what was not sent (cache hits, reuse) is drawn apart from
what was.
"""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab._trace import Trace
from moa_lab.views._layout import (
    LEGEND_BELOW,
    layer_names,
    layout,
    out_tokens,
    sum_by,
)
from moa_lab.views._style import esc_plot

__all__ = ["usage"]


def usage(trace: Trace) -> go.Figure:
    """Tokens, latency and cost by layer (left) and by model (right); cache-saved cost shown apart.

    Tokens and cost of cache hits are drawn hatched: they were not spent on this run. Latency counts
    only calls that were sent.
    """
    nodes = trace.calls()
    names = layer_names(trace)
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
        (1, lambda n: names[trace[n].layer]),
        (2, lambda n: esc_plot(trace[n].model)),
    )
    series = (
        (
            "prompt tokens",
            "#4E79A7",
            "",
            lambda d: d.prompt_tokens or 0,
            False,
        ),
        ("completion tokens", "#F28E2B", "", out_tokens, False),
        (
            "tokens served from cache",
            "#BAB0AC",
            "/",
            lambda d: (d.prompt_tokens or 0) + (d.completion_tokens or 0),
            True,
        ),
    )
    unknown_cost = any(trace[n].cost is None and not trace[n].error for n in nodes)
    for col, key in groupings:
        categories = list(dict.fromkeys(key(n) for n in nodes))
        for name, color, pattern, amount, cached in series:
            totals = sum_by(trace, nodes, key, amount, cached)
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
        sent = [n for n in nodes if not trace[n].cache_hit and trace[n].latency is not None]
        figure.add_box(
            x=[key(n) for n in sent],
            y=[trace[n].latency for n in sent],
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
            totals = sum_by(trace, nodes, key, lambda d: d.cost or 0.0, cached)
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
    spent = "unknown" if totals.spent is None else f"${totals.spent:.4f}"
    saved = "unknown" if totals.saved is None else f"${totals.saved:.4f}"
    sent = "?" if totals.sent_tokens is None else totals.sent_tokens
    return layout(
        figure,
        f"Spend · {sent} tokens sent · cost {spent} · saved by the cache {saved}",
        barmode="stack",
        height=800,
        legend=LEGEND_BELOW,
        margin={"b": 90},
    )
