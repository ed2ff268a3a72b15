"""Replay a trace with edits: recompute only the calls an edit reaches and reuse every other answer.

Edits are small frozen values (``AggregatorTemplate``, ``NodeParams``, ``RemoveProposer``, ...) that
name nodes by their id in the source trace. They become a new config, new user messages and per-node
message overrides (``applying``); the engine then runs the new mixture and takes from the source
trace the answer of every call whose request is unchanged and none of whose references was
recomputed. ``plan`` is that same run with a stand-in for every answer (``planning``), so it sends
nothing and names exactly the calls a replay will send.

Invariant: every edit is checked before anything is sent (a bad edit is one line naming the edit and
the fix), a replay never changes its source, and the new trace records its parent and the whole
chain of edits back to the original run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from moa_lab._approvals import approve, host_of
from moa_lab._cache import CallCache
from moa_lab._engine import OnCall
from moa_lab._replay.applying import prepare
from moa_lab._replay.by_id import agent_of
from moa_lab._replay.edits import (
    AddProposer,
    AggregatorTemplate,
    Edit,
    NodeMessage,
    NodeParams,
    ProposerTemplate,
    RemoveProposer,
    SetConfig,
    UserPrompt,
    edit_from_dict,
)
from moa_lab._replay.planning import Plan, PlannedCall, aplan, dry_run, load_trace, plan
from moa_lab._run import execute_run
from moa_lab._strategies import Strategy
from moa_lab._sync import blocking
from moa_lab._trace import Trace, default_trace_path, new_run_id, prompt_text

__all__ = [
    "AddProposer",
    "AggregatorTemplate",
    "Edit",
    "NodeMessage",
    "NodeParams",
    "Plan",
    "PlannedCall",
    "ProposerTemplate",
    "RemoveProposer",
    "SetConfig",
    "UserPrompt",
    "aplan",
    "areplay",
    "edit_from_dict",
    "lineage",
    "plan",
    "replay",
]


async def areplay(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
    trace_path: str | Path | bool = True,
    progress: bool = True,
    on_call: OnCall | None = None,
    allow_hosts: Iterable[str] = (),
    strategy: Strategy | None = None,
) -> Trace:
    """Replay a trace (or trace file) with edits; only the calls the edits reach are sent.

    Every other node is taken from the source trace, so a replay works from a trace file alone.
    ``cache``, ``trace_path``, ``progress`` and ``on_call`` are as for ``arun``; by default the new
    trace is saved as ``traces/<time>-<slug>-replay-<run id>.json``. A key goes only to a host you
    have used it with or approved (``moa-lab approve``), or to one in ``allow_hosts`` for this replay:
    the trace may come from someone else. Raises ``ConfigError`` before anything is sent.
    """
    prepared = replace(prepare(load_trace(trace), edits), strategy=strategy)
    dry, _ = await dry_run(prepared, cache)
    # Only the agents that will be called need a key or a live endpoint (a local model starts).
    check = [agent_of(c) for c in dry.records() if c.sent]
    # Endpoints an edit named (a new proposer, another base_url) are the user's own choice.
    source = prepared.source
    approve(
        (host_of(c.base_url), c.api_key_env)
        for c in dry.records()
        if c.api_key_env and (c.origin not in source or source.call(c.origin).base_url != c.base_url)
    )
    run_id = new_run_id()
    if trace_path is True:
        path: Path | None = default_trace_path(prompt_text(prepared.messages), run_id, kind="replay")
    else:
        path = Path(trace_path) if trace_path else None
    return await execute_run(
        prepared.messages,
        prepared.config,
        cache=cache,
        trace_path=path,
        exclusive=trace_path is True,
        progress=progress,
        sample=prepared.source.sample,
        on_call=on_call,
        basis=prepared.basis,
        check=check,
        run_id=run_id,
        allow_hosts=tuple(allow_hosts),
        strategy=strategy,
    )


def replay(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
    trace_path: str | Path | bool = True,
    progress: bool = True,
    on_call: OnCall | None = None,
    allow_hosts: Iterable[str] = (),
    strategy: Strategy | None = None,
) -> Trace:
    """Blocking ``areplay`` for scripts; also works inside a running event loop (Jupyter).

    Returns the new trace; raises ``ConfigError`` for a bad edit (before anything is sent) and
    ``RunError`` when the replayed run cannot finish.
    """
    return blocking(
        areplay(
            trace,
            edits,
            cache=cache,
            trace_path=trace_path,
            progress=progress,
            on_call=on_call,
            allow_hosts=allow_hosts,
            strategy=strategy,
        )
    )


def lineage(trace: Trace) -> list[dict[str, Any]]:
    """The chain from this trace back to the original run: ``[{run_id, path, edits}, ...]``.

    ``edits`` of an entry are the edits that made that trace from the next one in the list.
    """
    path = str(trace.path) if trace.path else None
    here = {"run_id": trace.run_id, "path": path, "edits": trace.edits}
    return [here, *trace.graph.graph.get("lineage", [])]
