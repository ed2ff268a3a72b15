"""More inputs of each kind of issue 10 (record every call truthfully), found by attacking it again.

Each test reaches moa_lab through the real ``openai`` client and a loopback ``ChatServer`` whose
replies are crafted per model, and fails without the fix it guards.
"""

from __future__ import annotations

import email.utils
import json
import re
import time

import pytest

import moa_lab
from moa_lab import Trace
from moa_lab.testing import ChatServer, FakeLLM, Reply, completion, fake_config


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


def _crafted(replies):
    """A server whose model ``m`` answers ``replies[m](a normal completion)``; others answer normally."""

    def handler(body):
        model = body["model"]
        answer = completion(model, f"{model} answers", prompt_tokens=5, completion_tokens=2)
        return replies[model](answer) if model in replies else answer

    return ChatServer(handler)


def _raw(answer, **changes):
    """The completion as raw JSON bytes (``json.dumps`` writes a lone surrogate as ``\\ud800``)."""
    for path, value in changes.items():
        target = answer
        *keys, last = path.split("__")
        for key in keys:
            target = target[int(key)] if key.isdigit() else target[key]
        target[last] = value
    return Reply(json.dumps(answer).encode())


# -- text with invalid characters ----------------------------------------------------------------
def test_a_lone_surrogate_anywhere_in_a_reply_is_replaced_and_the_calls_are_kept(tmp_path):
    replies = {
        "alpha": lambda a: _raw(a, model="alpha\ud800"),
        "beta": lambda a: _raw(a, choices__0__finish_reason="stop\udfff"),
        "gamma": lambda a: Reply(json.dumps({"error": {"message": "bad \ud83d input"}}).encode(), 400),
    }
    with _crafted(replies) as server:
        config = fake_config(server.url, max_retries=0)
        trace = _run(config, cache=tmp_path / "c", trace_path=tmp_path / "t.json")
    kept = Trace.load(tmp_path / "t.json")
    assert kept.status == "complete" and len(kept) == 4
    assert kept["L1.0"].served_model == "alpha\ufffd" and "U+FFFD" in kept["L1.0"].warnings[0]
    assert kept["L1.1"].finish_reason == "stop\ufffd" and kept["L1.1"].warnings
    assert "bad \ufffd input" in kept["L1.2"].error
    assert trace["L1.0"].response == "alpha answers"


# -- faults and limits: a Retry-After that is no usable wait is the backoff, never "retry now" -----
@pytest.mark.parametrize(
    "value",
    [
        "-5",
        "0",
        "-0",
        "0.0",
        "1_000",
        "+3",
        ".5",
        "1e3",
        "\u0663",
        "past-date",
        "Sun Nov  6 08:49:37 1994",
    ],
)
def test_a_retry_after_that_is_no_usable_wait_falls_back_to_the_backoff(value):
    if value == "past-date":
        value = email.utils.formatdate(time.time() - 3600, usegmt=True)
    with FakeLLM(faults={"alpha": [429]}, retry_after=value.encode().decode("latin-1")) as server:
        trace = _run(fake_config(server.url, backoff=0.05, backoff_max=0.2))
    call = trace["L1.0"]
    assert call.error is None and call.attempts == 2
    # The first retry's backoff is 0.025-0.05 s: neither 0 ("retry now") nor the cap (a number read).
    assert len(call.retry_waits) == 1 and 0.025 <= call.retry_waits[0] <= 0.05, call.retry_waits


@pytest.mark.parametrize("value", ["7", "2.5"])
def test_a_retry_after_in_plain_seconds_is_honoured_up_to_the_cap(value):
    with FakeLLM(faults={"alpha": [429]}, retry_after=value) as server:
        trace = _run(fake_config(server.url, backoff=0.01, backoff_max=0.15))
    assert trace["L1.0"].retry_waits == (0.15,)


