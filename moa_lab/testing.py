"""A deterministic chat model behind a real OpenAI-compatible HTTP server, for tests and demos.

``FakeLLM`` answers from a hash of what it was sent, so the same request always gets the same
answer. It can be told to be slow, to fail with a status (500, 429 with Retry-After, 400), or to
behave the way real endpoints do when they misbehave: each such behaviour is a named fault mode
(``FAULT_MODES``), so a user can reproduce what an endpoint did to a run. Runs against it go through
the real ``openai`` client over real HTTP on loopback (or in-process through ``transport()``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from fractions import Fraction
from typing import Any

from moa_lab._config import Agent, MoAConfig
from moa_lab._server import ChatServer, HTTPReply, RecordedRequest, Reply, completion

__all__ = [
    "FAULT_MODES",
    "ChatServer",
    "FakeLLM",
    "HTTPReply",
    "RecordedRequest",
    "Reply",
    "completion",
    "fake_config",
    "game24_oracle",
]

#: Each named fault mode, and what the endpoint does in it. Give them to ``FakeLLM(faults=...)``
#: (once, in order) or ``FakeLLM(broken=...)`` (every time), as statuses are given.
FAULT_MODES: dict[str, str] = {
    "hang": "says nothing until the client gives up (sleeps ``hang_seconds``)",
    "drip": "sends its answer one byte every ``drip_seconds`` (a slow proxy)",
    "html": "a 200 whose body is a web page (a proxy's login page)",
    "event-stream": "a 200 text/event-stream of the answer although none was asked for",
    "error-body": 'a 200 whose body is {"error": ...} (a gateway passing an upstream failure on)',
    "no-choices": 'a 200 with "choices": []',
    "empty": 'a 200 whose answer is "" (finish_reason stop)',
    "content-filter": "no answer, finish_reason content_filter",
    "reasoning-exhausted": "content null, finish_reason length, all tokens spent in reasoning_content",
    "reasoning-field": "the answer, with the thinking apart in reasoning_content",
    "think-inline": "the answer after <think>...</think> at the start of content",
    "truncated": "the answer cut off at the token cap (finish_reason length)",
    "truncated-max-tokens": "the answer cut off, finish_reason max_tokens (Anthropic's, via a gateway)",
    "usage-partial": 'usage with only "total_tokens"',
    "usage-null": "usage whose counts are null",
    "surrogate": "an answer holding a lone UTF-16 surrogate (\\ud83d) in its JSON",
    "whitespace": "the answer wrapped in blank lines",
    "retry-after-junk": "a 429 whose Retry-After is 'soon'",
    "retry-after-far": "a 429 whose Retry-After is a date in the year 10000",
    "stream-break": "a streamed answer that stops halfway (no finish reason, no [DONE])",
    "stream-refused": "a 400 'stream is not supported' to a streamed request (answers whole ones)",
}


class FakeLLM(ChatServer):
    """A loopback server whose models answer deterministically; use as a context manager.

    ``delay``: seconds each call takes (one number, or per model) before its first token. ``faults``:
    per model, a queue of statuses or fault modes (``FAULT_MODES``) to answer with before answering
    normally (``{"m": [500, "html"]}``). ``broken``: per model, a status or fault mode it always
    answers with; a status goes out with ``Retry-After: retry_after`` (a number, or the header's
    text as is) when one is given. Words are written ``token_seconds`` apart: a request with
    ``"stream": true`` gets them as server-sent events as they are written (usage in the last event
    when ``stream_options.include_usage``), any other the whole answer once all are written.
    """

    def __init__(
        self,
        *,
        delay: float | dict[str, float] = 0.0,
        faults: dict[str, Iterable[int | str]] | None = None,
        broken: dict[str, int | str] | None = None,
        retry_after: float | str | None = None,
        hang_seconds: float = 30.0,
        drip_seconds: float = 1.0,
        token_seconds: float = 0.0,
    ):
        super().__init__(self._answer)
        self.delay = delay
        self.faults: dict[str, deque] = defaultdict(deque)
        for model, queue in (faults or {}).items():
            self.faults[model].extend(queue)
        self.broken = dict(broken or {})
        for fault in [*self.broken.values(), *(f for q in self.faults.values() for f in q)]:
            if isinstance(fault, str) and fault not in FAULT_MODES:
                raise ValueError(f"unknown fault mode {fault!r}; choose one of {sorted(FAULT_MODES)}")
        self.retry_after = retry_after
        self.hang_seconds = hang_seconds
        self.drip_seconds = drip_seconds
        self.token_seconds = token_seconds
        self._fault_lock = threading.Lock()

    def _answer(self, body: dict[str, Any]) -> dict[str, Any] | Reply:
        model = body.get("model", "")
        with self._fault_lock:
            fault = self.faults[model].popleft() if self.faults[model] else None
        fault = fault if fault is not None else self.broken.get(model)
        if isinstance(fault, int):
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            raise HTTPReply(fault, f"injected {fault} for {model}", headers)
        delay = self.delay.get(model, 0.0) if isinstance(self.delay, dict) else self.delay
        if delay:
            time.sleep(delay)
        messages = body.get("messages") or []
        text = answer_for(model, messages)
        prompt_words = sum(len(str(m.get("content", "")).split()) for m in messages)
        answer = completion(model, text, prompt_tokens=prompt_words, completion_tokens=len(text.split()))
        streamed = bool(body.get("stream"))
        if fault == "stream-refused":
            if streamed:
                raise HTTPReply(400, "stream is not supported by this endpoint")
            return answer
        if fault is None or fault == "stream-break":
            if not streamed:
                # A whole answer comes once all of it is written: the same pace, all at the end.
                time.sleep(self.token_seconds * (len(text.split(" ")) - 1))
                return answer
            usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return _streamed(answer, text, self.token_seconds, usage, broken=fault is not None)
        return _FAULTS[fault](self, answer, text)


def _message(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["choices"][0]["message"]


def _with(answer: dict[str, Any], **message: Any) -> dict[str, Any]:
    _message(answer).update(message)
    return answer


def _finish(answer: dict[str, Any], reason: str, **message: Any) -> dict[str, Any]:
    answer["choices"][0]["finish_reason"] = reason
    return _with(answer, **message)


def _hang(server: FakeLLM, answer: dict[str, Any], text: str) -> dict[str, Any]:
    time.sleep(server.hang_seconds)
    return answer


def _drip(server: FakeLLM, answer: dict[str, Any], text: str) -> Reply:
    data = json.dumps(answer).encode()

    def chunks() -> Iterator[bytes]:
        for byte in data:
            time.sleep(server.drip_seconds)
            yield bytes([byte])

    return Reply(chunks())


def _events(answer: dict[str, Any], text: str, usage: bool) -> list[dict[str, Any]]:
    """The chunks of a streamed answer, a word each, the last with the finish reason (and usage)."""
    words = text.split(" ")
    events = [
        {
            "id": answer["id"],
            "object": "chat.completion.chunk",
            "model": answer["model"],
            "choices": [
                {
                    "index": 0,
                    "delta": {"content": word if i == 0 else " " + word},
                    "finish_reason": "stop" if i == len(words) - 1 else None,
                }
            ],
        }
        for i, word in enumerate(words)
    ]
    if usage:
        events.append({**events[-1], "choices": [], "usage": answer["usage"]})
    return events


def _event_stream(server: FakeLLM, answer: dict[str, Any], text: str) -> Reply:
    events = _events(answer, text, usage=False)
    body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
    return Reply(body.encode(), content_type="text/event-stream")


def _streamed(answer: dict[str, Any], text: str, seconds: float, usage: bool, *, broken: bool) -> Reply:
    """A streamed answer sent as it is "written"; ``broken`` stops it halfway, unfinished."""
    events = _events(answer, text, usage)
    if broken:
        events = events[: max(len(events) // 2, 1)]
        events[-1] = {**events[-1], "choices": [{**events[-1]["choices"][0], "finish_reason": None}]}

    def chunks() -> Iterator[bytes]:
        for i, event in enumerate(events):
            if i and seconds and event["choices"]:  # the usage event follows the last word at once
                time.sleep(seconds)
            yield f"data: {json.dumps(event)}\n\n".encode()
        if not broken:
            yield b"data: [DONE]\n\n"

    return Reply(chunks(), content_type="text/event-stream")


def _too_many(retry_after: str) -> Callable[..., Any]:
    def reply(server: FakeLLM, answer: dict[str, Any], text: str) -> Any:
        raise HTTPReply(429, f"injected 429 for {answer['model']}", {"Retry-After": retry_after})

    return reply


_FAULTS: dict[str, Callable[[FakeLLM, dict[str, Any], str], Any]] = {
    "hang": _hang,
    "drip": _drip,
    "html": lambda s, a, t: Reply(
        b"<!DOCTYPE html><html><head><title>Sign in</title></head><body><form>Please sign in to "
        b"continue</form></body></html>",
        content_type="text/html; charset=utf-8",
    ),
    "event-stream": _event_stream,
    "error-body": lambda s, a, t: Reply.json(
        {"error": {"message": "upstream model overloaded", "type": "server_error", "code": 503}}
    ),
    "no-choices": lambda s, a, t: {**a, "choices": []},
    "empty": lambda s, a, t: _with(a, content=""),
    "content-filter": lambda s, a, t: _finish(a, "content_filter", content=None),
    "reasoning-exhausted": lambda s, a, t: _finish(
        a, "length", content=None, reasoning_content="Let me think. First, " + t
    ),
    "reasoning-field": lambda s, a, t: {
        **_with(a, reasoning_content="I weigh the options. " + t),
        "usage": {**a["usage"], "completion_tokens_details": {"reasoning_tokens": 5}},
    },
    "think-inline": lambda s, a, t: _with(
        a, content=f"<think>\nA is longer but B is correct.\n</think>\n\n{t}"
    ),
    "truncated": lambda s, a, t: _finish(a, "length", content=t[: max(len(t) // 2, 1)]),
    "truncated-max-tokens": lambda s, a, t: _finish(a, "max_tokens", content=t[: max(len(t) // 2, 1)]),
    "usage-partial": lambda s, a, t: {**a, "usage": {"total_tokens": a["usage"]["total_tokens"]}},
    "usage-null": lambda s, a, t: {
        **a,
        "usage": {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None},
    },
    "surrogate": lambda s, a, t: _with(a, content=t + " \ud83d"),
    "whitespace": lambda s, a, t: _with(a, content=f"\n\n  {t}\n\n"),
    "retry-after-junk": _too_many("soon"),
    "retry-after-far": _too_many("Sat, 01 Jan 10000 00:00:00 GMT"),
}


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


# -- a scripted Game of 24 player: proposes and judges by exact arithmetic -----------------------
def _numbers(text: str) -> list[Fraction]:
    """The numbers in ``text`` (whole or a/b); other words are skipped, as a model would."""
    tokens = re.findall(r"-?[0-9]+(?:/[1-9][0-9]*)?", text)
    return [Fraction(token) for token in tokens]


def _show(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


@functools.cache
def _reaches_24(numbers: tuple[Fraction, ...]) -> bool:
    if len(numbers) == 1:
        return numbers[0] == 24
    return any(_reaches_24(rest) for _, rest in _moves(numbers))


def _moves(numbers: tuple[Fraction, ...]) -> list[tuple[str, tuple[Fraction, ...]]]:
    """Every step from these numbers: ``("a op b = c", the numbers left, sorted)``."""
    found = []
    for i, j in itertools.combinations(range(len(numbers)), 2):
        a, b = numbers[i], numbers[j]
        others = [n for k, n in enumerate(numbers) if k not in (i, j)]
        options = [("+", a, b, a + b), ("*", a, b, a * b), ("-", a, b, a - b), ("-", b, a, b - a)]
        options += [("/", a, b, a / b)] if b else []
        options += [("/", b, a, b / a)] if a else []
        for op, left, right, value in options:
            step = f"{_show(left)} {op} {_show(right)} = {_show(value)}"
            found.append((step, tuple(sorted([*others, value]))))
    return found


def game24_oracle(body: dict[str, Any], width: int = 3) -> dict[str, Any]:
    """Answer a Tree-of-Thoughts Game of 24 prompt correctly, by code instead of a model.

    Proposal prompts get ``width`` next steps (those that can still reach 24 first), value prompts
    ``sure`` or ``impossible`` by exact search, the last step the answer line of a solution, and the
    last-step value prompt the checker's verdict. For tests and demos of the search itself.
    """
    from moa_lab.experiments.game24 import check, solve

    prompt = body["messages"][-1]["content"]
    lines = prompt.rstrip("\n").split("\n")
    model = body.get("model", "oracle")
    if "Given an input and an answer" in prompt:
        puzzle = lines[-3].removeprefix("Input: ")
        answer = lines[-2].removeprefix("Answer: ")
        text = "sure" if check(puzzle, f"Answer: {answer}") else "impossible"
    elif prompt.startswith("Evaluate if given numbers can reach 24"):
        text = "sure" if _reaches_24(tuple(sorted(_numbers(lines[-1])))) else "impossible"
    elif prompt.startswith("Use numbers and basic arithmetic operations"):
        # The chain-of-thought prompt: the search's last step asks for the answer line.
        puzzle = [line for line in lines if line.startswith("Input: ")][-1][7:]
        text = f"Answer: {solve(puzzle)} = 24"
    else:
        numbers = tuple(sorted(_numbers(lines[-2].removeprefix("Input: "))))
        moves = sorted(_moves(numbers), key=lambda move: not _reaches_24(move[1]))
        text = "\n".join(
            f"{step} (left: {' '.join(_show(n) for n in left)})" for step, left in moves[:width]
        )
        # One number that is not 24: no step is left, and a model would still say something.
        text = text or f"No step remains: {' '.join(_show(n) for n in numbers)} is not 24."
    return completion(
        model, text, prompt_tokens=len(prompt.split()), completion_tokens=len(text.split())
    )
