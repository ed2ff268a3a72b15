"""The one seam to the network: chat completions through ``openai.AsyncOpenAI``.

Invariant: this is the only module that imports ``openai``. It owns retries (429, 5xx, connection
errors and timeouts, with exponential backoff, jitter and ``Retry-After``), and it never lets an API
key reach an error message.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import os
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx2
import openai

from moa_lab._errors import CallError, ConfigError
from moa_lab._responses import (
    clean_text,
    read_completion,
    reasoning_of,
    retry_after_seconds,
    stream_failed,
)
from moa_lab._trace import Usage

__all__ = [
    "CALL_HEADER",
    "DEFAULT_POLICY",
    "SERVED_AT_HEADER",
    "Backend",
    "Completion",
    "RetryPolicy",
]

_SENT_AS_ARGUMENTS = ("temperature", "max_tokens", "top_p", "seed")
_NO_KEY = "no-key-needed"
#: The header naming the call (its node id) on every request.
CALL_HEADER = "X-Moa-Lab-Call"
#: A reply header with the unix time the endpoint began serving the call (the local model sends it).
SERVED_AT_HEADER = "X-Moa-Lab-Served-At"


@dataclass(frozen=True)
class Completion:
    """What one successful call returned: an answer with text, and how it took to get it."""

    text: str
    """The answer (never empty; reasoning removed)."""
    finish_reason: str | None
    usage: Usage | None
    served_model: str | None
    latency: float
    """Seconds of the attempt that succeeded."""
    attempts: int = 1
    """1 plus the number of retries it took."""
    errors: tuple[str, ...] = field(default=())
    """The failures that were retried, in order."""
    waits: tuple[float, ...] = field(default=())
    """Seconds waited before each retry."""
    reasoning: str | None = None
    """The model's thinking, kept apart from the answer."""
    warnings: tuple[str, ...] = field(default=())
    """What was repaired on the way in."""
    sent_at: float | None = None
    """Unix time the attempt that succeeded was sent."""
    served_at: float | None = None
    """Unix time the endpoint began serving it (``X-Moa-Lab-Served-At``), if it said."""
    timings: dict[str, float] | None = None
    """The endpoint's own timing of the call (llama.cpp's ``timings``), if it gave one."""
    ttft: float | None = None
    """Seconds from when the endpoint began serving the call to its first token (streamed calls)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long one attempt may take and how failed attempts are retried."""

    timeout: float = 120.0
    """Seconds one attempt may take in all (connecting, waiting, reading) before it is abandoned
    and retried: a deadline, not a limit per socket read."""
    max_retries: int = 4
    """Retries after 429, 5xx, connection errors and timeouts."""
    backoff: float = 0.5
    """First retry delay in seconds; doubled each retry, with jitter."""
    backoff_max: float = 30.0
    """Longest delay between retries (a server's Retry-After is honoured up to this)."""

    @classmethod
    def of(cls, config: Any) -> RetryPolicy:
        """The policy a MoAConfig asks for."""
        return cls(config.timeout, config.max_retries, config.backoff, config.backoff_max)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        if retry_after is not None:
            return min(retry_after, self.backoff_max)
        ceiling = min(self.backoff * 2**attempt, self.backoff_max)
        return ceiling * random.uniform(0.5, 1.0)


#: The policy of a call that names none (the MoAConfig defaults).
DEFAULT_POLICY = RetryPolicy()


