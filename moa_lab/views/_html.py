"""HTML panels for one call, one level (layer, round, step) and a word diff; shared by widgets and
export (the trace's summary card is in ``_card``).

Plain strings, no plotly and no ipywidgets, so a trace displays in a notebook (``Trace._repr_html_``)
even without the plotting stack. Invariant: every piece of trace data is escaped (``esc``) before it
is put into the markup, so model output like ``<script>`` or ``<img onerror=...>`` shows as text;
every panel's root carries ``ROOT_CLASS``, so JupyterLab's MathJax leaves a ``$`` in it alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Call, Trace, cut_off
from moa_lab.views._provenance import inserted_html, looks, panel_html
from moa_lab.views._steps import call_states, evaluation
from moa_lab.views._style import CSS, esc, model_colors

__all__ = [
    "PANEL_CSS",
    "ROOT_CLASS",
    "badge_html",
    "badge_list",
    "call_badges",
    "call_html",
    "call_rows",
    "check_node",
    "diff_html",
    "measures_line",
    "reuse_line",
    "search_rows",
    "strongest_references",
    "wrap",
]

#: The class of the root of every piece of HTML moa_lab renders: ``moa`` for the stylesheet, and
#: ``mathjax_ignore`` (MathJax 3) and ``tex2jax_ignore`` (MathJax 2), which JupyterLab's MathJax
#: skips, so "$1.10 ... $1.00" in a prompt or an answer stays text instead of becoming math.
ROOT_CLASS = "moa mathjax_ignore tex2jax_ignore"
#: The panels' stylesheet: the shared ``CSS`` and what the level panels, the summary card and the
#: search add (reused answers, the states of a search).
PANEL_CSS = (
    CSS
    + """
