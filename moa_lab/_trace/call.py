"""One call of a run as a typed record: ``Call`` and its ``Usage``, validated field by field.

Invariant: a ``Call`` is frozen and its ``to_dict`` is exactly the node of a trace file; ``from_dict``
checks every field's type and range, so a crafted or corrupt file fails with one line naming the node
and the field instead of a traceback later.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from moa_lab._errors import TraceError

__all__ = ["CALL_FIELDS", "Call", "Usage", "cut_off", "field_error", "node_id", "sampling_text"]

#: What endpoints name an answer stopped by its token cap, in lower case with only letters kept:
#: OpenAI's ``length``, Anthropic's and Bedrock's ``max_tokens``, Gemini's and Cohere's
#: ``MAX_TOKENS``, Mistral's ``model_length``, OpenAI Responses' ``max_output_tokens``, Llama
#: Stack's ``out_of_tokens``, watsonx's ``token_limit``, Anthropic's context window.
_CUT_OFF = frozenset(
    {
        "length",
        "maxlength",
        "maxtokens",
        "maxtokensreached",
        "maxoutputtokens",
        "modellength",
        "outoftokens",
        "tokenlimit",
        "modelcontextwindowexceeded",
    }
)


def cut_off(finish_reason: str | None) -> bool:
    """True when a finish reason, in any gateway's words, says the token cap stopped the answer."""
    if not isinstance(finish_reason, str):
        return False
    key = re.sub("[^a-z]", "", finish_reason.lower())
    return key.removeprefix("finishreason") in _CUT_OFF


def node_id(layer: int, index: int) -> str:
    """The id of the call at (layer, index): ``L2.0`` is the first agent of layer 2."""
    return f"L{layer}.{index}"


# -- field checks shared by Usage and Call ---------------------------------------------------------
def field_error(where: str, name: str, expected: str, value: Any) -> TraceError:
    """A one-line error: which field of what is wrong, what it must be, what it holds."""
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:39] + "…"
    return TraceError(f"{where}: field {name!r} must be {expected}, not {shown}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check(where: str, name: str, value: Any, kind: str, *, optional: bool = False) -> Any:
    """``value`` if it is of ``kind``; a one-line TraceError naming the field otherwise."""
    if value is None and optional:
        return None
    if kind == "str" and isinstance(value, str):
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind == "count" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if kind == "number" and _number(value):
        return float(value)
    if kind in ("seconds", "dollars") and _number(value) and value >= 0:
        return float(value)
    expected = {
        "str": "a string",
        "bool": "true or false",
        "count": "a whole number >= 0",
        "number": "a number",
        "seconds": "a number of seconds >= 0",
        "dollars": "a number of dollars >= 0",
    }[kind]
    raise field_error(where, name, expected + (" or null" if optional else ""), value)


def sampling_text(params: Mapping[str, Any]) -> str:
    """Sampling parameters in a few characters, as every view shows them: ``T0.7 seed 1 ≤128``
    (temperature, top_p when set, seed, max_tokens); ``""`` if none is set."""
    parts = []
    for key, show in (("temperature", "T{}"), ("top_p", "top-p {}"), ("seed", "seed {}")):
        if params.get(key) is not None:
            parts.append(show.format(params[key]))
    if params.get("max_tokens") is not None:
        parts.append(f"≤{params['max_tokens']}")
    return " ".join(parts)


@dataclass(frozen=True)
class Usage:
    """Tokens one call used, as the endpoint reported them; None where it did not say."""

    prompt_tokens: int | None = None
    """Tokens of the messages sent."""
    completion_tokens: int | None = None
    """Tokens the model generated."""
    total_tokens: int | None = None
    """The endpoint's own total (usually prompt + completion)."""
    reasoning_tokens: int | None = None
    """Completion tokens spent reasoning, when the endpoint reports them (part of completion)."""

    @property
    def tokens(self) -> int | None:
        """Prompt plus completion tokens; None when either is unknown."""
        if self.prompt_tokens is None or self.completion_tokens is None:
            return None
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int | None]:
        """Plain data, as the trace file stores it (``reasoning_tokens`` only when reported)."""
        data = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        if self.reasoning_tokens is not None:
            data["reasoning_tokens"] = self.reasoning_tokens
        return data

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "usage") -> Usage:
        """Validate plain data; a one-line TraceError names a field of the wrong type."""
        if not isinstance(data, Mapping):
            raise field_error(where, "usage", "an object of token counts or null", data)
        return cls(
            **{
                f.name: _check(where, f"usage.{f.name}", data.get(f.name), "count", optional=True)
                for f in fields(cls)
            }
        )


