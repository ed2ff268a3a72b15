"""Compare two traces call by call: what a replay (or any second run) changed, and what it cost.

Calls are aligned by (layer, index); each pair gets a word diff of the responses (and of the prompts
when they differ) and the deltas of tokens, latency and cost, and the two final answers are set side
by side. Pure data (no plotting, no widgets): the views draw it.

Invariant: deltas are ``right - left`` and None (never 0) when either side is unknown, and a trace
compared with itself has no differences.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from moa_lab._analysis import word_diff
from moa_lab._cache import canonical_json
from moa_lab._trace import Trace, node_id

__all__ = ["CallDiff", "Comparison", "by_position", "compare", "run_totals"]

#: The parts of a call whose difference makes a pair "changed".
_PARTS = ("model", "params", "messages", "response", "error")

Diff = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class CallDiff:
    """One aligned pair of calls: which parts differ, the word diffs, and the deltas."""

    node: str
    layer: int
    index: int
    status: str
    """``same``, ``changed``, ``added`` (only in the right trace) or ``removed`` (only in the left)."""
    changed: tuple[str, ...]
    """Which of model, params, messages, response, error differ."""
    left_model: str | None
    right_model: str | None
    left_response: str | None
    right_response: str | None
    response_diff: Diff
    """Word diff of the responses as ``(op, text)`` runs (``equal``/``delete``/``insert``)."""
    left_prompt: str | None
    right_prompt: str | None
    """The messages sent, as text (``[role]`` then the content, per message)."""
    prompt_diff: Diff
    """Word diff of the messages sent, when they differ (empty otherwise)."""
    prompt_tokens: float | None
    completion_tokens: float | None
    latency: float | None
    cost: float | None
    lineage: str | None
    """How the right call came about in a replay: ``reused``, ``edited``, ``recomputed`` (else None)."""


@dataclass(frozen=True)
class Comparison:
    """Two traces compared: the aligned calls, the final answers and the run totals."""

    left: str
    right: str
    """Run ids of the two traces."""
    calls: tuple[CallDiff, ...]
    left_final: str | None
    right_final: str | None
    final_diff: Diff
    totals: Mapping[str, Mapping[str, Any]]
    """``{"left": ..., "right": ..., "delta": ...}``, each as ``run_totals`` gives it."""

    @property
    def differences(self) -> list[CallDiff]:
        """The pairs that are not the same."""
        return [c for c in self.calls if c.status != "same"]

    @property
    def identical(self) -> bool:
        """True when every call and the final answer are the same."""
        return not self.differences and self.left_final == self.right_final

    def __getitem__(self, node: str) -> CallDiff:
        for call in self.calls:
            if call.node == node:
                return call
        raise KeyError(node)

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-ready data."""
        return asdict(self) | {"identical": self.identical}

    def to_pandas(self):
        """One row per aligned pair: status, models, what changed and the deltas."""
        import pandas as pd

        columns = ("node", "status", "left_model", "right_model", "lineage")
        deltas = ("prompt_tokens", "completion_tokens", "latency", "cost")
        return pd.DataFrame(
            [
                {k: getattr(c, k) for k in columns}
                | {"changed": ", ".join(c.changed)}
                | {f"Δ {k}": getattr(c, k) for k in deltas}
                for c in self.calls
            ]
        )

    def __repr__(self) -> str:
        changed = ", ".join(c.node for c in self.differences) or "nothing"
        return f"<Comparison {self.left} → {self.right}: {changed} changed>"


def _delta(left: float | None, right: float | None) -> float | None:
    return None if left is None or right is None else right - left


def _usage(data: Mapping[str, Any] | None, key: str) -> float | None:
    usage = (data or {}).get("usage") or {}
    return usage.get(key)


def _prompt_text(data: Mapping[str, Any] | None) -> str | None:
    if data is None:
        return None
    return "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in data.get("messages") or [])


def _pair(node: str, left: Mapping[str, Any] | None, right: Mapping[str, Any] | None) -> CallDiff:
    either: Mapping[str, Any] = right if right is not None else left  # type: ignore[assignment]
    if left is None or right is None:
        changed: tuple[str, ...] = _PARTS
        status = "added" if left is None else "removed"
    else:
        changed = tuple(p for p in _PARTS if canonical_json(left.get(p)) != canonical_json(right.get(p)))
        status = "changed" if changed else "same"
    left_response = (left or {}).get("response")
    right_response = (right or {}).get("response")
    left_prompt, right_prompt = _prompt_text(left), _prompt_text(right)
    return CallDiff(
        node=node,
        layer=either["layer"],
        index=either["index"],
        status=status,
        changed=changed,
        left_model=(left or {}).get("model"),
        right_model=(right or {}).get("model"),
        left_response=left_response,
        right_response=right_response,
        response_diff=tuple(word_diff(left_response, right_response)),
        left_prompt=left_prompt,
        right_prompt=right_prompt,
        prompt_diff=tuple(word_diff(left_prompt, right_prompt)) if "messages" in changed else (),
        prompt_tokens=_delta(_usage(left, "prompt_tokens"), _usage(right, "prompt_tokens")),
        completion_tokens=_delta(_usage(left, "completion_tokens"), _usage(right, "completion_tokens")),
        latency=_delta((left or {}).get("latency"), (right or {}).get("latency")),
        cost=_delta((left or {}).get("cost"), (right or {}).get("cost")),
        lineage=(right or {}).get("lineage"),
    )


def run_totals(trace: Trace) -> dict[str, Any]:
    """Calls, calls sent, tokens and cost of the whole answer (reused calls included), and spend.

    ``cost`` is what every call of the answer cost when it was made; ``spent`` what this run sent
    (calls not reused or cached); either is None when a model's price is unknown.
    """
    nodes = [trace[n] for n in trace.calls()]
    sent = [d for d in nodes if not d["cache_hit"]]

    def dollars(chosen: list[Mapping[str, Any]]) -> float | None:
        costs = [d["cost"] for d in chosen if not d["error"]]
        return None if any(c is None for c in costs) else float(sum(costs))

    return {
        "calls": len(nodes),
        "sent": len(sent),
        "prompt_tokens": sum(_usage(d, "prompt_tokens") or 0 for d in nodes),
        "completion_tokens": sum(_usage(d, "completion_tokens") or 0 for d in nodes),
        "latency": sum(d.get("latency") or 0.0 for d in nodes),
        "cost": dollars(nodes),
        "spent": dollars(sent),
    }


def by_position(trace: Trace) -> dict[str, dict[str, Any]]:
    """Each call's attributes under the id of its (layer, index), the key two traces are aligned by."""
    return {node_id(d["layer"], d["index"]): d for _, d in trace.graph.nodes(data=True)}


def compare(left: Trace, right: Trace) -> Comparison:
    """Align two traces by (layer, index) and say what differs, call by call and in total."""
    left_nodes, right_nodes = by_position(left), by_position(right)
    every = right_nodes | left_nodes
    order = sorted(every, key=lambda n: (every[n]["layer"], every[n]["index"]))
    calls = tuple(_pair(n, left_nodes.get(n), right_nodes.get(n)) for n in order)
    before, after = run_totals(left), run_totals(right)
    return Comparison(
        left=left.run_id,
        right=right.run_id,
        calls=calls,
        left_final=left.final,
        right_final=right.final,
        final_diff=tuple(word_diff(left.final, right.final)),
        totals={
            "left": before,
            "right": after,
            "delta": {k: _delta(before[k], after[k]) for k in before},
        },
    )
