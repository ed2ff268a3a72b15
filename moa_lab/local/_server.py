"""The local models behind loopback OpenAI-compatible servers, started on first use.

An agent whose base_url is ``local``, ``local:<name>`` (a packaged model) or ``local:<path>`` is
resolved at run time to a ``LocalServer`` on 127.0.0.1, so local calls take the same path as remote
ones: the ``openai`` client, HTTP, retries, the same trace records.

Each reply tells how the call was served, as llama.cpp's own server does: the completion body has a
``"timings"`` object, and the ``X-Moa-Lab-Served-At`` header holds the Unix time (seconds, float)
when the model started serving the call (after it waited for the model and, on the model's first
call, for its load). ``timings`` holds, all durations in milliseconds:

- ``queued_ms``: from the request joining the model's queue to the model taking it up (other calls
  ran meanwhile);
- ``load_ms``: loading the model, when this call was its first (else 0);
- ``prompt_n``, ``prompt_ms``, ``prompt_per_second``: the prompt's tokens evaluated (prefill) and
  the time from the start of serving to the first sampled token (chat template, tokenizing, prefill
  and that first sample); ``cache_n``: prompt tokens taken from the cache instead (the whole prompt
  when it equals the previous call's, as the proposers of a Self-MoA layer do; else 0);
- ``predicted_n``, ``predicted_ms``, ``predicted_per_second``: the completion's tokens and the time
  from the first sampled token to the last (decoding and sampling). A ``*_per_second`` rate is null
  when its time is 0.

So a call's HTTP latency is about queued + load + prompt + predicted, plus the HTTP hop.

A request with ``"stream": true`` is answered as OpenAI's server-sent events: once the first text
exists (so a model that cannot load, or a prompt too long, is still an HTTP error status), the
headers, a chunk with the assistant role and one with that text leave together; then a chunk per
piece of text as llama.cpp makes it, a last chunk with the finish reason and the ``timings``, a
usage chunk when ``stream_options.include_usage`` asks for one, and ``data: [DONE]``. The pieces are
made on the model's worker thread and handed to the HTTP thread through a queue; the generation is
the same call as a whole answer's, so the text streamed is the text a whole answer holds. A client
that hangs up stops the generation at its next token.

Invariants: a model is loaded by its first call and kept while the process lives; its load and all
its calls run on one worker thread (``_worker``), one sequence at a time, while calls to other
models (and remote calls) are not held up by it; each call computes what it would from an empty
context (a prompt equal to the previous one reuses that prefill exactly), so a seeded call answers
the same whatever ran before it; one server per GGUF per process, stopped at exit.
"""

from __future__ import annotations

import atexit
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from moa_lab._errors import ConfigError
from moa_lab._server import ChatServer, HTTPReply, Reply, completion
from moa_lab.local._llama import check_llama, load_llama
from moa_lab.local._models import gguf_path, named_model
from moa_lab.local._worker import ModelWorker, Wait, WorkerClosed

__all__ = ["SERVED_AT_HEADER", "LocalServer", "resolve", "sampling_options", "stop_servers"]

#: Response header: Unix time (seconds) when the model started serving the call.
SERVED_AT_HEADER = "X-Moa-Lab-Served-At"


#: Request fields passed to llama.cpp under the same name; OpenAI's defaults where OpenAI has one.
_SAMPLING = {
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": None,
    "seed": None,
    "stop": None,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
}
#: Request fields that are not sampling parameters (``n`` is checked on its own).
_NOT_SAMPLING = {"model", "messages", "stream", "stream_options", "n", "user"}


def sampling_options(body: dict[str, Any]) -> dict[str, Any]:
    """The llama.cpp arguments for a chat request; HTTP 400 for a field the local model cannot honour."""
    body = dict(body)
    if "max_completion_tokens" in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    unknown = sorted(set(body) - set(_SAMPLING) - _NOT_SAMPLING)
    if unknown:
        raise HTTPReply(
            400, f"the local model does not take {unknown}; remove it from the agent's extra"
        )
    if (body.get("n") or 1) != 1:
        raise HTTPReply(400, "the local model answers one choice per request (n=1)")
    return {key: default if body.get(key) is None else body[key] for key, default in _SAMPLING.items()}


