"""A small OpenAI-compatible HTTP server on loopback, run in a background thread.

It speaks just enough of the API for moa_lab (``POST /v1/chat/completions``, ``GET /v1/models``) and
takes its answers from a handler function, so the same server fronts the deterministic test model
and the embedded local model. Every request it receives is recorded, so tests can assert on what
was really sent over HTTP. The same handler can also answer in-process, without a socket, through
``transport()`` (the seam ``Backend(transport=...)`` plugs into).

Invariant: there is one path from a request to its reply (``respond``), whichever way the request
came; a reply goes out as one write (status line, headers and body together; a streamed one's
headers with its first chunk, then each chunk flushed at once), so a reused connection is never held
up by Nagle's algorithm waiting for the ACK of the headers.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "HTTPReply", "RecordedRequest", "Reply", "completion"]


class HTTPReply(Exception):
    """Raised by a handler to answer with an HTTP error status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass(frozen=True)
class Reply:
    """A whole HTTP reply a handler may return instead of a completion dict (any status, any body).

    ``body`` is bytes, or an iterable of byte chunks that are sent as they come (a stream).
    """

    body: bytes | Iterable[bytes]
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
        """A JSON reply."""
        return cls(json.dumps(payload).encode(), status, "application/json", dict(headers or {}))


@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str]
    """Request headers, names in lower case."""
    received_at: float = field(default_factory=time.time)

    @property
    def model(self) -> str:
        """The model the request asked for."""
        return self.body.get("model", "")

    @property
    def system(self) -> str:
        """The system prompt of the request ('' when there is none)."""
        messages = self.body.get("messages") or []
        return messages[0]["content"] if messages and messages[0]["role"] == "system" else ""


Handler = Callable[[dict[str, Any]], "dict[str, Any] | Reply"]


class ChatServer:
    """Serves chat completions from ``handler(body) -> completion dict | Reply`` on 127.0.0.1."""

    def __init__(
        self, handler: Handler, *, port: int = 0, models: list[str] | None = None, record: bool = True
    ):
        self.handler = handler
        self.models = models or []
        self.record = record
        self._current = threading.local()
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", port), self._request_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ChatServer:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, name=f"moa-lab-server-{self.port}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and free the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def chat_requests(self) -> list[RecordedRequest]:
        """The chat completion requests received so far, in arrival order."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def header(self, name: str) -> str | None:
        """A header of the request this thread is answering (for handlers), or None."""
        return getattr(self._current, "headers", {}).get(name.lower())

    def respond(self, method: str, path: str, headers: Mapping[str, str], raw: bytes) -> Reply:
        """The reply to one request: the one path every request takes, over HTTP or in-process."""
        headers = {name.lower(): value for name, value in headers.items()}
        route = path.split("?", 1)[0].rstrip("/")
        if method == "GET":
            if route == "/v1/models":
                data = [{"id": m, "object": "model", "owned_by": "moa_lab"} for m in self.models]
                return Reply.json({"object": "list", "data": data})
            return Reply.json(_error(f"no route {path}", "not_found"), 404)
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            return Reply.json(_error("request body is not JSON", "invalid_request_error"), 400)
        self._record(RecordedRequest(path, body, headers))
        if route != "/v1/chat/completions":  # as real servers: everything lives under /v1
            return Reply.json(_error(f"no route {path}", "not_found"), 404)
        self._current.headers = headers
        try:
            answer = self.handler(body)
        except HTTPReply as reply:
            return Reply.json(_error(reply.message, "moa_lab"), reply.status, reply.headers)
        except Exception as exc:  # a handler bug must reach the client as a 500
            return Reply.json(_error(f"{type(exc).__name__}: {exc}", "server_error"), 500)
        finally:
            self._current.headers = {}
        return answer if isinstance(answer, Reply) else Reply.json(answer)

    def transport(self) -> Any:
        """An ``httpx2`` transport that answers in this process through ``respond``, no socket.

        Give it to ``moa_lab.Backend(transport=...)``: requests to any URL reach this server's
        handler, on a thread of its own (handlers may block), and are recorded as over HTTP.
        """
        import httpx2

        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="moa-lab-in-process")
        pool = self._pool

        async def handle(request: Any) -> Any:
            raw = await request.aread()
            reply = await asyncio.get_running_loop().run_in_executor(
                pool, self.respond, request.method, request.url.path, dict(request.headers), raw
            )
            body = reply.body if isinstance(reply.body, bytes) else b"".join(reply.body)
            headers = {"content-type": reply.content_type, **reply.headers}
            return httpx2.Response(reply.status, headers=headers, content=body)

        return httpx2.MockTransport(handle)

    def _record(self, request: RecordedRequest) -> None:
        if not self.record:  # a long-lived server (the local model) keeps no history
            return
        with self._lock:
            self.requests.append(request)

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Replies are written whole, and streamed chunks must leave at once.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: a server in a test or notebook must not print per request."""

            def _answer(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                reply = server.respond(method, self.path, dict(self.headers.items()), raw)
                try:
                    self._write(reply)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (a timeout); nobody is left to answer

            def _write(self, reply: Reply) -> None:
                head = [f"HTTP/1.1 {reply.status} {self.responses.get(reply.status, ('',))[0]}"]
                head += [f"Content-Type: {reply.content_type}"]
                head += [f"{name}: {value}" for name, value in reply.headers.items()]
                if isinstance(reply.body, bytes):
                    head.append(f"Content-Length: {len(reply.body)}")
                    self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + reply.body)
                    return
                head.append("Transfer-Encoding: chunked")
                out = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1")
                chunks = iter(reply.body)
                try:
                    for chunk in chunks:
                        if chunk:  # the first leaves with the headers, each one at once
                            self.wfile.write(out + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                            self.wfile.flush()
                            out = b""
                    self.wfile.write(out + b"0\r\n\r\n")
                finally:
                    close = getattr(chunks, "close", None)
                    if close is not None:  # a stream whose client hung up learns it at once
                        close()

            def do_GET(self) -> None:
                self._answer("GET")

            def do_POST(self) -> None:
                self._answer("POST")

        return _Request


class _QuietServer(ThreadingHTTPServer):
    # Python's default backlog of 5 resets or stalls bursts of new connections (a 32-wide experiment).
    request_queue_size = 128

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-answer is normal (timeouts); other errors are printed."""
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def _error(message: str, kind: str) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "code": None}}


def completion(
    model: str,
    text: str,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """A chat.completion response body in the OpenAI shape."""
    return {
        "id": f"chatcmpl-{time.time_ns():x}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
