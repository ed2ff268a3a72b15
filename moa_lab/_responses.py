"""Reading what an endpoint sent back: an answer with text, or one line saying what came instead.

Real endpoints answer in more shapes than the OpenAI reference: reasoning models put their thinking
in ``reasoning_content`` / ``reasoning`` or inline as ``<think>...</think>``, gateways send a 200 whose
body is ``{"error": ...}`` or a login page, some servers stream when asked not to, and usage may lack
counts. This module turns the raw body into an ``Answer`` or raises ``CallError``.

Invariant: an ``Answer`` always has non-empty text; anything else is an error that names what came
back (status, content type, the first characters of the body, escaped) and says whether a retry can
help. Missing counts stay None (unknown), never 0; invalid characters are replaced and reported.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import time
from dataclasses import dataclass
from datetime import timezone
from typing import Any

from moa_lab._errors import CallError
from moa_lab._trace import Usage, cut_off

__all__ = [
    "REASONING_FIELDS",
    "Answer",
    "clean_text",
    "read_completion",
    "reasoning_of",
    "retry_after_seconds",
    "split_reasoning",
    "stream_failed",
    "timings",
]

_PREVIEW = 120
#: Tags reasoning models wrap their thinking in, at the start of ``content``.
_TAGS = "think|thinking|thought|reasoning"
_THINK = re.compile(rf"^\s*<({_TAGS})>(.*?)(?:</\1>|\Z)", re.DOTALL | re.IGNORECASE)
_CLOSE_ONLY = re.compile(rf"^(.*?)</({_TAGS})>", re.DOTALL | re.IGNORECASE)
#: Fields reasoning models put their thinking in, beside ``content`` (DeepSeek, vLLM, Groq, Ollama...).
REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: A wait as HTTP writes it (delay-seconds is 1*DIGIT, RFC 9110), or with a decimal fraction as
#: servers (and ``Retry-After-Ms``) also send: ASCII digits only, no sign, exponent or ``_``.
_DELAY = re.compile("[0-9]+(?:[.][0-9]+)?")


@dataclass(frozen=True)
class Answer:
    """What one successful call returned: the answer text, and its reasoning kept apart."""

    text: str
    """The answer (never empty), reasoning removed, surrounding whitespace stripped."""
    finish_reason: str | None
    reasoning: str | None
    """The model's thinking, from a reasoning field or inline ``<think>`` tags; None if none."""
    usage: Usage | None
    served_model: str | None
    warnings: tuple[str, ...] = ()
    """What was repaired on the way in (invalid characters replaced)."""
    timings: dict[str, float] | None = None
    """The endpoint's own timing (llama.cpp's ``timings`` object), numbers only."""


def clean_text(text: str) -> tuple[str, int]:
    """The text with lone UTF-16 surrogates (no file can store them) replaced by U+FFFD, and a count."""
    cleaned, count = _SURROGATE.subn("\ufffd", text)
    return cleaned, count


def split_reasoning(content: str) -> tuple[str | None, str]:
    """``(reasoning, answer)`` of a content that may open with ``<think>...</think>``.

    An unclosed ``<think>`` is all reasoning (the budget ran out while thinking); a closing tag with
    no opening one (templates that put ``<think>`` in the prompt) ends the reasoning too.
    """
    opened = _THINK.match(content)
    if opened:
        return opened.group(2).strip(), content[opened.end() :].strip()
    closed = _CLOSE_ONLY.match(content)
    if closed and "<" + closed.group(2).lower() not in closed.group(1).lower():
        return closed.group(1).strip(), content[closed.end() :].strip()
    return None, content


def reasoning_of(message: dict[str, Any]) -> str | None:
    """The thinking a message (or a stream's delta) holds in a field of its own, if any: a string
    field, or OpenRouter's ``reasoning_details`` list of ``{text}`` / ``{summary}`` parts."""
    field = next((message[k] for k in REASONING_FIELDS if isinstance(message.get(k), str)), None)
    if field is not None:
        return field
    details = message.get("reasoning_details")
    if isinstance(details, list):
        pieces = [_part_text(d, "text", "summary") for d in details if isinstance(d, dict)]
        return "".join(pieces) or None
    return None


def _part_text(part: dict[str, Any], *keys: str) -> str:
    """The text of one content part: the first of ``keys`` that is a string, or a list of parts."""
    for key in keys:
        value = part.get(key)
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return "".join(_part_text(p, "text") for p in value if isinstance(p, dict))
    return ""


