"""What the layer graph says about each call, for every strategy: its hover, its short label, its
marks (cache hit, reused, cut off, pruned, on the chosen path, the decision), the depth axis and the
title.

Invariant: every string taken from a trace (ids, model names, answers, states) is escaped with
``esc_plot`` or ``hover_text`` before it is returned; nothing here builds a figure.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from moa_lab._answers import short_answer
from moa_lab._trace import Call, Trace
from moa_lab.views._layout import count, depth_word, hover_text
from moa_lab.views._positions import satellite
from moa_lab.views._style import clip, esc_plot

__all__ = ["GraphNotes", "depth_ticks", "graph_title", "node_hover", "node_label"]

#: Thought states listed in a search call's hover.
_STATES_SHOWN = 4


def _states(call: Call) -> list[dict[str, Any]]:
    notes = call.annotations or {}
    states = notes.get("states") if call.role == "thought" else None
    return [s for s in states if isinstance(s, dict)] if isinstance(states, list) else []


@dataclass
class GraphNotes:
    """What the graph marks, read once from the trace: node ids by mark, and the label rules."""

    hits: list[str] = field(default_factory=list)
    """Answered from the call cache (nothing sent)."""
    reused: list[str] = field(default_factory=list)
    """Taken from a replay's source run (nothing sent)."""
    cut: list[str] = field(default_factory=list)
    """Cut off by the token cap."""
    errors: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    """Search calls none of whose proposed states was kept."""
    path: list[str] = field(default_factory=list)
    """Search calls on the path to the best final state."""
    decision: dict[str, Any] = field(default_factory=dict)
    """A debate's (or any strategy's) decision: method, answer, votes and the ``chosen`` call."""
    sampling_labels: bool = False
    """Labels show each call's sampling: some column has two calls of one model (one colour) whose
    settings differ."""
    votes: dict[str, str] = field(default_factory=dict)
    """For a majority decision: each last-round answer's short answer (what it voted for)."""
    common: str = ""
    """The sampling every call shares (``T0.7 ≤512``), or ``""`` when they differ."""

    @classmethod
    def of(cls, trace: Trace) -> GraphNotes:
        """Read the marks and label rules of a trace."""
        notes = cls(decision=dict(trace.graph.graph.get("decision") or {}))
        shared_colour = Counter()
        main = []
        for call in trace.records():
            for flag, bucket in (
                (call.cache_hit and not call.reused, notes.hits),
                (call.reused, notes.reused),
                (call.truncated, notes.cut),
                (call.error is not None, notes.errors),
                (bool((call.annotations or {}).get("chosen")), notes.path),
            ):
                if flag:
                    bucket.append(call.id)
            states = _states(call)
            if states and not any(s.get("kept") for s in states):
                notes.pruned.append(call.id)
            if not satellite(call):
                main.append(call)
                shared_colour[call.layer, call.model] += 1
        if notes.decision.get("method") == "majority":
            voters = [c for c in main if c.role == "debater" and c.response is not None]
            last = max((c.layer for c in voters), default=0)
            for call in voters:
                if call.layer == last and (said := short_answer(call.response)) is not None:
                    notes.votes[call.id] = said
        crowded = {c.model for c in main if shared_colour[c.layer, c.model] > 1}
        samplings = {c.sampling for c in main}
        notes.common = next(iter(samplings)) if len(samplings) == 1 else ""
        notes.sampling_labels = any(
            len({c.sampling for c in main if c.model == model}) > 1 for model in crowded
        )
        return notes


def node_label(call: Call, notes: GraphNotes) -> str:
    """The short text under a node: its id (✂ when cut off), what tells it apart from agents of
    the same colour (its sampling, or its sample index), a debater's vote in a majority decision,
    and for a search call how many of its states were kept."""
    lines = [esc_plot(call.id) + (" ✂" if call.truncated else "")]
    if notes.sampling_labels and call.sampling:
        lines.append(esc_plot(call.sampling))
    if call.replicate:  # the same request sent again: only the sample index tells them apart
        lines.append(f"sample {call.replicate}")
    if call.id in notes.votes:
        lines.append(f"votes {esc_plot(clip(notes.votes[call.id], 16))}")
    states = _states(call)
    if states:
        kept = sum(1 for s in states if s.get("kept"))
        lines.append(f"{kept} of {len(states)} kept" if kept else "pruned")
    return "<br>".join(lines)


def _value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, (int, float)) else "?"


def _search_lines(call: Call) -> list[str]:
    notes = call.annotations or {}
    states = _states(call)
    lines = []
    if states:
        kept = sum(1 for s in states if s.get("kept"))
        lines.append(
            f"proposed {len(states)} states, {kept} kept"
            + (" · <b>on the chosen path</b>" if notes.get("chosen") else "")
        )
        for record in states[:_STATES_SHOWN]:
            last = str(record.get("state", "")).rstrip("\n").rsplit("\n", 1)[-1]
            mark = "✓" if record.get("kept") else "✗"
            lines.append(f"{mark} {_value(record.get('value'))} · {esc_plot(clip(last, 60))}")
        if len(states) > _STATES_SHOWN:
            lines.append(f"… {len(states) - _STATES_SHOWN} more")
    elif call.role == "evaluator" and "value" in notes:
        judged = notes.get("states") if isinstance(notes.get("states"), list) else []
        lines.append(
            f"value {_value(notes['value'])} for {len(judged)} state{'s' * (len(judged) != 1)}"
            + (" (asked once, shared)" if notes.get("shared") else "")
        )
    return lines


