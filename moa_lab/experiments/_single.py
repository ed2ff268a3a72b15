"""One model call recorded as a one-node trace: single-model baselines and judge calls.

Invariant: the call's cache key is derived exactly as the engine derives a first-layer proposer's
(same model, base_url, messages, parameters and replicate 1000 × sample), so a model alone and the
same model inside a mixture share the cache; the trace is a valid ``moa_lab.Trace`` whose only node
``L1.0`` is the answering call and whose ``config`` has ``layers: 1``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from moa_lab._backend import DEFAULT_POLICY, Backend, RetryPolicy
from moa_lab._cache import CallCache
from moa_lab._config import Agent, Price
from moa_lab._engine import make_call, new_graph
from moa_lab._trace import Trace, node_id

__all__ = ["acall_alone"]


async def acall_alone(
    agent: Agent,
    messages: list[dict[str, Any]],
    *,
    backend: Backend,
    cache: CallCache | None,
    trace_path: Path | None,
    prices: Mapping[str, Price] | None = None,
    policy: RetryPolicy = DEFAULT_POLICY,
    sample: int = 0,
    kind: str = "single",
) -> Trace:
    """Make one call (or take it from the cache); return it as a one-node trace, saved if asked."""
    config = {"layers": 1, "kind": kind, "agent": agent.model_dump(mode="json")}
    graph = new_graph(messages, config, sample=sample)
    record = await make_call(
        agent,
        messages,
        replicate=1000 * sample,
        backend=backend,
        policy=policy,
        cache=cache,
        prices=prices,
    )
    graph.add_node(node_id(1, 0), role="aggregator", layer=1, index=0, **record)
    failed = record["error"] is not None
    graph.graph.update(
        final=None if failed else record["response"],
        status="failed" if failed else "complete",
        finished_at=time.time(),
    )
    trace = Trace(graph, trace_path)
    if trace_path is not None:
        trace.save(trace_path)
    return trace
