"""The plan of a replay: the same run with a stand-in for every answer, so it sends nothing.

Invariant: the plan goes through the engine's own code path (``execute_run`` with a stand-in), so
the calls it says a replay will send are exactly the calls the replay sends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from moa_lab._approvals import approved, host_of
from moa_lab._backend import Completion
from moa_lab._cache import CallCache, canonical_json
from moa_lab._config import Agent
from moa_lab._errors import RunError
from moa_lab._replay.applying import Prepared, prepare
from moa_lab._replay.edits import Edit
from moa_lab._run import execute_run
from moa_lab._strategies import Strategy
from moa_lab._sync import blocking
from moa_lab._trace import Trace, Usage, sum_known

__all__ = ["Plan", "PlannedCall", "aplan", "dry_run", "load_trace", "plan"]


def _layer_of(name: str) -> int:
    return int(name[1:].split(".", 1)[0])


class _Estimator:
    """Stand-in answers for a dry run: the source node's answer and usage, else a layer sibling's.

    Prompt tokens are the characters of the request divided by the source run's own characters per
    token (4 when the source recorded no usage); completions are capped by the agent's max_tokens.
    """

    def __init__(self, source: Trace, origins: Mapping[str, str | None]):
        self.source = source
        self.origins = origins
        measured = [c for c in source.records() if c.prompt_tokens and c.messages]
        chars = sum(len(canonical_json([dict(m) for m in c.messages])) for c in measured)
        tokens = sum(c.prompt_tokens or 0 for c in measured)
        self.chars_per_token = chars / tokens if chars and tokens else 4.0

    def tokens(self, text: str) -> int:
        """Estimated tokens of a text."""
        return math.ceil(len(text) / self.chars_per_token)

    def __call__(self, name: str, agent: Agent, messages: list[dict[str, Any]]) -> Completion:
        origin = self.origins.get(name, name)  # strategies other than MoA: the same id
        found = self.source.call(origin) if origin in self.source else None
        if found is None or found.response is None:
            siblings = [c for c in self.source.records(_layer_of(name)) if c.response is not None]
            found = siblings[0] if siblings else None
        text = found.response or "" if found else ""
        completion = found.completion_tokens if found else None
        completion = self.tokens(text) if completion is None else completion
        if agent.max_tokens is not None:
            completion = min(completion, agent.max_tokens)
        prompt = self.tokens(canonical_json(messages))
        usage = Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )
        latency = (found.latency if found else None) or 0.0
        return Completion(
            text=text, finish_reason="stop", usage=usage, served_model=agent.model, latency=latency
        )


@dataclass(frozen=True)
class PlannedCall:
    """One node of a planned replay: reused, or sent (with estimated tokens and cost)."""

    node: str
    model: str
    lineage: str
    """``reused``, ``edited`` (an edit changed its own request) or ``recomputed`` (it reads one)."""
    sends: bool
    """True when the replay sends this call (False: reused, or answered by the cache)."""
    reason: str
    prompt_tokens: int
    completion_tokens: int
    cost: float | None
    endpoint: str = ""
    """The base URL the call goes to (as configured)."""
    key_env: str | None = None
    """The variable whose key is sent with it (None: no key)."""


@dataclass(frozen=True)
class Plan:
    """What a replay will do, from a dry run: which calls it sends and what they should cost."""

    source: str
    """Run id of the trace being replayed."""
    nodes: tuple[PlannedCall, ...]
    problem: str | None = None
    """Why the replay would fail without sending more (e.g. its reused aggregator had failed)."""

    @property
    def calls(self) -> int:
        """How many calls the replay sends."""
        return sum(1 for n in self.nodes if n.sends)

    @property
    def recomputed(self) -> list[str]:
        """Nodes that get a new answer (edited or recomputed; sent or from the cache)."""
        return [n.node for n in self.nodes if n.lineage != "reused"]

    @property
    def prompt_tokens(self) -> int:
        """Estimated prompt tokens of the calls sent."""
        return sum(n.prompt_tokens for n in self.nodes if n.sends)

    @property
    def completion_tokens(self) -> int:
        """Estimated completion tokens of the calls sent."""
        return sum(n.completion_tokens for n in self.nodes if n.sends)

    @property
    def cost(self) -> float | None:
        """Estimated dollars of the calls sent; None when a model's price is unknown."""
        return sum_known(n.cost for n in self.nodes if n.sends)

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data."""
        return {
            "source": self.source,
            "calls": self.calls,
            "recomputed": self.recomputed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost,
            "problem": self.problem,
            "keys": [
                {"host": host, "key_env": key_env, "approved": ok} for host, key_env, ok in self.keys()
            ],
            "nodes": [asdict(n) for n in self.nodes],
        }

    def keys(self) -> list[tuple[str, str, bool]]:
        """``(host, key variable, approved?)`` of every key the calls sent would carry."""
        pairs = sorted({(host_of(n.endpoint), n.key_env) for n in self.nodes if n.sends and n.key_env})
        return [(host, key_env, approved(host, key_env)) for host, key_env in pairs]

    def __str__(self) -> str:
        lines = [f"{'node':<7}{'lineage':<12}{'model':<28}{'sends':<7}{'in':>7}{'out':>7}  why"]
        for n in self.nodes:
            action = "call" if n.sends else "cache" if n.lineage != "reused" else "-"
            tokens = (f"{n.prompt_tokens:>7}{n.completion_tokens:>7}") if n.sends else f"{'':>14}"
            model = n.model if len(n.model) <= 27 else n.model[:26] + "…"
            lines.append(f"{n.node:<7}{n.lineage:<12}{model:<28}{action:<7}{tokens}  {n.reason}")
        cost = "unknown" if self.cost is None else f"${self.cost:.4f}"
        reused = len(self.nodes) - len(self.recomputed)
        lines.append(
            f"replay of {self.source}: {self.calls} call{'' if self.calls == 1 else 's'} to send, "
            f"{reused} reused; "
            f"about {self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"cost {cost}"
        )
        endpoints = sorted({n.endpoint for n in self.nodes if n.sends})
        if endpoints:
            lines.append(f"endpoints: {', '.join(endpoints)}")
        for host, key_env, ok in self.keys():
            verdict = "approved" if ok else "NOT approved: the replay will refuse it (--allow-host)"
            lines.append(f"key ${key_env} goes to {host} ({verdict})")
        if self.problem:
            lines.append(f"the replay would fail: {self.problem}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Plan of {self.source}: {self.calls} calls, recompute {self.recomputed}>"


def load_trace(trace: Trace | str | Path) -> Trace:
    return trace if isinstance(trace, Trace) else Trace.load(trace)


async def dry_run(prepared: Prepared, cache: CallCache | str | Path | bool) -> tuple[Trace, str | None]:
    try:
        trace = await execute_run(
            prepared.messages,
            prepared.config,
            cache=cache,
            trace_path=None,
            progress=False,
            sample=prepared.source.sample,
            on_call=None,
            basis=prepared.basis,
            stand_in=_Estimator(prepared.source, prepared.basis.origins),
            strategy=prepared.strategy,
        )
    except RunError as exc:
        return exc.trace, str(exc)  # type: ignore[return-value]
    return trace, None


def _plan_from(prepared: Prepared, dry: Trace, problem: str | None) -> Plan:
    source_nodes = set(prepared.source.graph)
    nodes = []
    for call in dry.records():
        if call.lineage == "reused":
            reason = "unchanged"
        elif call.lineage == "edited":
            reason = ", ".join(prepared.changes[call.id])
        else:
            fresh = [n for n in dry.references(call.id) if not dry.call(n).reused]
            reason = (
                "reads " + ", ".join(fresh)
                if fresh
                else "its references changed"
                if call.origin in source_nodes
                else "not in the source trace"
            )
        nodes.append(
            PlannedCall(
                node=call.id,
                model=call.model,
                lineage=call.lineage or "recomputed",
                sends=call.sent,
                reason=reason,
                prompt_tokens=call.prompt_tokens or 0,
                completion_tokens=call.completion_tokens or 0,
                cost=call.cost,
                endpoint=call.base_url,
                key_env=call.api_key_env,
            )
        )
    return Plan(source=prepared.source.run_id, nodes=tuple(nodes), problem=problem)


async def aplan(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
    strategy: Strategy | None = None,
) -> Plan:
    """What ``replay(trace, edits)`` would send, and its estimated tokens and cost; sends nothing.

    ``strategy``: the function a custom-strategy trace was made with. Raises ``ConfigError`` for a
    bad edit.
    """
    prepared = replace(prepare(load_trace(trace), edits), strategy=strategy)
    return _plan_from(prepared, *await dry_run(prepared, cache))


def plan(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
    strategy: Strategy | None = None,
) -> Plan:
    """Blocking ``aplan``: the dry run of a replay (nothing is sent)."""
    return blocking(aplan(trace, edits, cache=cache, strategy=strategy))
