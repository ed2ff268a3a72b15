"""The local model behind a loopback OpenAI-compatible server, started on first use.

An agent whose base_url is ``local`` or ``local:<path>`` is resolved at run time to a ``LocalServer``
on 127.0.0.1, so local calls take the same path as remote ones: the ``openai`` client, HTTP, retries,
the same trace records.

Invariants: a loaded model runs one sequence at a time (a lock per model; remote calls are not held
up by it) and each call starts from an empty context, so a seeded call answers the same whatever ran
before it; one server per GGUF per process, stopped at exit.
"""

from __future__ import annotations

import atexit
import sys
import threading
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moa_lab._backend import CALL_HEADER, PROGRESS_HEADER
from moa_lab._server import ChatServer, HTTPReply, completion
from moa_lab.local._llama import load_llama
from moa_lab.local._models import gguf_path

__all__ = ["LocalServer", "resolve", "sampling_options", "stop_servers"]


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
#: Request fields that are not sampling parameters (``stream`` and ``n`` are checked on their own).
_NOT_SAMPLING = {"model", "messages", "stream", "n", "user"}


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
    if body.get("stream") or (body.get("n") or 1) != 1:
        raise HTTPReply(400, "the local model answers one non-streamed choice per request")
    return {key: default if body.get(key) is None else body[key] for key, default in _SAMPLING.items()}


class LocalServer(ChatServer):
    """A loopback OpenAI-compatible server answering from one llama.cpp model, one call at a time."""

    def __init__(self, llm: Any, name: str):
        super().__init__(self._answer, models=[name], record=False)
        self.llm = llm
        self.name = name
        self.calls = 0
        self._generating = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> LocalServer:
        """Load the GGUF at ``path`` and start serving it (the model is named after the file)."""
        return cls(load_llama(path), path.stem).start()

    def stop(self) -> None:
        """Stop serving and free the model."""
        super().stop()
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        options = sampling_options(body)
        with self._generating:
            self.calls += 1
            call = self.header(CALL_HEADER) or f"#{self.calls}"
            label = f"local {call} {body.get('model', self.name)} T={options['temperature']}"
            if options["seed"] is not None:
                label += f" seed={options['seed']}"
            with tqdm(
                total=options["max_tokens"],
                desc=label,
                unit="tok",
                file=sys.stderr,
                leave=False,
                disable=True if self.header(PROGRESS_HEADER) == "0" else None,
            ) as bar:
                self.llm.on_token = lambda: bar.update(1)
                # Start from an empty context: reusing the previous call's prompt cache changes the
                # numerics slightly, so a seeded call would answer differently depending on what ran
                # before it (its cost is re-reading a shared prefix, about a second on 2 cores).
                self.llm.reset()
                try:
                    result = self.llm.create_chat_completion(
                        messages=body.get("messages") or [], **options
                    )
                except ValueError as exc:  # llama.cpp's word for a prompt longer than the context
                    raise HTTPReply(400, f"{self.name}: {exc}") from None
                finally:
                    self.llm.on_token = None
        choice = result["choices"][0]
        usage = result["usage"]
        return completion(
            self.name,
            choice["message"].get("content") or "",
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            finish_reason=choice.get("finish_reason") or "stop",
        )


_servers: dict[Path, LocalServer] = {}
_servers_lock = threading.Lock()


def resolve(base_url: str) -> str:
    """The loopback URL serving the GGUF of a ``local`` base URL; it starts on first use."""
    path = gguf_path(base_url)
    with _servers_lock:
        server = _servers.get(path)
        if server is None:
            server = _servers[path] = LocalServer.load(path)
        return server.url


@atexit.register
def stop_servers() -> None:
    """Stop every local server this process started (and free their models); runs at exit."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()