class Backend:
    """Sends chat completions to OpenAI-compatible endpoints, one cached client per endpoint.

    One backend may serve many runs at once (an experiment shares one): its cap on calls in flight
    is then global, and its HTTP clients and connections are reused. ``transport`` (an ``httpx2``
    transport) replaces the network for every endpoint: tests answer in-process with it.
    """

    def __init__(self, *, max_concurrency: int = 16, transport: httpx2.AsyncBaseTransport | None = None):
        self._limit = asyncio.Semaphore(max_concurrency)
        self._clients: dict[tuple[str, str | None], openai.AsyncOpenAI] = {}
        # The one I/O seam: an httpx2 transport (``FakeLLM.transport()`` answers in-process).
        self._transport = transport
        # Endpoints that refused a streamed request: asked for whole answers from then on.
        self._plain: set[str] = set()

    @staticmethod
    def api_key(key_env: str | None) -> str:
        """The key from the named variable; a clear error when it is named but not set."""
        if not key_env:
            return _NO_KEY
        key = os.environ.get(key_env)
        if not key:
            raise ConfigError(
                f"the environment variable {key_env} is not set; export it with your API key "
                "(or pass --api-key-env NAME / Agent(api_key_env=...) to use another variable)"
            )
        return key

    def _client(self, base_url: str, key_env: str | None) -> openai.AsyncOpenAI:
        client = self._clients.get((base_url, key_env))
        if client is None:
            http_client = httpx2.AsyncClient(transport=self._transport) if self._transport else None
            client = openai.AsyncOpenAI(
                base_url=base_url,
                api_key=self.api_key(key_env),
                max_retries=0,
                http_client=http_client,
            )
            self._clients[(base_url, key_env)] = client
        return client

    async def complete(
        self,
        *,
        model: str,
        messages: Sequence[dict[str, Any]],
        params: dict[str, Any],
        base_url: str,
        key_env: str | None,
        policy: RetryPolicy = DEFAULT_POLICY,
        label: str | None = None,
        stream: bool = False,
        on_text: Callable[[str | None, bool], None] | None = None,
    ) -> Completion:
        """One chat completion, retried by the policy; raises CallError when it fails for good.

        ``label`` (a node id) goes out as the ``X-Moa-Lab-Call`` header, which servers ignore (it names
        the call in a server's own logs).
        ``stream`` asks for the answer as server-sent events (with usage in the last chunk) and
        records the time to first token; ``on_text(piece, is_reasoning)`` then gets each piece of
        the answer (or of its reasoning) as it arrives, and ``(None, False)`` when a retry starts
        over. An endpoint that refuses streaming (HTTP 400/422 naming the stream) is asked for whole
        answers from then on; one that ignores it answers whole, as it would anyway. A stream that
        breaks or ends before the answer does is a retried failure, never a shorter answer.
        """
        headers = {CALL_HEADER: label} if label else {}
        client = self._client(base_url, key_env)
        arguments = {k: params[k] for k in _SENT_AS_ARGUMENTS if k in params}
        extra_body = {k: v for k, v in params.items() if k not in _SENT_AS_ARGUMENTS}
        failures: list[str] = []
        waits: list[float] = []
        first_sent: float | None = None
        where = f"{base_url} for {model}"
        notes: list[str] = []
        attempt = 0
        while True:
            retry_after = None
            if attempt and on_text is not None:
                on_text(None, False)  # what an earlier attempt streamed is not the answer
            async with self._limit:
                started = time.perf_counter()
                sent_at = time.time()
                first_sent = sent_at if first_sent is None else first_sent
                streaming = stream and base_url not in self._plain
                try:
                    # A deadline for the whole attempt: a server that drips a byte a second must
                    # not hold a call for minutes (httpx's timeout bounds each socket read only).
                    raw = await asyncio.wait_for(
                        client.chat.completions.with_raw_response.create(
                            model=model,
                            messages=list(messages),
                            extra_body=extra_body or None,
                            timeout=policy.timeout,
                            extra_headers=headers or None,
                            **arguments,
                            **_STREAMED if streaming else {},
                        ),
                        timeout=policy.timeout,
                    )
                    reply = raw.http_response
                    left = policy.timeout - (time.perf_counter() - started)
                    content_type = reply.headers.get("content-type", "")
                    first_token = None
                    if "event-stream" in content_type:
                        body, first_token = await _streamed_body(reply, left, on_text, where)
                    else:
                        body = await _body(reply, left)
                    answer = read_completion(reply.status_code, content_type, body, where=where)
                except openai.APIStatusError as exc:
                    if streaming and exc.status_code in (400, 422) and "stream" in str(exc).lower():
                        # It refused the stream: ask again for a whole answer (not a retry).
                        self._plain.add(base_url)
                        notes.append(f"HTTP {exc.status_code} to a streamed request: asked again, whole")
                        continue
                    error = _status_error(exc, base_url, model, key_env)
                    retry_after = retry_after_seconds(exc.response.headers)
                except (openai.APITimeoutError, asyncio.TimeoutError, TimeoutError):
                    error = CallError(
                        f"{base_url} timed out for {model} (no whole answer within "
                        f"{policy.timeout:g} s)",
                        retryable=True,
                    )
                except openai.APIConnectionError as exc:
                    error = CallError(
                        f"{base_url} unreachable for {model} ({_scrub(str(exc), key_env)})",
                        retryable=True,
                    )
                except CallError as exc:
                    error = CallError(
                        _scrub(str(exc), key_env), status=exc.status, retryable=exc.retryable
                    )
                else:
                    ended = time.time()
                    served_at = _served_at(reply.headers, sent_at, ended)
                    return Completion(
                        text=answer.text,
                        finish_reason=answer.finish_reason,
                        usage=answer.usage,
                        served_model=answer.served_model,
                        # Service time: a local call also waits its turn for the model.
                        latency=ended - served_at
                        if served_at is not None
                        else time.perf_counter() - started,
                        attempts=attempt + 1,
                        errors=tuple(failures),
                        waits=tuple(waits),
                        reasoning=answer.reasoning,
                        warnings=answer.warnings + tuple(notes),
                        sent_at=sent_at,
                        served_at=served_at,
                        timings=answer.timings,
                        ttft=None
                        if first_token is None
                        else max(first_token - (served_at or sent_at), 0.0),
                    )
            failures.append(str(error))
            if not error.retryable or attempt == policy.max_retries:
                gave_up = f" (gave up after {attempt + 1} attempts)" if attempt else ""
                raise CallError(
                    f"{error}{gave_up}",
                    status=error.status,
                    attempts=attempt + 1,
                    retried_errors=tuple(failures[:-1]),
                    retry_waits=tuple(waits),
                    sent_at=first_sent,
                )
            wait = policy.delay(attempt, retry_after)
            waits.append(wait)
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        """Close every HTTP client this backend opened."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


#: What a streamed request adds: the answer as server-sent events, usage in the last one.
_STREAMED: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}


async def _streamed_body(
    reply: Any, seconds_left: float, on_text: Callable[[str, bool], None] | None, where: str
) -> tuple[bytes, float | None]:
    """An event stream read line by line within the deadline: the whole body (bytes, for
    ``read_completion`` to decode), and the Unix time its first token arrived; ``on_text`` gets
    each piece of text as it comes. A stream that breaks or ends with neither ``[DONE]`` nor a
    finish reason raises a retryable ``CallError`` (one that carried an error event is returned,
    for ``read_completion`` to report the server's error)."""
    raw = bytearray()
    first: list[float] = []
    ended = [False]

    async def read() -> None:
        async for line in _lines(reply, raw):
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                ended[0] = True
                continue
            answer, thinking, finished = _delta(data)
            ended[0] = ended[0] or finished
            if answer or thinking:
                if not first:
                    first.append(time.time())
                if on_text is not None:
                    if thinking:
                        on_text(thinking, True)
                    if answer:
                        on_text(answer, False)

    try:
        await asyncio.wait_for(read(), timeout=max(seconds_left, 0.001))
    except (httpx2.TransportError, httpx2.StreamError) as exc:
        raise CallError(
            f"{where}: the stream broke after {len(raw)} bytes ({type(exc).__name__})",
            retryable=True,
        ) from None
    finally:
        await reply.aclose()
    if not ended[0] and not stream_failed(bytes(raw)):
        raise CallError(
            f"{where}: the stream ended before the answer did (no finish reason, no [DONE])",
            retryable=True,
        )
    return bytes(raw), (first[0] if first else None)


_LINE_END = re.compile("\r\n|\r|\n")


async def _lines(reply: Any, raw: bytearray) -> AsyncIterator[str]:
    """The lines of a streamed body as they arrive (``\\n``, ``\\r\\n`` or ``\\r`` ends one), decoded
    here rather than by httpx so that ``raw`` keeps its bytes: invalid UTF-8 is then reported."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    pending = ""
    async for chunk in reply.aiter_bytes():
        raw += chunk
        text = pending + decoder.decode(chunk)
        held = text.endswith("\r")  # perhaps the first half of a \r\n
        *complete, pending = _LINE_END.split(text[:-1] if held else text)
        pending += "\r" if held else ""
        for line in complete:
            yield line
    rest = (pending + decoder.decode(b"", final=True)).removesuffix("\r")
    for line in _LINE_END.split(rest) if rest else ():
        yield line


def _delta(data: str) -> tuple[str, str, bool]:
    """The answer and reasoning text of one stream chunk, and whether it finished the answer."""
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError:
        return "", "", False  # read_completion names what the stream held
    if not isinstance(chunk, dict):
        return "", "", False
    answer, thinking, finished = "", "", False
    for choice in chunk.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        thinking += reasoning_of(delta) or ""
        if isinstance(delta.get("content"), str):
            answer += delta["content"]
        finished = finished or bool(choice.get("finish_reason"))
    return answer, thinking, finished


async def _body(reply: Any, seconds_left: float) -> bytes:
    """The whole body of a raw reply, read within what is left of the attempt's deadline."""
    return await asyncio.wait_for(reply.aread(), timeout=max(seconds_left, 0.001))


def _served_at(headers: Any, sent_at: float, ended: float) -> float | None:
    """When the endpoint says it began serving the call, if it does and the time is plausible."""
    try:
        value = float(headers.get(SERVED_AT_HEADER, ""))
    except ValueError:
        return None
    # Another machine's clock may be off: only a time within the request's own span is believed.
    return value if sent_at - 1.0 <= value <= ended + 1.0 else None


def _status_error(
    exc: openai.APIStatusError, base_url: str, model: str, key_env: str | None
) -> CallError:
    status = exc.status_code
    detail = _scrub(_first_line(exc.message), key_env)
    retryable = status == 429 or status >= 500
    hint = ""
    if status == 404:
        tried = f"{base_url.rstrip('/')}/chat/completions"
        hint = f"; moa_lab asked for {tried}"
        if not base_url.rstrip("/").endswith("/v1"):
            hint += f" (OpenAI-compatible servers serve under /v1: try {base_url.rstrip('/')}/v1)"
    return CallError(
        f"HTTP {status} from {base_url} for {model}: {detail}{hint}", status=status, retryable=retryable
    )


def _first_line(text: str, limit: int = 300) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else "no detail"
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _scrub(text: str, key_env: str | None) -> str:
    """An error's text without the key, and without lone surrogates (an endpoint's error body may
    hold them, and the trace that records the error could not be written)."""
    key = os.environ.get(key_env) if key_env else None
    return clean_text(text.replace(key, "***") if key else text)[0]
