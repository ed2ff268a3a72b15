"""Where a call's answer came from: its text with each span in the colour of its reference, the
share of each reference and of new text, as an HTML panel and a small bar figure.

The numbers are ``moa_lab._analysis.provenance``'s. A reference takes its model's colour; references
of one model are told apart by the strength of the colour and the line under it, and every span
carries its reference's number (drawn by CSS, so copied text stays the answer's).

Invariant: every trace string (answer, node ids, model names) is escaped (``esc``) before it becomes
HTML, and reaches plotly only through ``esc_plot``; the panel is plain strings and loads no plotly.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moa_lab import _analysis
from moa_lab._trace import Trace
from moa_lab.views._style import CSS, clip, esc, esc_plot, model_colors

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = [
    "LEGEND_UP_TO",
    "Look",
    "inserted_html",
    "looks",
    "panel_html",
    "provenance_figure",
    "provenance_html",
]

#: The legend names up to this many references (those credited most), then sums up the others.
LEGEND_UP_TO = 12
#: Colour strengths (alpha, hex) and underlines that tell apart the references of one model.
_ALPHAS = ("33", "77", "bb")
_LINES = ("solid", "dashed", "dotted")
_NEW = "background:#fff;border:1px solid #d1d5db"
_INS_NEW = "background:#dcfce7;color:#14532d;text-decoration:none;border-radius:2px"
#: The reference number before each span (a pseudo-element: not part of the text when copied).
_PANEL_CSS = (
    ".moa [data-ref]::before { content: attr(data-ref); font: 600 9px/1 sans-serif; "
    "vertical-align: super; color: #374151; margin-right: 1px; }"
    ".moa .moa-prov-legend span.moa-chip { display: inline-block; padding: 0 5px; "
    "margin: 2px 2px 2px 0; border-radius: 3px; }"
)


@dataclass(frozen=True, slots=True)
class Look:
    """How one reference is drawn: its number, its model's colour and a span style in that colour."""

    number: int
    color: str
    fill: str
    style: str


def looks(trace: Trace, references: list[str]) -> dict[str, Look]:
    """The look of each reference: its model's colour (``model_colors``), and for the k-th reference
    of one model the k-th strength and underline, so two of one model still differ."""
    colors = model_colors(trace)
    seen: Counter[str] = Counter()
    found = {}
    for number, reference in enumerate(references, start=1):
        model = trace[reference].model
        color = colors.get(model, "#999999")
        k = seen[model]
        seen[model] += 1
        fill = color + _ALPHAS[k % len(_ALPHAS)]
        line = _LINES[k % len(_LINES)]
        found[reference] = Look(
            number, color, fill, f"background:{fill};border-bottom:2px {line} {color};border-radius:2px"
        )
    return found


def _label(trace: Trace, reference: str, look: Look) -> str:
    return f"{look.number}. {reference} ({clip(trace[reference].model, 32)})"


def _span_html(trace: Trace, span: _analysis.Span, look: Look | None) -> str:
    """One span: highlighted up to its last mark, the whitespace after it plain."""
    core = span.text.rstrip()
    rest = esc(span.text[len(core) :])
    if look is None:
        return f'<span title="new: in no reference">{esc(core)}</span>{rest}' if core else rest
    title = f"from {_label(trace, span.source, look)} · {span.score:.0%} of its words verbatim there"
    if span.also:
        title += " · also in " + ", ".join(span.also)
    return (
        f'<span data-ref="{look.number}" style="{look.style}" title="{esc(title)}">{esc(core)}</span>'
        f"{rest}"
    )


def _kept(found: _analysis.Provenance) -> list[str]:
    """The references to name, in reading order: all, or of more than ``LEGEND_UP_TO`` those
    credited most (none credited with nothing)."""
    if len(found.references) <= LEGEND_UP_TO:
        return list(found.references)
    ranked = sorted(found.references, key=lambda r: -found.shares[r])[:LEGEND_UP_TO]
    named = {r for r in ranked if found.shares[r] > 0}
    return [r for r in found.references if r in named]


def _legend(trace: Trace, found: _analysis.Provenance, shown: dict[str, Look]) -> str:
    """The shares, reference by reference in reading order (``_kept``), then new text."""
    kept = _kept(found)
    chips = [
        f'<span class="moa-chip" style="{shown[r].style}">from {esc(_label(trace, r, shown[r]))}</span>'
        f" {found.shares[r]:.0%}"
        for r in kept
    ]
    named = set(kept)
    left = [r for r in found.references if r not in named]
    if left:
        share = sum(found.shares[r] for r in left)
        chips.append(f'<span class="moa-muted">{len(left):,} more references {share:.0%}</span>')
    chips.append(f'<span class="moa-chip" style="{_NEW}">new</span> {found.new:.0%}')
    return f'<div class="moa-prov-legend">{" · ".join(chips)}</div>'


