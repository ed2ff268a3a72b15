"""Views of traces and experiments: plotly figures, widgets, HTML panels, the HTML export, text.

Figures are pure functions ``trace -> plotly.graph_objects.Figure``; the widgets compose them.
Importing this package installs the trace's notebook display (the summary card) and nothing heavy:
each public name loads its module on first use, so ``summary_html`` and ``summary_text`` work without
importing plotly or ipywidgets.

Invariant: views import the core, never the reverse (the core reaches the summary card only through
the renderer installed here), and all trace text is escaped before it becomes HTML or plotly text.
"""

from __future__ import annotations

from moa_lab._lazy import lazy_exports
from moa_lab._trace import set_html_renderer
from moa_lab.views._card import summary_html

__all__ = [
    "COST_AXES",
    "CSS",
    "NODE_TRACE",
    "PALETTE",
    "SELECTED_TRACE",
    "STATUS_COLORS",
    "Attempt",
    "CompareView",
    "LiveView",
    "PromptLab",
    "TraceBrowser",
    "TraceExplorer",
    "attribution",
    "bars_figure",
    "by_layers_figure",
    "by_proposers_figure",
    "call_diff_html",
    "call_html",
    "compare_figure",
    "diff_html",
    "evolution",
    "experiment_figures",
    "export_html",
    "finals_html",
    "layer_graph",
    "layer_html",
    "model_colors",
    "node_positions",
    "pareto_figure",
    "provenance_figure",
    "provenance_html",
    "reference_reuse",
    "search_calls",
    "search_tree",
    "summary_html",
    "summary_text",
    "timeline",
    "to_html",
    "totals_html",
    "usage",
    "watch",
    "write_figures",
]

#: Public name -> the module of this package that defines it.
_HOME = {
    "CSS": "_style",
    "PALETTE": "_style",
    "model_colors": "_style",
    "call_html": "_html",
    "diff_html": "_html",
    "layer_html": "_levels",
    "provenance_figure": "_provenance",
    "provenance_html": "_provenance",
    "search_calls": "_search",
    "TraceBrowser": "_browser",
    "summary_text": "_text",
    "NODE_TRACE": "_graph",
    "SELECTED_TRACE": "_graph",
    "layer_graph": "_graph",
    "node_positions": "_graph",
    "attribution": "_reuse",
    "evolution": "_reuse",
    "reference_reuse": "_reuse",
    "search_tree": "_tree",
    "timeline": "_timeline",
    "usage": "_usage",
    "TraceExplorer": "_widgets",
    "LiveView": "_live",
    "watch": "_live",
    "export_html": "_export",
    "to_html": "_export",
    "STATUS_COLORS": "_compare_view",
    "CompareView": "_compare_view",
    "call_diff_html": "_compare_view",
    "compare_figure": "_compare_view",
    "finals_html": "_compare_view",
    "totals_html": "_compare_view",
    "Attempt": "_prompt_lab",
    "PromptLab": "_prompt_lab",
    "COST_AXES": "_experiment_figures",
    "bars_figure": "_experiment_figures",
    "by_layers_figure": "_experiment_figures",
    "by_proposers_figure": "_experiment_figures",
    "experiment_figures": "_experiment_figures",
    "pareto_figure": "_experiment_figures",
    "write_figures": "_experiment_figures",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOME)


set_html_renderer(summary_html)
