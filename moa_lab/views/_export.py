"""One self-contained HTML page for a trace: the figures and every call's prompt and response.

The page inlines plotly.js (no CDN, readable offline) and a few lines of script that show the call
you click in the layer graph. Invariant: trace text enters the page only escaped (the panels) or as
plotly JSON (which escapes ``<``, ``>`` and ``/``), and the page's own script moves DOM nodes, never
HTML strings, so nothing a model wrote can run.
"""

from __future__ import annotations

from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from moa_lab._trace import Trace
from moa_lab.views._graph import layer_graph
from moa_lab.views._html import call_html, layer_html, summary_html
from moa_lab.views._reuse import attribution, evolution, reference_reuse
from moa_lab.views._style import CSS, FONT, clip, esc
from moa_lab.views._timeline import timeline
from moa_lab.views._usage import usage

__all__ = ["export_html", "to_html"]

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
  box-shadow: 0 1px 2px rgba(0,0,0,.06); border-left: 4px solid #111827; }
details.moa-call-details { background: #fff; border-radius: 8px; margin: 6px 0; padding: 4px 12px; }
details.moa-call-details > summary { font-size: 13px; padding: 4px 0; }
.moa-hint { color: #6b7280; font-size: 12px; margin: 4px 2px; }
""".replace("$FONT", FONT)

#: Shows the call clicked in the layer graph by cloning its already-rendered panel.
_SCRIPT = """
window.addEventListener("load", function () {
  var graph = document.getElementById("moa-graph");
  var panel = document.getElementById("moa-selected");
  function show(node) {
    var found = null;
    document.querySelectorAll("#moa-calls [data-call]").forEach(function (el) {
      if (el.dataset.call === node) { found = el; }
    });
    if (!found) { return; }
    panel.replaceChildren(found.querySelector(".moa").cloneNode(true));
    panel.dataset.node = node;
  }
  graph.on("plotly_click", function (event) {
    var point = event.points && event.points[0];
    if (point && typeof point.customdata === "string") { show(point.customdata); }
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


def to_html(trace: Trace) -> str:
    """The whole page as a string (plotly.js inlined, about 5 MB)."""
    first = trace.aggregator() or (trace.calls() or [""])[-1]
    layers = sorted({trace[n].layer for n in trace.calls()})
    calls = []
    for layer in layers:
        calls.append(layer_html(trace, layer, styled=False))
        for node in trace.calls(layer):
            calls.append(
                f'<details class="moa-call-details" data-call="{esc(node)}" id="call-{esc(node)}">'
                f"<summary><b>{esc(node)}</b> {esc(trace[node].model)} — full call</summary>"
                f"{call_html(trace, node, styled=False)}</details>"
            )
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
        f'<h2>Every call, layer by layer</h2><div id="moa-calls">{"".join(calls)}</div>'
        f"</main><script>{_SCRIPT}</script></body></html>\n"
    )


def export_html(trace: Trace, path: str | Path) -> Path:
    """Write the page to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_html(trace), encoding="utf-8")
    return path
