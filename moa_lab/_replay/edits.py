"""The edits a replay applies: small frozen values that name nodes by their id in the source trace.

Invariant: an edit is plain data (``to_dict`` / ``edit_from_dict`` round-trip), so a trace records
the edits that made it and a replay of a replay can show the whole chain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

from moa_lab._config import Agent
from moa_lab._errors import ConfigError

__all__ = [
    "EDIT_KINDS",
    "AddProposer",
    "AggregatorTemplate",
    "Edit",
    "NodeMessage",
    "NodeParams",
    "ProposerTemplate",
    "RemoveProposer",
    "SetConfig",
    "UserPrompt",
    "edit_from_dict",
    "label",
]


class _EditData:
    """Plain-data round trip shared by every edit; ``str(edit)`` says what it changes in a few words."""

    kind: ClassVar[str]

    def to_dict(self) -> dict[str, Any]:
        """The edit as JSON-ready data (``kind`` says which edit)."""
        data = asdict(self)  # type: ignore[call-overload]
        if isinstance(getattr(self, "agent", None), Agent):
            data["agent"] = self.agent.model_dump(mode="json")  # type: ignore[attr-defined]
        return {"kind": self.kind, **data}


@dataclass(frozen=True)
class AggregatorTemplate(_EditData):
    """Give the final aggregator a new template (``{references}`` marks where the answers go)."""

    text: str
    kind: ClassVar[str] = "aggregator_template"

    def __str__(self) -> str:
        return "aggregator template"


@dataclass(frozen=True)
class ProposerTemplate(_EditData):
    """Give the proposers of layers > 1 a new template (``{references}`` marks the answers)."""

    text: str
    kind: ClassVar[str] = "proposer_template"

    def __str__(self) -> str:
        return "proposer template"


@dataclass(frozen=True)
class UserPrompt(_EditData):
    """Ask a different question (it replaces the last user message, so every call is recomputed)."""

    text: str
    kind: ClassVar[str] = "user_prompt"

    def __str__(self) -> str:
        return "user prompt"


@dataclass(frozen=True)
class NodeMessage(_EditData):
    """Replace one node's whole system prompt, or its user message.

    For a node of layer > 1 the system prompt must place the answers it reads with ``{references}``;
    it wins over any template edit, and replays of the replay keep it.
    """

    node: str
    role: Literal["system", "user"]
    content: str
    kind: ClassVar[str] = "node_message"

    def __str__(self) -> str:
        return f"{self.node} {self.role} message"


@dataclass(frozen=True)
class NodeParams(_EditData):
    """Change one node's model, endpoint, temperature or max_tokens (None keeps a field as it was)."""

    node: str
    model: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    base_url: str | None = None
    kind: ClassVar[str] = "node_params"

    def __str__(self) -> str:
        chosen = {k: v for k, v in self.to_dict().items() if k not in ("kind", "node") and v is not None}
        return f"{self.node} " + ", ".join(f"{k}={v}" for k, v in chosen.items())


@dataclass(frozen=True)
class AddProposer(_EditData):
    """Append a proposer to a layer (``layer=None``: to every proposer layer).

    A model name gives a copy of the layer's first proposer with that model; an ``Agent`` is used as
    it is.
    """

    agent: Agent | str
    layer: int | None = None
    kind: ClassVar[str] = "add_proposer"

    def __str__(self) -> str:
        model = self.agent.model if isinstance(self.agent, Agent) else self.agent
        return f"add {model} to " + (
            "every proposer layer" if self.layer is None else f"layer {self.layer}"
        )


@dataclass(frozen=True)
class RemoveProposer(_EditData):
    """Remove the proposer at this node (the later proposers of its layer move up one index)."""

    node: str
    kind: ClassVar[str] = "remove_proposer"

    def __str__(self) -> str:
        return f"remove {self.node}"


@dataclass(frozen=True, init=False)
class SetConfig(_EditData):
    """Change fields of the run's config, whatever its strategy: ``SetConfig(rounds=3)`` for a
    debate, ``SetConfig(value_prompt="...")`` for a Tree-of-Thoughts search."""

    fields: Mapping[str, Any]
    kind: ClassVar[str] = "set_config"

    def __init__(self, fields: Mapping[str, Any] | None = None, **changes: Any):
        object.__setattr__(self, "fields", dict(fields or {}) | changes)

    def __str__(self) -> str:
        return "set " + ", ".join(f"{k}={str(v)[:30]!r}" for k, v in self.fields.items())


Edit = (
    AggregatorTemplate
    | ProposerTemplate
    | UserPrompt
    | NodeMessage
    | NodeParams
    | AddProposer
    | RemoveProposer
    | SetConfig
)
EDIT_KINDS: dict[str, type] = {
    edit.kind: edit
    for edit in (
        AggregatorTemplate,
        ProposerTemplate,
        UserPrompt,
        NodeMessage,
        NodeParams,
        AddProposer,
        RemoveProposer,
        SetConfig,
    )
}


def edit_from_dict(data: Mapping[str, Any]) -> Edit:
    """Rebuild an edit from ``to_dict`` data (as a trace records it)."""
    kind = EDIT_KINDS.get(str(data.get("kind")))
    if kind is None:
        raise ConfigError(
            f"unknown edit kind {data.get('kind')!r}; choose one of: {', '.join(EDIT_KINDS)}"
        )
    values = {f.name: data[f.name] for f in fields(kind) if f.name in data}
    if isinstance(values.get("agent"), dict):
        values["agent"] = Agent.model_validate(values["agent"])
    return kind(**values)


def label(edit: Edit) -> str:
    """How an error names an edit: its class, and the node it edits."""
    node = getattr(edit, "node", None)
    return f"{type(edit).__name__}({node})" if node else type(edit).__name__
