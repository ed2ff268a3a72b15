"""A deterministic chat model behind a real OpenAI-compatible HTTP server, for tests and demos.

``FakeLLM`` answers from a hash of what it was sent, so the same request always gets the same
answer, and it can be told to be slow or to fail (500, 429 with Retry-After, 400, a hang) on cue.
Runs against it go through the real ``openai`` client over real HTTP on loopback.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from moa_lab._config import Agent, MoAConfig
from moa_lab._server import ChatServer, HTTPReply, RecordedRequest, completion

__all__ = ["ChatServer", "FakeLLM", "HTTPReply", "RecordedRequest", "completion", "fake_config"]


class FakeLLM(ChatServer):
    """A loopback server whose models answer deterministically; use as a context manager.

    ``delay``: seconds each call takes (one number, or per model). ``faults``: per model, a queue of
    statuses to answer with before answering normally (``{"m": [500, 429]}``; ``"hang"`` sleeps
    past any timeout). ``broken``: per model, a status it always answers with.
    """

    def __init__(
        self,
        *,
        delay: float | dict[str, float] = 0.0,
        faults: dict[str, Iterable[int | str]] | None = None,
        broken: dict[str, int] | None = None,
        retry_after: float | None = None,
        hang_seconds: float = 30.0,
    ):
        super().__init__(self._answer)
        self.delay = delay
        self.faults: dict[str, deque] = defaultdict(deque)
        for model, queue in (faults or {}).items():
            self.faults[model].extend(queue)
        self.broken = dict(broken or {})
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self._fault_lock = threading.Lock()

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        model = body.get("model", "")
        with self._fault_lock:
            fault = self.faults[model].popleft() if self.faults[model] else None
        fault = fault if fault is not None else self.broken.get(model)
        if fault == "hang":
            time.sleep(self.hang_seconds)
        elif fault is not None:
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            raise HTTPReply(int(fault), f"injected {fault} for {model}", headers)
        delay = self.delay.get(model, 0.0) if isinstance(self.delay, dict) else self.delay
        if delay:
            time.sleep(delay)
        messages = body.get("messages") or []
        text = answer_for(model, messages)
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages)
        return completion(
            model,
            text,
            prompt_tokens=prompt_words,
            completion_tokens=len(text.split()),
        )


def answer_for(model: str, messages: list[dict[str, Any]]) -> str:
    """The fake answer: names the model, the question, how many references it saw, and a digest."""
    digest = hashlib.sha256(repr((model, messages)).encode()).hexdigest()[:8]
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else ""
    references = sum(1 for line in system.splitlines() if line[:1].isdigit() and ". " in line)
    return f"{model} answers {question!r} having read {references} references [{digest}]"


def fake_config(
    url: str,
    proposers: Iterable[str] = ("alpha", "beta", "gamma"),
    aggregator: str = "omega",
    layers: int = 2,
    **options: Any,
) -> MoAConfig:
    """A config whose agents all live on a FakeLLM (fast retries, so tests stay quick)."""
    settings = {"max_retries": 3, "backoff": 0.01, "backoff_max": 0.05, "timeout": 10.0} | options
    return MoAConfig(
        proposers=[Agent(model=m, base_url=url) for m in proposers],
        aggregator=Agent(model=aggregator, base_url=url),
        layers=layers,
        **settings,
    )
