"""Replay a trace with edits: recompute only the calls an edit reaches and reuse every other answer.

Edits are small frozen values (``AggregatorTemplate``, ``NodeParams``, ``RemoveProposer``, ...) that
name nodes by their id in the source trace. They become a new config, new user messages and per-node
message overrides; the engine then runs the new mixture and takes from the source trace the answer of
every call whose request is unchanged and none of whose references was recomputed. ``plan`` is that
same run with a stand-in for every answer, so it sends nothing and names exactly the calls a replay
will send.

Invariant: every edit is checked before anything is sent (a bad edit is one line naming the edit and
the fix), a replay never changes its source, and the new trace records its parent and the whole
chain of edits back to the original run.
"""

from __future__ import annotations

import argparse
import json
import math
import textwrap
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import ValidationError

from moa_lab._backend import Completion
from moa_lab._cache import CallCache, canonical_json
from moa_lab._config import Agent, MoAConfig, _one_line
from moa_lab._engine import OnCall, ReplayBasis, _prompt_text, blocking, execute_run
from moa_lab._errors import ConfigError, RunError
from moa_lab._prompts import REFERENCES
from moa_lab._trace import Trace, default_trace_path, node_id

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
    "UserPrompt",
    "add_command",
    "aplan",
    "areplay",
    "edit_from_dict",
    "edits_from_args",
    "lineage",
    "plan",
    "replay",
]


# -- the edits ---------------------------------------------------------------------------------
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


Edit = (
    AggregatorTemplate
    | ProposerTemplate
    | UserPrompt
    | NodeMessage
    | NodeParams
    | AddProposer
    | RemoveProposer
)
_KINDS: dict[str, type] = {
    edit.kind: edit
    for edit in (
        AggregatorTemplate,
        ProposerTemplate,
        UserPrompt,
        NodeMessage,
        NodeParams,
        AddProposer,
        RemoveProposer,
    )
}


def edit_from_dict(data: Mapping[str, Any]) -> Edit:
    """Rebuild an edit from ``to_dict`` data (as a trace records it)."""
    kind = _KINDS.get(str(data.get("kind")))
    if kind is None:
        raise ConfigError(f"unknown edit kind {data.get('kind')!r}; choose one of: {', '.join(_KINDS)}")
    values = {f.name: data[f.name] for f in fields(kind) if f.name in data}
    if isinstance(values.get("agent"), dict):
        values["agent"] = Agent.model_validate(values["agent"])
    return kind(**values)


# -- from edits to a replay basis --------------------------------------------------------------
@dataclass(frozen=True)
class _Prepared:
    """A replay ready to run: the new config and messages, and how its nodes map onto the source."""

    source: Trace
    config: MoAConfig
    messages: list[dict[str, Any]]
    basis: ReplayBasis
    changes: dict[str, list[str]]
    """New node id -> what an edit changed in its own request (empty: nothing)."""


def _label(edit: Edit) -> str:
    node = getattr(edit, "node", None)
    return f"{type(edit).__name__}({node})" if node else type(edit).__name__