def panel_html(trace: Trace, found: _analysis.Provenance, shown: dict[str, Look]) -> str:
    """The panel of one call's provenance (``found``), its references drawn as ``shown``."""
    spans = "".join(
        _span_html(trace, span, shown[span.source] if span.source else None) for span in found.spans
    )
    return (
        f'<div class="moa-prov" data-node="{esc(found.node or "")}"><style>{_PANEL_CSS}</style>'
        f"<h4>Where this answer came from ({found.words:,} words)</h4>"
        f"{_legend(trace, found, shown)}"
        '<div class="moa-muted">Each span in the colour of the reference it was copied from, '
        "numbered as read (runs of "
        f"{_analysis.MIN_RUN}+ words found verbatim there, the longest run wins); plain text is new: "
        "in no reference. Hover a span for its source.</div>"
        f'<pre class="moa-prov-text">{spans}</pre></div>'
    )


def provenance_html(trace: Trace, node: str, *, styled: bool = True) -> str:
    """The answer of ``node`` with each span in its reference's colour, and a legend of the shares:
    "from 1. L1.0 (model) 34% · … · new 54%" (``moa_lab._analysis.provenance``).

    Raises TraceError when the trace has no such call. ``styled=False`` leaves out the stylesheet.
    """
    found = _analysis.provenance(trace, node)
    body = panel_html(trace, found, looks(trace, list(found.references)))
    return f'<div class="moa">{f"<style>{CSS}</style>" if styled else ""}{body}</div>'


def inserted_html(
    trace: Trace, found: _analysis.Provenance, shown: dict[str, Look], reference: str
) -> Callable[[int, str], str]:
    """For a diff of the answer against ``reference``: ``mark(at, text)`` draws the words it found
    added, from offset ``at`` of the answer: new words green, words from a reference in its look
    (this one's too: moved), each run saying where it came from."""
    starts = [span.start for span in found.spans]

    def mark(at: int, text: str) -> str:
        base, end = at, at + len(text)
        index = max(bisect.bisect_right(starts, at) - 1, 0)
        parts = []
        while at < end:
            span = found.spans[index]
            stop = min(span.end, end)
            piece = esc(text[at - base : stop - base])
            if not piece.strip():  # a break between words: nothing to say where it came from
                parts.append(piece)
            elif span.source is None:
                parts.append(f'<ins style="{_INS_NEW}" title="new: in no reference">{piece}</ins>')
            else:
                where = "this reference, elsewhere in it" if span.source == reference else span.source
                look = shown[span.source]
                parts.append(
                    f'<ins data-ref="{look.number}" style="{look.style};text-decoration:none" '
                    f'title="{esc(f"from {where}")}">{piece}</ins>'
                )
            at, index = stop, index + 1
        return "".join(parts)

    return mark


def provenance_figure(trace: Trace, node: str | None = None) -> go.Figure:
    """A bar per reference of ``node`` (default: the aggregator) and one for new text: the share of
    the answer's words credited to each (``plotly.graph_objects.Figure``).

    Of more than ``LEGEND_UP_TO`` references, those credited most, the others summed in one bar.
    Raises TraceError when the trace has no such call.
    """
    # Here, not at the top: the panel above must load without plotly.
    import plotly.graph_objects as go

    from moa_lab.views._layout import empty, layout

    node = node or trace.aggregator() or (trace.calls() or [""])[-1]
    found = _analysis.provenance(trace, node)
    figure = go.Figure()
    title = f"Where {esc_plot(node)}'s answer came from"
    if not found.references or not found.words:
        why = "read no references" if not found.references else "has no answer to attribute"
        return empty(figure, f"{esc_plot(node)} {why}.", title)
    shown = looks(trace, list(found.references))
    kept = _kept(found)
    rows = [
        (esc_plot(_label(trace, r, shown[r])), found.shares[r], shown[r].fill, f"from {esc_plot(r)}")
        for r in kept
    ]
    if len(kept) < len(found.references):
        named = set(kept)
        rest = sum(found.shares[r] for r in found.references if r not in named)
        more = f"{len(found.references) - len(kept):,} more references"
        rows.append((more, rest, "#9ca3af", "others"))
    rows.append(("new (in no reference)", found.new, "#d1d5db", "new"))
    figure.add_bar(
        y=[row[0] for row in rows],
        x=[row[1] for row in rows],
        orientation="h",
        marker={"color": [row[2] for row in rows], "line": {"color": "#6b7280", "width": 1}},
        hovertext=[row[3] for row in rows],
        hoverinfo="x+text",
        texttemplate="%{x:.0%}",
        textposition="outside",
    )
    return layout(
        figure,
        title,
        height=120 + 28 * len(rows),
        xaxis={"range": [0, 1.1], "tickformat": ".0%", "title": {"text": "share of the answer's words"}},
        yaxis={"autorange": "reversed"},
        showlegend=False,
        margin={"l": 20},
    )
