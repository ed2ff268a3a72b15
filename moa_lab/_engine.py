"""The engine: the state of one run and its one call primitive, which every strategy builds on.

Layer 1 proposers see the user's messages; every later call sees them plus a system prompt made of a
template and the numbered responses of the layer before. The proposers of a layer run concurrently.

A replay runs through the same code with a ``ReplayBasis``: a call whose request is identical to
the one its source node sent, and none of whose references were recomputed, takes that node's
answer instead of being sent. A dry run (``stand_in``) goes through the same code but asks a
stand-in for each answer, so the plan of a replay is exactly what the replay will do.

Invariant: a node enters the trace (and is appended to the trace file's journal) the moment its call
finishes, so a run that crashes or is killed keeps every call it finished.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moa_lab import __version__
from moa_lab._backend import Backend, Completion, RetryPolicy
from moa_lab._cache import CallCache, call_key
from moa_lab._calls import call_identity, first_replicate, make_call, new_call
from moa_lab._config import Agent, RunSettings
from moa_lab._pricing import call_cost
from moa_lab._prompts import with_references
from moa_lab._strategies import Strategy, strategy_for
from moa_lab._trace import (
    Call,
    InFlight,
    Trace,
    describe_os_error,
    new_graph,
    node_id,
)

__all__ = ["OnCall", "ReplayBasis", "RunState", "StandIn"]

#: Called as ``on_call(trace, node_id)`` when a call starts (it is then in ``trace.in_flight``), as
#: its answer streams in (at most 10 times a second per call) and when it finishes (``node_id in
#: trace``); a reused or cached answer is told only when it is recorded.
OnCall = Callable[[Trace, str], None]

#: Answers a call in a dry run instead of the backend: ``stand_in(node_id, agent, messages)``.
StandIn = Callable[[str, Agent, list[dict[str, Any]]], Completion]


@dataclass(frozen=True)
class ReplayBasis:
    """What a replay starts from: the source trace and how the new run's nodes map onto it."""

    source: Trace
    """The trace being replayed; its answers are reused wherever the request is unchanged."""
    origins: Mapping[str, str | None] = field(default_factory=dict)
    """New node id -> the source node it stands for (None for a proposer the replay added)."""
    edited: frozenset[str] = frozenset()
    """New node ids whose own inputs an edit changed (recorded as ``edited``, not ``recomputed``)."""
    node_messages: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """New node id -> ``{"system": ..., "user": ...}`` that replace that node's messages."""
    node_agents: Mapping[str, Agent] = field(default_factory=dict)
    """New node id -> the agent that node is called with instead (strategies other than MoA, whose
    edits change the config itself)."""
    attrs: Mapping[str, Any] = field(default_factory=dict)
    """Extra graph attributes of the new trace (its lineage)."""


