"""Applying edits to a run of any strategy (debate, Tree of Thoughts, your own): nodes by their id.

A strategy other than MoA builds its DAG as it goes, so a replay runs the strategy again and matches
each call to the source's call with the same id; a call is reused when its request is unchanged and
every call it read was reused. Edits name nodes by id (``NodeMessage``, ``NodeParams``) or change
the config (``SetConfig``, ``UserPrompt``); the MoA layout edits do not apply.

Invariant: every edit is checked here, before anything is sent, with one line naming the edit.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from moa_lab._config import Agent, RunSettings, one_line
from moa_lab._engine import ReplayBasis
from moa_lab._errors import ConfigError
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
    label,
)
from moa_lab._strategies import config_from_dict
from moa_lab._trace import Call, Trace

__all__ = ["agent_of", "prepare_by_id"]

_SENT_AS_FIELDS = ("temperature", "max_tokens", "top_p", "seed")


def agent_of(call: Call) -> Agent:
    """The agent a recorded call was made with (model, endpoint, key variable, parameters)."""
    params = dict(call.params)
    fields = {k: params.pop(k) for k in _SENT_AS_FIELDS if k in params}
    settings = {"temperature": None, "max_tokens": None} | fields
    return Agent(
        model=call.model,
        base_url=call.base_url,
        api_key_env=call.api_key_env,
        extra=params,
        **settings,
    )


def _node(trace: Trace, edit: Edit, node: str) -> Call:
    if node not in trace:
        known = ", ".join(trace.calls()[:8]) + (", …" if len(trace) > 8 else "")
        raise ConfigError(f"{label(edit)}: no node {node!r} to edit; trace {trace.run_id} has {known}")
    return trace.call(node)


def prepare_by_id(trace: Trace, config: RunSettings, edits: list[Edit]) -> Any:
    """The replay of a run of any strategy with ``edits``, ready for the engine (``Prepared``)."""
    from moa_lab._replay.applying import Prepared, lineage_attrs

    messages = trace.messages
    node_messages = trace.node_messages
    node_agents: dict[str, Agent] = {}
    changes: dict[str, list[str]] = {}
    for edit in edits:
        if isinstance(edit, (AggregatorTemplate, ProposerTemplate, AddProposer, RemoveProposer)):
            raise ConfigError(
                f"{label(edit)}: edits a mixture's layout, but this trace was made by the "
                f"{config.strategy} strategy; use NodeMessage, NodeParams, SetConfig or UserPrompt"
            )
        if isinstance(edit, UserPrompt):
            if not isinstance(edit.text, str) or not edit.text.strip():
                raise ConfigError(f"{label(edit)}: the prompt is empty; give the question to ask")
            users = [i for i, m in enumerate(messages) if m["role"] == "user"]
            messages[users[-1]]["content"] = edit.text
        elif isinstance(edit, NodeMessage):
            _node(trace, edit, edit.node)
            if edit.role not in ("system", "user") or not isinstance(edit.content, str):
                raise ConfigError(f"{label(edit)}: role must be 'system' or 'user' and content a string")
            node_messages.setdefault(edit.node, {})[edit.role] = edit.content
            changes.setdefault(edit.node, []).append(f"{edit.role} message")
        elif isinstance(edit, NodeParams):
            call = _node(trace, edit, edit.node)
            update = {
                k: v
                for k, v in {
                    "model": edit.model,
                    "temperature": edit.temperature,
                    "max_tokens": edit.max_tokens,
                    "base_url": edit.base_url,
                }.items()
                if v is not None
            }
            if not update:
                raise ConfigError(
                    f"{label(edit)}: nothing to change; set model, temperature, max_tokens or base_url"
                )
            base = node_agents.get(edit.node) or agent_of(call)
            try:
                node_agents[edit.node] = Agent.model_validate(base.model_dump() | update)
            except ValidationError as exc:
                raise ConfigError(one_line(exc, label(edit))) from None
            changes.setdefault(edit.node, []).extend(f"{k} → {v}" for k, v in update.items())
        elif isinstance(edit, SetConfig):
            config = config_from_dict(config.to_dict() | dict(edit.fields), source=label(edit))
        else:
            raise ConfigError(f"{label(edit)} is not an edit this replay can apply")
    basis = ReplayBasis(
        source=trace,
        edited=frozenset(changes),
        node_messages=node_messages,
        node_agents=node_agents,
        attrs=lineage_attrs(trace, edits),
    )
    return Prepared(trace, config, messages, basis, changes)
