"""``TraceExplorer``: the layer graph as a live plotly widget, with panels for a call and a level.

Thin composition of the figures and HTML panels: it holds no state beyond the selected call, level
and search, and every panel is plain HTML, so tests build it and drive it (``select``,
``show_layer``, ``search``, or a simulated click) without a kernel and read what it shows from
``.value``. Levels and tabs are named for the strategy (layers, rounds, steps); a search trace gets a
tab with its tree of thoughts.

Invariant: every figure of the explorer fills its panel: a figure drawn while hidden (or before it
is on the page) takes plotly's default 700 px, so the explorer carries ``Refit``, which makes the
responsive figures measure their panel again whenever the explorer changes size or tab.
"""

from __future__ import annotations

from collections.abc import Callable

import anywidget
import ipywidgets as widgets
import plotly.graph_objects as go
import traitlets

from moa_lab._tot.tree import thought_tree
from moa_lab._trace import Trace
from moa_lab.views._card import summary_html
from moa_lab.views._graph import NODE_TRACE, SELECTED_TRACE, layer_graph
from moa_lab.views._html import call_html, check_node
from moa_lab.views._key import keyed
from moa_lab.views._levels import layer_html
from moa_lab.views._reuse import attribution, evolution
from moa_lab.views._search import Match, search_calls
from moa_lab.views._steps import answer_call, depth_word, depths, has_search
from moa_lab.views._style import clip
from moa_lab.views._timeline import timeline
from moa_lab.views._tree import STATE_TRACE, search_tree
from moa_lab.views._usage import usage

__all__ = ["Refit", "TraceExplorer"]

#: Tabs after "call" and the level tab: each builds its figure the first time it is opened.
_FIGURE_TABS: dict[str, Callable[[Trace], go.Figure]] = {
    "timeline": timeline,
    "spend": usage,
    "evolution": evolution,
    "attribution": attribution,
}
#: Search results listed at most.
_RESULTS = 50


class Refit(anywidget.AnyWidget):
    """An invisible widget that makes the responsive plotly figures of the widget around it (of
    class ``moa-explorer``) measure their panel again: when it changes size, when a figure appears
    in it, and when ``tick`` changes (a tab was opened). Plotly sizes a figure drawn while hidden,
    or before it is on the page, at its default 700 px."""

    _esm = """
export default {
  render({ model, el }) {
    let timer = null;
    const later = [];
    const fit = () => {
      clearTimeout(timer);
      timer = setTimeout(() => window.dispatchEvent(new Event("resize")), 80);
    };
    const again = () => { fit(); later.push(setTimeout(fit, 600), setTimeout(fit, 1500)); };
    const seen = new WeakSet();
    const watch = new ResizeObserver(fit);
    let root = null;
    const discover = () => {
      let fresh = false;
      root.querySelectorAll(".js-plotly-plot").forEach((plot) => {
        if (!seen.has(plot)) { seen.add(plot); fresh = true; }
      });
      if (fresh) { again(); }
    };
    const arrivals = new MutationObserver(discover);
    let tries = 0;
    const attach = () => {
      root = el.closest(".moa-explorer");
      if (root) {
        watch.observe(root);
        arrivals.observe(root, { childList: true, subtree: true });
        discover();
      } else if (tries++ < 100) {
        later.push(setTimeout(attach, 100));
      }
    };
    attach();
    model.on("change:tick", again);
    return () => {
      clearTimeout(timer);
      later.forEach(clearTimeout);
      watch.disconnect();
      arrivals.disconnect();
      model.off("change:tick", again);
    };
  }
};
"""
    tick = traitlets.Int(0).tag(sync=True)


def _responsive(figure: go.Figure) -> go.FigureWidget:
    """A widget of ``figure`` that resizes with its panel (plotly's ``responsive`` config)."""
    widget = go.FigureWidget(figure)
    widget._config = {**(widget._config or {}), "responsive": True}
    return widget


def _label(match: Match) -> str:
    """A search result as one line of plain text (a drop-down option: never parsed as HTML)."""
    return clip(
        f"{match.node} · {match.role} · {match.where}: {match.before}{match.found}{match.after}", 150
    )


