"""``LiveView``: watch a run as it happens, then explore it.

Give a ``LiveView`` to a run as its ``on_call`` hook (or let ``watch`` do it): the graph fills in as
calls start (hollow), stream (their tokens so far on the node) and finish (filled in the model's
colour, a red cross for an error), the answer being written streams below it, and when the run ends
the view becomes the ordinary ``TraceExplorer``. It works for any strategy: nodes sit at their depth
(layer, round or step) and place in it.

Invariant: it reads only what the run's hook hands it (``trace.in_flight`` and the finished calls);
it never drives the run. Redrawing is throttled (at most ``fps`` times a second) so a fast stream or a
search of hundreds of calls cannot flood the notebook; the last state is always drawn. Model text is
escaped before it reaches the page.
"""

from __future__ import annotations

import time
from typing import Any

import ipywidgets as widgets
import plotly.graph_objects as go

from moa_lab._trace import Trace
from moa_lab.views._layout import depth_word, layout
from moa_lab.views._style import CSS, ERROR_COLOR, clip, esc, esc_plot, model_color

__all__ = ["LiveView", "watch"]

_PENDING = "#9ca3af"


class LiveView(widgets.VBox):
    """A run drawn while it runs: pass it as ``on_call`` (``arun(..., on_call=view)``), then call
    ``finish(trace)``; ``watch(prompt, config)`` does both and returns the trace."""

    def __init__(self, *, fps: float = 4.0):
        self.fps = fps
        self.trace: Trace | None = None
        self.last_drawn = 0.0
        self.rows: dict[tuple[int, str], int] = {}  # (depth, node) -> its row at that depth
        self.status = widgets.HTML("<i>waiting for the first call…</i>")
        self.figure = go.FigureWidget(self._empty())
        self.answer = widgets.HTML()
        super().__init__([widgets.HTML(f"<style>{CSS}</style>"), self.status, self.figure, self.answer])

    @staticmethod
    def _empty() -> go.Figure:
        figure = go.Figure()
        figure.add_scatter(x=[], y=[], mode="lines", line={"color": "#cbd5e1", "width": 1},
                           hoverinfo="skip", showlegend=False, name="reads")  # fmt: skip
        figure.add_scatter(
            x=[], y=[], mode="markers+text", textposition="bottom center", hoverinfo="text",
            marker={"size": 18}, showlegend=False, name="calls",
        )  # fmt: skip
        figure.update_yaxes(visible=False, autorange="reversed")
        return layout(figure, "Live: the run as it happens", height=420)

    def __call__(self, trace: Trace, node: str) -> None:
        """The run's ``on_call`` hook: note the event, redraw at most ``fps`` times a second."""
        self.trace = trace
        now = time.monotonic()
        if now - self.last_drawn >= 1 / self.fps:
            self.last_drawn = now
            self.draw()

    def _row(self, depth: int, node: str) -> int:
        key = (depth, node)
        if key not in self.rows:
            self.rows[key] = sum(1 for d, _ in self.rows if d == depth)
        return self.rows[key]

    def draw(self) -> None:
        """Draw what the run has done so far: finished calls, calls in flight, the streaming answer."""
        trace = self.trace
        if trace is None:
            return
        done = trace.records()
        flying = list(trace.in_flight.values())
        where: dict[str, tuple[int, int]] = {}
        xs, ys, texts, hovers, colors, symbols, sizes = [], [], [], [], [], [], []
        for call in done:
            where[call.id] = (call.layer, self._row(call.layer, call.id))
            xs.append(call.layer)
            ys.append(where[call.id][1])
            texts.append(esc_plot(call.id))
            tokens = call.completion_tokens
            hovers.append(
                f"<b>{esc_plot(call.id)}</b> {esc_plot(call.model)} · done"
                + (f" · {tokens} tokens" if tokens is not None else "")
                + (f"<br>error: {esc_plot(clip(call.error, 80))}" if call.error else "")
            )
            colors.append(ERROR_COLOR if call.error else model_color(call.model))
            symbols.append("x" if call.error else "circle")
            sizes.append(16)
        for flight in flying:
            call = flight.call
            where[call.id] = (call.layer, self._row(call.layer, call.id))
            xs.append(call.layer)
            ys.append(where[call.id][1])
            words = len(flight.text.split())
            texts.append(esc_plot(f"{call.id} · {words} words" if words else call.id))
            hovers.append(
                f"<b>{esc_plot(call.id)}</b> {esc_plot(call.model)} · running"
                + (f"<br>{esc_plot(clip(flight.text, 120))}" if flight.text else "")
            )
            colors.append("white")
            symbols.append("circle-open" if not flight.text else "circle-dot")
            sizes.append(18)
        edge_x: list[float | None] = []
        edge_y: list[float | None] = []
        for target, source in self._edges(trace):
            if source in where and target in where:
                edge_x += [where[source][0], where[target][0], None]
                edge_y += [where[source][1], where[target][1], None]
        word = depth_word(trace)
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = edge_x, edge_y
            calls = self.figure.data[1]
            calls.x, calls.y, calls.text, calls.hovertext = xs, ys, texts, hovers
            calls.marker.color, calls.marker.symbol, calls.marker.size = colors, symbols, sizes
            calls.marker.line = {"color": [_PENDING if c == "white" else "#111827" for c in colors],
                                 "width": 2}  # fmt: skip
            depths = sorted({x for x in xs})
            self.figure.layout.xaxis.tickvals = depths
            self.figure.layout.xaxis.ticktext = [f"{word} {d}" for d in depths]
            # room either side for the labels under the first and last columns
            self.figure.layout.xaxis.range = [depths[0] - 0.6, depths[-1] + 0.6] if depths else None
        self.status.value = (
            f"<div class='moa mathjax_ignore'>running: <b>{len(done)}</b> calls done, "
            f"<b>{len(flying)}</b> in flight</div>"
        )
        writing = next((f for f in reversed(flying) if f.text), None)
        if writing is not None:
            self.answer.value = (
                f"<div class='moa mathjax_ignore'><b>{esc(writing.call.id)}</b> "
                f"({esc(writing.call.role)}, {esc(writing.call.model)}) is writing:"
                f"<pre>{esc(writing.text)}</pre></div>"
            )

    @staticmethod
    def _edges(trace: Trace) -> list[tuple[str, str]]:
        edges = [(v, u) for u, v in trace.graph.edges]
        for flight in trace.in_flight.values():
            edges += [(flight.call.id, ref) for ref in flight.references]
        return edges

    def finish(self, trace: Trace) -> None:
        """The run ended: become the ordinary explorer of its trace."""
        from moa_lab.views._widgets import TraceExplorer

        self.trace = trace
        self.draw()
        self.children = [TraceExplorer(trace)]


async def watch(prompt: str | list[dict[str, Any]], config: Any, **options: Any) -> Trace:
    """Run ``arun(prompt, config, **options)`` with a ``LiveView`` shown below the cell; when the run
    ends the view becomes its ``TraceExplorer``. Returns the trace (raises as ``arun`` does; the view
    then shows the calls that finished)."""
    from IPython.display import display

    from moa_lab._run import arun

    view = LiveView()
    display(view)
    hook = options.pop("on_call", None)

    def both(trace: Trace, node: str) -> None:
        view(trace, node)
        if hook is not None:
            hook(trace, node)

    try:
        trace = await arun(prompt, config, on_call=both, **options)
    except BaseException:
        view.draw()
        view.status.value = "<b>the run stopped</b>; the graph shows the calls that finished"
        raise
    view.finish(trace)
    return trace
