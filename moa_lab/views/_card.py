"""The summary card a trace displays as in a notebook (``Trace._repr_html_``), for any strategy.

It says what the run was (``run_lines``: a mixture's layers, a debate's rounds and decision, a
search's settings, a replay's parent and edits, an import's source), then one row per level named
for the strategy, whose calls show what tells agents of one model apart (temperature, seed,
max_tokens, a cut-off answer), then the totals and the answer.

Invariant: plain HTML strings, no plotly and no ipywidgets (a trace displays without the plotting
stack); every trace string is escaped; the root carries ``ROOT_CLASS``, so JupyterLab's MathJax
leaves a ``$`` alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from moa_lab._trace import Call, Trace
from moa_lab.views._html import badge_html, wrap
from moa_lab.views._steps import depth_word, role_summary, search_verdict
from moa_lab.views._style import clip, esc, model_colors
from moa_lab.views._text import run_lines

__all__ = ["SETTINGS_UP_TO", "calls_html", "summary_html"]

#: A level's row lists up to this many distinct (model, settings) groups, then says how many more.
SETTINGS_UP_TO = 12


def _dot(color: str) -> str:
    return f'<span class="moa-dot" style="background:{esc(color)}"></span>'


def calls_html(calls: list[Call], colors: dict[str, str]) -> str:
    """The calls of a level by model, each model's calls by their settings (``Call.sampling``) and
    whether the answer was cut off: ``● qwen T0.5 seed 1 ≤128 · T0.8 seed 2 ≤128 ×2 (cut off)``."""
    groups: dict[str, dict[tuple[str, bool], int]] = {}
    for call in calls:
        mine = groups.setdefault(call.model, {})
        key = (call.sampling, call.truncated)
        mine[key] = mine.get(key, 0) + 1
    shown = 0
    parts = []
    for model, settings in groups.items():
        entries = []
        for (sampling, cut), count in settings.items():
            if shown == SETTINGS_UP_TO:
                break
            shown += 1
            entries.append(
                f'<span style="white-space:nowrap"><span class="moa-settings">'
                f"{esc(sampling or 'default settings')}</span>"
                + (f" ×{count:,}" if count > 1 else "")
                + (
                    ' <span class="moa-cut" title="the answer reached its token cap (max_tokens)">'
                    "cut off</span>"
                    if cut
                    else ""
                )
                + "</span>"
            )
        if entries:
            parts.append(
                f'<span style="white-space:nowrap">{_dot(colors.get(model, "#999"))}{esc(model)}'
                f"</span> " + " · ".join(entries)
            )
    hidden = sum(len(settings) for settings in groups.values()) - shown
    if hidden > 0:
        parts.append(f'<span class="moa-muted">… {hidden:,} more settings</span>')
    return "<br>".join(parts)


def _row(depth: int, calls: list[Call], colors: dict[str, str]) -> str:
    counted = [c.completion_tokens for c in calls if c.completion_tokens is not None]
    tokens = f"{sum(counted):,}" if counted else "–"
    known = [c.latency for c in calls if c.latency is not None and not c.cache_hit]
    slowest = f"{max(known):.2f} s" if known else "–"
    reused = sum(1 for c in calls if c.reused)
    hits = sum(1 for c in calls if c.cache_hit and not c.reused)
    errors = sum(1 for c in calls if c.error)
    cut = sum(1 for c in calls if c.truncated)
    notes = badge_html(
        [
            (kind, text)
            for kind, text, count in (
                ("moa-reuse", f"{reused:,} reused from the source run", reused),
                ("moa-hit", f"{hits:,} cache hit{'s' if hits > 1 else ''}", hits),
                ("moa-err", f"{errors:,} error{'s' if errors > 1 else ''}", errors),
                ("moa-warn", f"{cut:,} cut off at the token cap", cut),
            )
            if count
        ]
    )
    return (
        f"<tr><td>{depth}</td><td>{esc(role_summary(calls))}</td>"
        f"<td>{calls_html(calls, colors)}</td><td>{tokens}</td><td>{slowest}</td><td>{notes}</td></tr>"
    )


def _votes(decision: Mapping) -> str:
    votes = decision.get("votes")
    if not isinstance(votes, Mapping) or not votes:
        return ""
    counted = " · ".join(f"{esc(clip(str(answer), 30))} ×{esc(n)}" for answer, n in votes.items())
    chosen = decision.get("chosen")
    return f"votes: {counted}" + (f"; the answer of {esc(chosen)}" if isinstance(chosen, str) else "")


def _edits(trace: Trace) -> str:
    """A replay's edits in full (``run_lines`` clips their texts)."""
    texts = [
        (str(edit.get("kind", "?")).replace("_", " "), edit.get("text") or edit.get("content"))
        for edit in trace.edits
        if isinstance(edit, Mapping)
    ]
    shown = "".join(f"<div>{esc(kind)}:</div><pre>{esc(text)}</pre>" for kind, text in texts if text)
    return f"<details><summary>the edits in full</summary>{shown}</details>" if shown else ""


