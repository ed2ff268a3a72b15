"""Two runs side by side: ``compare_figure`` (calls, tokens, latency, cost) and ``CompareView``.

A thin layer over ``moa_lab._compare.compare``: the figure is a pure function of the two traces and
the widget composes it with HTML panels, so both are tested as data without a kernel.

Invariant: model text reaches HTML only escaped (``esc``, ``diff_html``) and plotly only through
``hovertext``.
"""

from __future__ import annotations

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab._compare import CallDiff, Comparison, by_position, compare
from moa_lab._trace import Call, Trace
from moa_lab.views._html import diff_html
from moa_lab.views._layout import layout
from moa_lab.views._style import CSS, ERROR_COLOR, HIT_COLOR, clip, esc

__all__ = [
    "STATUS_COLORS",
    "CompareView",
    "call_diff_html",
    "compare_figure",
    "finals_html",
    "totals_html",
]

#: Colour of the right-hand bar of a pair, by the pair's status.
STATUS_COLORS = {"same": "#9CA3AF", "changed": "#E8772E", "added": HIT_COLOR, "removed": ERROR_COLOR}
_LEFT_COLOR = "#CBD5E1"
_PANELS = (
    ("tokens", "tokens (prompt + completion)"),
    ("latency", "latency (s)"),
    ("cost", "cost ($)"),
)


def _value(call: Call | None, what: str) -> float | None:
    if call is None:
        return None
    if what == "tokens":
        return call.usage.tokens if call.usage is not None else None
    return getattr(call, what)


def _signed(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "unknown"
    return f"{value:+,.{digits}f}{unit}"


def _hover(call: CallDiff) -> str:
    models = (
        call.left_model
        if call.left_model == call.right_model
        else f"{call.left_model} → {call.right_model}"
    )
    lines = [
        f"<b>{esc(call.node)}</b> {esc(models)} · {call.status}"
        + (f" ({esc(call.lineage)})" if call.lineage else ""),
        f"differs in: {esc(', '.join(call.changed))}" if call.changed else "no difference",
        f"Δ tokens {_signed(_sum(call.prompt_tokens, call.completion_tokens))} · "
        f"Δ latency {_signed(call.latency, ' s', 2)} · Δ cost {_signed(call.cost, ' $', 6)}",
        f"after: {esc(clip(call.right_response, 90))}",
    ]
    return "<br>".join(lines)


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def compare_figure(left: Trace, right: Trace) -> go.Figure:
    """Per call, before and after: tokens, latency and cost as paired bars, coloured by change."""
    comparison = compare(left, right)
    before, after = by_position(left), by_position(right)
    nodes = [c.node for c in comparison.calls]
    figure = make_subplots(
        rows=1,
        cols=3,
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[t for _, t in _PANELS],
    )
    hovers = [_hover(c) for c in comparison.calls]
    for column, (what, _) in enumerate(_PANELS, start=1):
        figure.add_bar(
            y=nodes, x=[_value(before.get(n), what) for n in nodes], orientation="h",
            name=f"before ({esc(left.run_id)})", marker_color=_LEFT_COLOR, hovertext=hovers,
            hoverinfo="text", legendgroup="before", showlegend=column == 1, row=1, col=column,
        )  # fmt: skip
        figure.add_bar(
            y=nodes, x=[_value(after.get(n), what) for n in nodes], orientation="h",
            name=f"after ({esc(right.run_id)})",
            marker_color=[STATUS_COLORS[c.status] for c in comparison.calls], hovertext=hovers,
            hoverinfo="text", legendgroup="after", showlegend=column == 1, row=1, col=column,
        )  # fmt: skip
    delta = comparison.delta
    changed = len(comparison.differences)
    title = (
        f"{esc(left.run_id)} → {esc(right.run_id)}: {changed} of {len(nodes)} calls differ · "
        f"Δ tokens {_signed(_sum(delta['prompt_tokens'], delta['completion_tokens']))} · "
        f"Δ cost {_signed(delta['cost'], ' $', 6)}"
    )
    layout(
        figure,
        title,
        barmode="group",
        height=int(min(max(300, 34 * len(nodes) + 160), 900)),
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "xanchor": "right", "x": 1},
        margin={"t": 100, "b": 40},
    )
    figure.update_yaxes(autorange="reversed", type="category")
    return figure