def _content(value: Any) -> tuple[str, str | None]:
    """The answer text of a message's ``content`` and the thinking it carries: a string, or a list
    of parts (``{"type": "text", "text": ...}``; Mistral's ``{"type": "thinking", ...}`` parts)."""
    if isinstance(value, str):
        return value, None
    if not isinstance(value, list):
        return "", None
    parts = [p for p in value if isinstance(p, dict)]
    thinking = {"thinking", "reasoning"}
    text = "".join(_part_text(p, "text") for p in parts if p.get("type") not in thinking)
    reasoning = "".join(
        _part_text(p, "thinking", "reasoning", "text") for p in parts if p.get("type") in thinking
    )
    return text, reasoning or None


def _preview(text: str) -> str:
    """The first characters of a body, on one line, with control characters escaped."""
    flat = " ".join(text.split())
    shown = flat[:_PREVIEW] + ("…" if len(flat) > _PREVIEW else "")
    return json.dumps(shown, ensure_ascii=True)[1:-1]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _usage(data: Any) -> Usage | None:
    """Usage as reported; a count the endpoint left out (or sent as null) stays None."""
    if not isinstance(data, dict):
        return None
    details = data.get("completion_tokens_details")
    reasoning = details.get("reasoning_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=_count(data.get("prompt_tokens")),
        completion_tokens=_count(data.get("completion_tokens")),
        total_tokens=_count(data.get("total_tokens")),
        reasoning_tokens=_count(reasoning if reasoning is not None else data.get("reasoning_tokens")),
    )


def _error_body(error: Any) -> tuple[str, bool]:
    """The message of an ``{"error": ...}`` body and whether a retry can help (not a 4xx but 429)."""
    if not isinstance(error, dict):
        return str(error), True
    message = str(error.get("message") or error.get("type") or error)
    code = error.get("code") if error.get("code") is not None else error.get("status")
    try:
        status = int(code)
    except (TypeError, ValueError):
        status = None
    kind = str(error.get("type") or "")
    client_fault = (status is not None and 400 <= status < 500 and status != 429) or kind in (
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "not_found_error",
    )
    return message, not client_fault


def _chunk_error(chunk: Any) -> Any:
    """The error a stream's chunk carries instead of an answer, or None: ``{"error": ...}``
    (OpenAI, Anthropic, TGI's string), or a chunk that is itself one (vLLM's ``"object": "error"``)."""
    if not isinstance(chunk, dict):
        return None
    if chunk.get("error"):
        return chunk["error"]
    return chunk if "error" in (chunk.get("object"), chunk.get("type")) else None


def _event_error(data: str) -> Any:
    """The error of an event named ``error`` (``event: error``; llama.cpp's ``error:`` lines)."""
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        return data or "no detail"
    return _chunk_error(payload) or payload


def _from_event_stream(text: str) -> dict[str, Any]:
    """A chat.completion assembled from the chunks of an event stream (``data: {...}`` lines), or
    ``{"error": ...}`` when the stream carries an error: an error event ends the answer."""
    content: list[str] = []
    reasoning: list[str] = []
    finish = model = usage = timed = None
    event = ""
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("error:"):
            return {"error": _event_error(line[6:].strip())}
        elif not line.strip():
            event = ""  # a blank line ends an event
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if event == "error":
            return {"error": _event_error(data)}
        if data == "[DONE]":
            break
        chunk = json.loads(data)
        if _chunk_error(chunk) is not None:
            return {"error": _chunk_error(chunk)}
        model = chunk.get("model") or model
        usage = chunk.get("usage") or usage
        timed = chunk.get("timings") or timed  # llama.cpp's servers send it in the last chunk
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            content.append(delta.get("content") if isinstance(delta.get("content"), str) else "")
            reasoning.append(reasoning_of(delta) or "")
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content)}
    if any(reasoning):
        message["reasoning_content"] = "".join(reasoning)
    return {
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": usage,
        "timings": timed,
    }