class LocalServer(ChatServer):
    """A loopback OpenAI-compatible server answering from one llama.cpp model, one call at a time.

    ``load()`` returns the model; it runs on the model's worker thread when the first call arrives.
    """

    def __init__(self, load: Callable[[], Any], name: str):
        super().__init__(self._answer, models=[name], record=False)
        self.name = name
        self._worker = ModelWorker(load, _close_model, name)

    @classmethod
    def for_gguf(cls, path: Path, *, chat_format: str | None = None) -> LocalServer:
        """Serve the GGUF at ``path`` (named after the file); it loads on the first call."""
        _check_gguf(path)
        return cls(lambda: load_llama(path, chat_format=chat_format), path.stem).start()

    def stop(self) -> None:
        """Stop serving and free the model."""
        super().stop()
        self._worker.close()

    def _answer(self, body: dict[str, Any]) -> Reply:
        options = sampling_options(body)
        stream = _Stream() if body.get("stream") else None
        future = self._submit(lambda llm, wait: self._serve(llm, wait, body, options, stream))
        if stream is None:
            answer = _settled(future)
            return Reply.json(answer, headers={SERVED_AT_HEADER: f"{answer.pop('served_at'):.6f}"})
        future.add_done_callback(lambda _: stream.pieces.put(None))
        first = stream.pieces.get()
        if first is None:  # it ended before any text: an error is still an HTTP status
            _settled(future)
        usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return Reply(
            self._events(stream, first or "", future, usage),
            content_type="text/event-stream",
            headers={SERVED_AT_HEADER: f"{stream.served_at:.6f}"},
        )

    def _submit(self, job: Callable[[Any, Wait], dict[str, Any]]) -> Future[dict[str, Any]]:
        try:
            return self._worker.submit(job)
        except WorkerClosed as exc:
            raise HTTPReply(503, str(exc)) from None

    def _events(
        self, stream: _Stream, first: str, future: Future[dict[str, Any]], usage: bool
    ) -> Iterator[bytes]:
        """The server-sent events of a streamed answer, from its first piece of text to [DONE]."""
        chunk = _Chunks(self.name)
        given = first
        try:
            # The role and the first text leave with the headers, in one write.
            yield chunk({"role": "assistant", "content": ""}) + (
                chunk({"content": first}) if first else b""
            )
            while (piece := stream.pieces.get()) is not None:
                given += piece
                yield chunk({"content": piece})
            try:
                answer = future.result()
            except Exception:  # the model is shutting down: the stream ends unfinished
                return
            choice = answer["choices"][0]
            text = choice["message"]["content"]
            if not text.startswith(given):  # never expected: the pieces are the answer's prefix
                yield _event(
                    {"error": {"message": f"{self.name}: the stream diverged", "type": "server_error"}}
                )
                return
            if text[len(given) :]:
                yield chunk({"content": text[len(given) :]})
            yield chunk({}, finish_reason=choice["finish_reason"], timings=answer["timings"])
            if usage:
                yield chunk(None, usage=answer["usage"])
            yield b"data: [DONE]\n\n"
        finally:
            stream.cancelled.set()  # a client that hung up stops the generation

    def _serve(
        self,
        llm: Any,
        wait: Wait,
        body: dict[str, Any],
        options: dict[str, Any],
        stream: _Stream | None,
    ) -> dict[str, Any]:
        """One call on the worker thread: generate (handing each piece of text to ``stream``), and
        time each phase."""
        served_at = time.time()
        if stream is not None:
            stream.served_at = served_at
        started = time.perf_counter()
        token_times: list[float] = []

        def on_token(piece: str) -> None:
            if self._worker.closing.is_set():  # the process is exiting: stop generating
                raise WorkerClosed(f"the local model {self.name} is shutting down")
            if stream is not None:
                if stream.cancelled.is_set():
                    raise WorkerClosed(f"the client of a call to {self.name} hung up")
                if piece:
                    stream.pieces.put(piece)
            token_times.append(time.perf_counter())

        llm.on_token = on_token
        # No llm.reset(): the model starts each call as from an empty context itself, reusing
        # only the prefill of a prompt equal to the last one (see _llama.ServingLlama).
        try:
            result = llm.create_chat_completion(messages=body.get("messages") or [], **options)
        except ValueError as exc:  # llama.cpp's word for a prompt longer than the context
            raise HTTPReply(400, f"{self.name}: {exc}") from None
        finally:
            llm.on_token = None
        ended = time.perf_counter()
        choice = result["choices"][0]
        usage = result["usage"]
        first, last = (token_times[0], token_times[-1]) if token_times else (ended, ended)
        answer = completion(
            self.name,
            choice["message"].get("content") or "",
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            finish_reason=choice.get("finish_reason") or "stop",
        )
        cached = llm.prompt_cached
        answer["timings"] = _timings(
            wait,
            cached=cached,
            prompt=(usage["prompt_tokens"] - cached, first - started),
            predicted=(usage["completion_tokens"], last - first),
        )
        answer["served_at"] = served_at
        return answer


