"""A small OpenAI-compatible HTTP server on loopback, run in a background thread.

It speaks just enough of the API for moa_lab (``POST /v1/chat/completions``, ``GET /v1/models``) and
takes its answers from a handler function, so the same server fronts the deterministic test model
and the embedded local model. Every request it receives is recorded, so tests can assert on what
was really sent over HTTP.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ChatServer", "HTTPReply", "RecordedRequest"]


class HTTPReply(Exception):
    """Raised by a handler to answer with an HTTP error status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


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


Handler = Callable[[dict[str, Any]], dict[str, Any]]


class ChatServer:
    """Serves chat completions from ``handler(body) -> completion dict`` on 127.0.0.1."""

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

    def _record(self, request: RecordedRequest) -> None:
        if not self.record:  # a long-lived server (the local model) keeps no history
            return
        with self._lock:
            self.requests.append(request)

    def _request_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class _Request(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Stay quiet: a server in a test or notebook must not print per request."""

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None):
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "owned_by": "moa_lab"} for m in server.models]
                    self._send(200, {"object": "list", "data": data})
                else:
                    self._send(404, _error(f"no route {self.path}", "not_found"))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except json.JSONDecodeError:
                    self._send(400, _error("request body is not JSON", "invalid_request_error"))
                    return
                headers = {name.lower(): value for name, value in self.headers.items()}
                server._record(RecordedRequest(self.path, body, headers))
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, _error(f"no route {self.path}", "not_found"))
                    return
                server._current.headers = headers
                try:
                    self._send(200, server.handler(body))
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (a timeout); nobody is left to answer
                except HTTPReply as reply:
                    self._send(reply.status, _error(reply.message, "moa_lab"), reply.headers)
                except Exception as exc:  # a handler bug must reach the client as a 500
                    self._send(500, _error(f"{type(exc).__name__}: {exc}", "server_error"))

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
