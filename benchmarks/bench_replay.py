"""Replay cost: the calls each kind of edit makes, against the minimum the graph allows.

A 3-layer mixture (3 proposers in layers 1 and 2, then the aggregator: 7 calls) runs once against a
loopback server; then each edit is replayed from the trace alone (no cache) and the requests the
server receives are counted. The minimum is computed from the trace's graph, independently of the
replay code: the calls whose own request the edit changes, plus every call downstream of them
(``networkx.descendants``); an added proposer counts itself and what reads it. Goal: calls == minimum.

    .venv/bin/python benchmarks/bench_replay.py
"""

from __future__ import annotations

import networkx as nx

import moa_lab
from moa_lab import (
    AddProposer,
    AggregatorTemplate,
    NodeMessage,
    NodeParams,
    ProposerTemplate,
    RemoveProposer,
    UserPrompt,
    replay,
)
from moa_lab.testing import FakeLLM, fake_config


def minimum(trace: moa_lab.Trace, changed: set[str], added_layer: int | None = None) -> int:
    """Calls an edit must make: the changed calls, everything downstream, and an added proposer."""
    graph = trace.graph
    reached = set(changed)
    for node in changed:
        reached |= nx.descendants(graph, node)
    if added_layer is not None:
        reached |= {n for n in graph if trace[n].layer == added_layer + 1}
        reached |= {d for n in list(reached) for d in nx.descendants(graph, n)}
        return len(reached) + 1
    return len(reached)


def main() -> None:
    with FakeLLM() as server:
        trace = moa_lab.run(
            "Why is the sky blue?",
            fake_config(server.url, layers=3),
            cache=False,
            trace_path=False,
            progress=False,
        )
        layer2 = set(trace.calls(2))
        cases = [
            ("no edit", [], set(), None),
            ("aggregator template", [AggregatorTemplate("Merge:\n{references}")], {"L3.0"}, None),
            (
                "proposer template (layers > 1)",
                [ProposerTemplate("Improve:\n{references}")],
                layer2,
                None,
            ),
            ("user prompt", [UserPrompt("Why is the sea blue?")], set(trace.calls()), None),
            (
                "system message of L2.1",
                [NodeMessage("L2.1", "system", "Be brief. {references}")],
                {"L2.1"},
                None,
            ),
            ("user message of L1.0", [NodeMessage("L1.0", "user", "Why, briefly?")], {"L1.0"}, None),
            ("model of L2.1", [NodeParams("L2.1", model="delta")], {"L2.1"}, None),
            ("temperature of L1.2", [NodeParams("L1.2", temperature=0.1)], {"L1.2"}, None),
            ("max_tokens of the aggregator", [NodeParams("L3.0", max_tokens=64)], {"L3.0"}, None),
            ("add a proposer to layer 2", [AddProposer("delta", layer=2)], set(), 2),
            ("remove proposer L2.1", [RemoveProposer("L2.1")], {"L3.0"}, None),
            ("remove proposer L1.1", [RemoveProposer("L1.1")], layer2, None),
        ]
        rows = []
        for name, edits, changed, added in cases:
            before = len(server.chat_requests())
            replay(trace, edits, cache=False, trace_path=False, progress=False)
            rows.append((name, len(server.chat_requests()) - before, minimum(trace, changed, added)))
    print("replay of a 3-layer run (7 calls) from its trace alone, no cache")
    print(f"{'edit':<34}{'calls':>7}{'minimum':>9}")
    for name, calls, least in rows:
        print(f"{name:<34}{calls:>7}{least:>9}")
    met = all(calls == least for _, calls, least in rows)
    print(f"goal: every edit makes exactly its minimum -> {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
