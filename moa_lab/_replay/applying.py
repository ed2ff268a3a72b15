"""Applying edits to a source trace: the new config and messages, and how new nodes map onto old.

``prepare`` turns a trace and edits into a ``Prepared`` replay: the engine then runs the new mixture
with a ``ReplayBasis`` and takes every unchanged call's answer from the source.

Invariant: every edit is checked here, before anything is sent (one line naming the edit and the
fix), and the source trace is never changed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from moa_lab._cache import canonical_json
from moa_lab._config import Agent, MoAConfig, RunSettings, one_line
from moa_lab._engine import ReplayBasis
from moa_lab._errors import ConfigError
from moa_lab._prompts import REFERENCES
from moa_lab._replay.edits import (
    EDIT_KINDS,
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
from moa_lab._strategies import Strategy, config_from_dict
from moa_lab._trace import Trace, node_id

__all__ = ["Prepared", "lineage_attrs", "prepare"]


@dataclass(frozen=True)
class Prepared:
    """A replay ready to run: the new config and messages, and how its nodes map onto the source."""

    source: Trace
    config: RunSettings
    messages: list[dict[str, Any]]
    basis: ReplayBasis
    changes: dict[str, list[str]]
    """New node id -> what an edit changed in its own request (empty: nothing)."""
    strategy: Strategy | None = None
    """The strategy a custom-strategy trace was made with (built-in strategies need none)."""


def lineage_attrs(trace: Trace, edits: list[Edit]) -> dict[str, Any]:
    """The graph attributes that tie a replay to its parent: its id and path, the edits, the chain."""
    parent_path = str(trace.path) if trace.path else None
    return {
        "parent_run_id": trace.run_id,
        "parent_path": parent_path,
        "edits": [edit.to_dict() for edit in edits],
        "lineage": [
            {"run_id": trace.run_id, "path": parent_path, "edits": trace.edits},
            *trace.graph.graph.get("lineage", []),
        ],
    }


class _Editor:
    """Applies edits one by one to a mutable copy of the source run's layout."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.config = MoAConfig.from_dict(trace.config, source=f"trace {trace.run_id}")
        self.messages = trace.messages
        # Per layer: [source node id (None: added), agent]; the last layer is the aggregator.
        self.rows: list[list[list[Any]]] = [
            [[node_id(layer, index), agent] for index, agent in enumerate(agents)]
            for layer, agents in enumerate(self.config.proposers, start=1)
        ]
        self.rows.append([[node_id(self.config.layers, 0), self.config.aggregator]])
        self.templates = {
            "aggregator_template": self.config.aggregator_template,
            "proposer_template": self.config.proposer_template,
        }
        self.node_messages = trace.node_messages
        self.fields: dict[str, Any] = {}

    def slot(self, edit: Edit, node: str) -> tuple[int, list[Any]]:
        """The (layer, slot) of a source node id, or one line saying which ids exist."""
        for layer, row in enumerate(self.rows, start=1):
            for slot in row:
                if slot[0] == node:
                    return layer, slot
        known = [
            node_id(layer, i)
            for layer, row in enumerate(self.config.proposers, 1)
            for i in range(len(row))
        ]
        known.append(node_id(self.config.layers, 0))
        gone = " (another edit removes it)" if node in known else ""
        raise ConfigError(
            f"{label(edit)}: no node {node!r} to edit{gone}; "
            f"trace {self.trace.run_id} has {', '.join(known)}"
        )

    def apply(self, edit: Edit) -> None:
        """Apply one edit, or raise ConfigError naming it and the fix."""
        if not isinstance(edit, tuple(EDIT_KINDS.values())):
            raise ConfigError(
                f"{textwrap.shorten(repr(edit), 40, placeholder='…')} is not an edit; use "
                "AggregatorTemplate, ProposerTemplate, UserPrompt, NodeMessage, NodeParams, "
                "AddProposer or RemoveProposer"
            )
        handler: Callable[[Any], None] = getattr(self, f"_{edit.kind}")
        handler(edit)

    def _template(self, edit: Edit, text: Any) -> str:
        if not isinstance(text, str) or REFERENCES not in text:
            raise ConfigError(
                f"{label(edit)}: the template must contain {REFERENCES} where the answers go"
            )
        return text

    def _aggregator_template(self, edit: AggregatorTemplate) -> None:
        if self.config.layers == 1:
            raise ConfigError(
                f"{label(edit)}: this run is one call that reads no references; use "
                f"NodeMessage({node_id(1, 0)!r}, 'system' or 'user', text) to change what it was sent"
            )
        text = self._template(edit, edit.text)
        if self.templates["proposer_template"] is None and self.config.layers > 2:
            # The proposers of layers > 1 shared the aggregator's template; they keep the old one.
            self.templates["proposer_template"] = self.templates["aggregator_template"]
        self.templates["aggregator_template"] = text

    def _proposer_template(self, edit: ProposerTemplate) -> None:
        if self.config.layers == 2:
            raise ConfigError(
                f"{label(edit)}: this run has 2 layers, so no proposer reads references; "
                "use AggregatorTemplate to change the aggregator's"
            )
        self.templates["proposer_template"] = self._template(edit, edit.text)

    def _last_user(self, edit: Edit) -> int:
        users = [i for i, m in enumerate(self.messages) if m["role"] == "user"]
        if not users:
            raise ConfigError(f"{label(edit)}: the run's messages have no user message to replace")
        return users[-1]

    def _user_prompt(self, edit: UserPrompt) -> None:
        if not isinstance(edit.text, str) or not edit.text.strip():
            raise ConfigError(f"{label(edit)}: the prompt is empty; give the question to ask")
        self.messages[self._last_user(edit)]["content"] = edit.text

    def _node_message(self, edit: NodeMessage) -> None:
        layer, slot = self.slot(edit, edit.node)
        if edit.role not in ("system", "user") or not isinstance(edit.content, str):
            raise ConfigError(f"{label(edit)}: role must be 'system' or 'user' and content a string")
        if edit.role == "user":
            self._last_user(edit)
        elif layer > 1:
            self._template(edit, edit.content)
        elif REFERENCES in edit.content:
            raise ConfigError(
                f"{label(edit)}: layer 1 reads no references; remove {REFERENCES} from the message"
            )
        self.node_messages.setdefault(slot[0], {})[edit.role] = edit.content

    def _node_params(self, edit: NodeParams) -> None:
        _, slot = self.slot(edit, edit.node)
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
        slot[1] = self._agent(edit, slot[1].model_dump() | update)

    def _agent(self, edit: Edit, data: Any) -> Agent:
        try:
            return Agent.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(one_line(exc, label(edit))) from None

    def _add_proposer(self, edit: AddProposer) -> None:
        proposer_layers = range(1, self.config.layers)
        if edit.layer is not None and edit.layer not in proposer_layers:
            raise ConfigError(
                f"{label(edit)}: layer must be one of {list(proposer_layers)} (the proposer layers) "
                "or None for every one of them"
            )
        for layer in proposer_layers if edit.layer is None else [edit.layer]:
            row = self.rows[layer - 1]
            if isinstance(edit.agent, Agent):
                agent = edit.agent
            else:
                agent = self._agent(edit, row[0][1].model_dump() | {"model": edit.agent})
            row.append([None, agent])

    def _remove_proposer(self, edit: RemoveProposer) -> None:
        layer, slot = self.slot(edit, edit.node)
        if layer == len(self.rows):
            raise ConfigError(f"{label(edit)}: {edit.node} is the aggregator; a mixture needs one")
        row = self.rows[layer - 1]
        if len(row) == 1:
            raise ConfigError(f"{label(edit)}: {edit.node} is the last proposer of layer {layer}")
        row.remove(slot)
        self.node_messages.pop(slot[0], None)

    def _set_config(self, edit: SetConfig) -> None:
        shaped = {"proposers", "aggregator", "layers"} & set(edit.fields)
        if shaped:
            raise ConfigError(
                f"{label(edit)}: {sorted(shaped)} shape the mixture; use AddProposer, "
                "RemoveProposer or NodeParams"
            )
        self.fields |= edit.fields

    def new_config(self) -> MoAConfig:
        """The config of the replay."""
        data = self.config.to_dict() | self.templates | self.fields
        data["layers"] = len(self.rows)
        data["proposers"] = [[a.model_dump() for _, a in row] for row in self.rows[:-1]]
        data["aggregator"] = self.rows[-1][0][1].model_dump()
        return MoAConfig.from_dict(data, source="replay")


