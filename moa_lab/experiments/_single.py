"""One model call recorded as a one-node trace: single-model baselines and judge calls.

Invariant: the call's cache key is derived exactly as the engine derives a first-layer proposer's
(same model, base_url, messages, parameters and replicate 1000 × sample), so a model alone and the
same model inside a mixture share the cache; the trace is a valid ``moa_lab.Trace`` whose only node
``L1.0`` is the answering call and whose ``config`` has ``layers: 1``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import networkx as nx

from moa_lab import __version__
from moa_lab._backend import DEFAULT_POLICY, Backend, RetryPolicy
from moa_lab._cache import CallCache
from moa_lab._config import Agent, Price
from moa_lab._engine import make_call, resolve_endpoint
from moa_lab._trace import SCHEMA, SCHEMA_VERSION, Trace, node_id

__all__ = ["acall_alone", "endpoint"]


def endpoint(agent: Agent) -> str:
    """The HTTP endpoint of an agent (``local`` base URLs resolved as the engine resolves them)."""
    return resolve_endpoint(agent)


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
    users = [m["content"] for m in messages if m["role"] == "user"]
    graph = nx.DiGraph(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        run_id=uuid.uuid4().hex[:12],
        created_at=time.time(),
        finished_at=None,
        status="running",
        prompt=str(users[-1] if users else messages[-1]["content"]),
        messages=messages,
        config={"layers": 1, "kind": kind, "agent": agent.model_dump(mode="json")},
        final=None,
        sample=sample,
        moa_lab_version=__version__,
    )
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