def summary_html(trace: Trace, *, styled: bool = True) -> str:
    """A compact card for a trace: what the run was, the prompt, one row per level (layer, round,
    step), the totals and the final answer."""
    colors = model_colors(trace)
    levels: dict[int, list[Call]] = {}
    for call in trace.records():
        levels.setdefault(call.layer, []).append(call)
    word = depth_word(trace)
    rows = [
        _row(depth, levels[depth], colors)
        if depth in levels
        else f"<tr><td>{depth}</td><td colspan=5 class='moa-muted'>not run</td></tr>"
        for depth in range(1, max([trace.layers, *levels]) + 1)
    ]
    totals = trace.totals()
    imported = isinstance(trace.graph.graph.get("imported"), Mapping)
    cost = "cost unknown" if totals.spent is None else f"${totals.spent:.4f}"
    tokens = "tokens unknown" if totals.sent_tokens is None else f"{totals.sent_tokens:,} tokens sent"
    hits = totals.cache_hits
    facts = [
        f"{totals.calls:,} calls",
        f"{totals.reused:,} reused" if totals.reused else "",
        f"{hits:,} cache hits" if hits else "",
        f"{totals.errors:,} errors",
        tokens,
        cost,
        "wall time unknown" if imported else f"{totals.wall_time:.1f} s",
    ]
    lines = run_lines(trace)
    decision = trace.graph.graph.get("decision")
    votes = _votes(decision) if isinstance(decision, Mapping) else ""
    head = (
        f"<div><b>{esc(lines[0])}</b></div>"
        + "".join(f"<div>{esc(line)}</div>" for line in lines[1:])
        + (f"<div class='moa-muted'>{votes}</div>" if votes else "")
        + _edits(trace)
        + f"<div class='moa-muted'>{' · '.join(esc(f) for f in facts if f)}</div>"
    )
    verdict = search_verdict(trace)
    said = "final answer" + (f" ({verdict} by the Game of 24 checker)" if verdict else "")
    final = trace.final
    answer = (
        f"<details><summary>{esc(clip(final, 240))}</summary><pre>{esc(final)}</pre></details>"
        if final is not None
        else "<span class='moa-muted'>(none: the run did not finish)</span>"
    )
    table = (
        f"<table class='moa-layers'><tr><th>{esc(word)}</th><th>what</th>"
        "<th>calls: model, settings</th><th>out tokens</th><th>slowest</th><th></th></tr>"
        f"{''.join(rows)}</table>"
    )
    return wrap(
        f"<div class='moa-box moa-summary'>{head}<div><span class='moa-muted'>prompt:</span> "
        f"{esc(clip(trace.prompt, 200))}</div>{table}"
        f"<div class='moa-final moa-box'><span class='moa-muted'>{esc(said)}:</span> {answer}</div>"
        "<div class='moa-muted'>Explore it: <code>moa_lab.views.TraceExplorer(trace)</code></div></div>",
        styled,
    )
