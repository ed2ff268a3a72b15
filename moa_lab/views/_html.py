"""HTML panels for one call, one layer, a whole trace, and a word diff; shared by widgets and export.

Plain strings, no plotly and no ipywidgets, so a trace displays in a notebook (``Trace._repr_html_``)
even without the plotting stack. Invariant: every piece of trace data is escaped (``esc``) before it
is put into the markup, so model output like ``<script>`` or ``<img onerror=...>`` shows as text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from moa_lab import _analysis
from moa_lab._errors import TraceError
from moa_lab._trace import Call, Trace
from moa_lab.views._provenance import inserted_html, looks, panel_html
from moa_lab.views._style import CSS, clip, esc, model_colors

__all__ = [
    "badge_list",
    "call_badges",
    "call_html",
    "call_rows",
    "check_node",
    "diff_html",
    "layer_html",
    "measures_line",
    "reuse_line",
    "strongest_references",
    "summary_html",
]

#: A layer's row in the summary names each call's model up to this many calls, then counts them.
_CHIPS_UP_TO = 12
_INS = "background:#dcfce7;color:#14532d;text-decoration:none;border-radius:2px"
_DEL = "background:#fee2e2;color:#991b1b;text-decoration:line-through;border-radius:2px"


def _wrap(body: str, styled: bool) -> str:
    return f'<div class="moa">{f"<style>{CSS}</style>" if styled else ""}{body}</div>'


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
    *, cache_hit: bool = False, error: bool = False, reason: str | None = None
) -> list[tuple[str, str]]:
    """The badges of a call or layer as (CSS class, text) pairs."""
    badges = []
    if cache_hit:
        badges.append(("moa-hit", "cache hit"))
    if error:
        badges.append(("moa-err", "error"))
    if reason == "length":
        badges.append(("moa-warn", "cut off at the token cap"))
    elif reason not in (None, "stop"):
        badges.append(("moa-warn", f"finish: {reason}"))
    return badges


def _badge_html(badges: list[tuple[str, str]]) -> str:
    return "".join(f'<span class="moa-badge {kind}">{esc(text)}</span>' for kind, text in badges)


def call_badges(call: Call) -> list[tuple[str, str]]:
    """The badges of one call as (CSS class, text) pairs: cache hit, error, how it finished."""
    return badge_list(cache_hit=call.cache_hit, error=call.error is not None, reason=call.finish_reason)


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


def call_rows(data: Call, start: float) -> list[tuple[str, object]]:
    """The facts of one call as (name, value) rows; ``start`` is when the run's first call started."""
    ended = data.ended_at or data.started_at
    served = data.served_model
    rows: list[tuple[str, object]] = [
        ("layer / index", f"{data.layer} / {data.index}"),
        ("params", json.dumps(data.params or {}, sort_keys=True)),
        ("tokens", _tokens(data)),
        (
            "latency",
            _seconds(data.latency) + (" (recorded when first run)" if data.cache_hit else ""),
        ),
        (
            "ran",
            f"+{data.started_at - start:.2f} s → +{ended - start:.2f} s",
        ),
        ("attempts", data.attempts),
        ("cost", _dollars(data.cost)),
        ("endpoint", data.base_url),
    ]
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


def layer_html(trace: Trace, layer: int, *, styled: bool = True) -> str:
    """The responses of one layer side by side, one card per call."""
    nodes = trace.calls(layer)
    if not nodes:
        raise TraceError(f"layer {layer} has no calls in this trace (it has layers 1..{trace.layers})")
    colors = model_colors(trace)
    cards = []
    for node in nodes:
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
        cards.append(
            f'<div class="moa-card" data-node="{esc(node)}" '
            f'style="border-top-color:{esc(colors.get(data.model, "#999"))}">'
            f"<div>{_title(trace, node, colors)}</div>"
            f'<div class="moa-muted">{esc(_tokens(data))} tokens · '
            f"{esc(_seconds(data.latency))}</div>"
            f"{read}{body}</div>"
        )
    title = "aggregator" if nodes and trace[nodes[0]].role == "aggregator" else "proposers"
    return _wrap(f'<h3>Layer {layer} ({title})</h3><div class="moa-grid">{"".join(cards)}</div>', styled)


def summary_html(trace: Trace, *, styled: bool = True) -> str:
    """A compact card for a trace: run, prompt, one row per layer, totals and the final answer."""
    totals = trace.totals()
    colors = model_colors(trace)
    rows = []
    layers: dict[int, list[Call]] = {}
    for call in trace.records():
        layers.setdefault(call.layer, []).append(call)
    for layer in range(1, trace.layers + 1):
        datas = layers.get(layer)
        if not datas:
            rows.append(f"<tr><td>{layer}</td><td colspan=4 class='moa-muted'>not run</td></tr>")
            continue
        if len(datas) <= _CHIPS_UP_TO:
            chips = " ".join(f"{_dot(colors[d.model])}{esc(d.model)}" for d in datas)
        else:
            chips = " ".join(
                f"{_dot(colors[model])}{esc(model)} ×{count:,}"
                for model, count in Counter(d.model for d in datas).items()
            )
        tokens = sum(d.completion_tokens or 0 for d in datas)
        slowest = max((d.latency or 0.0) for d in datas)
        cut = any(d.truncated for d in datas)
        notes = _badge_html(
            badge_list(
                cache_hit=any(d.cache_hit for d in datas),
                error=any(d.error for d in datas),
                reason="length" if cut else None,
            )
        )
        rows.append(
            f"<tr><td>{layer}</td><td>{chips}</td><td>{tokens}</td>"
            f"<td>{slowest:.2f} s</td><td>{notes}</td></tr>"
        )
    cost = "cost unknown" if totals.spent is None else f"${totals.spent:.4f}"
    tokens = "? tokens" if totals.sent_tokens is None else f"{totals.sent_tokens} tokens"
    head = (
        f"<b>MoA trace</b> <span class='moa-muted'>{esc(trace.run_id)}</span> · {esc(trace.status)} · "
        f"{trace.layers} layers · {totals.calls} calls · {totals.cache_hits + totals.reused} cached · "
        f"{totals.errors} errors · {tokens} · {cost} · {totals.wall_time:.1f} s"
    )
    final = trace.final
    answer = (
        f"<details><summary>{esc(clip(final, 240))}</summary><pre>{esc(final)}</pre></details>"
        if final is not None
        else "<span class='moa-muted'>(none: the run did not finish)</span>"
    )
    table = (
        "<table class='moa-layers'><tr><th>layer</th><th>calls</th><th>out tokens</th>"
        f"<th>slowest</th><th></th></tr>{''.join(rows)}</table>"
    )
    return _wrap(
        f"<div class='moa-box'>{head}<div><span class='moa-muted'>prompt:</span> "
        f"{esc(clip(trace.prompt, 200))}</div>{table}"
        f"<div class='moa-final moa-box'><span class='moa-muted'>final answer:</span> {answer}</div>"
        "<div class='moa-muted'>Explore it: <code>moa_lab.views.TraceExplorer(trace)</code></div></div>",
        styled,
    )
