"""One model call: the record of what it sends, and answering it from the cache or the backend.

Invariant: every call of every run (MoA layers, replays, single-model baselines, judge calls) is
built by ``new_call`` and answered by ``make_call``, so the cache key, the replicate rule and what a
trace records are the same everywhere; a failure is recorded on the call and never cached.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from moa_lab._approvals import check_keys
from moa_lab._backend import Backend, Completion, RetryPolicy
from moa_lab._cache import CallCache, call_key
from moa_lab._config import Agent
from moa_lab._errors import CallError, TraceError
from moa_lab._pricing import call_cost
from moa_lab._responses import split_reasoning
from moa_lab._responses import timings as _timings
from moa_lab._trace import Call, Usage

__all__ = [
    "call_identity",
    "check_ready",
    "first_replicate",
    "make_call",
    "new_call",
    "resolve_endpoint",
]


def call_identity(call: Call) -> str:
    """The key of a call without its replicate: equal for requests that are the same request."""
    return call_key(
        model=call.model,
        base_url=call.base_url,
        messages=[dict(m) for m in call.messages],
        params=dict(call.params),
    )


def resolve_endpoint(agent: Agent) -> str:
    """The live HTTP endpoint of an agent (a ``local`` base URL starts the local model)."""
    if agent.base_url.split(":", 1)[0] in ("http", "https"):
        return agent.base_url
    # The Agent validator admits only http(s) and ``local`` URLs; the local model loads on first use.
    from moa_lab.local import resolve

    return resolve(agent.base_url)


def check_ready(
    agents: Iterable[Agent], *, record_keys: bool = True, allow_hosts: Iterable[str] = ()
) -> None:
    """Fail before any call is sent when a key is missing, may not go to its host, or an endpoint
    cannot start.

    ``record_keys``: the agents come from the user's own config, so the hosts their keys go to are
    recorded as approved; otherwise (a replay of a trace) a key goes only to an approved host or one
    in ``allow_hosts`` (``moa_lab._approvals``). Raises ``ConfigError``.
    """
    agents = list(agents)
    for agent in agents:
        Backend.api_key(agent.key_env)
    check_keys(agents, record=record_keys, allow=allow_hosts)
    for agent in agents:
        resolve_endpoint(agent)


def first_replicate(sample: int) -> int:
    """The replicate of a request's first copy in sample ``sample`` of a run (1000 apart per sample).

    Later identical requests of the same run take the next numbers, so a model alone and the same
    model as the first of n identical proposers send the same request and share one cache entry.
    """
    return 1000 * sample


def new_call(
    agent: Agent,
    messages: list[dict[str, Any]],
    replicate: int,
    *,
    id: str,
    role: str,
    layer: int,
    index: int,
) -> Call:
    """The record of a call about to be made: what it sends, its cache key, nothing answered yet."""
    params = agent.params()
    key = call_key(
        model=agent.model, base_url=agent.base_url, messages=messages, params=params, replicate=replicate
    )
    return Call(
        id=id,
        role=role,
        layer=layer,
        index=index,
        model=agent.model,
        base_url=agent.base_url,
        api_key_env=agent.key_env,
        params=params,
        messages=tuple(messages),
        replicate=replicate,
        cache_key=key,
        started_at=time.time(),
    )


async def make_call(
    call: Call,
    agent: Agent,
    *,
    backend: Backend,
    policy: RetryPolicy,
    cache: CallCache | None,
    prices: Mapping[str, Any] | None = None,
    stand_in: Callable[[Agent, list[dict[str, Any]]], Completion] | None = None,
    stream: bool = False,
    on_text: Callable[[str | None, bool], None] | None = None,
) -> Call:
    """Answer a call (from ``new_call``): taken from the cache, or sent and cached.

    A failure is recorded in ``error`` (never cached); ``stand_in`` answers instead of the backend
    and nothing is cached (a dry run);
    ``stream`` and ``on_text`` are as for ``Backend.complete`` (a cache hit streams nothing).
    """
    messages = [dict(m) for m in call.messages]
    hit = _cached(cache.get(call.cache_key)) if cache is not None else None
    if hit is not None:
        call = replace(call, **hit, cache_hit=True)
    else:
        try:
            if stand_in is not None:
                done = stand_in(agent, messages)
            else:
                done = await backend.complete(
                    model=agent.model,
                    messages=messages,
                    params=dict(call.params),
                    base_url=resolve_endpoint(agent),
                    key_env=agent.key_env,
                    policy=policy,
                    label=call.id,
                    stream=stream,
                    on_text=on_text,
                )
        except CallError as exc:
            call = replace(
                call,
                error=str(exc),
                attempts=exc.attempts,
                retried_errors=exc.retried_errors,
                retry_waits=exc.retry_waits,
                sent_at=exc.sent_at,
            )
        else:
            call = replace(
                call,
                response=done.text,
                reasoning=done.reasoning,
                finish_reason=done.finish_reason,
                usage=done.usage,
                served_model=done.served_model,
                latency=done.latency,
                attempts=done.attempts,
                retried_errors=done.errors,
                retry_waits=done.waits,
                warnings=done.warnings,
                sent_at=done.sent_at,
                served_at=done.served_at,
                timings=done.timings,
                ttft=done.ttft,
            )
            if cache is not None and stand_in is None:
                cache.set(
                    call.cache_key,
                    {
                        "text": done.text,
                        "reasoning": done.reasoning,
                        "finish_reason": done.finish_reason,
                        "usage": None if done.usage is None else done.usage.to_dict(),
                        "served_model": done.served_model,
                        "latency": done.latency,
                        "warnings": list(done.warnings),
                        "timings": done.timings,
                        "ttft": done.ttft,
                    },
                )
    return replace(
        call,
        ended_at=time.time(),
        cost=call_cost(agent.model, call.usage, prices),
    )


def _cached(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The fields of a call answered from a cache entry; None (a miss) for an entry with no answer.

    Entries written before moa_lab kept reasoning apart hold it inline in ``text``; an entry with
    an empty or unreadable answer (older versions cached those) is sent again, not trusted.
    """
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return None
    reasoning = value.get("reasoning")
    text = value["text"]
    if "reasoning" not in value:
        reasoning, text = split_reasoning(text)
    text = text.strip()  # as every answer is stripped when it arrives
    if not text:
        return None
    try:
        usage = None if value.get("usage") is None else Usage.from_dict(value["usage"])
    except TraceError:
        return None
    latency = value.get("latency")
    ttft = value.get("ttft")
    warnings = value.get("warnings") or []
    return {
        "response": text,
        "reasoning": reasoning if isinstance(reasoning, str) else None,
        "finish_reason": value.get("finish_reason")
        if isinstance(value.get("finish_reason"), str)
        else None,
        "usage": usage,
        "served_model": value.get("served_model")
        if isinstance(value.get("served_model"), str)
        else None,
        "latency": float(latency)
        if isinstance(latency, (int, float)) and not isinstance(latency, bool)
        else None,
        "warnings": tuple(w for w in warnings if isinstance(w, str))
        if isinstance(warnings, list)
        else (),
        "timings": _timings(value.get("timings")),
        "ttft": float(ttft) if isinstance(ttft, (int, float)) and not isinstance(ttft, bool) else None,
    }