def _tally(decision: dict[str, Any]) -> tuple[str, int, int]:
    """A majority decision's answer (escaped, clipped), its votes and all the votes cast."""
    votes = decision.get("votes")
    votes = {k: v for k, v in votes.items() if isinstance(v, int)} if isinstance(votes, dict) else {}
    answer = decision.get("answer")
    return esc_plot(clip(answer, 24)), votes.get(answer, 0), sum(votes.values())


def _decision_line(call: Call, decision: dict[str, Any]) -> str | None:
    if decision.get("chosen") != call.id:
        return None
    if decision.get("method") == "majority":
        answer, won, total = _tally(decision)
        return f"<b>chosen answer</b>: majority {answer} ({won} of {total} votes)"
    return "<b>chosen answer</b> (the aggregator's synthesis)"


def node_hover(trace: Trace, node: str, lines: int, notes: GraphNotes) -> str:
    """A call's hover: id, role, model and sampling; tokens and latency; what it is marked as; its
    search states or value; its response's first ``lines`` lines."""
    data = trace[node]
    latency = "latency –" if data.latency is None else f"{data.latency:.2f} s"
    setting = esc_plot(data.sampling) + (f" · sample {data.replicate}" if data.replicate else "")
    facts = [
        f"<b>{esc_plot(node)}</b> · {esc_plot(data.role)} · {esc_plot(data.model)}",
        setting or "sampling: the endpoint's defaults",
    ]
    if data.reused:
        facts.append(f"tokens {count(data.prompt_tokens)} in / {count(data.completion_tokens)} out")
        facts.append(f"<b>reused</b> from the source run (not sent; it took {latency} there)")
    elif data.cache_hit:
        facts.append(f"tokens {count(data.prompt_tokens)} in / {count(data.completion_tokens)} out")
        facts.append(f"<b>cache hit</b> (not sent; it took {latency} when first made)")
    else:
        facts.append(
            f"tokens {count(data.prompt_tokens)} in / {count(data.completion_tokens)} out · {latency}"
        )
    if data.lineage in ("edited", "recomputed"):
        facts.append(f"{data.lineage} in this replay")
    if data.truncated:
        reason = esc_plot(data.finish_reason or "")
        facts.append(f"<b>✂ cut off</b> at max_tokens (finish_reason {reason})")
    decided = _decision_line(data, notes.decision)
    if decided:
        facts.append(decided)
    elif node in notes.votes:
        agrees = notes.votes[node] == notes.decision.get("answer")
        facts.append(
            f"votes {esc_plot(clip(notes.votes[node], 30))} "
            + ("(with the majority)" if agrees else "(outvoted)")
        )
    facts += _search_lines(data)
    if data.error:
        facts.append(f"<b>error:</b> {esc_plot(clip(data.error, 90))}")
    if data.response is not None:
        facts += ["―――", hover_text(data.response, lines)]
    return "<br>".join(facts)


def _step_counts(trace: Trace) -> dict[int, tuple[int, int]]:
    """Per search step: states proposed and states kept."""
    counts: dict[int, tuple[int, int]] = {}
    for call in trace.records():
        states = _states(call)
        if states:
            proposed, kept = counts.get(call.layer, (0, 0))
            kept += sum(1 for s in states if s.get("kept"))
            counts[call.layer] = (proposed + len(states), kept)
    return counts


def depth_ticks(trace: Trace) -> tuple[list[int], list[str]]:
    """The depth axis: ``layer 1``, ``round 2``, ``step 3`` (with states kept of proposed), and
    ``aggregator`` for a column that holds only an aggregator. A finished run shows the depths it
    has; one in progress (or stopped) the depths it planned too."""
    layers = {trace[n].layer: trace[n].role for n in trace.calls()}
    last = max(layers, default=1)
    if trace.status != "complete":
        last = max(last, trace.layers)
    word = depth_word(trace)
    steps = _step_counts(trace)
    text = []
    for depth in range(1, last + 1):
        if layers.get(depth) == "aggregator":
            text.append("aggregator")
        elif depth in steps:
            proposed, kept = steps[depth]
            text.append(f"{word} {depth}<br>{kept} of {proposed} kept")
        else:
            text.append(f"{word} {depth}")
    return list(range(1, last + 1)), text


def graph_title(trace: Trace, notes: GraphNotes) -> str:
    """A short title naming what the graph shows for the trace's strategy."""
    strategy = (trace.graph.graph.get("config") or {}).get("strategy")
    if strategy == "debate":
        decision = notes.decision
        if decision.get("method") == "majority":
            answer, won, total = _tally(decision)
            return f"How the debate went · majority answer {answer} ({won} of {total} votes)"
        if decision:
            return "How the debate went · the aggregator decided"
        return "How the debate went"
    if strategy == "tot":
        steps = _step_counts(trace)
        proposed = sum(p for p, _ in steps.values())
        return f"How the search went · {len(steps)} steps, {proposed} states proposed"
    return "How the answer was built"