def _inputs(
    config: MoAConfig, messages: list[dict], overrides: Mapping[str, str], layer: int, agent: Agent
) -> dict[str, Any]:
    """What a node's own request is made of, apart from the answers it reads."""
    return {
        "model": agent.model,
        "base_url": agent.base_url,
        **agent.params(),
        "template": config.template_for(layer) if layer > 1 else None,
        "user prompt": messages,
        "system message": overrides.get("system"),
        "user message": overrides.get("user"),
    }


def _describe(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    changed = []
    for key in dict.fromkeys([*before, *after]):
        old, new = before.get(key), after.get(key)
        if canonical_json(old) == canonical_json(new):
            continue
        short = isinstance(old, (int, float, type(None))) and isinstance(new, (int, float, type(None)))
        plain = key in ("model", "base_url") or short
        changed.append(f"{key} {old} → {new}" if plain else key)
    return changed


def prepare(trace: Trace, edits: Edit | Iterable[Edit]) -> Prepared:
    """The replay of ``trace`` with ``edits``, checked and ready to run; raises ``ConfigError``."""
    edits = [edits] if isinstance(edits, tuple(EDIT_KINDS.values())) else list(edits)
    config = config_from_dict(trace.config, source=f"trace {trace.run_id}")
    if not isinstance(config, MoAConfig):
        from moa_lab._replay.by_id import prepare_by_id

        return prepare_by_id(trace, config, edits)
    editor = _Editor(trace)
    for edit in edits:
        editor.apply(edit)
    config = editor.new_config()
    old_inputs: dict[str, dict[str, Any]] = {}
    for layer, row in enumerate([*editor.config.proposers, [editor.config.aggregator]], start=1):
        for index, agent in enumerate(row):
            name = node_id(layer, index)
            overrides = trace.node_messages.get(name, {})
            old_inputs[name] = _inputs(editor.config, trace.messages, overrides, layer, agent)
    origins: dict[str, str | None] = {}
    node_messages: dict[str, dict[str, str]] = {}
    changes: dict[str, list[str]] = {}
    for layer, row in enumerate(editor.rows, start=1):
        for index, (origin, agent) in enumerate(row):
            name = node_id(layer, index)
            origins[name] = origin
            overrides = editor.node_messages.get(origin, {}) if origin else {}
            if overrides:
                node_messages[name] = dict(overrides)
            if origin is None:
                changes[name] = ["new proposer"]
            else:
                new = _inputs(config, editor.messages, overrides, layer, agent)
                changes[name] = _describe(old_inputs[origin], new)
    basis = ReplayBasis(
        source=trace,
        origins=origins,
        edited=frozenset(name for name, what in changes.items() if what),
        node_messages=node_messages,
        attrs=lineage_attrs(trace, edits),
    )
    return Prepared(trace, config, editor.messages, basis, changes)
