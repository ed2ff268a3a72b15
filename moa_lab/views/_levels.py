"""The calls of one level of a trace side by side: a layer, a round, a step of a search.

Each call is a card (its model, settings, tokens, what it read, its answer); a search's thought card
lists the states it proposed with their values, kept or pruned, and a step's evaluations form one
table. Shared by the explorer's level tab and the HTML export.

Invariant: every piece of trace data is escaped (``esc``) before it is put into the markup, and the
panel's root carries ``ROOT_CLASS`` (``wrap``).
"""

from __future__ import annotations

from moa_lab._errors import TraceError
from moa_lab._trace import Call, Trace
from moa_lab.views._html import _seconds, _title, _tokens, badge_html, call_badges, wrap
from moa_lab.views._steps import call_states, depth_title, depth_word, evaluation
from moa_lab.views._style import clip, esc, model_colors

__all__ = ["layer_html", "states_html"]


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else text


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def states_html(data: Call) -> str:
    """The states a search's thought call proposed, one row each: its new step (the whole state on
    hover), its value, kept or pruned; ``""`` for a call that proposed none."""
    states = call_states(data)
    if not states:
        return ""
    rows = "".join(
        f'<tr class="{"moa-kept" if s.get("kept") is True else "moa-pruned"}">'
        f'<td class="moa-state" title="{esc(s["state"])}">{esc(_last_line(s["state"]))}</td>'
        f"<td>{esc(_value(s.get('value')))}</td>"
        f"<td>{'kept' if s.get('kept') is True else 'pruned'}</td></tr>"
        for s in states
    )
    return (
        '<table class="moa-states"><tr><th title="each state\'s last step; hover over one to '
        'see all of it">state proposed</th>'
        f"<th>value</th><th></th></tr>{rows}</table>"
    )


def _evaluations_html(trace: Trace, nodes: list[str]) -> str:
    """A search step's evaluator calls as one table: what each judged, its answer and the value."""
    rows = []
    for node in nodes:
        data = trace[node]
        value, judged = evaluation(data) or (None, [])
        what = esc(_last_line(judged[0])) if judged else ""
        if len(judged) > 1:
            what += f' <span class="moa-muted">(+{len(judged) - 1} identical prompts)</span>'
        answer = (
            f'<span class="moa-badge moa-err">{esc(clip(data.error, 60))}</span>'
            if data.error
            else esc(clip(data.response or "", 80))
        )
        rows.append(
            f'<tr data-node="{esc(node)}"><td><b>{esc(node)}</b>{badge_html(call_badges(data))}</td>'
            f'<td class="moa-state">{what}</td><td>{answer}</td><td>{esc(_value(value))}</td></tr>'
        )
    return (
        f"<h4>Evaluations ({len(nodes)})</h4>"
        '<table class="moa-states"><tr><th>call</th><th>judged state (its last step)</th>'
        f"<th>answer</th><th>value</th></tr>{''.join(rows)}</table>"
    )


def _card(trace: Trace, node: str, colors: dict[str, str]) -> str:
    data = trace[node]
    references = trace.references(node)
    read = (
        f'<div class="moa-muted">read {", ".join(esc(r) for r in references)}</div>'
        if references
        else ""
    )
    body = (
        f'<pre class="moa-error">{esc(data.error)}</pre>'
        if data.error
        else f"<pre>{esc(data.response or '')}</pre>"
    )
    settings = f" · {esc(data.sampling)}" if data.sampling else ""
    return (
        f'<div class="moa-card" data-node="{esc(node)}" '
        f'style="border-top-color:{esc(colors.get(data.model, "#999"))}">'
        f"<div>{_title(trace, node, colors)}</div>"
        f'<div class="moa-muted">{esc(_tokens(data))} tokens · '
        f"{esc(_seconds(data.latency))}{settings}</div>"
        f"{read}{body}{states_html(data)}</div>"
    )


def layer_html(trace: Trace, layer: int, *, styled: bool = True) -> str:
    """The calls of one level (a layer, a round, a step) side by side, one card per call; a search
    step's cards list the states each thought proposed, and its evaluations form one table."""
    nodes = trace.calls(layer)
    word = depth_word(trace)
    if not nodes:
        raise TraceError(f"{word} {layer} has no calls in this trace (it has {word}s 1..{trace.layers})")
    colors = model_colors(trace)
    judges = [n for n in nodes if evaluation(trace[n]) is not None]
    cards = "".join(_card(trace, node, colors) for node in nodes if node not in judges)
    title = esc(depth_title(trace, layer, [trace[n] for n in nodes]))
    return wrap(
        f'<h3>{title}</h3><div class="moa-grid">{cards}</div>'
        + (_evaluations_html(trace, judges) if judges else ""),
        styled,
    )