@dataclass(frozen=True)
class Call:
    """One model call of a run, as the trace records it (a node of the trace's graph)."""

    id: str
    """Node id: ``L<layer>.<index>`` (``L2.0`` is the first agent of layer 2)."""
    role: str
    """``proposer`` or ``aggregator``."""
    layer: int
    """1-based layer of the call; the aggregator's layer is the last."""
    index: int
    """0-based position of the agent within its layer."""
    model: str
    """Model name as sent to the endpoint."""
    base_url: str
    """The agent's base URL as configured (``local`` for the embedded model)."""
    params: Mapping[str, Any]
    """Sampling parameters as sent (temperature, max_tokens, seed, ...)."""
    messages: tuple[Mapping[str, Any], ...]
    """The chat messages sent, references included: ``({"role": ..., "content": ...}, ...)``."""
    started_at: float
    """Unix time (seconds) when moa_lab began the call."""
    api_key_env: str | None = None
    """Name of the environment variable the key was read from (never the key)."""
    replicate: int = 0
    """Sample index of this request: identical requests of one run stay distinct samples."""
    cache_key: str | None = None
    """The call's key in the call cache (see ``moa_lab._cache.call_key``)."""
    response: str | None = None
    """The answer text (reasoning removed); None when the call failed."""
    reasoning: str | None = None
    """The model's thinking, kept apart from the answer (a reasoning field or ``<think>`` tags)."""
    finish_reason: str | None = None
    """Why generation stopped, as the endpoint said (``stop``, ``length``, ...)."""
    usage: Usage | None = None
    """Tokens used; None when the endpoint reported no usage."""
    cost: float | None = None
    """US dollars of the call at the price table's rates; None when unknown."""
    served_model: str | None = None
    """The model the endpoint said answered (may differ from ``model``)."""
    latency: float | None = None
    """Seconds the endpoint worked on the attempt that succeeded: from when it began serving it (when
    it says so, as the local model does) or when it was sent, to its answer. Waiting for a slot is
    not included. For a cache hit: the latency when the call was first made."""
    ttft: float | None = None
    """Time to first token: seconds from when the endpoint began serving the call (or it was sent)
    to the first token of its answer or reasoning; streamed calls only, None otherwise. For a cache
    hit: as when the call was first made."""
    sent_at: float | None = None
    """Unix time (seconds) the attempt that succeeded was sent (after waiting for a free slot)."""
    served_at: float | None = None
    """Unix time (seconds) the endpoint began serving it, when the endpoint reports it (the local
    model does: its calls wait in turn for the model); None otherwise."""
    timings: Mapping[str, float] | None = None
    """The endpoint's own timing of the call, llama.cpp's ``timings`` where given: ``prompt_n`` and
    ``prompt_ms`` (prefill), ``predicted_n`` and ``predicted_ms`` (decode), ``queued_ms``,
    ``load_ms`` (the model's load, on its first call)."""
    attempts: int = 0
    """HTTP attempts made (0 for a cache hit or a reused answer)."""
    ended_at: float | None = None
    """Unix time (seconds) when the call finished."""
    cache_hit: bool = False
    """True when nothing was sent: the answer came from the cache or from a replay's source."""
    error: str | None = None
    """Why the call failed for good, in one line; None when it succeeded."""
    retried_errors: tuple[str, ...] = ()
    """The failures that were retried before the final attempt, in order."""
    retry_waits: tuple[float, ...] = ()
    """Seconds waited before each retry (backoff, or the server's capped Retry-After)."""
    warnings: tuple[str, ...] = ()
    """What was repaired or is worth knowing about the answer (invalid characters replaced)."""
    origin: str | None = None
    """In a replay: the id of the source trace's call this one stands for (None if it is new)."""
    lineage: str | None = None
    """In a replay: ``reused``, ``edited`` or ``recomputed``; None outside replays."""
    picked: str | None = None
    """For a ranking aggregator: the id of the reference it picked."""
    annotations: Mapping[str, Any] | None = None
    """What the strategy made of the answer, as JSON data (a search's states and their values, a
    debate's parsed answer); None when it recorded nothing."""

    @property
    def ok(self) -> bool:
        """True when the call answered (no error)."""
        return self.error is None and self.response is not None

    @property
    def sent(self) -> bool:
        """True when this run sent the call over the network (not a cache hit nor reused)."""
        return not self.cache_hit

    @property
    def queued(self) -> float | None:
        """Seconds between the start of the call and the start of its service (waiting for a slot,
        and for the model when the endpoint reports it); None when unknown (a cache hit)."""
        begun = self.served_at if self.served_at is not None else self.sent_at
        return None if begun is None else max(begun - self.started_at, 0.0)

    @property
    def sampling(self) -> str:
        """The settings that tell apart agents of one model, in a few characters:
        ``T0.7 seed 1 ≤128`` (temperature, seed, max_tokens, and top_p when set); ``""`` if none."""
        return sampling_text(self.params or {})

    @property
    def token_rate(self) -> float | None:
        """Completion tokens per second after the first token (decode speed), for a streamed call
        with known usage; None otherwise."""
        tokens = self.completion_tokens
        if self.ttft is None or self.latency is None or not tokens or tokens < 2:
            return None
        decoding = self.latency - self.ttft
        return (tokens - 1) / decoding if decoding > 0 else None

    @property
    def truncated(self) -> bool:
        """True when the answer was cut off by the token cap (``finish_reason`` is ``length``, or
        another endpoint's word for it: ``cut_off``)."""
        return cut_off(self.finish_reason)

    @property
    def reused(self) -> bool:
        """True when a replay took this answer from its source trace."""
        return self.lineage == "reused"

    @property
    def prompt_tokens(self) -> int | None:
        """Prompt tokens, None when unknown."""
        return self.usage.prompt_tokens if self.usage else None

    @property
    def completion_tokens(self) -> int | None:
        """Completion tokens, None when unknown."""
        return self.usage.completion_tokens if self.usage else None

    def to_dict(self) -> dict[str, Any]:
        """The flat JSON-ready fields a trace file stores for this node (``id`` included)."""
        data: dict[str, Any] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name in _OMITTED_WHEN_EMPTY and value in (None, ()):
                continue
            if spec.name == "usage":
                value = value.to_dict() if value is not None else None
            elif spec.name == "messages":
                value = [dict(m) for m in value]
            elif spec.name in ("params", "timings", "annotations") and value is not None:
                value = dict(value)
            elif isinstance(value, tuple):
                value = list(value)
            data[spec.name] = value
        return data

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "trace") -> Call:
        """Validate one node's fields; a one-line TraceError names the node and the field."""
        if not isinstance(data, Mapping):
            raise TraceError(f"{source}: a node is not an object")
        name = data.get("id")
        if not isinstance(name, str) or not name:
            raise field_error(f"{source}: a node", "id", "a non-empty string", name)
        where = f"{source}: node {name[:40]}"
        lacking = [f for f in _REQUIRED if f not in data]
        if lacking:
            raise TraceError(f"{where} lacks fields {lacking}")
        values: dict[str, Any] = {"id": name}
        for spec_name, kind, optional in _KINDS:
            if spec_name in data:
                values[spec_name] = _check(where, spec_name, data[spec_name], kind, optional=optional)
        if values["layer"] < 1:
            raise field_error(where, "layer", "a whole number >= 1", data["layer"])
        values["params"] = _mapping(where, "params", data.get("params"))
        values["messages"] = _messages(where, data.get("messages"))
        timings = data.get("timings")
        if timings is not None and (
            not isinstance(timings, Mapping)
            or not all(isinstance(k, str) and _number(v) for k, v in timings.items())
        ):
            raise field_error(where, "timings", "an object of numbers or null", timings)
        values["timings"] = None if timings is None else dict(timings)
        annotations = data.get("annotations")
        if annotations is not None and not isinstance(annotations, Mapping):
            raise field_error(where, "annotations", "an object or null", annotations)
        values["annotations"] = None if annotations is None else dict(annotations)
        usage = data.get("usage")
        values["usage"] = None if usage is None else Usage.from_dict(usage, where=where)
        for name in ("retried_errors", "warnings"):
            items = data.get(name, [])
            if not isinstance(items, list) or not all(isinstance(e, str) for e in items):
                raise field_error(where, name, "a list of strings", items)
            values[name] = tuple(items)
        waits = data.get("retry_waits", [])
        if not isinstance(waits, list) or not all(_number(w) and w >= 0 for w in waits):
            raise field_error(where, "retry_waits", "a list of seconds", waits)
        values["retry_waits"] = tuple(float(w) for w in waits)
        return cls(**values)


