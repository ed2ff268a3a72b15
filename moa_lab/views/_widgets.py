"""``TraceExplorer``: the layer graph as a live plotly widget, with panels for a call and a layer.

Thin composition of the figures and HTML panels: it holds no state beyond the selected call and
layer, and every panel is plain HTML, so tests build it and drive it (``select``, ``show_layer``, or a
simulated click) without a kernel and read what it shows from ``.value``.
"""

from __future__ import annotations

from collections.abc import Callable

import ipywidgets as widgets
import plotly.graph_objects as go

from moa_lab._trace import Trace
from moa_lab.views._graph import NODE_TRACE, SELECTED_TRACE, layer_graph
from moa_lab.views._html import call_html, check_node, layer_html, summary_html
from moa_lab.views._reuse import attribution, evolution
from moa_lab.views._timeline import timeline
from moa_lab.views._usage import usage

__all__ = ["TraceExplorer"]

#: Tabs after "call" and "layer": each builds its figure the first time it is opened.
_FIGURE_TABS: dict[str, Callable[[Trace], go.Figure]] = {
    "timeline": timeline,
    "spend": usage,
    "evolution": evolution,
    "attribution": attribution,
}


class TraceExplorer(widgets.VBox):
    """Explore a trace: click a node of the layer graph to see that call, pick a layer to compare.

    ``select(node)`` and ``show_layer(layer)`` do what a click and the layer buttons do.
    """

    def __init__(self, trace: Trace, *, measure: str | None = "carried"):
        self.trace = trace
        self.selected: str | None = None
        self.header = widgets.HTML(summary_html(trace))
        self.figure = go.FigureWidget(layer_graph(trace, measure=measure))
        for data in self.figure.data:
            if data.meta == NODE_TRACE:
                data.on_click(self._on_click)
        self.call_panel = widgets.HTML("<i>Click a node of the graph to see that call.</i>")
        layers = sorted({trace[n].layer for n in trace.calls()})
        self.layer_picker = widgets.ToggleButtons(
            options=[(f"layer {layer}", layer) for layer in layers],
            value=None,
            style={"button_width": "auto"},
        )
        self.layer_panel = widgets.HTML()
        self.layer_picker.observe(lambda change: self._render_layer(change["new"]), names="value")
        self.tabs = widgets.Tab(
            children=[self.call_panel, widgets.VBox([self.layer_picker, self.layer_panel])]
            + [widgets.VBox() for _ in _FIGURE_TABS],
            titles=["call", "layer side by side", *_FIGURE_TABS],
        )
        self.tabs.observe(lambda change: self._open_tab(change["new"]), names="selected_index")
        super().__init__([self.header, self.figure, self.tabs])
        if layers:
            self.layer_picker.value = layers[0]
        first = trace.aggregator() or (trace.calls() or [None])[-1]
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
        """Lay the responses of one layer side by side in the layer tab."""
        self.layer_picker.value = layer
        self.tabs.selected_index = 1

    def _render_layer(self, layer: int | None) -> None:
        if layer is not None:
            self.layer_panel.value = layer_html(self.trace, layer)

    def _on_click(self, data: object, points: object, state: object) -> None:
        for index in getattr(points, "point_inds", []):
            self.select(data.customdata[index])
            return

    def _open_tab(self, index: int | None) -> None:
        if index is None or index < 2:
            return
        holder = self.tabs.children[index]
        if not holder.children:
            build = list(_FIGURE_TABS.values())[index - 2]
            holder.children = [go.FigureWidget(build(self.trace))]