def read_completion(status: int, content_type: str, body: bytes | str, *, where: str) -> Answer:
    """The answer in a 2xx chat-completion body, or a ``CallError`` saying what came back instead.

    ``body`` as it came (bytes: invalid UTF-8 in it is replaced and said on the answer). ``where``
    names the endpoint and model for the error line (``http://host/v1 for gpt-4o``).
    """
    body, undecodable = _decoded(body)
    kind = (content_type or "").split(";")[0].strip().lower() or "no content type"
    came = f"HTTP {status} {kind} from {where}"
    if kind == "text/event-stream":
        try:
            data = _from_event_stream(body)
        except (json.JSONDecodeError, AttributeError, TypeError):
            raise CallError(
                f"{came}: an event stream moa_lab could not read (asked for one JSON answer): "
                f'"{_preview(body)}"',
                status=status,
            ) from None
    else:
        try:
            data = json.loads(body)
        except json.JSONDecodeError:
            what = "a web page" if "html" in kind or body.lstrip()[:1] == "<" else "not JSON"
            raise CallError(
                f'{came} is {what}, not a chat completion (a proxy or login page?): "{_preview(body)}"',
                status=status,
            ) from None
    if not isinstance(data, dict):
        raise CallError(f'{came} is not a chat completion: "{_preview(body)}"', status=status)
    if "error" in data and not data.get("choices"):
        message, retryable = _error_body(data["error"])
        raise CallError(
            f'{came} carries an error instead of an answer: "{_preview(message)}"',
            status=status,
            retryable=retryable,
        )
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CallError(
            f'{came} has no choices, so no answer: "{_preview(body)}"', status=status, retryable=True
        )
    choice = choices[0]
    message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
    finish = choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None
    usage = _usage(data.get("usage"))
    content, parts_reasoning = _content(message.get("content"))
    field = reasoning_of(message) or parts_reasoning
    inline, text = split_reasoning(content)
    # Stripped as it arrives, as the paper's reference implementation strips every output
    # (togethercomputer/MoA, utils.generate_together), so references carry no stray blank lines.
    text = text.strip()
    reasoning = "\n\n".join(r for r in (field, inline) if r) or None
    # Every string that reaches the trace and the cache: neither can store a lone surrogate.
    text, repaired = clean_text(text)
    if reasoning is not None:
        reasoning, more = clean_text(reasoning)
        repaired += more
    served = data.get("model") if isinstance(data.get("model"), str) else None
    if served is not None:
        served, more = clean_text(served)
        repaired += more
    if finish is not None:
        finish, more = clean_text(finish)
        repaired += more
    warnings = (
        (f"replaced {repaired} invalid character(s) (lone UTF-16 surrogates) with U+FFFD",)
        if repaired
        else ()
    ) + (
        (f"replaced {undecodable} invalid byte sequence(s) (not UTF-8) in the reply with U+FFFD",)
        if undecodable
        else ()
    )
    if not text.strip():
        used = usage.completion_tokens if usage and usage.completion_tokens is not None else "its"
        hidden = bool(usage and usage.reasoning_tokens)  # o-series models keep their thinking
        if (reasoning or hidden) and cut_off(finish):
            raise CallError(
                f"{came}: the model spent all {used} tokens reasoning and gave no answer; "
                "raise max_tokens",
                status=status,
            )
        if cut_off(finish):
            raise CallError(
                f"{came}: the model used all {used} tokens and gave no answer; raise max_tokens",
                status=status,
            )
        if finish == "content_filter":
            raise CallError(f"{came}: the answer was withheld (finish_reason content_filter)")
        after = " after reasoning" if reasoning else ""
        raise CallError(
            f"{came}: an empty answer{after} (finish_reason {finish})", status=status, retryable=True
        )
    return Answer(text, finish, reasoning, usage, served, warnings, timings(data.get("timings")))


def stream_failed(body: bytes | str) -> bool:
    """True when an event stream carries an error event (which ends it, with ``[DONE]`` or not)."""
    try:
        return "error" in _from_event_stream(_decoded(body)[0])
    except (json.JSONDecodeError, AttributeError, TypeError):
        return False


def _decoded(body: bytes | str) -> tuple[str, int]:
    """The body as text, and how many invalid UTF-8 sequences in it became U+FFFD."""
    if isinstance(body, str):
        return body, 0
    text = body.decode("utf-8", errors="replace")
    return text, text.count("\ufffd") - body.count("\ufffd".encode())


def timings(value: Any) -> dict[str, float] | None:
    """The numbers of an endpoint's ``timings`` object (llama.cpp's), or None."""
    if not isinstance(value, dict):
        return None
    numbers = {
        k: float(v)
        for k, v in value.items()
        if isinstance(k, str)
        and isinstance(v, (int, float))
        and not isinstance(v, bool)
        and v == v
        and abs(v) != float("inf")
    }
    return numbers or None


def retry_after_seconds(headers: Any) -> float | None:
    """Seconds a server asked us to wait (``Retry-After-Ms``, ``Retry-After`` seconds or date).

    None unless the wait is usable: a positive number written as HTTP writes it, or a date still to
    come. ``soon``, ``-5``, ``1_000``, ``1e3``, ``0``, a date past or no clock can reach: the caller then
    backs off as if nothing were sent (retrying at once would only meet the same refusal).
    """
    millis = (headers.get("retry-after-ms") or "").strip()
    if _DELAY.fullmatch(millis):
        seconds = _positive(float(millis) / 1000)
        if seconds is not None:
            return seconds
    value = (headers.get("retry-after") or "").strip()
    if _DELAY.fullmatch(value):
        return _positive(float(value))
    try:
        when = email.utils.parsedate_to_datetime(value)
        if when.tzinfo is None:  # HTTP dates are GMT; asctime's form names no zone
            when = when.replace(tzinfo=timezone.utc)
        return _positive(when.timestamp() - time.time())
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def _positive(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) and seconds > 0 else None