#: Optional fields left out of a node's JSON when they are empty (they exist only in replays,
#: ranking runs, reasoning models or repaired answers), so the files of ordinary runs keep their shape.
_OMITTED_WHEN_EMPTY = frozenset(
    {
        "origin",
        "lineage",
        "picked",
        "reasoning",
        "retry_waits",
        "warnings",
        "sent_at",
        "served_at",
        "timings",
        "annotations",
        "ttft",
    }
)
#: Fields every node of a trace file has (older files may lack the others).
_REQUIRED = (
    "role",
    "layer",
    "index",
    "model",
    "base_url",
    "params",
    "messages",
    "response",
    "finish_reason",
    "usage",
    "cost",
    "started_at",
    "ended_at",
    "cache_hit",
    "error",
)
#: Name, kind and whether null is allowed, for every scalar field of a node.
_KINDS = (
    ("role", "str", False),
    ("layer", "count", False),
    ("index", "count", False),
    ("model", "str", False),
    ("base_url", "str", False),
    ("started_at", "seconds", False),
    ("api_key_env", "str", True),
    ("replicate", "count", False),
    ("cache_key", "str", True),
    ("response", "str", True),
    ("reasoning", "str", True),
    ("finish_reason", "str", True),
    ("cost", "dollars", True),
    ("served_model", "str", True),
    ("latency", "seconds", True),
    ("ttft", "seconds", True),
    ("sent_at", "seconds", True),
    ("served_at", "seconds", True),
    ("attempts", "count", False),
    ("ended_at", "seconds", True),
    ("cache_hit", "bool", False),
    ("error", "str", True),
    ("origin", "str", True),
    ("lineage", "str", True),
    ("picked", "str", True),
)
#: Names of the fields of a node as the trace file stores them.
CALL_FIELDS = tuple(f.name for f in fields(Call))


def _mapping(where: str, name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise field_error(where, name, "an object", value)
    return dict(value)


def _messages(where: str, value: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise field_error(where, "messages", "a list of chat messages", value)
    for message in value:
        if (
            not isinstance(message, Mapping)
            or not isinstance(message.get("role"), str)
            or not isinstance(message.get("content"), str)
        ):
            raise field_error(where, "messages", "a list of {role: string, content: string}", message)
    return tuple(dict(m) for m in value)