def _column(title: str, body: str) -> str:
    return (
        '<div style="flex:1;min-width:0">'
        f'<div style="font-weight:600;margin-bottom:4px">{title}</div>'
        f'<div style="white-space:pre-wrap;border:1px solid #e5e7eb;border-radius:6px;padding:8px">'
        f"{body}</div></div>"
    )


def finals_html(left: Trace, right: Trace) -> str:
    """The two final answers side by side, then a word diff from the first to the second."""
    missing = "<i>(no final answer)</i>"
    return (
        f'<div class="moa"><style>{CSS}</style>'
        '<div style="display:flex;gap:12px">'
        + _column(f"before · {esc(left.run_id)}", esc(left.final) if left.final is not None else missing)
        + _column(
            f"after · {esc(right.run_id)}", esc(right.final) if right.final is not None else missing
        )
        + '</div><div style="font-weight:600;margin:8px 0 4px">what changed</div>'
        + diff_html(left.final, right.final)
        + "</div>"
    )


def totals_html(comparison: Comparison) -> str:
    """A small table of the two runs' totals and their difference."""
    rows = [  # key, label, digits
        ("calls", "calls", 0),
        ("sent", "calls sent", 0),
        ("prompt_tokens", "prompt tokens", 0),
        ("completion_tokens", "completion tokens", 0),
        ("latency", "latency, summed (s)", 2),
        ("cost", "cost of the answer ($)", 6),
        ("spent", "spent by this run ($)", 6),
    ]

    def cell(value: float | None, digits: int, sign: str = "") -> str:
        return "unknown" if value is None else f"{value:{sign},.{digits}f}"

    body = "".join(
        f"<tr><td>{label}</td><td>{cell(getattr(comparison.left_totals, key), digits)}</td>"
        f"<td>{cell(getattr(comparison.right_totals, key), digits)}</td>"
        f"<td>{cell(comparison.delta[key], digits, '+')}</td></tr>"
        for key, label, digits in rows
    )
    return (
        '<table style="border-collapse:collapse" cellpadding="3">'
        f"<tr><th></th><th>before · {esc(comparison.left)}</th><th>after · {esc(comparison.right)}</th>"
        f"<th>Δ</th></tr>{body}</table>"
    )


def call_diff_html(call: CallDiff) -> str:
    """One aligned pair: status, what differs, the response diff and (if changed) the prompt diff."""
    models = (
        call.left_model
        if call.left_model == call.right_model
        else f"{call.left_model} → {call.right_model}"
    )
    head = (
        f"<b>{esc(call.node)}</b> · {esc(models)} · <span style='color:{STATUS_COLORS[call.status]}'>"
        f"{call.status}</span>" + (f" · {esc(call.lineage)}" if call.lineage else "")
    )
    parts = [
        head,
        f"differs in: {esc(', '.join(call.changed)) or 'nothing'}",
        "<b>response</b>",
        diff_html(call.left_response, call.right_response),
    ]
    if call.prompt_diff:
        parts += ["<b>prompt</b>", diff_html(call.left_prompt, call.right_prompt)]
    return "<div>" + "<br>".join(parts) + "</div>"


class CompareView(widgets.VBox):
    """Two traces compared: totals, final answers side by side with a diff, the figure, and any call.

    ``show(node)`` does what picking a call in the drop-down does.
    """

    def __init__(self, left: Trace, right: Trace):
        self.comparison = compare(left, right)
        self.totals = widgets.HTML(totals_html(self.comparison))
        self.finals = widgets.HTML(finals_html(left, right))
        self.figure = go.FigureWidget(compare_figure(left, right))
        marks = {"same": "", "changed": " (changed)", "added": " (added)", "removed": " (removed)"}
        self.picker = widgets.Dropdown(
            options=[(f"{c.node}{marks[c.status]}", c.node) for c in self.comparison.calls],
            description="call",
        )
        self.call_panel = widgets.HTML()
        self.picker.observe(lambda change: self.show(change["new"]), names="value")
        super().__init__([self.totals, self.finals, self.figure, self.picker, self.call_panel])
        first = next(iter(self.comparison.differences), None) or (self.comparison.calls or [None])[-1]
        if first is not None:
            self.show(first.node)

    def show(self, node: str) -> None:
        """Show one aligned pair of calls."""
        self.picker.value = node
        self.call_panel.value = call_diff_html(self.comparison[node])
