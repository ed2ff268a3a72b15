"""One self-contained HTML page for a trace of any strategy: the figures, every call's prompt and
response, a search box over every call's text, and a key to what the marks and numbers mean.

The page inlines plotly.js (no CDN, readable offline) and a script (``_export_page``) that shows the
call you click in the layer graph or the search tree, and finds calls by their text. Up to
``PANELS_UP_TO`` calls, every call's panel is rendered into the page (with word diffs against its
references) and the script shows a copy of it; the texts the search box looks through are embedded
as data. A bigger trace would make a page nobody can open, so its calls are embedded once as data
(``_export_data``) and the script builds the panel of the call you click, and searches that data.
Levels are named for the strategy (layers, rounds, steps); a search trace's page opens with its tree
of thoughts.

Invariant: trace text enters the page only escaped (the panels), as plotly JSON or as inert JSON
data (``<``, ``>`` and ``&`` escaped, so it cannot close its block), and the page's script only
moves DOM nodes or builds them with ``textContent``, never parses HTML, so nothing a model wrote
can run; the page's root carries ``ROOT_CLASS``, so MathJax leaves a ``$`` alone.
"""

from __future__ import annotations

from pathlib import Path

import plotly.io as pio
from plotly.offline import get_plotlyjs

from moa_lab._trace import Trace
from moa_lab._trace.files import write_atomically
from moa_lab.views._card import summary_html
from moa_lab.views._export_data import call_data, inert_json, search_data, tree_calls
from moa_lab.views._export_page import PAGE_CSS, SCRIPT
from moa_lab.views._graph import layer_graph
from moa_lab.views._html import PANEL_CSS, ROOT_CLASS, badge_html, call_badges, call_html
from moa_lab.views._key import keyed, measures_key_html
from moa_lab.views._levels import layer_html
from moa_lab.views._reuse import attribution, evolution, reference_reuse
from moa_lab.views._steps import answer_call, depth_title, depth_word, depths, has_search
from moa_lab.views._style import clip, esc
from moa_lab.views._timeline import timeline
from moa_lab.views._tree import search_tree
from moa_lab.views._usage import usage

__all__ = ["PANELS_UP_TO", "export_html", "to_html"]

#: Up to this many calls the page carries every call's rendered panel (word diffs included).
PANELS_UP_TO = 300

_CONFIG = {"displaylogo": False, "responsive": True}


def _figure(figure, div_id: str, hint: str, below: str = "") -> str:
    """A figure's section; ``hint`` and ``below`` are HTML the caller wrote (trace text escaped)."""
    body = pio.to_html(figure, full_html=False, include_plotlyjs=False, div_id=div_id, config=_CONFIG)
    return (
        f'<section class="moa-figure" id="{div_id}-section">'
        f'<div class="moa-hint">{hint}</div>{body}{below}</section>'
    )


def _data(block_id: str, value: object) -> str:
    return f'<script type="application/json" id="{block_id}">{inert_json(value)}</script>'


def _panels(trace: Trace, levels: list[int]) -> str:
    """Every call's panel, rendered, level by level (the page of a trace of up to PANELS_UP_TO)."""
    calls = []
    for depth in levels:
        calls.append(layer_html(trace, depth, styled=False))
        for node in trace.calls(depth):
            data = trace[node]
            calls.append(
                f'<details class="moa-call-details" data-call="{esc(node)}" id="call-{esc(node)}">'
                f"<summary><b>{esc(node)}</b> {esc(data.model)} "
                f'<span class="moa-muted">{esc(data.role)}</span>'
                f"{badge_html(call_badges(data))} — full call</summary>"
                f"{call_html(trace, node, styled=False)}</details>"
            )
    word = depth_word(trace)
    return (
        f"<h2>Every call, {esc(word)} by {esc(word)}</h2>"
        f'<div id="moa-calls">{"".join(calls)}</div>' + _data("moa-search-data", search_data(trace))
    )


def _index(trace: Trace, levels: list[int]) -> str:
    """The calls of a big trace as buttons, level by level, with the call data behind them."""
    rows = "".join(
        f'<div class="moa-index"><b>{esc(depth_title(trace, depth))}</b> '
        + " ".join(
            f'<button type="button" class="moa-link" data-show="{esc(n)}">{esc(n)}</button>'
            for n in trace.calls(depth)
        )
        + "</div>"
        for depth in levels
    )
    word = depth_word(trace)
    return (
        f"<h2>Every call, {esc(word)} by {esc(word)}</h2>"
        f'<div class="moa-hint">This trace has {len(trace):,} calls: each call\'s text is shown when '
        "you click it, here, in the graph or in the search results.</div>"
        f'<div id="moa-calls">{rows}</div>' + _data("moa-call-data", call_data(trace))
    )