# -- a truncated answer is warned about and shown, in any gateway's words for it ------------------
CUT_OFF = ["max_tokens", "MAX_TOKENS", "model_length", "max_output_tokens", "FINISH_REASON_MAX_TOKENS"]


@pytest.mark.parametrize("reason", CUT_OFF)
def test_an_answer_stopped_by_its_token_cap_is_cut_off_whatever_the_gateway_calls_it(
    reason, tmp_path, capsys
):
    from moa_lab.cli import main
    from moa_lab.views import summary_html

    cut = lambda a: _message(a, reason, content="half an ans")  # noqa: E731
    with _crafted({"omega": cut, "alpha": cut}) as server:
        out = tmp_path / "t.json"
        argv = ["run", "Hi", "--base-url", server.url, "--proposers", "alpha,beta", "--aggregator"]
        assert main([*argv, "omega", "--no-cache", "--quiet", "--trace-out", str(out)]) == 0
    err = capsys.readouterr().err
    assert f"the answer was cut off at the token cap (2048 tokens, finish_reason {reason})" in err
    assert "1 of 2 proposer answers were cut off at their token cap (L1.0)" in err
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert "[cut off]" in shown[4] and "[cut off]" in shown[6] and "[cut off]" not in shown[5]
    assert "cut off at the token cap" in summary_html(Trace.load(out))


@pytest.mark.parametrize("reason", CUT_OFF)
def test_no_answer_within_the_token_cap_says_raise_max_tokens_whatever_the_gateway_calls_it(reason):
    with _crafted({"beta": lambda a: _message(a, reason, content="")}) as server:
        trace = _run(fake_config(server.url, max_retries=2))
        sent = len([r for r in server.chat_requests() if r.model == "beta"])
    assert "tokens and gave no answer; raise max_tokens" in trace["L1.1"].error and sent == 1


# -- invalid bytes are replaced and said on the call, as lone surrogates are ----------------------
def _bytes_reply(content: bytes, streamed: bool, size: int = 0) -> Reply:
    """A reply whose answer is ``content`` as raw bytes (perhaps not UTF-8), whole or as events
    (lines ended by CRLF) sent ``size`` bytes at a time, cut anywhere."""
    if not streamed:
        answer = completion("m", "@@", prompt_tokens=5, completion_tokens=2)
        return Reply(json.dumps(answer).encode().replace(b"@@", content))
    event = {"choices": [{"index": 0, "delta": {"content": "@@"}, "finish_reason": "stop"}]}
    body = b"data: " + json.dumps(event).encode().replace(b"@@", content)
    body += b"\r\n\r\ndata: [DONE]\r\n\r\n"
    size = size or len(body)
    return Reply(iter([body[i : i + size] for i in range(0, len(body), size)]), 200, "text/event-stream")


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
def test_invalid_utf8_bytes_in_a_reply_are_replaced_and_said_on_the_call(streamed, tmp_path):
    replies = {
        "alpha": lambda a: _bytes_reply(b"caf\xe9 and \xff\xfe done", streamed),
        # Valid text cut between chunks inside a character or a CRLF is not invalid.
        "beta": lambda a: _bytes_reply("caf\u00e9 \u2014 \U0001f600 ok".encode(), streamed, size=1),
    }

    def handler(body):
        model = body["model"]
        if model in replies:
            return replies[model](None)
        return completion(model, f"{model} answers", prompt_tokens=5, completion_tokens=2)

    with ChatServer(handler) as server:
        config = fake_config(server.url, max_retries=0, stream=streamed)
        _run(config, cache=tmp_path / "c", trace_path=tmp_path / "t.json")
        again = _run(config, cache=tmp_path / "c")
    kept = Trace.load(tmp_path / "t.json")
    alpha, beta = kept["L1.0"], kept["L1.1"]
    assert alpha.response == "caf\ufffd and \ufffd\ufffd done"
    assert any("invalid byte sequence(s) (not UTF-8)" in w and "U+FFFD" in w for w in alpha.warnings)
    assert again["L1.0"].cache_hit and again["L1.0"].warnings == alpha.warnings
    assert beta.response == "caf\u00e9 \u2014 \U0001f600 ok" and not beta.warnings


