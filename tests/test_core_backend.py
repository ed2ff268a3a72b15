"""The backend seam: what a server sees, how failures are retried and how they are reported.

Every request goes through ``Backend(transport=...)`` to an in-process server, so these tests are
fast and see exactly the requests the real ``openai`` client sent. Waits between attempts are
recorded instead of slept.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time

import httpx2
import pytest

from moa_lab import Backend, CallError, ConfigError, MoAConfig, RetryPolicy, Usage
from moa_lab._backend import DEFAULT_POLICY
from moa_lab.testing import ChatServer, HTTPReply, Reply, completion

URL = "http://fake.test/v1"
QUESTION = [{"role": "user", "content": "Why is the sky blue?"}]


class Scripted(ChatServer):
    """Answers each request with the next scripted step: an HTTPReply to raise, or a body."""

    def __init__(self, *steps):
        super().__init__(self._next)
        self.steps = list(steps)

    def _next(self, body):
        step = self.steps.pop(0) if self.steps else None
        if isinstance(step, HTTPReply):
            raise step
        if step is not None:
            return step
        return completion(body["model"], "fine", prompt_tokens=3, completion_tokens=1)


@pytest.fixture
def waits(monkeypatch):
    """The seconds the backend asked to wait between attempts (nothing really waits)."""
    asked: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(seconds, *args, **kwargs):
        asked.append(seconds)
        await real_sleep(0)

    monkeypatch.setattr("moa_lab._backend.asyncio.sleep", sleep)
    return asked


FAST = RetryPolicy(max_retries=2, backoff=0.01)


def complete(server, *, policy=FAST, **options):
    """``Backend.complete`` on one in-process server; returns the Completion or raises CallError."""
    options = {"params": {}, "key_env": None, "label": None, "base_url": URL} | options

    async def go():
        backend = Backend(transport=server.transport())
        try:
            return await backend.complete(model="m", messages=QUESTION, policy=policy, **options)
        finally:
            await backend.aclose()

    try:
        return asyncio.run(go())
    finally:
        server.stop()


def failure(server, **options) -> CallError:
    with pytest.raises(CallError) as caught:
        complete(server, **options)
    return caught.value


def test_the_default_policy_is_the_configs_default():
    config = MoAConfig(proposers=[], aggregator={"model": "m", "base_url": URL}, layers=1)
    assert RetryPolicy() == DEFAULT_POLICY == RetryPolicy.of(config)
    assert RetryPolicy.of(config.model_copy(update={"timeout": 3.0, "max_retries": 1})) == RetryPolicy(
        timeout=3.0, max_retries=1
    )


def test_backoff_doubles_from_the_first_delay_with_jitter_up_to_the_cap():
    policy = RetryPolicy(backoff=1.0, backoff_max=3.0)
    for _ in range(50):
        assert 0.5 <= policy.delay(0, None) <= 1.0
        assert 1.0 <= policy.delay(1, None) <= 2.0
        assert 1.5 <= policy.delay(2, None) <= 3.0
        assert 1.5 <= policy.delay(5, None) <= 3.0
    assert policy.delay(0, 2.5) == 2.5  # a server's Retry-After wins over backoff...
    assert policy.delay(0, 10.0) == 3.0  # ...up to the cap


@pytest.mark.parametrize(
    ("headers", "waited"),
    [
        ({"Retry-After-Ms": "250"}, 0.25),
        ({"Retry-After-Ms": "-40"}, None),  # no usable wait: the backoff
        ({"Retry-After-Ms": "soon", "Retry-After": "1.5"}, 1.5),
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "-3"}, None),
        ({"Retry-After": "100"}, 5.0),  # capped by backoff_max
        ({"Retry-After": email.utils.formatdate(time.time() - 60, usegmt=True)}, None),
    ],
)
def test_a_server_asking_to_wait_is_honoured(waits, headers, waited):
    done = complete(Scripted(HTTPReply(429, "slow down", headers)), policy=RetryPolicy(backoff_max=5.0))
    assert done.text == "fine" and done.attempts == 2
    if waited is None:  # the policy's first backoff, with jitter: at most 0.5 s, never nothing
        assert len(waits) == 1 and 0 < waits[0] <= 0.5
    else:
        assert waits == [waited]


def test_a_retry_after_that_is_neither_seconds_nor_a_date_backs_off_as_usual(waits):
    server = Scripted(HTTPReply(429, "slow down", {"Retry-After": "soon"}))
    done = complete(server, policy=RetryPolicy(backoff=1.0, backoff_max=5.0))
    assert done.text == "fine" and done.attempts == 2
    (waited,) = waits
    assert 0.5 <= waited <= 1.0


def test_a_retry_after_date_waits_until_then(waits):
    later = email.utils.formatdate(time.time() + 4, usegmt=True)
    complete(Scripted(HTTPReply(503, "busy", {"Retry-After": later})), policy=RetryPolicy())
    (waited,) = waits
    assert 2.0 < waited <= 4.0


def test_without_retry_after_the_waits_back_off(waits):
    server = Scripted(HTTPReply(500, "a"), HTTPReply(502, "b"), HTTPReply(503, "c"))
    done = complete(server, policy=RetryPolicy(max_retries=3, backoff=1.0, backoff_max=30.0))
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0
    assert done.attempts == 4
    assert done.errors == (
        f"HTTP 500 from {URL} for m: Error code: 500 - a",
        f"HTTP 502 from {URL} for m: Error code: 502 - b",
        f"HTTP 503 from {URL} for m: Error code: 503 - c",
    )


@pytest.mark.parametrize("status", [429, 500, 599])
def test_429_and_5xx_are_retried_until_the_policy_gives_up(waits, status):
    server = Scripted(*[HTTPReply(status, f"try {n}") for n in range(3)])
    error = failure(server, policy=RetryPolicy(max_retries=2, backoff=0.01))
    assert str(error) == (
        f"HTTP {status} from {URL} for m: Error code: {status} - try 2 (gave up after 3 attempts)"
    )
    assert error.status == status and error.attempts == 3
    assert error.retried_errors == tuple(
        f"HTTP {status} from {URL} for m: Error code: {status} - try {n}" for n in range(2)
    )
    assert len(server.chat_requests()) == 3 and len(waits) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 428, 499])
def test_other_statuses_fail_at_once(waits, status):
    server = Scripted(HTTPReply(status, "no\nmore detail"))
    error = failure(server)
    hint = f"; moa_lab asked for {URL}/chat/completions" if status == 404 else ""
    assert str(error) == f"HTTP {status} from {URL} for m: Error code: {status} - no{hint}"
    assert error.status == status and error.attempts == 1
    assert len(server.chat_requests()) == 1 and waits == []


def test_with_no_retries_a_retryable_failure_is_reported_once(waits):
    error = failure(Scripted(HTTPReply(503, "busy")), policy=RetryPolicy(max_retries=0))
    assert str(error) == f"HTTP 503 from {URL} for m: Error code: 503 - busy"
    assert error.attempts == 1 and waits == []


def test_a_long_error_detail_is_cut_to_one_short_line():
    error = failure(Scripted(HTTPReply(400, "x" * 500)))
    detail = str(error).split(": ", 1)[1]
    assert len(detail) == 300 and detail.endswith("x…")
    exact = failure(Scripted(HTTPReply(400, "y" * (300 - len("Error code: 400 - ")))))
    assert str(exact).split(": ", 1)[1].endswith("yyy")


def test_the_api_key_is_sent_but_never_reported(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    server = Scripted(HTTPReply(401, "key sk-secret-123 is revoked"))
    error = failure(server, key_env="MY_KEY")
    assert str(error) == f"HTTP 401 from {URL} for m: Error code: 401 - key *** is revoked"
    assert server.chat_requests()[0].headers["authorization"] == "Bearer sk-secret-123"


def test_a_named_key_that_is_not_set_is_a_config_error(monkeypatch):
    monkeypatch.delenv("MISSING_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        Backend.api_key("MISSING_KEY")
    assert str(caught.value) == (
        "the environment variable MISSING_KEY is not set; export it with your API key "
        "(or pass --api-key-env NAME / Agent(api_key_env=...) to use another variable)"
    )
    monkeypatch.setenv("MISSING_KEY", "")
    with pytest.raises(ConfigError, match="MISSING_KEY is not set"):
        Backend.api_key("MISSING_KEY")
    monkeypatch.setenv("MISSING_KEY", "k")
    assert Backend.api_key("MISSING_KEY") == "k"


def _transport(exception):
    def handle(request):
        raise exception("boom sk-secret-123", request=request)

    return httpx2.MockTransport(handle)


@pytest.mark.parametrize(
    ("exception", "kind"), [(httpx2.ConnectError, "unreachable"), (httpx2.ReadTimeout, "timed out")]
)
def test_connection_failures_are_retried_and_named(waits, monkeypatch, exception, kind):
    monkeypatch.setenv("MY_KEY", "sk-secret-123")

    async def go():
        backend = Backend(transport=_transport(exception))
        return await backend.complete(
            model="m",
            messages=QUESTION,
            params={},
            base_url=URL,
            key_env="MY_KEY",
            policy=RetryPolicy(max_retries=1, backoff=0.01),
        )

    with pytest.raises(CallError) as caught:
        asyncio.run(go())
    detail = "no whole answer within 120 s" if kind == "timed out" else "Connection error."
    assert str(caught.value) == f"{URL} {kind} for m ({detail}) (gave up after 2 attempts)"
    assert caught.value.status is None and caught.value.attempts == 2 and len(waits) == 1


def test_params_and_headers_reach_the_server():
    server = Scripted()
    params = {"temperature": 0.3, "max_tokens": 7, "top_p": 0.9, "seed": 5, "stop": ["\n"]}
    complete(server, params=params, label="L2.1")
    (request,) = server.chat_requests()
    assert {k: request.body[k] for k in params} == params
    assert request.body["model"] == "m" and request.body["messages"] == QUESTION
    assert request.headers["x-moa-lab-call"] == "L2.1"
    assert "x-moa-lab-progress" not in request.headers  # no server is asked about progress


def test_by_default_no_header_of_moa_lab_is_sent():
    server = Scripted()
    complete(server)
    headers = server.chat_requests()[0].headers
    assert "x-moa-lab-call" not in headers and "x-moa-lab-progress" not in headers


def test_what_the_server_answered_is_the_completion():
    body = completion("served-m", "hello there", prompt_tokens=4, completion_tokens=2)
    body["choices"][0]["finish_reason"] = "length"
    done = complete(Scripted(body))
    assert (done.text, done.finish_reason, done.served_model) == ("hello there", "length", "served-m")
    assert done.usage == Usage(prompt_tokens=4, completion_tokens=2, total_tokens=6)
    assert done.attempts == 1 and done.errors == () and 0 < done.latency < 5
    server = Scripted(body)
    complete(server)  # a whole answer unless a stream is asked for
    assert "stream" not in server.chat_requests()[0].body


def test_an_answer_without_usage_is_kept_and_missing_counts_stay_unknown():
    bare = completion("m", "x", prompt_tokens=1, completion_tokens=1)
    assert complete(Scripted(dict(bare, usage=None))).usage is None
    partial = dict(bare, usage={"prompt_tokens": 2, "completion_tokens": None, "total_tokens": None})
    assert complete(Scripted(partial)).usage == Usage(prompt_tokens=2)
    other = dict(bare, usage={"prompt_tokens": None, "completion_tokens": 3, "total_tokens": 3})
    assert complete(Scripted(other)).usage == Usage(completion_tokens=3, total_tokens=3)


def test_an_answer_without_choices_or_content_is_a_retried_error_not_an_empty_answer(waits):
    bare = completion("m", "x", prompt_tokens=1, completion_tokens=1)
    no_choices = dict(bare, choices=[])
    no_content = dict(bare)
    no_content["choices"] = [{"index": 0, "message": {"role": "assistant", "content": None}}]
    error = failure(Scripted(no_choices, no_choices, no_choices))
    assert str(error).startswith(
        f"HTTP 200 application/json from {URL} for m has no choices, so no answer: "
    )
    assert str(error).endswith(" (gave up after 3 attempts)") and error.attempts == 3
    error = failure(Scripted(no_content, no_content, no_content))
    assert str(error) == (
        f"HTTP 200 application/json from {URL} for m: an empty answer (finish_reason None)"
        " (gave up after 3 attempts)"
    )
    done = complete(Scripted(no_content))  # the retry got an answer
    assert (done.text, done.attempts) == ("fine", 2)
    assert done.errors == (
        f"HTTP 200 application/json from {URL} for m: an empty answer (finish_reason None)",
    )


@pytest.mark.parametrize(
    ("error", "said", "retried"),
    [
        ("the model is loading", "the model is loading", True),
        ({"message": "overloaded", "type": "server_error", "code": 503}, "overloaded", True),
        ({"type": "rate_limited", "code": 429}, "rate_limited", True),
        ({"message": "slow down", "code": None, "status": 429}, "slow down", True),
        ({"message": "bad request", "code": 400}, "bad request", False),
        ({"message": "gone", "code": "404"}, "gone", False),
        ({"message": "no such model", "status": 499}, "no such model", False),
        ({"message": "who are you?", "type": "authentication_error"}, "who are you?", False),
        ({"message": "nope", "type": "permission_error", "code": "E42"}, "nope", False),
        ({"code": 418}, "{'code': 418}", False),
    ],
)
def test_an_error_body_is_named_and_retried_unless_the_request_was_at_fault(waits, error, said, retried):
    body = {"error": error}
    error_ = failure(Scripted(body, body, body))
    came = f"HTTP 200 application/json from {URL} for m carries an error instead of an answer"
    assert str(error_).startswith(f'{came}: "{said}"')
    assert error_.attempts == (3 if retried else 1)


def test_what_came_instead_is_shown_on_one_line_up_to_120_characters(waits):
    for text, shown in (("x" * 120, "x" * 120), ("x" * 121, "x" * 120 + "\\u2026"), ("a\n\tb", "a b")):
        body = {"error": {"message": text}}
        error = failure(Scripted(body, body, body))
        assert str(error).startswith(
            f"HTTP 200 application/json from {URL} for m carries an error instead of an answer: "
            f'"{shown}" (gave up'
        )


def test_a_404_names_the_url_tried_even_when_the_base_url_ends_in_a_slash():
    error = failure(Scripted(HTTPReply(404, "no")), base_url=URL + "/")
    assert str(error) == (
        f"HTTP 404 from {URL}/ for m: Error code: 404 - no; moa_lab asked for {URL}/chat/completions"
    )


def _stream(*chunks, done=True, prefix="data: "):
    """A text/event-stream reply of ``chunks`` (then ``[DONE]`` unless ``done`` is False)."""
    lines = [f"{prefix}{json.dumps(c)}\n\n" for c in chunks] + ([f"{prefix}[DONE]\n\n"] if done else [])
    return Reply([line.encode() for line in lines], content_type="text/event-stream")


THINK_THEN_ANSWER = (
    {"choices": [{"index": 0, "delta": {"reasoning_content": "I "}}]},
    {"choices": [{"index": 0, "delta": {"reasoning_content": "think."}}]},
    {"choices": [{"index": 0, "delta": {"content": "Hello"}}]},
    {
        "model": "served-m",
        "choices": [{"index": 0, "delta": {"content": " there"}, "finish_reason": "length"}],
    },
    {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 5, "total_tokens": 9}},
)


@pytest.mark.parametrize("prefix", ["data: ", "data:"])
def test_a_stream_is_heard_piece_by_piece_and_read_whole(prefix):
    heard = []
    done = complete(
        Scripted(_stream(*THINK_THEN_ANSWER, prefix=prefix)),
        stream=True,
        on_text=lambda piece, thinking: heard.append((piece, thinking)),
    )
    assert heard == [("I ", True), ("think.", True), ("Hello", False), (" there", False)]
    assert (done.text, done.reasoning, done.finish_reason) == ("Hello there", "I think.", "length")
    assert done.usage == Usage(prompt_tokens=4, completion_tokens=5, total_tokens=9)
    assert isinstance(done.ttft, float) and 0 <= done.ttft <= done.latency
    assert done.served_model == "served-m"


def test_a_stream_that_ends_before_the_answer_is_retried(waits):
    unfinished = _stream(*THINK_THEN_ANSWER[:3], done=False)
    error = failure(Scripted(unfinished, unfinished, unfinished), stream=True)
    assert str(error) == (
        f"{URL} for m: the stream ended before the answer did (no finish reason, no [DONE]) "
        "(gave up after 3 attempts)"
    )
    assert complete(Scripted(unfinished), stream=True).attempts == 2
    # A finish reason ends an answer as [DONE] does.
    finished = complete(Scripted(_stream(*THINK_THEN_ANSWER, done=False)), stream=True)
    assert (finished.text, finished.attempts) == ("Hello there", 1)


def test_an_endpoint_that_refuses_a_stream_is_asked_for_the_whole_answer():
    server = Scripted(HTTPReply(400, "Streaming is not supported"))
    done = complete(server, stream=True)
    assert done.text == "fine" and done.attempts == 1 and done.ttft is None
    first, second = (r.body for r in server.chat_requests())
    assert first["stream"] is True and "stream" not in second


def test_what_came_back_instead_of_an_answer_keeps_its_status_and_names_itself(waits):
    stream = Reply([b"data: {not json\n\n", b"data: [DONE]\n\n"], content_type="text/event-stream")
    error = failure(Scripted(stream))
    assert str(error) == (
        f"HTTP 200 text/event-stream from {URL} for m: an event stream moa_lab could not read "
        '(asked for one JSON answer): "data: {not json data: [DONE]"'
    )
    assert error.status == 200 and error.attempts == 1
    page = Reply(b"<html>log in</html>", content_type="text/html")
    error = failure(Scripted(page))
    assert str(error) == (
        f"HTTP 200 text/html from {URL} for m is a web page, not a chat completion "
        '(a proxy or login page?): "<html>log in</html>"'
    )
    assert error.status == 200 and error.attempts == 1


def test_characters_repaired_in_the_answer_and_its_reasoning_are_counted_together():
    body = completion("m", "an \ud800 answer", prompt_tokens=3, completion_tokens=2)
    body["choices"][0]["message"]["reasoning_content"] = "a \udfff thought"
    done = complete(Scripted(body))
    assert done.warnings == ("replaced 2 invalid character(s) (lone UTF-16 surrogates) with U+FFFD",)


def test_when_the_endpoint_began_serving_is_believed_within_the_calls_own_span():
    now = time.time()
    for said, believed in ((now, True), (now - 3600, False), (now + 3600, False)):
        reply = Reply.json(
            completion("m", "fine", prompt_tokens=3, completion_tokens=1),
            headers={"X-Moa-Lab-Served-At": repr(said)},
        )
        done = complete(Scripted(reply))
        assert done.served_at == (said if believed else None)


def test_thinking_sent_under_both_names_is_heard_once_as_it_is_recorded():
    both = {"reasoning_content": "Hm, ", "reasoning": "Hm, "}
    chunks = (
        {"choices": [{"index": 0, "delta": both}]},
        {"choices": [{"index": 0, "delta": {"reasoning": "so."}}]},
        *THINK_THEN_ANSWER[2:],
    )
    heard = []
    done = complete(
        Scripted(_stream(*chunks)),
        stream=True,
        on_text=lambda piece, thinking: heard.append(piece) if thinking else None,
    )
    assert heard == ["Hm, ", "so."] and done.reasoning == "Hm, so."


def test_reasoning_tokens_are_read_where_the_endpoint_puts_them():
    body = completion("m", "fine", prompt_tokens=3, completion_tokens=9)
    body["usage"]["completion_tokens_details"] = {"reasoning_tokens": 5}
    assert complete(Scripted(body)).usage.reasoning_tokens == 5
    body["usage"] = {"prompt_tokens": 3, "completion_tokens": 9, "reasoning_tokens": 4}
    assert complete(Scripted(body)).usage.reasoning_tokens == 4


def test_an_answer_was_sent_with_the_attempt_that_got_it_and_a_failure_with_its_first():
    policy = RetryPolicy(max_retries=1, backoff=0.4)  # waits 0.2-0.4 s between attempts
    server = Scripted(HTTPReply(503, "busy"))
    done = complete(server, policy=policy)
    first, second = server.chat_requests()
    assert done.attempts == 2 and first.received_at + 0.1 < done.sent_at
    server = Scripted(HTTPReply(503, "busy"), HTTPReply(503, "still busy"))
    error = failure(server, policy=policy)
    first, second = server.chat_requests()
    assert error.attempts == 2 and error.sent_at < first.received_at + 0.1 < second.received_at