class TraceExplorer(widgets.VBox):
    """Explore a trace: click a node of the graph to see that call, pick a level (layer, round,
    step) to see its calls side by side, search every call's text, open the figures.

    ``select(node)``, ``show_layer(depth)`` and ``search(text)`` do what a click, the level buttons
    and the search box do.
    """

    def __init__(self, trace: Trace, *, measure: str | None = "carried"):
        self.trace = trace
        self.selected: str | None = None
        self.header = widgets.HTML(summary_html(trace))
        self.figure = _responsive(layer_graph(trace, measure=measure))
        for data in self.figure.data:
            if data.meta == NODE_TRACE:
                data.on_click(self._on_click)
        self.key = widgets.HTML(keyed(trace, self.figure))
        self.search_box = widgets.Text(
            placeholder="Find a call by its text: answers, prompts, states, errors",
            layout=widgets.Layout(width="60%"),
        )
        self.search_note = widgets.HTML()
        self.search_results = widgets.Select(
            options=[], rows=6, layout=widgets.Layout(width="100%", display="none")
        )
        self.matches: list[Match] = []
        self.search_box.observe(lambda change: self._find(change["new"]), names="value")
        self.search_results.observe(self._on_result, names="value")
        self.call_panel = widgets.HTML("<i>Click a node of the graph to see that call.</i>")
        word = depth_word(trace)
        self.layer_picker = widgets.ToggleButtons(
            options=[(f"{word} {depth}", depth) for depth in depths(trace)],
            value=None,
            style={"button_width": "auto"},
        )
        self.layer_panel = widgets.HTML()
        self.layer_picker.observe(lambda change: self._render_layer(change["new"]), names="value")
        self._figure_tabs = dict(_FIGURE_TABS)
        if has_search(trace):
            self._figure_tabs = {"search tree": self._tree, **self._figure_tabs}
        self.tabs = widgets.Tab(
            children=[self.call_panel, widgets.VBox([self.layer_picker, self.layer_panel])]
            + [widgets.VBox() for _ in self._figure_tabs],
            titles=["call", f"{word} side by side", *self._figure_tabs],
        )
        self.tabs.observe(lambda change: self._open_tab(change["new"]), names="selected_index")
        self.refit = Refit()
        search_row = widgets.HBox([self.search_box, self.search_note])
        parts = [self.header, self.figure, self.key, search_row, self.search_results, self.tabs]
        super().__init__([*parts, self.refit])
        self.add_class("moa-explorer")
        if self.layer_picker.options:
            self.layer_picker.value = self.layer_picker.options[0][1]
        first = answer_call(trace)
        if first is not None:
            self.select(first)

    def select(self, node: str) -> None:
        """Show one call in the call tab and ring it in the graph (what clicking it does)."""
        check_node(self.trace, node)
        self.selected = node
        self.call_panel.value = call_html(self.trace, node)
        # Every node is in exactly one node trace (one per model); find where it is drawn.
        for data in self.figure.data:
            if data.meta == NODE_TRACE and node in data.customdata:
                at = list(data.customdata).index(node)
                x, y, size = data.x[at], data.y[at], data.marker.size[at]
        ring = next(data for data in self.figure.data if data.meta == SELECTED_TRACE)
        with self.figure.batch_update():
            ring.x, ring.y, ring.customdata = [x], [y], [node]
            ring.marker.size = [size + 14]
        self.tabs.selected_index = 0

    def show_layer(self, layer: int) -> None:
        """Lay the calls of one level (layer, round, step) side by side in the level tab."""
        self.layer_picker.value = layer
        self.tabs.selected_index = 1

    def search(self, text: str) -> list[Match]:
        """List the calls whose text contains ``text`` (case-insensitive); picking one shows it.
        Returns the matches listed (the first place in each call, up to 50)."""
        if self.search_box.value == text:
            self._find(text)
        else:
            self.search_box.value = text  # its observer finds the calls
        return self.matches

    def _find(self, text: str) -> None:
        self.matches, total = search_calls(self.trace, text, limit=_RESULTS)
        self.search_results.options = [(_label(m), m.node) for m in self.matches]
        self.search_results.value = None
        self.search_results.layout.display = "block" if self.matches else "none"
        if not text.strip():
            self.search_note.value = ""
            return
        shown = f" (the first {len(self.matches)} listed)" if total > len(self.matches) else ""
        found = f"{total} call{'s match' if total != 1 else ' matches'}{shown}"
        found = found if total else "no call matches"
        self.search_note.value = f'<span style="color:#6b7280">{found}</span>'

    def _on_result(self, change: dict) -> None:
        if change["new"] is not None:
            self.select(change["new"])

    def _render_layer(self, layer: int | None) -> None:
        if layer is not None:
            self.layer_panel.value = layer_html(self.trace, layer)

    def _on_click(self, data: object, points: object, state: object) -> None:
        for index in getattr(points, "point_inds", []):
            self.select(data.customdata[index])
            return

    def _tree(self, trace: Trace) -> go.Figure:
        """The search tree; clicking a state shows the call that proposed it."""
        figure = _responsive(search_tree(trace))
        calls = {node: data["call"] for node, data in thought_tree(trace).nodes(data=True)}

        def clicked(data: object, points: object, state: object) -> None:
            for index in getattr(points, "point_inds", []):
                node = calls.get(data.customdata[index])
                if node in trace:
                    self.select(node)
                return

        for data in figure.data:
            if data.meta == STATE_TRACE:
                data.on_click(clicked)
        return figure

    def _open_tab(self, index: int | None) -> None:
        if index is not None and index >= 2 and not self.tabs.children[index].children:
            build = list(self._figure_tabs.values())[index - 2]
            built = build(self.trace)
            self.tabs.children[index].children = [
                built if isinstance(built, go.FigureWidget) else _responsive(built)
            ]
        self.refit.tick += 1
