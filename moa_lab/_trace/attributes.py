"""The run-level attributes of a trace (the graph's attributes): what each holds, checked on load.

Invariant: a trace that loads has attributes of the types every reader relies on (the views, replay,
``moa-lab show``), in sane ranges, and a run id that is safe inside a file name; anything else is one
``TraceError`` line naming the field. Unknown attributes are kept (newer versions may add some).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from moa_lab._errors import TraceError
from moa_lab._text import clip
from moa_lab._trace.call import field_error

__all__ = ["MAX_LAYERS", "RUN_ID", "check_attributes", "check_call_place", "describe_replay"]

#: A run id as moa_lab writes them (12 hex digits), and what it accepts from elsewhere: it ends up in
#: file names, so no separators, no dots to climb out of a folder.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: More layers than anyone runs: a crafted ``layers: 1000000000`` must not make a view loop for ever.
MAX_LAYERS = 10_000
_STATUSES = ("complete", "failed", "running")


def _seconds(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    )


def _messages(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(m, Mapping) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
        for m in value
    )


def _run_id(value: Any) -> bool:
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def _node_messages(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(node, str)
        and isinstance(edits, Mapping)
        and all(k in ("system", "user") and isinstance(v, str) for k, v in edits.items())
        for node, edits in value.items()
    )


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, Mapping) for v in value)


#: Attribute -> (check, what it must be, whether null is allowed).
_CHECKS: dict[str, tuple[Any, str, bool]] = {
    "run_id": (_run_id, "1-64 letters, digits, '-' or '_' (it names files)", False),
    "created_at": (_seconds, "a number of seconds >= 0", False),
    "finished_at": (_seconds, "a number of seconds >= 0", True),
    "status": (lambda v: v in _STATUSES, f"one of {', '.join(_STATUSES)}", False),
    "prompt": (lambda v: isinstance(v, str), "a string", False),
    "final": (lambda v: isinstance(v, str), "a string", True),
    "messages": (
        lambda v: _messages(v) and len(v) > 0,
        "a non-empty list of {role: string, content: string}",
        False,
    ),
    "config": (lambda v: isinstance(v, Mapping), "an object", False),
    "sample": (
        lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "a whole number >= 0",
        False,
    ),
    "node_messages": (_node_messages, "an object of {node: {system|user: string}}", False),
    "edits": (_list_of_objects, "a list of edit objects", False),
    "lineage": (_list_of_objects, "a list of {run_id, path, edits} objects", False),
    "parent_run_id": (_run_id, "a run id", True),
    "parent_path": (lambda v: isinstance(v, str), "a string", True),
    "moa_lab_version": (lambda v: isinstance(v, str), "a string", False),
    "decision": (lambda v: isinstance(v, Mapping), "an object", True),
    "imported": (lambda v: isinstance(v, Mapping), "an object", True),
    "outputs": (
        lambda v: isinstance(v, list) and all(isinstance(o, str) for o in v),
        "a list of strings",
        True,
    ),
}


def check_attributes(attrs: Mapping[str, Any], *, source: str) -> None:
    """Raise a one-line ``TraceError`` naming the first attribute of the wrong type or range."""
    where = f"{source}: the run"
    for name, (check, expected, optional) in _CHECKS.items():
        if name not in attrs or (optional and attrs[name] is None):
            continue
        if not check(attrs[name]):
            raise field_error(where, name, expected + (" or null" if optional else ""), attrs[name])
    config = attrs["config"]
    strategy = config.get("strategy")
    if strategy is not None and not isinstance(strategy, str):
        raise field_error(where, "config.strategy", "a strategy's name (a string) or null", strategy)
    for name in ("proposers", "agents"):  # what the views count and replay rebuilds agents from
        if config.get(name) is not None and not isinstance(config[name], list):
            raise field_error(where, f"config.{name}", "a list", config[name])
    layers = config.get("layers")
    if not isinstance(layers, int) or isinstance(layers, bool) or not 1 <= layers <= MAX_LAYERS:
        raise field_error(where, "config.layers", f"a whole number from 1 to {MAX_LAYERS}", layers)


def check_call_place(layer: int, index: int, layers: int, *, where: str) -> None:
    """A node must sit inside the run's layers (views and replay index by layer)."""
    if layer > layers:
        raise TraceError(f"{where}: field 'layer' is {layer}, but the run has {layers} layers")
    if index > MAX_LAYERS * 100:
        raise TraceError(f"{where}: field 'index' is {index}, more agents than any run has")


def _describe(data: Any) -> str:
    """One edit of a trace's ``edits`` attribute in words, its text quoted and clipped."""
    if not isinstance(data, Mapping):
        return "an unreadable edit"
    kind = str(data.get("kind", "?"))
    node = data.get("node")
    text = data.get("text")
    where = f"{node} " if isinstance(node, str) else ""
    if kind in ("aggregator_template", "proposer_template", "user_prompt") and isinstance(text, str):
        return f"{kind.replace('_', ' ')} {clip(text, 60)!r}"
    content = data.get("content")
    if kind == "node_message" and isinstance(content, str):
        return f"{where}{data.get('role', 'user')} message {clip(content, 60)!r}"
    if kind == "node_params":
        chosen = {k: v for k, v in data.items() if k not in ("kind", "node") and v is not None}
        return where + ", ".join(f"{k}={clip(str(v), 30)}" for k, v in chosen.items())
    if kind == "add_proposer":
        agent = data.get("agent")
        model = agent.get("model") if isinstance(agent, Mapping) else agent
        return f"add {clip(str(model), 40)}"
    if kind == "remove_proposer":
        return f"remove {node}"
    if kind == "set_config":
        fields_ = data.get("fields") if isinstance(data.get("fields"), Mapping) else {}
        return "set " + ", ".join(f"{k}={clip(str(v), 30)!r}" for k, v in fields_.items())
    return clip(kind.replace("_", " "), 40)


def describe_replay(attrs: Mapping[str, Any]) -> str | None:
    """``replay of <run id>: <edit>; <edit>`` for a trace made by a replay (from its graph
    attributes), None for an original run. Template texts are quoted, clipped to 60 characters."""
    parent = attrs.get("parent_run_id")
    if not parent:
        return None
    edits = attrs.get("edits") if isinstance(attrs.get("edits"), list) else []
    said = "; ".join(_describe(e) for e in edits) or "no edit"
    return f"replay of {parent}: {said}"
