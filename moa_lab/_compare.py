"""Compare two traces call by call: what a replay (or any second run) changed, and what it cost.

Calls are aligned by id (a mixture's ``L2.0`` is its layer and index; a debate's ``D2.0`` and a
search's ``G2.1`` or ``V2.0.1`` say what the call is where its layer and index alone do not); each
pair gets a word diff of the responses (and of the prompts when they differ) and the deltas of
tokens, latency and cost, and the two final answers are set side by side. Pure data (no plotting,
no widgets): the views draw it.

Invariant: deltas are ``right - left`` and None (never 0) when either side is unknown, and a trace
compared with itself has no differences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from moa_lab._analysis import word_diff
from moa_lab._cache import canonical_json
from moa_lab._trace import Call, Totals, Trace, node_id

__all__ = ["CallDiff", "Comparison", "aligned", "compare"]

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
    left_sampling: str | None = None
    right_sampling: str | None = None
    """Each side's sampling settings in short (``Call.sampling``: ``T0.7 seed 1 ≤128``)."""
    left_truncated: bool | None = None
    right_truncated: bool | None = None
    """Whether each side's answer was cut off at max_tokens (None where the call is missing)."""


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
    left_totals: Totals
    right_totals: Totals
    """What each run's calls add up to."""

    @property
    def delta(self) -> dict[str, float | None]:
        """``right - left`` of every total (calls, tokens, dollars, seconds); None where unknown."""
        before, after = self.left_totals.to_dict(), self.right_totals.to_dict()
        return {k: _delta(before[k], after[k]) for k in before}

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
        return asdict(self) | {"identical": self.identical, "delta": self.delta}

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


def _part(call: Call, part: str) -> Any:
    value = getattr(call, part)
    return [dict(m) for m in value] if part == "messages" else value


def _prompt_text(call: Call | None) -> str | None:
    if call is None:
        return None
    return "\n\n".join(f"[{m.get('role')}]\n{m.get('content')}" for m in call.messages)


def _pair(node: str, left: Call | None, right: Call | None) -> CallDiff:
    either: Call = right if right is not None else left  # type: ignore[assignment]
    if left is None or right is None:
        changed: tuple[str, ...] = _PARTS
        status = "added" if left is None else "removed"
    else:
        changed = tuple(
            p for p in _PARTS if canonical_json(_part(left, p)) != canonical_json(_part(right, p))
        )
        status = "changed" if changed else "same"
    left_response = left.response if left else None
    right_response = right.response if right else None
    left_prompt, right_prompt = _prompt_text(left), _prompt_text(right)
    return CallDiff(
        node=node,
        layer=either.layer,
        index=either.index,
        status=status,
        changed=changed,
        left_model=left.model if left else None,
        right_model=right.model if right else None,
        left_response=left_response,
        right_response=right_response,
        response_diff=tuple(word_diff(left_response, right_response)),
        left_prompt=left_prompt,
        right_prompt=right_prompt,
        prompt_diff=tuple(word_diff(left_prompt, right_prompt)) if "messages" in changed else (),
        prompt_tokens=_delta(left and left.prompt_tokens, right and right.prompt_tokens),
        completion_tokens=_delta(left and left.completion_tokens, right and right.completion_tokens),
        latency=_delta(left and left.latency, right and right.latency),
        cost=_delta(left and left.cost, right and right.cost),
        lineage=right.lineage if right else None,
        left_sampling=left.sampling if left else None,
        right_sampling=right.sampling if right else None,
        left_truncated=left.truncated if left else None,
        right_truncated=right.truncated if right else None,
    )


def aligned(trace: Trace) -> dict[str, Call]:
    """Each call under the key two traces are aligned by: a mixture's (layer, index) as
    ``L<layer>.<index>``, any other strategy's call id.

    A DAG's ids say what a call is where its (layer, index) does not: a search's index packs the
    sample number (``G2.1.0`` is index 3 when three samples are drawn, 2 when two are) and a value
    evaluation and a vote share index 1000 + k, so positions would pair unrelated calls.
    """
    strategy = (trace.graph.graph.get("config") or {}).get("strategy")
    if strategy in (None, "moa"):
        return {node_id(c.layer, c.index): c for c in trace.records()}
    return {c.id: c for c in trace.records()}


def compare(left: Trace, right: Trace) -> Comparison:
    """Align two traces call by call (``aligned``) and say what differs, call by call and in total."""
    left_nodes, right_nodes = aligned(left), aligned(right)
    every = right_nodes | left_nodes
    order = sorted(every, key=lambda n: (every[n].layer, every[n].index, n))
    calls = tuple(_pair(n, left_nodes.get(n), right_nodes.get(n)) for n in order)
    return Comparison(
        left=left.run_id,
        right=right.run_id,
        calls=calls,
        left_final=left.final,
        right_final=right.final,
        final_diff=tuple(word_diff(left.final, right.final)),
        left_totals=left.totals(),
        right_totals=right.totals(),
    )
