"""Shared look of the views: model colours, status colours, escaping and the panels' stylesheet.

Invariant: every string that comes from a trace (model text, but also model names and node ids, since
a trace file may come from anyone) goes through ``esc`` before it reaches HTML or plotly text.
"""

from __future__ import annotations

import hashlib
import html

from moa_lab._text import clip
from moa_lab._trace import Trace

__all__ = [
    "CSS",
    "ERROR_COLOR",
    "FONT",
    "HIT_COLOR",
    "PALETTE",
    "clip",
    "esc",
    "esc_plot",
    "model_color",
    "model_colors",
]

#: Model colours (Tableau 10 without its red, which marks errors), one per model by a hash of its name.
PALETTE = (
    "#4E79A7",
    "#F28E2B",
    "#59A14F",
    "#B07AA1",
    "#76B7B2",
    "#EDC948",
    "#9C755F",
    "#FF9DA7",
    "#86BCB6",
    "#BAB0AC",
)
ERROR_COLOR = "#D62728"
HIT_COLOR = "#1B9E77"
FONT = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


def esc(value: object) -> str:
    """HTML-escape any value (quotes too, so the result is safe inside attributes)."""
    return html.escape(str(value), quote=True)


def esc_plot(value: object) -> str:
    """Escape a value for plotly text: ``&``, ``<``, ``>`` only (plotly shows ``&quot;`` literally)."""
    return html.escape(str(value), quote=False)


def model_color(model: str) -> str:
    """The colour of a model, the same in every trace and figure (a hash of its name)."""
    digest = hashlib.sha256(model.encode("utf-8", "surrogatepass")).digest()
    return PALETTE[int.from_bytes(digest[:4], "big") % len(PALETTE)]


def model_colors(trace: Trace) -> dict[str, str]:
    """A colour per model of the trace: each model's own ``model_color``, so one model looks the
    same in every trace; when two models of one trace share it, the later one (in run order) takes
    the next free colour of the palette."""
    colors: dict[str, str] = {}
    for node in trace.calls():
        model = trace[node].model
        if model in colors:
            continue
        color = model_color(model)
        if color in colors.values() and len(colors) < len(PALETTE):
            start = PALETTE.index(color)
            free = (PALETTE[(start + k) % len(PALETTE)] for k in range(len(PALETTE)))
            color = next(c for c in free if c not in colors.values())
        colors[model] = color
    return colors


#: Stylesheet of the HTML panels (widgets, notebook summary, export); every class starts ``moa-``.
CSS = """
.moa { font-family: $FONT; font-size: 13px; line-height: 1.45; color: #1f2937; }
.moa h3, .moa h4 { margin: 10px 0 4px; font-weight: 600; }
.moa .moa-muted { color: #6b7280; }
.moa pre { white-space: pre-wrap; word-break: break-word; background: #f8fafc; color: #111827;
  border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px; margin: 4px 0; max-height: 30em;
  overflow: auto; font: 12px/1.5 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.moa pre.moa-error { background: #fef2f2; border-color: #fecaca; color: #991b1b; }
.moa .moa-badge { display: inline-block; padding: 0 7px; margin-left: 4px; border-radius: 9px;
  font-size: 11px; background: #eef2f7; color: #374151; vertical-align: 1px; }
.moa .moa-badge.moa-hit { background: #d1fae5; color: #065f46; }
.moa .moa-badge.moa-err { background: #fee2e2; color: #991b1b; }
.moa .moa-badge.moa-warn { background: #fef3c7; color: #92400e; }
.moa .moa-dot { display: inline-block; width: 10px; height: 10px; border-radius: 50%;
  margin-right: 5px; vertical-align: -1px; }
.moa table.moa-kv { border-collapse: collapse; margin: 4px 0 8px; }
.moa table.moa-kv th { text-align: left; font-weight: 500; color: #6b7280; padding: 1px 14px 1px 0;
  vertical-align: top; white-space: nowrap; }
.moa table.moa-kv td { padding: 1px 0; }
.moa table.moa-layers { border-collapse: collapse; margin: 6px 0; }
.moa table.moa-layers th, .moa table.moa-layers td { padding: 2px 12px 2px 0; text-align: left;
  border-bottom: 1px solid #f1f5f9; }
.moa table.moa-layers th { color: #6b7280; font-weight: 500; }
.moa details { margin: 4px 0; }
.moa summary { cursor: pointer; }
.moa .moa-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
  gap: 10px; }
.moa .moa-card { border: 1px solid #e5e7eb; border-top-width: 4px; border-radius: 8px;
  padding: 6px 10px; background: #fff; }
.moa .moa-card pre { max-height: 22em; }
.moa .moa-diff { white-space: pre-wrap; }
.moa .moa-box { border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px 12px; background: #fff; }
.moa .moa-final { border-left: 4px solid #4E79A7; }
""".replace("$FONT", FONT)