# -- a stream that carries an error says the server's error, [DONE] or not -----------------------
STREAM_ERRORS = {
    "openai": (
        'data: {"error": {"message": "upstream \\u001b[2J overloaded", "type": "server_error"}}',
        "upstream \\u001b[2J overloaded",
    ),
    "anthropic": (
        'event: error\ndata: {"type": "error", "error": {"type": "busy", "message": "Overloaded"}}',
        "Overloaded",
    ),
    "vllm": (
        'data: {"object": "error", "message": "maximum context length is 4096 tokens", "code": 400}',
        "maximum context length is 4096 tokens",
    ),
    "llama.cpp": (
        'error: {"code": 500, "message": "failed to decode the batch"}',
        "failed to decode the batch",
    ),
    "tgi": (
        'data: {"error": "Input validation error: too long", "error_type": "validation"}',
        "Input validation error",
    ),
    "plain": ("event: error\ndata: gateway timeout upstream", "gateway timeout upstream"),
}


@pytest.mark.parametrize("mode", sorted(STREAM_ERRORS))
def test_a_stream_that_carries_an_error_and_no_done_reports_the_server_s_error(mode):
    event, message = STREAM_ERRORS[mode]
    start = {"choices": [{"index": 0, "delta": {"content": "Half"}, "finish_reason": None}]}
    body = f"data: {json.dumps(start)}\n\n{event}\n\n".encode()
    with _crafted({"beta": lambda a: Reply(body, content_type="text/event-stream")}) as server:
        trace = _run(fake_config(server.url, max_retries=0))
    error = trace["L1.1"].error
    assert "carries an error instead of an answer" in error and message in error, error
    assert "ended before the answer did" not in error and "\x1b" not in error


# -- an answer is an answer only when it has text; reasoning is kept, and kept apart ---------------
def _message(answer, finish=None, usage=None, **message):
    answer["choices"][0]["message"] = {"role": "assistant", **message}
    if finish:
        answer["choices"][0]["finish_reason"] = finish
    if usage:
        answer["usage"] = {**answer["usage"], **usage}
    return answer


SPENT = r"the model spent all \d+ tokens reasoning and gave no answer; raise max_tokens"
EXHAUSTED = {
    "thinking-field": (lambda a: _message(a, "length", content=None, thinking="Hmm, first..."), SPENT),
    "reasoning-details": (
        lambda a: _message(
            a, "length", content=None, reasoning_details=[{"type": "reasoning.text", "text": "Hmm"}]
        ),
        SPENT,
    ),
    "hidden-reasoning": (
        lambda a: _message(
            a, "length", {"completion_tokens_details": {"reasoning_tokens": 2}}, content=""
        ),
        SPENT,
    ),
    "no-reasoning": (
        lambda a: _message(a, "length", content=""),
        r"the model used all \d+ tokens and gave no answer; raise max_tokens",
    ),
}


@pytest.mark.parametrize("mode", sorted(EXHAUSTED))
def test_an_answer_cut_off_before_it_began_says_raise_max_tokens_and_is_not_retried(mode):
    reply, expected = EXHAUSTED[mode]
    with _crafted({"beta": reply}) as server:
        trace = _run(fake_config(server.url, max_retries=2))
        sent = len([r for r in server.chat_requests() if r.model == "beta"])
    failed = trace["L1.1"]
    assert failed.response is None and re.search(expected, failed.error), failed.error
    assert sent == 1  # the same request would spend the same budget again


