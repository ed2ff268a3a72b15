"""The tree of thoughts of a search trace: every proposed state a node, from the calls' annotations.

A search trace's nodes are calls; the states they proposed live in each generation call's
``annotations["states"]`` (state, value, kept, rank), as ``tree_search`` and the ToT log import record
them. This rebuilds the tree the paper draws (Yao et al. 2023, Figure 2): the input as the root, each
state under the state it extends.

Invariant: works from the trace alone (no config needed), so a trace from a file, an import or an
older version gives the same tree.
"""

from __future__ import annotations

from typing import Any

import networkx as nx

__all__ = ["thought_tree"]

ROOT = "S0"


def thought_tree(trace: Any) -> nx.DiGraph:
    """The search's states as a tree: node ``S<step>.<rank>`` per proposed state, ``S0`` the input.

    Node attributes: ``step`` (0 for the root), ``rank`` (the state's place among its step's
    candidates), ``state`` (the whole partial solution), ``thought`` (what this step added),
    ``value`` (float, None if unknown), ``kept`` (bool), ``chosen`` (on the path to the best final
    state), ``output`` (among the final outputs) and ``call`` (the id of the call that proposed it).
    Edges go from a state to the states that extend it. A trace without a search (MoA, debate) gives
    the root alone.
    """
    tree = nx.DiGraph()
    tree.add_node(
        ROOT, step=0, rank=0, state="", thought=trace.prompt, value=None, kept=True, chosen=True,
        output=False, call=None,
    )  # fmt: skip
    outputs = list(trace.graph.graph.get("outputs") or [])
    by_step: dict[int, dict[str, str]] = {0: {"": ROOT}}  # step -> state text -> node
    records = []
    for call in trace.records():
        notes = call.annotations or {}
        states = notes.get("states")
        if call.role != "thought" or not isinstance(states, list):
            continue
        step = notes.get("step", call.layer)
        for record in states:
            if isinstance(record, dict) and isinstance(record.get("state"), str):
                records.append((int(step), call.id, record))
    for step, call_id, record in sorted(records, key=lambda r: (r[0], r[2].get("rank", 0))):
        state = record["state"]
        seen = by_step.setdefault(step, {})
        if state in seen:  # the same state from two calls (a duplicate candidate): one node
            continue
        node = f"S{step}.{record.get('rank', len(seen))}"
        parent, thought = _parent(by_step.get(step - 1, {}), state)
        value = record.get("value")
        tree.add_node(
            node,
            step=step,
            rank=record.get("rank", len(seen)),
            state=state,
            thought=thought,
            value=float(value) if isinstance(value, (int, float)) else None,
            kept=bool(record.get("kept")),
            chosen=False,
            output=state in outputs,
            call=call_id,
        )
        seen[state] = node
        if parent is not None:
            tree.add_edge(parent, node)
    best = outputs[0] if outputs else None
    node = next((n for n, d in tree.nodes(data=True) if d["state"] == best and d["output"]), None)
    while node is not None and node != ROOT:
        tree.nodes[node]["chosen"] = True
        node = next(iter(tree.predecessors(node)), None)
    return tree


def _parent(before: dict[str, str], state: str) -> tuple[str | None, str]:
    """The longest earlier state ``state`` extends, and what it added (stripped)."""
    best = max((s for s in before if state.startswith(s)), key=len, default=None)
    if best is None:
        return None, state.strip()
    return before[best], state[len(best) :].strip()
