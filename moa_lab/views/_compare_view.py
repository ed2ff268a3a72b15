"""Two runs side by side: ``compare_figure`` (calls, tokens, latency, cost) and ``CompareView``.

A thin layer over ``moa_lab._compare.compare``: the figure is a pure function of the two traces and
the widget composes it with HTML panels, so both are tested as data without a kernel.

Invariant: model text reaches HTML only escaped (``esc``, ``diff_html``) and plotly only through
``hovertext``.
"""

from __future__ import annotations

from dataclasses import dataclass

import ipywidgets as widgets
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from moa_lab._compare import CallDiff, Comparison, aligned, compare
from moa_lab._trace import Call, Trace
from moa_lab.views._html import diff_html
from moa_lab.views._layout import layout
from moa_lab.views._positions import satellite
from moa_lab.views._style import CSS, ERROR_COLOR, HIT_COLOR, clip, esc, esc_plot

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
    if call is None or (what == "latency" and not call.sent):
        return None  # a cache hit's or a reused call's latency was spent by an earlier run
    if what == "tokens":
        return call.usage.tokens if call.usage is not None else None
    return getattr(call, what)


def _signed(value: float | None, unit: str = "", digits: int = 0) -> str:
    if value is None:
        return "unknown"
    return f"{value:+,.{digits}f}{unit}"


def _either(left: object, right: object, show=esc_plot) -> str:
    """One value, or ``before → after`` when the two sides differ (``–`` for a missing side)."""
    left, right = ("–" if v is None else show(v) for v in (left, right))
    return left if left == right else f"{left} → {right}"


def _cut(call: CallDiff) -> str:
    cuts = (("before", call.left_truncated), ("after", call.right_truncated))
    sides = [side for side, cut in cuts if cut]
    return f"✂ cut off at max_tokens ({' and '.join(sides)})" if sides else ""


def _hover(call: CallDiff) -> str:
    lines = [
        f"<b>{esc_plot(call.node)}</b> {_either(call.left_model, call.right_model)} · {call.status}"
        + (f" ({esc_plot(call.lineage)})" if call.lineage else ""),
        _either(call.left_sampling, call.right_sampling),
        _cut(call),
        f"differs in: {esc_plot(', '.join(call.changed))}" if call.changed else "no difference",
        f"Δ tokens {_signed(_sum(call.prompt_tokens, call.completion_tokens))} · "
        f"Δ latency {_signed(call.latency, ' s', 2)} · Δ cost {_signed(call.cost, ' $', 6)}",
        f"after: {esc_plot(clip(call.right_response, 90))}",
    ]
    return "<br>".join(line for line in lines if line)


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


@dataclass
class _Row:
    """One row of the figure: a call, or a search step's evaluations summed."""

    label: str
    pairs: list[CallDiff]
    hover: str

    @property
    def status(self) -> str:
        statuses = {p.status for p in self.pairs}
        return statuses.pop() if len(statuses) == 1 else "changed"

    def total(self, side: dict[str, Call], what: str) -> float | None:
        """The row's sum over the calls one side has: None when it has none, or a value is unknown."""
        present = [side[p.node] for p in self.pairs if p.node in side]
        if what == "latency":
            present = [c for c in present if c.sent]
        return _sum(*(_value(c, what) for c in present)) if present else None

    def pattern(self, side: dict[str, Call]) -> str:
        """Hatching of a row whose calls that side did not send: ``x`` reused, ``/`` cache hits."""
        calls = [side[p.node] for p in self.pairs if p.node in side]
        if calls and all(c.reused for c in calls):
            return "x"
        return "/" if calls and all(not c.sent for c in calls) else ""


def _rows(comparison: Comparison, kinds: dict[str, bool]) -> list[_Row]:
    """A row per call, except a search's evaluations: one row per step, however many they are."""
    rows: list[_Row] = []
    steps: dict[int, _Row] = {}
    for pair in comparison.calls:
        if not kinds.get(pair.node):
            rows.append(_Row(esc_plot(pair.node), [pair], _hover(pair)))
            continue
        if pair.layer not in steps:
            steps[pair.layer] = _Row("", [], "")
            rows.append(steps[pair.layer])
        steps[pair.layer].pairs.append(pair)
    for layer, row in steps.items():
        changed = [p for p in row.pairs if p.status != "same"]
        row.label = f"step {layer} · {len(row.pairs)} evaluations"
        row.hover = (
            f"<b>{len(row.pairs)} evaluations of step {layer}</b>, summed: {len(changed)} differ"
            + "".join(f"<br>{esc_plot(p.node)} {p.status}" for p in changed[:8])
            + ("<br>…" if len(changed) > 8 else "")
        )
    return rows