WHY = "A is longer but B is correct."
THOUGHTS = {
    "thinking-field": lambda a: _message(a, content="B", thinking=WHY),
    "upper-case-tags": lambda a: _message(a, content=f"<THINK>{WHY}</THINK>B"),
    "thought-tags": lambda a: _message(a, content=f"<thought>{WHY}</thought>\nB"),
    "reasoning-tags": lambda a: _message(a, content=f"<reasoning>{WHY}</reasoning>B"),
    "content-parts": lambda a: _message(
        a,
        content=[
            {
                "type": "thinking",
                "thinking": [{"type": "text", "text": WHY}],
            },
            {"type": "text", "text": "B"},
        ],
    ),
}


@pytest.mark.parametrize("mode", sorted(THOUGHTS))
def test_thinking_in_any_shape_is_kept_apart_from_the_answer(mode):
    with _crafted({"beta": THOUGHTS[mode]}) as server:
        trace = _run(fake_config(server.url, max_retries=0))
    call = trace["L1.1"]
    assert call.response == "B" and call.reasoning == WHY
    assert "A is longer" not in trace["L2.0"].messages[0]["content"]


# -- experiments: a verdict is read from what the judge states, never from a first mention -------
@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ("Response A is longer, but Response B is better.", "B"),
        ("Both are fine, but **B** wins.", "B"),
        ("A and B are equally good.", "tie"),
        ("Compared with Response A, Response B is clearly more accurate.", None),
        ("Response A is longer but contains errors.", None),
    ],
)
def test_a_judge_reply_that_names_both_responses_is_read_by_its_verdict_or_counted_unreadable(
    reply, verdict
):
    from moa_lab.experiments._scoring import parse_verdict

    assert parse_verdict(reply) == verdict


# -- experiments: export file names are never empty and never one file where case is ignored ------
def test_file_names_are_never_empty_and_differ_where_case_is_ignored():
    from moa_lab._text import safe_file_name

    texts = ["", " ", ".", "-", "GPT-4o", "gpt-4o", "Gpt-4O", "con", "CON", "Con.txt", "a_B", "a_b"]
    names = [safe_file_name(t) for t in texts]
    assert all(name.strip(". ") for name in names), names
    assert len({name.lower() for name in names}) == len(texts), names
    assert safe_file_name("gpt-4o") == "gpt-4o"  # a plain lower-case name stays as it is


def test_the_alpaca_eval_export_writes_one_file_per_config_even_if_names_differ_only_by_case(tmp_path):
    from moa_lab import Agent, MoAConfig
    from moa_lab.experiments import experiment, export_alpaca_eval

    data = tmp_path / "ae.jsonl"
    data.write_text(json.dumps({"instruction": "Write a haiku."}) + "\n")
    with ChatServer(
        lambda b: completion(b["model"], f"{b['model']} says", prompt_tokens=1, completion_tokens=2)
    ) as server:
        configs = {
            name: MoAConfig.single(Agent(model=name or "x", base_url=server.url), max_retries=0)
            for name in ("GPT-4o", "gpt-4o", "")
        }
        result = experiment(configs, data, cache=False, run_dir=tmp_path / "r", progress=False)
    exported = export_alpaca_eval(result, tmp_path / "ae")
    names = [f.path.name for f in exported]
    assert len({n.lower() for n in names}) == 3 and all(n != ".json" for n in names), names
    for file in exported:
        [record] = json.loads(file.path.read_text())
        assert record["generator"] == file.config and record["output"].endswith(" says")


# -- keys and endpoints --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/v1;api_key=sk-SECRET123",
        "http://127.0.0.1:9/v1?",
        "http://:sk-SECRET123@127.0.0.1:9/v1",
    ],
)
def test_other_urls_with_a_key_or_a_query_are_refused_before_anything_is_written(url, tmp_path, capsys):
    from moa_lab.cli import main

    out = tmp_path / "t.json"
    status = main(["run", "Hi", "--base-url", url, "--proposers", "a", "--trace-out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and "SECRET" not in err and "--api-key-env" in err and err.count("\n") == 1
    assert not out.exists()