def _figures(trace: Trace) -> tuple[list[str], list[tuple[str, str]]]:
    """The figure sections (the search tree first for a search) and the nav links to them."""
    word = depth_word(trace)
    first = answer_call(trace) or ""
    graph = layer_graph(trace)
    sections = []
    links = []
    if has_search(trace):
        sections.append(
            _figure(
                search_tree(trace),
                "moa-tree",
                "Every state the search proposed, step by step: kept states filled and coloured by "
                "their value, pruned ones hollow, the path to the best output in red. Click a state "
                "to show the call that proposed it.",
            )
            + _data("moa-tree-calls", tree_calls(trace))
        )
        links.append(("moa-tree-section", "search tree"))
    sections += [
        _figure(
            graph,
            "moa-graph",
            "Who read whom: an edge means the later call's prompt held the earlier call's answer. "
            'Click a node to show that call below the graph; <a href="#moa-key">key</a>.',
            keyed(trace, graph, styled=False),
        ),
        '<div id="moa-selected" data-initial="' + esc(first) + '"></div>',
        _figure(
            reference_reuse(trace),
            "moa-reuse",
            ("What the aggregator" if trace.aggregator() else "What the last call")
            + ' kept from each of its references (<a href="#moa-key">what the numbers mean</a>).',
        ),
        _figure(evolution(trace), "moa-evolution", f"How similar the answers are, {word} by {word}."),
        _figure(
            attribution(trace),
            "moa-attribution",
            'Every call with references: what it reused (<a href="#moa-key">key</a>).',
        ),
        _figure(timeline(trace), "moa-timeline", "When each call waited and ran."),
        _figure(usage(trace), "moa-usage", "Tokens, latency and cost."),
        f'<section class="moa-keys" id="moa-key">{measures_key_html(styled=False)}</section>',
    ]
    links += [
        ("moa-graph-section", "graph"),
        ("moa-evolution-section", "evolution"),
        ("moa-attribution-section", "attribution"),
        ("moa-timeline-section", "timeline"),
        ("moa-usage-section", "spend"),
        ("moa-key", "key"),
        ("moa-calls", "every call"),
    ]
    return sections, links


def to_html(trace: Trace, *, panels: bool | None = None) -> str:
    """The whole page as a string (plotly.js inlined, about 5 MB).

    ``panels``: render every call's panel into the page (True), or embed the calls as data and build
    a call's panel when it is clicked (False); default: panels up to ``PANELS_UP_TO`` calls.
    """
    if panels is None:
        panels = len(trace) <= PANELS_UP_TO
    levels = depths(trace)
    sections, links = _figures(trace)
    nav = "".join(f'<a href="#{target}">{label}</a>' for target, label in links) + (
        '<span class="moa-find"><input id="moa-search" type="search" autocomplete="off" '
        'placeholder="Find a call by its text" aria-label="Find a call by its text">'
        '<span id="moa-search-count" class="moa-found"></span>'
        '<div id="moa-search-results" class="moa" hidden></div></span>'
    )
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{esc(clip(trace.prompt, 60))} · moa_lab trace {esc(trace.run_id)}</title>"
        f"<style>{PAGE_CSS}{PANEL_CSS}</style>"
        f'<script type="text/javascript">{get_plotlyjs()}</script></head>'
        f'<body class="{ROOT_CLASS}"><nav>{nav}</nav><main><h1>{esc(clip(trace.prompt, 140))}</h1>'
        f"{summary_html(trace, styled=False)}{''.join(sections)}"
        f"{_panels(trace, levels) if panels else _index(trace, levels)}"
        f"</main><script>{SCRIPT}</script></body></html>\n"
    )


def export_html(trace: Trace, path: str | Path, *, panels: bool | None = None) -> Path:
    """Write the page to ``path`` (parents created) and return the path (``panels``: see to_html).

    Written whole or not at all (a full disk leaves no half page); raises ``OSError``."""
    path = Path(path)
    write_atomically(path, to_html(trace, panels=panels))
    return path