.moa .moa-badge.moa-reuse { background: #e0e7ff; color: #3730a3; }
.moa .moa-cut { color: #92400e; font-size: 11px; }
.moa .moa-settings { color: #4b5563; font-size: 12px; }
.moa table.moa-states { border-collapse: collapse; margin: 4px 0; font-size: 12px; width: 100%; }
.moa table.moa-states td, .moa table.moa-states th { padding: 1px 8px 1px 0; text-align: left;
  vertical-align: top; border-bottom: 1px solid #f1f5f9; }
.moa table.moa-states th { color: #6b7280; font-weight: 500; }
.moa table.moa-states tr.moa-pruned td { color: #9ca3af; }
.moa table.moa-states tr.moa-pruned td.moa-state { text-decoration: line-through; }
.moa table.moa-states td.moa-state { font-family: ui-monospace, SFMono-Regular, Menlo, monospace;
  white-space: pre-wrap; }
.moa mark { background: #fde68a; color: inherit; border-radius: 2px; }
.moa .moa-key { font-size: 12px; color: #374151; margin: 2px 4px 6px; }
.moa .moa-key abbr { text-decoration: underline dotted; cursor: help; }
.moa dl.moa-measures { display: grid; grid-template-columns: max-content 1fr; gap: 1px 12px;
  margin: 4px 0; }
.moa dl.moa-measures dt { font-weight: 600; }
.moa dl.moa-measures dd { margin: 0; }
"""
)
_INS = "background:#dcfce7;color:#14532d;text-decoration:none;border-radius:2px"
_DEL = "background:#fee2e2;color:#991b1b;text-decoration:line-through;border-radius:2px"


def wrap(body: str, styled: bool) -> str:
    """``body`` in a root of class ``ROOT_CLASS``, with the stylesheet when ``styled``."""
    return f'<div class="{ROOT_CLASS}">{f"<style>{PANEL_CSS}</style>" if styled else ""}{body}</div>'


_wrap = wrap  # the name call_html uses


def diff_html(
    old: str | None, new: str | None, *, inserted: Callable[[int, str], str] | None = None
) -> str:
    """Word-level diff of ``old`` -> ``new`` as escaped HTML: removed words struck red, added green.

    ``inserted(at, text)``: the HTML of added words ``text`` that start at offset ``at`` of ``new``
    (the call panel colours them by where they came from), instead of green. Styles are inline, so
    the snippet reads the same in any page or widget.
    """
    parts = []
    at = 0  # offset in ``new``: its equal and inserted runs, joined, give it back
    for op, text in _analysis.word_diff(old, new):
        if op == "equal":
            parts.append(esc(text))
        elif op == "delete":
            parts.append(f'<del style="{_DEL}">{esc(text)}</del>')
        elif inserted is not None:
            parts.append(inserted(at, text))
        else:
            parts.append(f'<ins style="{_INS}">{esc(text)}</ins>')
        at += 0 if op == "delete" else len(text)
    return f'<span class="moa-diff" style="white-space:pre-wrap">{"".join(parts)}</span>'


def check_node(trace: Trace, node: str) -> str:
    """Return ``node`` if the trace has it, else raise a one-line TraceError listing the calls."""
    if node not in trace.graph:
        calls = trace.calls()
        listed = ", ".join(calls[:8]) + (", …" if len(calls) > 8 else "")
        raise TraceError(f"no call {node!r} in this trace; its calls are {listed}")
    return node


def _dot(color: str) -> str:
    return f'<span class="moa-dot" style="background:{esc(color)}"></span>'


def badge_list(
    *,
    cache_hit: bool = False,
    error: bool = False,
    reason: str | None = None,
    reused: bool = False,
) -> list[tuple[str, str]]:
    """The badges of a call or layer as (CSS class, text) pairs; a replay's reused answer is told
    apart from a cache hit (both sent nothing)."""
    badges = []
    if reused:
        badges.append(("moa-reuse", "reused from the source run"))
    if cache_hit:
        badges.append(("moa-hit", "cache hit"))
    if error:
        badges.append(("moa-err", "error"))
    if cut_off(reason):
        badges.append(("moa-warn", "cut off at the token cap"))
    elif reason not in (None, "stop"):
        badges.append(("moa-warn", f"finish: {reason}"))
    return badges


def badge_html(badges: list[tuple[str, str]]) -> str:
    """Badges (``badge_list``) as HTML."""
    return "".join(f'<span class="moa-badge {kind}">{esc(text)}</span>' for kind, text in badges)


_badge_html = badge_html  # the name call_html's title uses


def call_badges(call: Call) -> list[tuple[str, str]]:
    """The badges of one call as (CSS class, text) pairs: reused or cache hit, error, how it
    finished."""
    return badge_list(
        cache_hit=call.cache_hit and not call.reused,
        error=call.error is not None,
        reason=call.finish_reason,
        reused=call.reused,
    )


def _tokens(data: Call) -> str:
    if data.usage is None:
        return "–"
    prompt, completion = data.prompt_tokens, data.completion_tokens
    return f"{'?' if prompt is None else prompt} in / {'?' if completion is None else completion} out"


def _seconds(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f} s"


def _dollars(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.5f}"


def measures_line(carried: float, copied: float, bleu: float, tfidf: float) -> str:
    """The four attribution numbers as a short line (percentages and scores)."""
    return f"carried {carried:.0%} · copied {copied:.0%} · BLEU {bleu:.2f} · TF-IDF {tfidf:.2f}"


def reuse_line(reuse: _analysis.Reuse) -> str:
    """The four attribution numbers of one edge as a short line (percentages and scores)."""
    return measures_line(reuse.carried, reuse.copied, reuse.bleu, reuse.tfidf)


def strongest_references(
    node: str, read: list[str], reuse: dict[tuple[str, str], _analysis.Reuse], count: int
) -> list[tuple[int, str]]:
    """Up to ``count`` of the references ``read`` by a call as (position, node), in that order.

    When it read more, those it carried most from (``reuse``: the trace's attribution).
    """
    numbered = list(enumerate(read, 1))
    if len(numbered) <= count:
        return numbered
    strength = sorted(numbered, key=lambda r: -reuse[r[1], node].carried if (r[1], node) in reuse else 0)
    return sorted(strength[:count])


def _title(trace: Trace, node: str, colors: dict[str, str]) -> str:
    data = trace[node]
    return (
        f"{_dot(colors.get(data.model, '#999'))}<b>{esc(node)}</b> "
        f'<span class="moa-muted">{esc(data.role)} · </span>{esc(data.model)}'
        + _badge_html(call_badges(data))
    )


#: Where a call sits, by its role, when the caller does not say (``call_rows``'s ``word``).
_ROLE_DEPTH = {"debater": "round", "thought": "step", "evaluator": "step"}
#: What a replay did with a call (its ``lineage``).
_LINEAGE = {
    "reused": "reused: the source run's answer, nothing sent",
    "edited": "edited: its prompt or settings were changed, so it was sent again",
    "recomputed": "recomputed: it read an answer that changed, so it was sent again",
}


def search_rows(data: Call) -> list[tuple[str, str]]:
    """A search's facts about one call: the states a thought proposed (how many kept, whether on
    the chosen path), or an evaluator's value and the states it judged."""
    states = call_states(data)
    if states:
        kept = sum(1 for s in states if s.get("kept") is True)
        chosen = "; on the path to the best output" if (data.annotations or {}).get("chosen") else ""
        return [("states", f"{len(states)} proposed, {kept} kept{chosen}")]
    judged = evaluation(data)
    if judged is None:
        return []
    value, about = judged
    shared = (data.annotations or {}).get("shared") is True
    said = f"{value:.4g}" + (f" for {len(about)} states" if len(about) > 1 else "")
    if shared:
        said += " (one evaluation shared by states with the same prompt)"
    return [("value", said)]


def call_rows(data: Call, start: float, *, word: str | None = None) -> list[tuple[str, object]]:
    """The facts of one call as (name, value) rows; ``start`` is when the run's first call started,
    ``word`` what a level of the run is called (``depth_word``; by default guessed from the role)."""
    ended = data.ended_at or data.started_at
    served = data.served_model
    place = word or _ROLE_DEPTH.get(data.role, "layer")
    if data.reused:
        recorded = " (the source run's)"
    elif data.cache_hit:
        recorded = " (recorded when first run)"
    else:
        recorded = ""
    imported = (data.annotations or {}).get("imported") is True
    rows: list[tuple[str, object]] = [
        (f"{place} / index", f"{data.layer} / {data.index}"),
        ("params", json.dumps(data.params or {}, sort_keys=True)),
        ("tokens", _tokens(data)),
        ("latency", _seconds(data.latency) + recorded),
        (
            "ran",
            "unknown: imported from a log that keeps no times"
            if imported
            else f"+{data.started_at - start:.2f} s → +{ended - start:.2f} s",
        ),
        ("attempts", data.attempts),
        ("cost", _dollars(data.cost)),
        ("endpoint", data.base_url),
    ]
    if data.lineage:
        origin = f" (it stands for {data.origin})" if data.origin and data.origin != data.id else ""
        rows.append(("replay", _LINEAGE.get(data.lineage, data.lineage) + origin))
    rows += search_rows(data)
    if served and served != data.model:
        rows.append(("served model", served))
    if data.api_key_env:
        rows.append(("key variable", data.api_key_env))
    if data.picked:
        rows.append(("ranker picked", data.picked))
    return rows


def call_html(trace: Trace, node: str, *, styled: bool = True) -> str:
    """Everything about one call: where its answer came from, params, usage, timing, error,
    response, diffs and messages.

    A call that read references shows its answer first, each span in the colour of the reference it
    came from (``provenance_html``), and a diff against each reference in which the added words are
    coloured the same way. ``styled=False`` (here and in the other panels) leaves out the
    stylesheet, for a page that includes ``CSS`` once.
    """
    check_node(trace, node)
    data = trace[node]
    colors = model_colors(trace)
    references = trace.references(node)
    found = _analysis.provenance(trace, node) if references and data.response is not None else None
    drawn = looks(trace, references)
    rows = call_rows(data, min(c.started_at for c in trace.records()))
    table = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    parts = [f"<h3>{_title(trace, node, colors)}</h3>"]
    if found is not None:
        parts.append(panel_html(trace, found, drawn))
    parts.append(f'<table class="moa-kv">{table}</table>')
    if data.error:
        parts.append(f'<h4>Error</h4><pre class="moa-error">{esc(data.error)}</pre>')
    if data.response is not None and found is None:
        parts.append(f"<h4>Response</h4><pre>{esc(data.response)}</pre>")
    if data.reasoning:
        tokens = data.usage.reasoning_tokens if data.usage else None
        counted = f" ({tokens} tokens)" if tokens is not None else ""
        parts.append(
            f"<details><summary>Reasoning{counted}: kept apart from the answer</summary>"
            f"<pre>{esc(data.reasoning)}</pre></details>"
        )
    for warning in data.warnings:
        parts.append(f'<div class="moa-badge moa-warn">{esc(warning)}</div>')
    if references:
        reuse = _analysis.attribution(trace)
        parts.append(
            "<h4>Against each reference</h4>"
            '<div class="moa-muted">The reference\'s text, with '
            f'<del style="{_DEL}">words this call did not keep</del> and the words it has that are '
            f'not there: <ins style="{_INS}">new, in no reference</ins>, or in the colour of the '
            "reference they came from (hover them).</div>"
        )
        for position, source in enumerate(references, start=1):
            src = trace[source]
            numbers = reuse.get((source, node))
            line = reuse_line(numbers) if numbers else ""
            mark = inserted_html(trace, found, drawn, source) if found is not None else None
            parts.append(
                f"<details{' open' if position == 1 else ''}><summary>{position}. "
                f"{_dot(colors.get(src.model, '#999'))}<b>{esc(source)}</b> {esc(src.model)} "
                f'<span class="moa-muted">— {esc(line)}</span></summary>'
                f"<pre>{diff_html(src.response, data.response, inserted=mark)}</pre></details>"
            )
    messages = data.messages or []
    shown = "".join(
        f"<div><b>{esc(m.get('role', '?'))}</b></div><pre>{esc(m.get('content', ''))}</pre>"
        for m in messages
    )
    parts.append(f"<details><summary>Messages sent ({len(messages)})</summary>{shown}</details>")
    return _wrap(f'<div class="moa-call" data-node="{esc(node)}">{"".join(parts)}</div>', styled)