class _Stream:
    """A streamed answer's pieces of text, handed from the model's worker thread to the HTTP thread."""

    def __init__(self) -> None:
        self.pieces: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        """Each piece as it is made; None once the call ended (done or failed)."""
        self.cancelled = threading.Event()
        """Set when the reply is over (or its client hung up): generating more is pointless."""
        self.served_at = 0.0
        """Unix time the model started serving the call (set before the first piece)."""


class _Chunks:
    """Server-sent ``chat.completion.chunk`` events of one answer (one id and creation time)."""

    def __init__(self, model: str):
        self.model = model
        self.id = f"chatcmpl-{time.time_ns():x}"
        self.created = int(time.time())

    def __call__(
        self, delta: dict[str, Any] | None, finish_reason: str | None = None, **fields: Any
    ) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        return _event(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                **fields,
            }
        )


def _event(data: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(data)}\n\n".encode()


def _settled(future: Future[dict[str, Any]]) -> dict[str, Any]:
    """The answer of a finished call, or the HTTP error status its failure stands for."""
    try:
        return future.result()
    except ConfigError as exc:  # the model could not be loaded: no retry can help
        raise HTTPReply(400, str(exc)) from None
    except WorkerClosed as exc:
        raise HTTPReply(503, str(exc)) from None


def _timings(
    wait: Wait, *, cached: int, prompt: tuple[int, float], predicted: tuple[int, float]
) -> dict[str, Any]:
    """The ``timings`` of a reply: llama.cpp server's names, and ``queued_ms`` and ``load_ms``."""
    timings: dict[str, Any] = {
        "queued_ms": wait.queued * 1000,
        "load_ms": wait.load * 1000,
        "cache_n": cached,
    }
    for phase, (tokens, seconds) in (("prompt", prompt), ("predicted", predicted)):
        timings[f"{phase}_n"] = tokens
        timings[f"{phase}_ms"] = seconds * 1000
        timings[f"{phase}_per_second"] = tokens / seconds if seconds > 0 else None
    return timings


def _close_model(llm: Any) -> None:
    close = getattr(llm, "close", None)
    if close is not None:
        close()


def _check_gguf(path: Path) -> None:
    """A one-line error before any call when llama.cpp is missing or the file is not a GGUF at all."""
    check_llama()
    with path.open("rb") as file:
        if file.read(4) != b"GGUF":
            raise ConfigError(f"{path} is not a GGUF model file (it does not start with 'GGUF')")


_servers: dict[Path, LocalServer] = {}
_servers_lock = threading.Lock()


def resolve(base_url: str) -> str:
    """The loopback URL serving the GGUF of a ``local`` base URL; it starts on first use (the model
    loads on its first call)."""
    path = gguf_path(base_url)
    model = named_model(base_url)
    with _servers_lock:
        server = _servers.get(path)
        if server is None:
            chat_format = model.chat_format if model else None
            server = _servers[path] = LocalServer.for_gguf(path, chat_format=chat_format)
        return server.url


@atexit.register
def stop_servers() -> None:
    """Stop every local server this process started (and free their models); runs at exit."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
