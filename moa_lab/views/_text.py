"""A trace as plain text for a terminal: what the run was, one line per call, totals, the answer.

Invariant: plain strings only (no plotly, no widgets), so ``moa-lab show`` stays fast; every control
character from the trace is shown escaped, never sent to the terminal raw.
"""

from __future__ import annotations

from typing import Any

from moa_lab._text import clip, terminal_safe
from moa_lab._trace import Call, Trace
from moa_lab._trace.attributes import describe_replay

__all__ = ["run_lines", "summary_text"]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def run_lines(trace: Trace) -> list[str]:
    """What the run was, in a line or three: its strategy and shape, a replay's parent and edits, an
    import's source, a debate's decision (shared by ``show`` and the summary card)."""
    attrs = trace.graph.graph
    config = attrs.get("config") or {}
    strategy = config.get("strategy")
    if strategy == "debate":
        agents = config.get("agents") or []
        shape = f"debate (Du et al. 2023): {len(agents)} agents, {config.get('rounds')} rounds"
    elif strategy == "tot":
        shape = (
            f"Tree of Thoughts (Yao et al. 2023), {config.get('task')} task: {trace.layers} steps, "
            f"{config.get('generation')} {config.get('evaluation')} x{config.get('n_evaluate_sample')}, "
            f"keep {config.get('breadth')}"
        )
    elif strategy == "custom":
        shape = f"{clip(str(config.get('name')), 40)} (a strategy of your own): depth {trace.layers}"
    elif strategy:
        shape = f"{clip(str(strategy), 40)}: depth {trace.layers}"
    else:
        shape = f"Mixture-of-Agents: {trace.layers} layers"
    lines = [f"run {trace.run_id} ({trace.status}), {shape}"]
    said = describe_replay(attrs)
    if said:
        lines.append(said)
    imported = attrs.get("imported")
    if isinstance(imported, dict):
        lines.append(
            f"imported from {imported.get('file')} (entry {imported.get('entry')}); the log keeps "
            "no times, no per-call tokens and no value calls"
        )
    decision = attrs.get("decision")
    if isinstance(decision, dict) and decision.get("method"):
        answer = decision.get("answer")
        shown = f": {clip(str(answer), 40)}" if answer is not None else ""
        lines.append(f"decided by {decision.get('method')}{shown}")
    return lines


def _note(call: Call) -> str:
    """What the call's line ends with: an error, flags, a search's verdict, or the answer's start."""
    if call.error:
        return f"error: {clip(call.error, 80)}"
    flags = "".join(
        f"[{flag}] "
        for flag, on in (
            ("cut off", call.truncated),
            ("reasoned", call.reasoning is not None),
            ("repaired", bool(call.warnings)),
        )
        if on
    )
    notes: dict[str, Any] = dict(call.annotations or {})
    states = notes.get("states")
    if call.role == "thought" and isinstance(states, list) and states and isinstance(states[0], dict):
        kept = sum(1 for s in states if s.get("kept"))
        chosen = "[chosen] " if notes.get("chosen") else ""
        return f"{flags}{chosen}{len(states)} states, {kept} kept"
    value = notes.get("value")
    # An imported or crafted file may hold anything here: a note is written only from a number.
    if call.role == "evaluator" and isinstance(value, (int, float)) and not isinstance(value, bool):
        shared = len(states) if isinstance(states, list) else 0
        also = f" for {shared} states" if shared > 1 else ""
        return f"{flags}value {value:.3g}{also}: {clip(call.response or '', 30)}"
    return flags + clip(call.response or "", 50)


def summary_text(trace: Trace) -> str:
    """A readable summary: the run, one line per call (model and sampling settings, tokens, seconds
    served, cache), the totals and the final answer."""
    lines = [
        *run_lines(trace),
        f"prompt: {clip(trace.prompt, 100)}",
        "",
        f"{'node':<9}{'role':<11}{'model':<28}{'settings':<18}{'in':>6}{'out':>6}{'secs':>7}  "
        "cache  note",
    ]
    for call in trace.records():
        latency = "-" if call.latency is None or call.cache_hit else f"{call.latency:.2f}"
        cache = "reuse" if call.reused else "hit" if call.cache_hit else "-"
        lines.append(
            f"{clip(call.id, 8):<9}{call.role:<11}{clip(call.model, 27):<28}"
            f"{clip(call.sampling, 17):<18}"
            f"{_count(call.prompt_tokens):>6}{_count(call.completion_tokens):>6}{latency:>7}  "
            f"{cache:<5}  {_note(call)}"
        )
    totals = trace.totals()
    spent = "unknown" if totals.spent is None else f"${totals.spent:.4f}"
    saved = "unknown" if totals.saved is None else f"${totals.saved:.4f}"
    wall = "unknown" if trace.graph.graph.get("imported") else f"{totals.wall_time:.2f}s"
    lines += [
        "",
        f"{totals.calls} calls, {totals.cache_hits + totals.reused} from cache or reused, "
        f"{totals.errors} errors; {_count(totals.sent_prompt_tokens)} prompt + "
        f"{_count(totals.sent_completion_tokens)} completion tokens sent; cost {spent} "
        f"(cache saved {saved}); wall {wall}",
        "",
        "final answer:",
        trace.final if trace.final is not None else "(none: the run did not finish)",
    ]
    # A crafted trace may hold escape sequences (clear the screen, write the clipboard): show them.
    return terminal_safe("\n".join(lines))