def compare_figure(left: Trace, right: Trace) -> go.Figure:
    """Per call, before and after: tokens, latency and cost as paired bars, coloured by change.

    A search's evaluations (a hundred or more a step) are one row per step, their sums; the
    hover names the calls that differ. The cost panel is left out when neither run has a cost above
    zero. The legend sits below the panels, clear of the title.
    """
    comparison = compare(left, right)
    before, after = aligned(left), aligned(right)
    kinds = {n: satellite(c) for n, c in (before | after).items()}
    rows = _rows(comparison, kinds)
    labels = [r.label for r in rows]
    # No cost panel when no call of either run has a cost above zero (free or unpriced models).
    priced = any((c.cost or 0) > 0 for c in (*before.values(), *after.values()))
    panels = _PANELS if priced else _PANELS[:2]
    figure = make_subplots(
        rows=1,
        cols=len(panels),
        shared_yaxes=True,
        horizontal_spacing=0.04,
        subplot_titles=[t for _, t in panels],
    )
    hovers = [r.hover for r in rows]
    for column, (what, _) in enumerate(panels, start=1):
        figure.add_bar(
            y=labels, x=[r.total(before, what) for r in rows], orientation="h",
            name=f"before ({esc_plot(left.run_id)})", hovertext=hovers,
            marker={"color": _LEFT_COLOR, "pattern": {"shape": [r.pattern(before) for r in rows]}},
            hoverinfo="text", legendgroup="before", showlegend=column == 1, row=1, col=column,
        )  # fmt: skip
        figure.add_bar(
            y=labels, x=[r.total(after, what) for r in rows], orientation="h",
            name=f"after ({esc_plot(right.run_id)})",
            marker={"color": [STATUS_COLORS[r.status] for r in rows],
                    "pattern": {"shape": [r.pattern(after) for r in rows]}},
            hovertext=hovers, hoverinfo="text", legendgroup="after", showlegend=False, row=1,
            col=column,
        )  # fmt: skip
    for status in dict.fromkeys(r.status for r in rows):  # the after bars' colours, explained
        figure.add_bar(
            x=[None],
            y=[None],
            orientation="h",
            marker_color=STATUS_COLORS[status],
            name=f"after ({esc_plot(right.run_id)}): {status}",
            legendgroup="after",
        )
    hatched = {r.pattern(side) for side in (before, after) for r in rows}
    for shape, meaning in (("x", "reused from the source run"), ("/", "cache hit")):
        if shape in hatched:  # not sent: no latency of this run; tokens and cost hatched
            figure.add_bar(
                x=[None], y=[None], orientation="h", name=f"hatched: {meaning} (not sent)",
                marker={"color": "#E5E7EB", "pattern": {"shape": shape}},
            )  # fmt: skip
    delta = comparison.delta
    changed = len(comparison.differences)
    height = int(min(max(320, 26 * len(rows) + 190), 1200))
    layout(
        figure,
        f"{esc_plot(left.run_id)} → {esc_plot(right.run_id)}: "
        f"{changed} of {len(comparison.calls)} calls differ",
        barmode="group",
        height=height,
        legend={"orientation": "h", "yanchor": "top", "y": -40 / (height - 170), "xanchor": "left",
                "x": 0},
        margin={"t": 100, "b": 70},
    )  # fmt: skip
    figure.layout.title.subtitle = {
        "text": f"Δ tokens {_signed(_sum(delta['prompt_tokens'], delta['completion_tokens']))} · "
        f"Δ latency {_signed(delta['latency'], ' s', 2)} · Δ cost {_signed(delta['cost'], ' $', 6)}",
        "font": {"size": 12},
    }
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
    """One aligned pair: status, sampling, what differs, the response diff and (if changed) the
    prompt diff."""
    head = (
        f"<b>{esc(call.node)}</b> · {_either(call.left_model, call.right_model, esc)} · "
        f"<span style='color:{STATUS_COLORS[call.status]}'>{call.status}</span>"
        + (f" · {esc(call.lineage)}" if call.lineage else "")
    )
    parts = [head]
    if call.left_sampling or call.right_sampling:
        parts.append(f"sampling: {_either(call.left_sampling, call.right_sampling, esc)}")
    if _cut(call):
        parts.append(f"<b>{_cut(call)}</b>")
    parts += [
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
