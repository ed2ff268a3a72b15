"""A trace as plain text for a terminal: one line per call, then the totals and the final answer.

Invariant: plain strings only (no plotly, no widgets), so ``moa-lab show`` stays fast; every control
character from the trace is shown escaped, never sent to the terminal raw.
"""

from __future__ import annotations

from moa_lab._text import clip, terminal_safe
from moa_lab._trace import Trace

__all__ = ["summary_text"]


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)


def summary_text(trace: Trace) -> str:
    """A readable per-layer summary: models, tokens, latency, cache hits, errors and the answer."""
    lines = [
        f"run {trace.run_id} ({trace.status}), {trace.layers} layers",
        f"prompt: {clip(trace.prompt, 100)}",
        "",
        f"{'node':<7}{'role':<11}{'model':<34}{'in':>6}{'out':>6}{'secs':>7}  cache  note",
    ]
    for call in trace.records():
        latency = "-" if call.latency is None else f"{call.latency:.2f}"
        flags = "".join(
            f"[{flag}] "
            for flag, on in (
                ("cut off", call.truncated),
                ("reasoned", call.reasoning is not None),
                ("repaired", bool(call.warnings)),
            )
            if on
        )
        note = f"error: {clip(call.error, 80)}" if call.error else flags + clip(call.response or "", 50)
        lines.append(
            f"{call.id:<7}{call.role:<11}{clip(call.model, 33):<34}"
            f"{_count(call.prompt_tokens):>6}{_count(call.completion_tokens):>6}{latency:>7}  "
            f"{'hit' if call.cache_hit else '-':<5}  {note}"
        )
    totals = trace.totals()
    spent = "unknown" if totals.spent is None else f"${totals.spent:.4f}"
    saved = "unknown" if totals.saved is None else f"${totals.saved:.4f}"
    lines += [
        "",
        f"{totals.calls} calls, {totals.cache_hits + totals.reused} from cache, {totals.errors} errors; "
        f"{_count(totals.sent_prompt_tokens)} prompt + {_count(totals.sent_completion_tokens)} "
        f"completion tokens sent; cost {spent} (cache saved {saved}); wall {totals.wall_time:.2f}s",
        "",
        "final answer:",
        trace.final if trace.final is not None else "(none: the run did not finish)",
    ]
    # A crafted trace may hold escape sequences (clear the screen, write the clipboard): show them.
    return terminal_safe("\n".join(lines))
