"""Views of a trace: plotly figures, the ``TraceExplorer`` widget, HTML panels and the HTML export.

Figures are pure functions ``trace -> plotly.graph_objects.Figure``; the widget composes them. Names
load lazily, so ``summary_html`` (a trace's notebook display) and ``add_command`` (the CLI) work
without importing plotly or ipywidgets. Invariant: views import the core, never the reverse, and all
trace text is escaped before it becomes HTML.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CSS",
    "NODE_TRACE",
    "PALETTE",
    "SELECTED_TRACE",
    "CompareView",
    "PromptLab",
    "TraceExplorer",
    "add_command",
    "attribution",
    "call_html",
    "compare_figure",
    "diff_html",
    "evolution",
    "export_html",
    "layer_graph",
    "layer_html",
    "model_colors",
    "node_positions",
    "reference_reuse",
    "summary_html",
    "timeline",
    "to_html",
    "usage",
]

_HOME = {
    "CSS": "_style",
    "PALETTE": "_style",
    "model_colors": "_style",
    "call_html": "_html",
    "diff_html": "_html",
    "layer_html": "_html",
    "summary_html": "_html",
    "NODE_TRACE": "_figures",
    "SELECTED_TRACE": "_figures",
    "attribution": "_figures",
    "evolution": "_figures",
    "layer_graph": "_figures",
    "node_positions": "_figures",
    "reference_reuse": "_figures",
    "timeline": "_figures",
    "usage": "_figures",
    "TraceExplorer": "_widgets",
    "export_html": "_export",
    "to_html": "_export",
    "add_command": "_cli",
    "CompareView": "compare",
    "compare_figure": "compare",
    "PromptLab": "prompt_lab",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module 'moa_lab.views' has no attribute {name!r}")
    value = getattr(import_module(f"moa_lab.views.{_HOME[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
