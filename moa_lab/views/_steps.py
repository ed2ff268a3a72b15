"""What one level of a trace's DAG is called and what it holds, for any strategy.

A mixture has layers of proposers and then an aggregator, a debate rounds of debaters (and maybe an
aggregator), a Tree-of-Thoughts search steps of thoughts (each proposing states, the best kept) and
their evaluations; a strategy of one's own has levels of whatever roles it wrote. The summary card,
the layer panel, the explorer and the HTML export all name a level with ``depth_title``.

Invariant: plain strings only (no markup: callers escape them), no plotly, no widgets.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from moa_lab._text import clip
from moa_lab._tot.tree import thought_tree
from moa_lab._trace import Call, Trace

__all__ = [
    "answer_call",
    "call_states",
    "depth_title",
    "depth_word",
    "depths",
    "evaluation",
    "has_search",
    "role_summary",
    "search_verdict",
    "step_counts",
]

#: How a level's title names several calls of one role.
_PLURAL = {
    "proposer": "proposers",
    "debater": "debaters",
    "thought": "thoughts",
    "evaluator": "evaluations",
}


#: What a strategy calls one level of its DAG: MoA's layers, a debate's rounds, a search's steps.
_DEPTH_WORDS = {None: "layer", "moa": "layer", "debate": "round", "tot": "step"}


def depth_word(trace: Trace) -> str:
    """``layer``, ``round`` or ``step``: the word for the trace's depth axis (``depth`` otherwise)."""
    strategy = (trace.graph.graph.get("config") or {}).get("strategy")
    return _DEPTH_WORDS.get(strategy, "depth")


def depths(trace: Trace) -> list[int]:
    """The levels (layers, rounds, steps) that have calls, in order."""
    return sorted({call.layer for call in trace.records()})


def call_states(call: Call) -> list[Mapping[str, Any]]:
    """The states a search's thought call proposed, as its annotations hold them (``state``,
    ``value``, ``kept``, ``rank``); ``[]`` for any other call or a malformed annotation."""
    states = (call.annotations or {}).get("states")
    if call.role != "thought" or not isinstance(states, list):
        return []
    return [s for s in states if isinstance(s, Mapping) and isinstance(s.get("state"), str)]


def evaluation(call: Call) -> tuple[float, list[str]] | None:
    """An evaluator call's value and the states it judged; None for any other call."""
    notes = call.annotations or {}
    value = notes.get("value")
    if call.role != "evaluator" or not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    states = notes.get("states")
    judged = [s for s in states if isinstance(s, str)] if isinstance(states, list) else []
    return float(value), judged


def step_counts(calls: list[Call]) -> tuple[int, int, int]:
    """States proposed, states kept and evaluator calls among ``calls`` (one step of a search)."""
    states = [s for call in calls for s in call_states(call)]
    kept = sum(1 for s in states if s.get("kept") is True)
    return len(states), kept, sum(1 for call in calls if call.role == "evaluator")


def role_summary(calls: list[Call]) -> str:
    """What the calls of one level are: ``proposers``, ``aggregator``, ``12 states proposed, 5 kept;
    27 evaluations``, or the roles of a strategy of one's own with their counts."""
    proposed, kept, evaluations = step_counts(calls)
    if proposed:
        said = f"{proposed} states proposed, {kept} kept"
        return said + (f"; {evaluations} evaluations" if evaluations else "")
    roles = Counter(call.role for call in calls)
    if len(roles) == 1:
        role, count = next(iter(roles.items()))
        return _PLURAL.get(role, f"{clip(role, 30)}s") if count > 1 else clip(role, 30)
    return ", ".join(
        f"{count} {_PLURAL.get(role, clip(role, 30) + 's') if count > 1 else clip(role, 30)}"
        for role, count in roles.items()
    )


def depth_title(trace: Trace, depth: int, calls: list[Call] | None = None) -> str:
    """A level's title: ``Layer 1 (proposers)``, ``Round 2 (debaters)``, ``Step 2 (12 states
    proposed, 5 kept; 27 evaluations)``; ``calls`` when the caller has the level's calls at hand."""
    calls = trace.records(depth) if calls is None else calls
    word = depth_word(trace).capitalize()
    return f"{word} {depth} ({role_summary(calls)})" if calls else f"{word} {depth}"


def answer_call(trace: Trace) -> str | None:
    """The call the answer came from, which the explorer and the export show first: the
    aggregator, the debater a vote chose, the thought that proposed a search's best output, or
    else the last call (None for a trace without calls)."""
    found = trace.aggregator()
    decision = trace.graph.graph.get("decision")
    if found is None and isinstance(decision, Mapping) and decision.get("chosen") in trace:
        found = decision["chosen"]
    if found is None:
        chosen = [d for _, d in thought_tree(trace).nodes(data=True) if d["chosen"] and d["call"]]
        found = max(chosen, key=lambda d: d["step"])["call"] if chosen else None
    return found if found in trace else (trace.calls() or [None])[-1]


def has_search(trace: Trace) -> bool:
    """True when the trace holds a search's tree of thoughts (a ``ToTConfig`` run or an import)."""
    return thought_tree(trace).number_of_nodes() > 1


def search_verdict(trace: Trace) -> str | None:
    """For a Game of 24 search: whether its answer is right by ``moa_lab.experiments.game24.check``
    (``correct`` or ``wrong``); None for any other run or one without an answer."""
    config = trace.graph.graph.get("config") or {}
    if config.get("strategy") != "tot" or config.get("task") != "game24" or trace.final is None:
        return None
    from moa_lab.experiments.game24 import check

    return "correct" if check(trace.prompt, trace.final) else "wrong"
