"""The live view: the graph fills in as calls start, stream and finish, then becomes the explorer.

Driven without a kernel: the view is the run's on_call hook, and what it shows is read back from
its figure and panels."""

from __future__ import annotations

import asyncio

import moa_lab
from moa_lab import Agent, DebateConfig
from moa_lab.testing import FakeLLM, fake_config
from moa_lab.views import LiveView, TraceExplorer


def _snapshots(view):
    """Wrap a LiveView so every event is drawn and what it showed is kept."""
    shots = []

    def hook(trace, node):
        view(trace, node)
        view.draw()
        calls = view.figure.data[1]
        shots.append(
            {
                "nodes": list(calls.text),
                "symbols": list(calls.marker.symbol),
                "edges": sum(1 for x in view.figure.data[0].x if x is None),
                "answer": view.answer.value,
                "status": view.status.value,
            }
        )

    return hook, shots


def test_the_graph_fills_in_as_calls_start_stream_and_finish():
    view = LiveView(fps=1000)
    hook, shots = _snapshots(view)
    with FakeLLM(delay=0.05, token_seconds=0.03) as server:
        trace = moa_lab.run("Why?", fake_config(server.url, layers=3), cache=False,
                            trace_path=False, progress=False, on_call=hook)  # fmt: skip
    assert shots[0]["nodes"] == ["L1.0"] and shots[0]["symbols"] == ["circle-open"]
    assert any("words" in n for s in shots for n in s["nodes"])  # tokens shown as they arrive
    assert any("circle-dot" in s["symbols"] for s in shots)
    assert any("L3.0</b> (aggregator" in s["answer"] for s in shots)  # the answer streams
    last = shots[-1]
    assert sorted(last["nodes"]) == sorted(trace.calls()) and set(last["symbols"]) == {"circle"}
    assert last["edges"] == trace.graph.number_of_edges()
    assert "7</b> calls done, <b>0</b> in flight" in last["status"]
    view.finish(trace)
    assert len(view.children) == 1 and isinstance(view.children[0], TraceExplorer)


def test_a_debate_draws_rounds_and_model_text_is_escaped():
    evil = "<img src=x onerror=alert(1)> what is 6 x 7?"  # FakeLLM repeats the question
    view = LiveView(fps=1000)
    hook, shots = _snapshots(view)
    with FakeLLM(token_seconds=0.01) as server:
        agents = [Agent(model=m, base_url=server.url) for m in ("a", "b")]
        config = DebateConfig(agents=agents, rounds=2, decide="aggregate")
        moa_lab.run(evil, config, cache=False, trace_path=False, progress=False, on_call=hook)
    assert list(view.figure.layout.xaxis.ticktext) == ["round 1", "round 2", "round 3"]
    hovers = " ".join(h for s in [view.figure.data[1].hovertext] for h in s)
    streamed = [s["answer"] for s in shots if s["answer"]]
    assert any("&lt;img src=x" in a for a in streamed) and all("<img" not in a for a in streamed)
    assert "<img" not in hovers


def test_watch_shows_the_view_and_returns_the_trace(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    with FakeLLM() as server:
        trace = asyncio.run(
            moa_lab.views.watch("Why?", fake_config(server.url), cache=False, trace_path=False,
                                progress=False)
        )  # fmt: skip
    (view,) = shown
    assert isinstance(view, LiveView) and isinstance(view.children[0], TraceExplorer)
    assert view.children[0].trace is trace and trace.status == "complete"