class _Editor:
    """Applies edits one by one to a mutable copy of the source run's layout."""

    def __init__(self, trace: Trace):
        self.trace = trace
        self.config = MoAConfig.from_dict(trace.config, source=f"trace {trace.run_id}")
        self.messages = [dict(m) for m in trace.graph.graph["messages"]]
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
        self.node_messages = {
            node: dict(edits) for node, edits in trace.graph.graph.get("node_messages", {}).items()
        }

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
            f"{_label(edit)}: no node {node!r} to edit{gone}; "
            f"trace {self.trace.run_id} has {', '.join(known)}"
        )

    def apply(self, edit: Edit) -> None:
        """Apply one edit, or raise ConfigError naming it and the fix."""
        if not isinstance(edit, tuple(_KINDS.values())):
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
                f"{_label(edit)}: the template must contain {REFERENCES} where the answers go"
            )
        return text

    def _aggregator_template(self, edit: AggregatorTemplate) -> None:
        text = self._template(edit, edit.text)
        if self.templates["proposer_template"] is None and self.config.layers > 2:
            # The proposers of layers > 1 shared the aggregator's template; they keep the old one.
            self.templates["proposer_template"] = self.templates["aggregator_template"]
        self.templates["aggregator_template"] = text

    def _proposer_template(self, edit: ProposerTemplate) -> None:
        if self.config.layers == 2:
            raise ConfigError(
                f"{_label(edit)}: this run has 2 layers, so no proposer reads references; "
                "use AggregatorTemplate to change the aggregator's"
            )
        self.templates["proposer_template"] = self._template(edit, edit.text)

    def _last_user(self, edit: Edit) -> int:
        users = [i for i, m in enumerate(self.messages) if m["role"] == "user"]
        if not users:
            raise ConfigError(f"{_label(edit)}: the run's messages have no user message to replace")
        return users[-1]

    def _user_prompt(self, edit: UserPrompt) -> None:
        if not isinstance(edit.text, str) or not edit.text.strip():
            raise ConfigError(f"{_label(edit)}: the prompt is empty; give the question to ask")
        self.messages[self._last_user(edit)]["content"] = edit.text

    def _node_message(self, edit: NodeMessage) -> None:
        layer, slot = self.slot(edit, edit.node)
        if edit.role not in ("system", "user") or not isinstance(edit.content, str):
            raise ConfigError(f"{_label(edit)}: role must be 'system' or 'user' and content a string")
        if edit.role == "user":
            self._last_user(edit)
        elif layer > 1:
            self._template(edit, edit.content)
        elif REFERENCES in edit.content:
            raise ConfigError(
                f"{_label(edit)}: layer 1 reads no references; remove {REFERENCES} from the message"
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
                f"{_label(edit)}: nothing to change; set model, temperature, max_tokens or base_url"
            )
        slot[1] = self._agent(edit, slot[1].model_dump() | update)

    def _agent(self, edit: Edit, data: Any) -> Agent:
        try:
            return Agent.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(_one_line(exc, _label(edit))) from None

    def _add_proposer(self, edit: AddProposer) -> None:
        proposer_layers = range(1, self.config.layers)
        if edit.layer is not None and edit.layer not in proposer_layers:
            raise ConfigError(
                f"{_label(edit)}: layer must be one of {list(proposer_layers)} (the proposer layers) "
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
            raise ConfigError(f"{_label(edit)}: {edit.node} is the aggregator; a mixture needs one")
        row = self.rows[layer - 1]
        if len(row) == 1:
            raise ConfigError(f"{_label(edit)}: {edit.node} is the last proposer of layer {layer}")
        row.remove(slot)
        self.node_messages.pop(slot[0], None)

    def new_config(self) -> MoAConfig:
        """The config of the replay."""
        data = self.config.model_dump() | self.templates
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


def _prepare(trace: Trace, edits: Edit | Iterable[Edit]) -> _Prepared:
    edits = [edits] if isinstance(edits, _EditData) else list(edits)
    editor = _Editor(trace)
    for edit in edits:
        editor.apply(edit)
    config = editor.new_config()
    old_inputs: dict[str, dict[str, Any]] = {}
    for layer, row in enumerate([*editor.config.proposers, [editor.config.aggregator]], start=1):
        for index, agent in enumerate(row):
            name = node_id(layer, index)
            overrides = trace.graph.graph.get("node_messages", {}).get(name, {})
            old_inputs[name] = _inputs(
                editor.config, editor.trace.graph.graph["messages"], overrides, layer, agent
            )
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
    parent_path = str(trace.path) if trace.path else None
    attrs = {
        "parent_run_id": trace.run_id,
        "parent_path": parent_path,
        "edits": [edit.to_dict() for edit in edits],
        "lineage": [
            {"run_id": trace.run_id, "path": parent_path, "edits": trace.graph.graph.get("edits", [])},
            *trace.graph.graph.get("lineage", []),
        ],
    }
    basis = ReplayBasis(
        source=trace,
        origins=origins,
        edited=frozenset(name for name, what in changes.items() if what),
        node_messages=node_messages,
        attrs=attrs,
    )
    return _Prepared(trace, config, editor.messages, basis, changes)


# -- the plan (a dry run) ----------------------------------------------------------------------
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
        measured = [d for d in source.graph.nodes.values() if d.get("usage") and d["messages"]]
        chars = sum(len(canonical_json(d["messages"])) for d in measured)
        tokens = sum(d["usage"].get("prompt_tokens") or 0 for d in measured)
        self.chars_per_token = chars / tokens if chars and tokens else 4.0

    def tokens(self, text: str) -> int:
        """Estimated tokens of a text."""
        return math.ceil(len(text) / self.chars_per_token)

    def __call__(self, name: str, agent: Agent, messages: list[dict[str, Any]]) -> Completion:
        graph = self.source.graph
        origin = self.origins.get(name)
        data = graph.nodes[origin] if origin in graph else None
        if data is None or data["response"] is None:
            siblings = [
                graph.nodes[n]
                for n in self.source.calls(_layer_of(name))
                if graph.nodes[n]["response"] is not None
            ]
            data = siblings[0] if siblings else None
        text = data["response"] if data else ""
        completion = ((data or {}).get("usage") or {}).get("completion_tokens")
        completion = self.tokens(text) if completion is None else completion
        if agent.max_tokens is not None:
            completion = min(completion, agent.max_tokens)
        prompt = self.tokens(canonical_json(messages))
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }
        latency = (data or {}).get("latency") or 0.0
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
        costs = [n.cost for n in self.nodes if n.sends]
        return None if any(c is None for c in costs) else sum(costs)  # type: ignore[misc]

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
            "nodes": [asdict(n) for n in self.nodes],
        }

    def __str__(self) -> str:
        lines = [f"{'node':<7}{'lineage':<12}{'model':<28}{'sends':<7}{'in':>7}{'out':>7}  why"]
        for n in self.nodes:
            action = "call" if n.sends else "cache" if n.lineage != "reused" else "-"
            tokens = (f"{n.prompt_tokens:>7}{n.completion_tokens:>7}") if n.sends else f"{'':>14}"
            model = n.model if len(n.model) <= 27 else n.model[:26] + "…"
            lines.append(f"{n.node:<7}{n.lineage:<12}{model:<28}{action:<7}{tokens}  {n.reason}")
        cost = "unknown" if self.cost is None else f"${self.cost:.4f}"
        reused = len(self.nodes) - len(self.recomputed)
        reused = len(self.nodes) - len(self.recomputed)
        lines.append(
            f"replay of {self.source}: {self.calls} call{'' if self.calls == 1 else 's'} to send, "
            f"{reused} reused; "
            f"about {self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, "
            f"cost {cost}"
        )
        if self.problem:
            lines.append(f"the replay would fail: {self.problem}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Plan of {self.source}: {self.calls} calls, recompute {self.recomputed}>"


def _load(trace: Trace | str | Path) -> Trace:
    return trace if isinstance(trace, Trace) else Trace.load(trace)


async def _dry_run(
    prepared: _Prepared, cache: CallCache | str | Path | bool
) -> tuple[Trace, str | None]:
    try:
        trace = await execute_run(
            prepared.messages,
            prepared.config,
            cache=cache,
            trace_path=None,
            progress=False,
            sample=prepared.source.graph.graph.get("sample", 0),
            on_call=None,
            basis=prepared.basis,
            stand_in=_Estimator(prepared.source, prepared.basis.origins),
        )
    except RunError as exc:
        return exc.trace, str(exc)  # type: ignore[return-value]
    return trace, None


def _plan_from(prepared: _Prepared, dry: Trace, problem: str | None) -> Plan:
    source_nodes = set(prepared.source.graph)
    nodes = []
    for name in dry.calls():
        data = dry[name]
        usage = data["usage"] or {}
        if data["lineage"] == "reused":
            reason = "unchanged"
        elif data["lineage"] == "edited":
            reason = ", ".join(prepared.changes[name])
        else:
            fresh = [n for n in dry.references(name) if dry[n]["lineage"] != "reused"]
            reason = (
                "reads " + ", ".join(fresh)
                if fresh
                else "its references changed"
                if data["origin"] in source_nodes
                else "not in the source trace"
            )
        nodes.append(
            PlannedCall(
                node=name,
                model=data["model"],
                lineage=data["lineage"],
                sends=not data["cache_hit"],
                reason=reason,
                prompt_tokens=usage.get("prompt_tokens") or 0,
                completion_tokens=usage.get("completion_tokens") or 0,
                cost=data["cost"],
            )
        )
    return Plan(source=prepared.source.run_id, nodes=tuple(nodes), problem=problem)


async def aplan(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
) -> Plan:
    """What ``replay(trace, edits)`` would send, and its estimated tokens and cost; sends nothing."""
    prepared = _prepare(_load(trace), edits)
    return _plan_from(prepared, *await _dry_run(prepared, cache))


def plan(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
) -> Plan:
    """Blocking ``aplan``: the dry run of a replay (nothing is sent)."""
    return blocking(aplan(trace, edits, cache=cache))


# -- the replay --------------------------------------------------------------------------------
async def areplay(
    trace: Trace | str | Path,
    edits: Edit | Iterable[Edit] = (),
    *,
    cache: CallCache | str | Path | bool = True,
    trace_path: str | Path | bool = True,
    progress: bool = True,
    on_call: OnCall | None = None,
) -> Trace:
    """Replay a trace (or trace file) with edits; only the calls the edits reach are sent.

    Every other node is taken from the source trace, so a replay works from a trace file alone.
    ``cache``, ``trace_path``, ``progress`` and ``on_call`` are as for ``arun``; by default the new
    trace is saved as ``traces/<time>-<slug>-replay-<run id>.json``.
    """
    prepared = _prepare(_load(trace), edits)
    dry, _ = await _dry_run(prepared, cache)
    # Only the agents that will be called need a key or a live endpoint (a local model starts).
    layers = [*prepared.config.proposers, [prepared.config.aggregator]]
    check = [
        layers[dry[n]["layer"] - 1][dry[n]["index"]] for n in dry.calls() if not dry[n]["cache_hit"]
    ]
    run_id = uuid.uuid4().hex[:12]
    if trace_path is True:
        default = default_trace_path(_prompt_text(prepared.messages))
        path: Path | None = default.with_name(f"{default.stem}-replay-{run_id}.json")
    else:
        path = Path(trace_path) if trace_path else None
    return await execute_run(
        prepared.messages,
        prepared.config,
        cache=cache,
        trace_path=path,
        progress=progress,
        sample=prepared.source.graph.graph.get("sample", 0),
        on_call=on_call,
        basis=prepared.basis,
        check=check,
        run_id=run_id,
    )


def replay(trace: Trace | str | Path, edits: Edit | Iterable[Edit] = (), **options: Any) -> Trace:
    """Blocking ``areplay`` for scripts; also works inside a running event loop (Jupyter)."""
    return blocking(areplay(trace, edits, **options))


def lineage(trace: Trace) -> list[dict[str, Any]]:
    """The chain from this trace back to the original run: ``[{run_id, path, edits}, ...]``.

    ``edits`` of an entry are the edits that made that trace from the next one in the list.
    """
    path = str(trace.path) if trace.path else None
    here = {"run_id": trace.run_id, "path": path, "edits": trace.graph.graph.get("edits", [])}
    return [here, *trace.graph.graph.get("lineage", [])]


# -- the command line --------------------------------------------------------------------------
def add_command(subparsers: Any) -> None:
    """Add ``moa-lab replay TRACE [edits] [--dry-run]`` to the CLI's subparsers."""
    from moa_lab.cli import add_call_options

    cmd = subparsers.add_parser(
        "replay",
        help="replay a trace with edits, sending only the calls they reach",
        description="Replay a trace with edits. Only the edited calls and the calls that read them "
        "are sent; every other answer is taken from the trace. Prints the new final answer.",
    )
    cmd.add_argument("trace", metavar="TRACE", help="a trace JSON file")
    cmd.add_argument("--aggregator-prompt", metavar="FILE", help="new template of the final aggregator")
    cmd.add_argument("--proposer-prompt", metavar="FILE", help="new template of proposers of layers > 1")
    cmd.add_argument("--prompt", metavar="TEXT", help="ask this question instead")
    cmd.add_argument(
        "--system",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "FILE"),
        help="replace a node's system prompt with the file's text (repeatable)",
    )
    cmd.add_argument(
        "--user",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "TEXT"),
        help="replace a node's user message (repeatable)",
    )
    cmd.add_argument(
        "--model",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "MODEL"),
        help="call a node with another model (repeatable)",
    )
    cmd.add_argument(
        "--temperature",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "T"),
        help="change a node's temperature (repeatable)",
    )
    cmd.add_argument(
        "--max-tokens",
        nargs=2,
        action="append",
        default=[],
        metavar=("NODE", "N"),
        help="change a node's max_tokens (repeatable)",
    )
    cmd.add_argument(
        "--add-proposer",
        nargs=2,
        action="append",
        default=[],
        metavar=("LAYER", "MODEL"),
        help="append a proposer (a copy of the layer's first, with MODEL) to a layer or 'all'",
    )
    cmd.add_argument(
        "--remove-proposer",
        action="append",
        default=[],
        metavar="NODE",
        help="remove the proposer at NODE (repeatable)",
    )
    cmd.add_argument("--trace-out", metavar="PATH", help="where to write the new trace JSON")
    cmd.add_argument("--dry-run", action="store_true", help="print the plan only; send nothing")
    cmd.add_argument("--json", action="store_true", help="print {answer, trace} (or the plan) as JSON")
    add_call_options(cmd)
    cmd.set_defaults(handler=_replay_command)