class RunState:
    """The state of one run: config, trace, cache, backend and progress."""

    def __init__(
        self,
        messages: list[dict[str, Any]],
        config: RunSettings,
        *,
        cache: CallCache | None,
        trace_path: Path | None,
        progress: bool,
        sample: int,
        on_call: OnCall | None,
        basis: ReplayBasis | None = None,
        stand_in: StandIn | None = None,
        check: Sequence[Agent] | None = None,
        run_id: str | None = None,
        backend: Backend | None = None,
        strategy: Strategy | None = None,
    ):
        self.messages = messages
        self.strategy = strategy_for(config, strategy)
        self.config = config
        self.cache = cache
        self.trace_path = trace_path
        self.sample = sample
        self.progress = progress
        self.write_error: OSError | None = None
        self.on_call = on_call
        self.basis = basis
        self.stand_in = stand_in
        self.check = config.agents() if check is None else list(check)
        self.node_messages = dict(basis.node_messages) if basis is not None else {}
        self.owns_cache = False
        self.owns_backend = backend is None
        self.backend = backend or Backend(max_concurrency=config.max_concurrency)
        self.policy = RetryPolicy.of(config)
        graph = new_graph(messages, config.to_dict(), sample=sample, run_id=run_id, version=__version__)
        # Replicates a call identity has taken; a replay's new calls never take a source's replicate.
        self.replicas: defaultdict[str, set[int]] = defaultdict(set)
        if basis is not None:
            graph.graph.update(
                basis.attrs, node_messages={k: dict(v) for k, v in self.node_messages.items()}
            )
            for source_call in basis.source.records():
                self.replicas[call_identity(source_call)].add(source_call.replicate)
        self.trace = Trace(graph)
        self.bar = tqdm(
            total=config.expected_calls(),
            desc=config.strategy or "MoA",
            unit="call",
            file=sys.stderr,
            disable=not progress,
            leave=False,
        )

    def reference_text(self, call: Call) -> str:
        """What a later call reads of this call: its answer, and its reasoning if the config asks."""
        answer = call.response or ""
        if self.config.include_reasoning and call.reasoning:
            return f"<think>\n{call.reasoning.strip()}\n</think>\n{answer}"
        return answer

    def messages_for(self, name: str, layer: int, references: Sequence[str]) -> list[dict[str, Any]]:
        """The messages a MoA call sends: the user's, the references, then any per-node edits."""
        responses = [self.reference_text(self.trace.call(n)) for n in references]
        edits = self.node_messages.get(name, {})
        messages = [dict(m) for m in self.messages]
        if "user" in edits:
            last = max(i for i, m in enumerate(messages) if m["role"] == "user")
            messages[last]["content"] = edits["user"]
        if "system" in edits:
            # An edited system message replaces the node's whole system prompt, references included.
            body = messages[1:] if messages[0]["role"] == "system" else messages
            return with_references(body, edits["system"], responses)
        if references:
            return with_references(messages, self.config.template_for(layer), responses)
        return messages

    def edited_messages(self, name: str, messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """A strategy's own messages for call ``name`` with a replay's edits of that node applied:
        ``system`` replaces (or adds) the system message, ``user`` the last user message."""
        out = [dict(m) for m in messages]
        edits = self.node_messages.get(name, {})
        if "user" in edits:
            last = max((i for i, m in enumerate(out) if m["role"] == "user"), default=None)
            if last is not None:
                out[last]["content"] = edits["user"]
        if "system" in edits:
            if out and out[0]["role"] == "system":
                out[0]["content"] = edits["system"]
            else:
                out.insert(0, {"role": "system", "content": edits["system"]})
        return out

    def origin_of(self, name: str) -> str | None:
        """The source node a replay's call ``name`` stands for (by layout for MoA, else by id)."""
        if self.basis is None:
            return None
        if name in self.basis.origins:
            return self.basis.origins[name]
        return name if name in self.basis.source else None

    def reusable(self, name: str, references: list[str], identity: str) -> Call | None:
        """The source call a replay may take this call's answer from, if the request is unchanged."""
        if self.basis is None:
            return None
        origin = self.origin_of(name)
        if origin is None or origin not in self.basis.source:
            return None
        if any(not self.trace.call(n).reused for n in references):
            return None
        source = self.basis.source.call(origin)
        return source if call_identity(source) == identity else None

    def replicate_for(self, identity: str, source: Call | None) -> int:
        """A reused call keeps its replicate; a new one takes the first this identity has not used."""
        taken = self.replicas[identity]
        replicate = source.replicate if source is not None else first_replicate(self.sample)
        while source is None and replicate in taken:
            replicate += 1
        taken.add(replicate)
        return replicate

    async def call(
        self,
        agent: Agent,
        *,
        role: str,
        layer: int,
        index: int,
        references: Sequence[str] = (),
        messages: Sequence[dict[str, Any]] | None = None,
        id: str | None = None,
        annotations: Mapping[str, Any] | None = None,
    ) -> Call:
        """Make one call of the run (or reuse a replay's source node, or a cache entry) and record it.

        The seam every strategy builds on: ``layer`` is the call's depth in the run's DAG, ``index``
        its place at that depth, ``references`` the calls whose answers its prompt contains (they
        become the edges into it), ``messages`` what it sends (None: the MoA template with the
        references' answers), ``id`` its node id (default ``L<layer>.<index>``). Returns the recorded
        ``Call``; a failure is on ``call.error``, never raised.
        """
        name = id or node_id(layer, index)
        if self.basis is not None and name in self.basis.node_agents:
            agent = self.basis.node_agents[name]
        if messages is None:
            messages = self.messages_for(name, layer, references)
        else:
            messages = self.edited_messages(name, messages)
        references = list(references)
        identity = call_key(
            model=agent.model, base_url=agent.base_url, messages=messages, params=agent.params()
        )
        reused = self.reusable(name, references, identity)
        # Identical calls in one run (Self-MoA samples one prompt n times) stay distinct samples.
        replicate = self.replicate_for(identity, reused)
        place = {"id": name, "role": role, "layer": layer, "index": index}
        if reused is not None:
            # Like a cache hit, a reused node sends nothing: its cost counts as saved, not spent.
            call = replace(
                new_call(agent, messages, replicate, **place),
                response=reused.response,
                reasoning=reused.reasoning,
                finish_reason=reused.finish_reason,
                usage=reused.usage,
                served_model=reused.served_model,
                latency=reused.latency,
                ttft=reused.ttft,
                timings=reused.timings,
                warnings=reused.warnings,
                error=reused.error,
                cache_hit=True,
                cost=call_cost(agent.model, reused.usage, self.config.prices),
                ended_at=time.time(),
            )
        else:
            request = new_call(agent, messages, replicate, **place)
            self.trace.in_flight[name] = InFlight(request, references)
            self.notify(name)
            call = await make_call(
                request,
                agent,
                backend=self.backend,
                policy=self.policy,
                cache=self.cache,
                prices=self.config.prices,
                stand_in=None if self.stand_in is None else partial(self.stand_in, name),
                stream=self.config.stream and self.stand_in is None,
                on_text=partial(self.streamed, name),
            )
            if self.trace.in_flight[name].unsaid:  # the stream's last words, before it is recorded
                self.notify(name)
        if self.basis is not None:
            lineage = "edited" if name in self.basis.edited else "recomputed"
            call = replace(
                call,
                origin=self.origin_of(name),
                lineage="reused" if reused is not None else lineage,
            )
        if annotations is not None:
            call = replace(call, annotations=dict(annotations))
        self.trace.add_call(call, references)
        self.trace.in_flight.pop(name, None)
        if self.trace_path is not None and self.write_error is None:
            try:
                self.trace.journal(name)
            except OSError as exc:  # a full disk: the run goes on in memory; finish() says so
                self.write_error = exc
        self.bar.set_postfix_str(f"{name} {agent.model}", refresh=False)
        self.bar.update(1)
        self.notify(name)
        return call

    def notify(self, name: str) -> None:
        """Tell the run's ``on_call`` hook about a call that started, streamed or finished."""
        if self.on_call is not None:
            self.on_call(self.trace, name)

    def streamed(self, name: str, piece: str | None, reasoning: bool = False) -> None:
        """A piece of a call's answer (or reasoning) arrived, None when a new attempt starts over;
        told to the hook at most ten times a second per call, so a fast stream cannot flood a
        notebook."""
        running = self.trace.in_flight.get(name)
        if running is None:
            return
        if piece is None:
            running.text, running.reasoning = "", ""
            running.restarts += 1
        elif reasoning:
            running.reasoning += piece
        else:
            running.text += piece
        now = time.monotonic()
        running.unsaid = True
        if piece is None or now - running.told >= 0.1:
            running.told, running.unsaid = now, False
            words = len(running.text.split()) or len(running.reasoning.split())
            doing = "writing" if running.text else "thinking"
            self.bar.set_postfix_str(f"{name} {running.call.model} {doing}: {words} words")
            self.notify(name)

    async def execute(self) -> Trace:
        """Run the strategy's calls; record the final answer it gives."""
        final = await self.strategy(self)
        # Stripped, as the reference implementation strips every output it receives.
        self.trace.graph.graph["final"] = final.strip() if final is not None else None
        return self.trace

    async def finish(self, status: str) -> None:
        self.trace.graph.graph.update(status=status, finished_at=time.time())
        if status == "complete" and self.bar.total != self.bar.n:
            # The estimate was off (a vote instead of an aggregator, a search that pruned more):
            # a run that finished shows a full bar (green in a notebook), not a failed one.
            self.bar.total = self.bar.n
            self.bar.refresh()
        # A call still in flight when a run fails (a hook or a strategy raised; in a notebook the loop
        # goes on) must not append its journal line to the finished file.
        path, self.trace_path = self.trace_path, None
        if path is not None and self.trace.path is not None:
            try:
                self.trace.save(path)
            except OSError as exc:
                self.trace.unsaved = _unsaved(self.trace, path, exc)
        await self.close()

    async def close(self) -> None:
        """Release what this run opened: the progress bar, its HTTP clients, its cache."""
        self.bar.close()
        if self.owns_backend:
            await self.backend.aclose()
        if self.owns_cache and self.cache is not None:
            self.cache.close()


def _unsaved(trace: Trace, path: Path, exc: OSError) -> str:
    """What a failed write left out of the trace file, exactly."""
    calls = len(trace)
    kept = trace.journaled
    held = (
        "it holds none of them"
        if kept == 0
        else f"it holds the first {kept} as a journal (Trace.load reads it)"
        if kept < calls
        else "it holds all of them as a journal (Trace.load reads it)"
    )
    return (
        f"the trace could not be written to {path} ({describe_os_error(exc, path)}): of {calls} "
        f"finished calls {held}; the rest are in memory only"
    )
