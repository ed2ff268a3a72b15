"""One self-contained HTML page for a trace: the figures and every call's prompt and response.

The page inlines plotly.js (no CDN, readable offline) and a few lines of script that show the call
you click in the layer graph. Up to ``PANELS_UP_TO`` calls, every call's panel is rendered into the
page (with word diffs against its references) and the script shows a copy of it. A bigger trace
would make a page nobody can open, so its calls are embedded once as JSON data in an inert
``<script type="application/json">`` block and the script builds the panel of the call you click.

Invariant: trace text enters the page only escaped (the panels), as plotly JSON or as the call data
(JSON in which ``<``, ``>`` and ``&`` are escaped, so it cannot close its block), and the page's own
script only moves DOM nodes or builds them with ``textContent``, never parses HTML, so nothing a
model wrote can run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from moa_lab import _analysis
from moa_lab._trace import Trace
from moa_lab.views._graph import layer_graph
from moa_lab.views._html import (
    call_badges,
    call_html,
    call_rows,
    layer_html,
    strongest_references,
    summary_html,
)
from moa_lab.views._reuse import attribution, evolution, reference_reuse
from moa_lab.views._style import CSS, FONT, clip, esc, model_colors
from moa_lab.views._timeline import timeline
from moa_lab.views._usage import usage

__all__ = [
    "MESSAGE_CHARS",
    "PANELS_UP_TO",
    "REFERENCES_SHOWN",
    "TEXT_BUDGET",
    "export_html",
    "to_html",
]

#: Up to this many calls the page carries every call's rendered panel (word diffs included).
PANELS_UP_TO = 300
#: Beyond ``PANELS_UP_TO``: a call's panel lists this many of its references (those it carried most
#: from) with what it reused from each.
REFERENCES_SHOWN = 10
#: ... each message it sent up to this many characters (the references it quotes are calls of the
#: page already) ...
MESSAGE_CHARS = 2_000
#: ... and all the texts of the calls together up to this many characters, the longest clipped first.
TEXT_BUDGET = 6_000_000

_PAGE_CSS = """
body { margin: 0; background: #f3f4f6; font-family: $FONT; color: #1f2937; }
main { max-width: 1240px; margin: 0 auto; padding: 18px 22px 60px; }
h1 { font-size: 22px; margin: 6px 0 10px; }
h2 { font-size: 17px; margin: 26px 0 8px; }
nav { position: sticky; top: 0; z-index: 5; background: #111827; padding: 8px 22px; }
nav a { color: #e5e7eb; margin-right: 16px; text-decoration: none; font-size: 13px; }
nav a:hover { color: #fff; }
section.moa-figure { background: #fff; border-radius: 10px; padding: 6px; margin: 12px 0;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); }
#moa-selected { background: #fff; border-radius: 10px; padding: 4px 14px 10px; margin: 8px 0 12px;
  box-shadow: 0 1px 2px rgba(0,0,0,.06); border-left: 4px solid #111827; scroll-margin-top: 48px; }
details.moa-call-details { background: #fff; border-radius: 8px; margin: 6px 0; padding: 4px 12px; }
details.moa-call-details > summary { font-size: 13px; padding: 4px 0; }
.moa-hint { color: #6b7280; font-size: 12px; margin: 4px 2px; }
.moa-index { background: #fff; border-radius: 8px; margin: 6px 0; padding: 6px 12px; font-size: 12px; }
button.moa-link { font: inherit; color: #1d4ed8; background: none; border: 0; padding: 0 3px;
  cursor: pointer; }
button.moa-link:hover { text-decoration: underline; }
""".replace("$FONT", FONT)

#: Shows the call clicked in the layer graph (or in the page): a copy of its rendered panel, or,
#: when the page carries the calls as data, a panel built from it with DOM nodes and textContent.
_SCRIPT = """
window.addEventListener("load", function () {
  var graph = document.getElementById("moa-graph");
  var panel = document.getElementById("moa-selected");
  var store = document.getElementById("moa-call-data");
  var calls = store ? new Map(JSON.parse(store.textContent)) : null;
  function el(tag, kind, text) {
    var node = document.createElement(tag);
    if (kind) { node.className = kind; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function dot(color) {
    var node = el("span", "moa-dot");
    node.style.background = color;
    return node;
  }
  function link(node) {
    var button = el("button", "moa-link", node);
    button.type = "button";
    button.dataset.show = node;
    return button;
  }
  function percent(value) { return Math.round(value * 100) + "%"; }
  function render(id, call) {
    var box = el("div", "moa-call");
    box.dataset.node = id;
    var title = el("h3");
    title.append(dot(call.color), el("b", null, id), " ",
                 el("span", "moa-muted", call.role + " · "), call.model);
    call.badges.forEach(function (badge) {
      title.append(el("span", "moa-badge " + badge[0], badge[1]));
    });
    var table = el("table", "moa-kv");
    call.rows.forEach(function (row) {
      var line = el("tr");
      line.append(el("th", null, row[0]), el("td", null, row[1]));
      table.append(line);
    });
    box.append(title, table);
    if (call.error !== null) {
      box.append(el("h4", null, "Error"), el("pre", "moa-error", call.error));
    }
    if (call.response !== null) {
      box.append(el("h4", null, "Response"), el("pre", null, call.response));
    }
    if (call.reasoning) {
      var thought = el("details");
      var counted = call.reasoning_tokens === null ? "" : " (" + call.reasoning_tokens + " tokens)";
      thought.append(el("summary", null, "Reasoning" + counted + ": kept apart from the answer"),
                     el("pre", null, call.reasoning));
      box.append(thought);
    }
    call.warnings.forEach(function (warning) { box.append(el("div", "moa-badge moa-warn", warning)); });
    if (call.references.length) {
      var which = call.references.length < call.read
        ? "The " + call.references.length + " of its " + call.read.toLocaleString("en") +
          " references it carried most from"
        : "Each reference";
      box.append(el("h4", null, "Against each reference"), el("div", "moa-muted", which +
        ", with what this call reused from it; click one to show it. Word diffs against each " +
        "reference are left out of a page of " + calls.size.toLocaleString("en") +
        " calls: see this call in moa_lab.views.TraceExplorer."));
      var list = el("ol");
      call.references.forEach(function (ref) {
        var item = el("li");
        item.value = ref[0];
        var source = calls.get(ref[1]);
        item.append(dot(source.color), link(ref[1]), " ", source.model, " ", el("span", "moa-muted",
          "— carried " + percent(ref[2]) + " · copied " + percent(ref[3]) + " · BLEU " +
          ref[4].toFixed(2) + " · TF-IDF " + ref[5].toFixed(2)));
        list.append(item);
      });
      box.append(list);
    }
    var sent = el("details");
    sent.append(el("summary", null, "Messages sent (" + call.messages.length + ")"));
    call.messages.forEach(function (message) {
      var who = el("div");
      who.append(el("b", null, message[0]));
      sent.append(who, el("pre", null, message[1]));
    });
    box.append(sent);
    var wrap = el("div", "moa");
    wrap.append(box);
    return wrap;
  }
  function show(node) {
    var view = null;
    if (calls) {
      if (calls.has(node)) { view = render(node, calls.get(node)); }
    } else {
      document.querySelectorAll("#moa-calls [data-call]").forEach(function (found) {
        if (found.dataset.call === node) { view = found.querySelector(".moa").cloneNode(true); }
      });
    }
    if (!view) { return false; }
    panel.replaceChildren(view);
    panel.dataset.node = node;
    return true;
  }
  graph.on("plotly_click", function (event) {
    var point = event.points && event.points[0];
    if (point && typeof point.customdata === "string") { show(point.customdata); }
  });
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("button[data-show]") : null;
    if (button && show(button.dataset.show)) { panel.scrollIntoView({block: "start"}); }
  });
  if (panel.dataset.initial) { show(panel.dataset.initial); }
});
"""

_CONFIG = {"displaylogo": False, "responsive": True}


def _figure(figure, div_id: str, hint: str) -> str:
    body = pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)
    return (
        f'<section class="moa-figure" id="{div_id}-section">'
        f'<div class="moa-hint">{hint}</div>{body}</section>'
    )


def _panels(trace: Trace, layers: list[int]) -> str:
    """Every call's panel, rendered, layer by layer (the page of a trace of up to PANELS_UP_TO)."""
    calls = []
    for layer in layers:
        calls.append(layer_html(trace, layer, styled=False))
        for node in trace.calls(layer):
            calls.append(
                f'<details class="moa-call-details" data-call="{esc(node)}" id="call-{esc(node)}">'
                f"<summary><b>{esc(node)}</b> {esc(trace[node].model)} — full call</summary>"
                f"{call_html(trace, node, styled=False)}</details>"
            )
    return f'<h2>Every call, layer by layer</h2><div id="moa-calls">{"".join(calls)}</div>'


def _room(lengths: list[int], budget: int) -> int | None:
    """The most characters each text may keep so that they add up to ``budget`` (None: all fit).

    Water-filling: texts shorter than their share keep everything and leave the rest to longer ones.
    """
    if sum(lengths) <= budget:
        return None
    left = budget
    for at, length in enumerate(sorted(lengths)):
        share = left // (len(lengths) - at)
        if length > share:
            return share
        left -= length
    return None


def _clip(
    text: str | None, room: int | None, why: str = "the page ran out of room for text"
) -> str | None:
    if text is None or room is None or len(text) <= room:
        return text
    return (
        f"{text[:room]}\n\n… (the first {room:,} of {len(text):,} characters: {why}; the whole "
        "text is in the trace file)"
    )


def _call_data(trace: Trace) -> list[list[Any]]:
    """Every call as plain data for the page's script: [node id, what its panel shows].

    Messages keep ``MESSAGE_CHARS`` each, and all texts together ``TEXT_BUDGET`` characters (the
    longest are clipped first, and say so).
    """
    colors = model_colors(trace)
    records = trace.records()
    start = min((c.started_at for c in records), default=0.0)
    reuse = _analysis.attribution(trace)
    reading = _analysis.references(trace)
    messages = {
        c.id: [
            [
                str(m.get("role", "?")),
                _clip(str(m.get("content", "")), MESSAGE_CHARS, "a message shows no more here"),
            ]
            for m in c.messages or []
        ]
        for c in records
    }
    room = _room(
        [len(t) for c in records for t in (c.response, c.reasoning, c.error) if t]
        + [len(m[1]) for listed in messages.values() for m in listed],
        TEXT_BUDGET,
    )
    found = []
    for data in records:
        read = reading[data.id]
        references = [
            [position, source]
            + [round(getattr(reuse[source, data.id], name), 3) if (source, data.id) in reuse else 0.0
               for name in _analysis.REUSE_MEASURES]
            for position, source in strongest_references(data.id, read, reuse, REFERENCES_SHOWN)
        ]  # fmt: skip
        found.append(
            [
                data.id,
                {
                    "role": data.role,
                    "model": data.model,
                    "color": colors.get(data.model, "#999"),
                    "badges": call_badges(data),
                    "rows": [[name, str(value)] for name, value in call_rows(data, start)],
                    "error": _clip(data.error, room),
                    "response": _clip(data.response, room),
                    "reasoning": _clip(data.reasoning, room),
                    "reasoning_tokens": data.usage.reasoning_tokens if data.usage else None,
                    "warnings": list(data.warnings),
                    "read": len(read),
                    "references": references,
                    "messages": [[role, _clip(text, room)] for role, text in messages[data.id]],
                },
            ]
        )
    return found


def _inert_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` block nor open a comment: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _index(trace: Trace, layers: list[int]) -> str:
    """The calls of a big trace as buttons, layer by layer, with the call data behind them."""
    rows = "".join(
        f'<div class="moa-index"><b>Layer {layer}</b> '
        + " ".join(
            f'<button type="button" class="moa-link" data-show="{esc(n)}">{esc(n)}</button>'
            for n in trace.calls(layer)
        )
        + "</div>"
        for layer in layers
    )
    return (
        f"<h2>Every call, layer by layer</h2>"
        f'<div class="moa-hint">This trace has {len(trace):,} calls: each call\'s text is shown when '
        "you click it, here or in the graph.</div>"
        f'<div id="moa-calls">{rows}</div>'
        f'<script type="application/json" id="moa-call-data">{_inert_json(_call_data(trace))}</script>'
    )


def to_html(trace: Trace, *, panels: bool | None = None) -> str:
    """The whole page as a string (plotly.js inlined, about 5 MB).

    ``panels``: render every call's panel into the page (True), or embed the calls as data and build
    a call's panel when it is clicked (False); default: panels up to ``PANELS_UP_TO`` calls.
    """
    if panels is None:
        panels = len(trace) <= PANELS_UP_TO
    first = trace.aggregator() or (trace.calls() or [""])[-1]
    layers = sorted({trace[n].layer for n in trace.calls()})
    figures = [
        _figure(layer_graph(trace), "moa-graph", "Click a node to show that call below the graph."),
        '<div id="moa-selected" data-initial="' + esc(first) + '"></div>',
        _figure(reference_reuse(trace), "moa-reuse", "What the aggregator kept from each reference."),
        _figure(evolution(trace), "moa-evolution", "How similar the answers are, layer by layer."),
        _figure(attribution(trace), "moa-attribution", "Every call with references: what it reused."),
        _figure(timeline(trace), "moa-timeline", "When each call ran."),
        _figure(usage(trace), "moa-usage", "Tokens, latency and cost."),
    ]
    nav = "".join(
        f'<a href="#{target}">{label}</a>'
        for target, label in (
            ("moa-graph-section", "graph"),
            ("moa-evolution-section", "evolution"),
            ("moa-attribution-section", "attribution"),
            ("moa-timeline-section", "timeline"),
            ("moa-usage-section", "spend"),
            ("moa-calls", "every call"),
        )
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>MoA trace {esc(trace.run_id)}: {esc(clip(trace.prompt, 60))}</title>"
        f"<style>{_PAGE_CSS}{CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f"<body><nav>{nav}</nav><main><h1>{esc(clip(trace.prompt, 140))}</h1>"
        f"{summary_html(trace, styled=False)}{''.join(figures)}"
        f"{_panels(trace, layers) if panels else _index(trace, layers)}"
        f"</main><script>{_SCRIPT}</script></body></html>\n"
    )


def export_html(trace: Trace, path: str | Path, *, panels: bool | None = None) -> Path:
    """Write the page to ``path`` (parents created) and return the path (``panels``: see to_html)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(trace, panels=panels), encoding="utf-8")
    return path