def _read(option: str, path: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"{option}: cannot read {path}: {exc.strerror or exc}") from None


def _number(option: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise ConfigError(f"{option}: {value!r} is not a {kind.__name__}") from None


def edits_from_args(args: argparse.Namespace) -> list[Edit]:
    """The edits the replay command's options ask for, in a fixed order."""
    edits: list[Edit] = []
    if args.aggregator_prompt:
        edits.append(AggregatorTemplate(_read("--aggregator-prompt", args.aggregator_prompt)))
    if args.proposer_prompt:
        edits.append(ProposerTemplate(_read("--proposer-prompt", args.proposer_prompt)))
    if args.prompt is not None:
        edits.append(UserPrompt(args.prompt))
    edits += [NodeMessage(node, "system", _read("--system", path)) for node, path in args.system]
    edits += [NodeMessage(node, "user", text) for node, text in args.user]
    edits += [NodeParams(node, model=model) for node, model in args.model]
    edits += [NodeParams(n, temperature=_number("--temperature", t, float)) for n, t in args.temperature]
    edits += [NodeParams(n, max_tokens=_number("--max-tokens", m, int)) for n, m in args.max_tokens]
    for layer, model in args.add_proposer:
        where = None if layer == "all" else _number("--add-proposer", layer, int)
        edits.append(AddProposer(model, layer=where))
    edits += [RemoveProposer(node) for node in args.remove_proposer]
    return edits


def _replay_command(args: argparse.Namespace) -> int:
    from moa_lab.cli import call_options, print_result

    source = Trace.load(args.trace)
    edits = edits_from_args(args)
    cache, progress = call_options(args)
    if args.dry_run:
        planned = plan(source, edits, cache=cache)
        print(json.dumps(planned.to_dict(), ensure_ascii=False) if args.json else planned)
        return 0
    trace = replay(source, edits, cache=cache, trace_path=args.trace_out or True, progress=progress)
    print_result(trace, args.json)
    return 0
