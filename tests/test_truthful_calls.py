"""Every call is recorded as what really came back, whatever the endpoint sends (issue: truthful calls).

Each kind of misbehaviour is a named fault mode of ``moa_lab.testing.FakeLLM``, reached through the
real ``openai`` client over real HTTP on loopback. A call without an answer is an error that names
what came back, is never cached, drops its proposer (or fails the run), and stays in the trace.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time

import pytest

import moa_lab
from moa_lab import Agent, MoAConfig, Price, RunError, Trace
from moa_lab.cli import main
from moa_lab.testing import FAULT_MODES, FakeLLM, fake_config


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


NO_ANSWER = {
    "reasoning-exhausted": r"HTTP 200 application/json from .* for beta: the model spent all \d+ "
    r"tokens reasoning and gave no answer; raise max_tokens",
    "no-choices": r"HTTP 200 application/json from .* for beta has no choices, so no answer",
    "error-body": r"HTTP 200 application/json from .* carries an error instead of an answer: "
    r'"upstream model overloaded"',
    "empty": r"an empty answer \(finish_reason stop\)",
    "content-filter": r"the answer was withheld \(finish_reason content_filter\)",
    "html": r"HTTP 200 text/html from .* is a web page, not a chat completion \(a proxy or login "
    r'page\?\): "<!DOCTYPE html><html><head><title>Sign in',
}


@pytest.mark.parametrize("mode", sorted(NO_ANSWER))
def test_a_proposer_without_an_answer_is_dropped_recorded_and_never_cached(mode, tmp_path):
    with FakeLLM(broken={"beta": mode}) as server:
        config = fake_config(server.url, max_retries=1)
        first = _run(config, cache=tmp_path / "cache", trace_path=tmp_path / "t.json")
        failed = first["L1.1"]
        assert failed.error and re.search(NO_ANSWER[mode], failed.error), failed.error
        assert failed.response is None and first.status == "complete"
        # The aggregator read the two answers there were, numbered 1 and 2, never an empty one.
        system = first["L2.0"].messages[0]["content"]
        assert "\n1. alpha answers" in system and "\n2. gamma answers" in system
        assert "\n3." not in system
        assert Trace.load(tmp_path / "t.json")["L1.1"].error == failed.error
        sent = len([r for r in server.chat_requests() if r.model == "beta"])
        _run(config, cache=tmp_path / "cache")
        again = len([r for r in server.chat_requests() if r.model == "beta"])
        assert again > sent  # not cached: the second run asked again


def test_every_named_fault_mode_is_known():
    assert set(NO_ANSWER) | {"event-stream", "hang", "drip", "truncated"} <= set(FAULT_MODES)
    with pytest.raises(ValueError, match="unknown fault mode 'nope'"):
        FakeLLM(broken={"m": "nope"})


def test_a_retry_helps_a_gateway_error_but_not_a_login_page():
    with FakeLLM(faults={"beta": ["error-body"], "gamma": ["html"]}) as server:
        trace = _run(fake_config(server.url))
    assert trace["L1.1"].error is None and trace["L1.1"].attempts == 2
    assert "carries an error" in trace["L1.1"].retried_errors[0]
    assert trace["L1.2"].error is not None and trace["L1.2"].attempts == 1


@pytest.mark.parametrize("mode", sorted(NO_ANSWER))
def test_an_aggregator_without_an_answer_is_one_line_and_exit_1(mode, tmp_path, capsys):
    with FakeLLM(broken={"omega": mode}) as server:
        out = tmp_path / "t.json"
        argv = ["run", "Hi", "--base-url", server.url, "--proposers", "a,b", "--aggregator", "omega"]
        status = main([*argv, "--no-cache", "--quiet", "--trace-out", str(out)])
    captured = capsys.readouterr()
    assert status == 1 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("moa-lab: error: the aggregator")
    assert re.search(NO_ANSWER[mode].replace("beta", "omega"), captured.err)
    trace = Trace.load(out)
    assert trace.status == "failed" and trace["L2.0"].error


def test_a_stream_sent_for_a_plain_request_is_read_as_the_answer():
    with FakeLLM(broken={"beta": "event-stream"}) as streaming, FakeLLM() as plain:
        expected = _run(fake_config(plain.url))["L1.1"].response
        trace = _run(fake_config(streaming.url))
    assert trace["L1.1"].error is None and trace["L1.1"].response == expected


# -- reasoning -----------------------------------------------------------------------------------
def test_reasoning_is_kept_on_the_call_and_not_passed_on():
    with FakeLLM(broken={"alpha": "reasoning-field", "beta": "think-inline"}) as server:
        trace = _run(fake_config(server.url))
    alpha, beta = trace["L1.0"], trace["L1.1"]
    assert alpha.reasoning.startswith("I weigh the options.")
    assert alpha.usage.reasoning_tokens == 5
    assert alpha.response.startswith("alpha answers") and "weigh" not in alpha.response
    assert beta.reasoning == "A is longer but B is correct."
    assert beta.response.startswith("beta answers") and "<think>" not in beta.response
    system = trace["L2.0"].messages[0]["content"]
    assert "<think>" not in system and "weigh the options" not in system and "longer" not in system
    saved = json.loads(json.dumps(trace.to_dict()))
    assert Trace.from_dict(saved)["L1.1"].reasoning == beta.reasoning


def test_a_config_option_passes_reasoning_on_for_those_who_study_it():
    with FakeLLM(broken={"beta": "think-inline"}) as server:
        trace = _run(fake_config(server.url, include_reasoning=True))
    system = trace["L2.0"].messages[0]["content"]
    assert "2. <think>\nA is longer but B is correct.\n</think>\nbeta answers" in system


def test_the_judge_reads_its_verdict_from_the_answer_not_from_its_thinking(tmp_path):
    from moa_lab.experiments import experiment
    from moa_lab.testing import ChatServer, completion

    def answer(body):
        if body["messages"][0]["content"].startswith("You are a fair and careful judge"):
            a_first = "answer B" in body["messages"][1]["content"].split("[Response B]")[1]
            verdict = "B" if a_first else "A"  # always prefers the text "answer B"
            text = f"<think>Response A is longer but {verdict} is correct.</think>\n{verdict}"
            return completion(body["model"], text, prompt_tokens=5, completion_tokens=5)
        name = "answer B" if body["model"] == "b" else "answer A"
        return completion(body["model"], name, prompt_tokens=5, completion_tokens=2)

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "Say something."}) + "\n")
    with ChatServer(answer) as server:
        url = server.url
        configs = {"a": MoAConfig.single(Agent(model="a", base_url=url))}
        configs["b"] = MoAConfig.single(Agent(model="b", base_url=url))
        result = experiment(
            configs, data, judge=Agent(model="j", base_url=url), baseline="a", cache=False,
            run_dir=tmp_path / "run", progress=False,
        )  # fmt: skip
    assert list(result.judgments["verdict"]) == ["A", "B"]  # b first, then a first: b wins both
    assert result.table().loc["b", "win_rate"] == 1.0


# -- faults and limits ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["retry-after-junk", "retry-after-far"])
def test_an_unreadable_or_absurd_retry_after_falls_back_to_the_capped_backoff(mode):
    with FakeLLM(faults={"alpha": [mode]}) as server:
        started = time.perf_counter()
        trace = _run(fake_config(server.url, backoff=0.05, backoff_max=0.2))
    assert time.perf_counter() - started < 5
    call = trace["L1.0"]
    assert call.error is None and call.attempts == 2 and "HTTP 429" in call.retried_errors[0]
    assert len(call.retry_waits) == 1 and 0 < call.retry_waits[0] <= 0.2


def test_a_call_that_fails_for_good_keeps_the_errors_and_waits_of_its_retries():
    with FakeLLM(broken={"beta": 503}) as server:
        trace = _run(fake_config(server.url, max_retries=2, backoff=0.01, backoff_max=0.05))
    call = trace["L1.1"]
    assert call.error.endswith("(gave up after 3 attempts)") and call.attempts == 3
    assert len(call.retried_errors) == 2 and all("HTTP 503" in e for e in call.retried_errors)
    assert len(call.retry_waits) == 2 and all(0 < w <= 0.05 for w in call.retry_waits)
    assert call.sent_at is not None and call.sent_at >= call.started_at


def test_the_timeout_is_a_deadline_for_the_whole_call_not_for_each_read():
    with FakeLLM(broken={"beta": "drip"}, drip_seconds=0.2) as server:
        started = time.perf_counter()
        trace = _run(fake_config(server.url, timeout=1.0, max_retries=0))
        took = time.perf_counter() - started
    assert took < 4, took
    assert "timed out for beta (no whole answer within 1 s)" in trace["L1.1"].error


def test_missing_usage_counts_are_unknown_and_so_is_the_cost():
    prices = {m: Price(input=1, output=1) for m in ("alpha", "beta", "gamma", "omega")}
    with FakeLLM(broken={"alpha": "usage-partial", "beta": "usage-null"}) as server:
        trace = _run(fake_config(server.url, prices=prices))
    for node in ("L1.0", "L1.1"):
        call = trace[node]
        assert call.prompt_tokens is None and call.completion_tokens is None and call.cost is None
    assert trace["L1.0"].usage.total_tokens is not None
    assert trace["L1.2"].cost > 0
    totals = trace.totals()
    assert totals.prompt_tokens is None and totals.cost is None


@pytest.mark.parametrize("mode", ["truncated", "truncated-max-tokens"])
def test_a_truncated_answer_is_warned_about_and_shown(mode, capsys, tmp_path):
    with FakeLLM(broken={"omega": mode, "alpha": mode}) as server:
        out = tmp_path / "t.json"
        argv = ["run", "Hi", "--base-url", server.url, "--proposers", "alpha,beta"]
        status = main([*argv, "--aggregator", "omega", "--no-cache", "--quiet", "--trace-out", str(out)])
    captured = capsys.readouterr()
    assert status == 0 and captured.out.strip()
    assert "moa-lab: warning: the answer was cut off at the token cap (2048 tokens" in captured.err
    assert "1 of 2 proposer answers were cut off at their token cap (L1.0)" in captured.err
    assert main(["show", str(out)]) == 0
    shown = capsys.readouterr().out
    assert "[cut off]" in shown.splitlines()[4] and "[cut off]" in shown.splitlines()[6]
    from moa_lab.views import summary_html

    assert "cut off at the token cap" in summary_html(Trace.load(out))


def test_a_lone_surrogate_is_replaced_and_the_call_is_kept_and_cached(tmp_path):
    with FakeLLM(broken={"alpha": "surrogate"}) as server:
        config = fake_config(server.url)
        trace = _run(config, cache=tmp_path / "c", trace_path=tmp_path / "t.json")
        call = Trace.load(tmp_path / "t.json")["L1.0"]
        assert call.response.endswith(" \ufffd") and "U+FFFD" in call.warnings[0]
        sent = len(server.chat_requests())
        again = _run(config, cache=tmp_path / "c")
        assert len(server.chat_requests()) == sent and again["L1.0"].cache_hit
        assert again["L1.0"].response == trace["L1.0"].response


def test_answers_arrive_stripped_as_the_reference_implementation_strips_them():
    with FakeLLM(broken={"alpha": "whitespace"}) as server:
        trace = _run(fake_config(server.url))
    assert (
        trace["L1.0"].response.startswith("alpha answers")
        and trace["L1.0"].response == trace["L1.0"].response.strip()
    )
    assert "\n1. alpha answers" in trace["L2.0"].messages[0]["content"]


# -- keys and endpoints --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://user:sk-SECRET123@127.0.0.1:9/v1",
        "http://127.0.0.1:9/v1?api_key=sk-SECRET123",
        "https://host.example/v1#sk-SECRET123",
    ],
)
def test_a_key_in_the_base_url_is_refused_before_anything_is_written(url, tmp_path, capsys):
    with pytest.raises(ValueError) as caught:  # pydantic's ValidationError, input hidden
        Agent(model="m", base_url=url)
    assert "SECRET" not in str(caught.value) and "--api-key-env" in str(caught.value)
    out = tmp_path / "t.json"
    status = main(["run", "Hi", "--base-url", url, "--proposers", "a", "--trace-out", str(out)])
    err = capsys.readouterr().err
    assert status == 1 and "SECRET" not in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("**/*.json"))


def test_a_missing_v1_names_the_url_tried_and_suggests_the_v1_form():
    with FakeLLM() as server:
        bare = server.url.removesuffix("/v1")
        with pytest.raises(RunError) as caught:
            _run(fake_config(bare, max_retries=0), cache=False)
    error = caught.value.trace["L1.0"].error
    assert error in str(caught.value)
    assert f"HTTP 404 from {bare} for alpha" in error
    assert f"moa_lab asked for {bare}/chat/completions" in error
    assert f"try {bare}/v1" in error


# -- the paper's defaults ------------------------------------------------------------------------
def _reference_requests(url_models, aggregator, question, answers):
    """What the paper's reference implementation sends for MoA-Lite (togethercomputer/MoA,
    utils.inject_references_to_messages and generate_for_alpaca_eval.process_fn): every call
    {model, max_tokens 2048, temperature 0.7, messages}; the aggregator's system prompt is the
    Aggregate-and-Synthesize text and "\\n{i}. {stripped answer}" per reference."""
    user = [{"role": "user", "content": question}]
    proposers = [
        {"model": m, "max_tokens": 2048, "temperature": 0.7, "messages": user} for m in url_models
    ]
    system = moa_lab.AGGREGATE_AND_SYNTHESIZE.replace("\n{references}", "")
    for i, answer in enumerate(answers, start=1):
        system += f"\n{i}. {answer.strip()}"
    final = {
        "model": aggregator,
        "max_tokens": 2048,
        "temperature": 0.7,
        "messages": [{"role": "system", "content": system}, *user],
    }
    return proposers, final


@pytest.mark.parametrize("how", ["preset", "cli-without-preset"])
def test_moa_lite_sends_what_the_reference_implementation_sends(how, capsys):
    question = "What is the capital of France?"
    with FakeLLM(broken={"p1": "whitespace"}) as server:
        if how == "preset":
            config = moa_lab.build_config(
                preset_name="moa-lite", base_url=server.url, proposers=["p1", "p2"], aggregator="agg"
            )
            _run(config, question)
        else:
            argv = [
                "run",
                question,
                "--base-url",
                server.url,
                "--proposers",
                "p1,p2",
                "--aggregator",
                "agg",
            ]
            assert main([*argv, "--no-cache", "--quiet"]) == 0
        # Streaming changes how the answer travels, not what is asked: compared without it.
        assert all(r.body.get("stream") is True for r in server.chat_requests())
        received = [
            {k: v for k, v in r.body.items() if k not in ("stream", "stream_options")}
            for r in server.chat_requests()
        ]
    answers = [
        next(f"\n\n  {json.loads(json.dumps(r))['model']}" for r in received if r["model"] == m)
        for m in ("p1", "p2")
    ]
    proposers = sorted((r for r in received if r["model"] != "agg"), key=lambda r: r["model"])
    final = next(r for r in received if r["model"] == "agg")
    expected_proposers, _ = _reference_requests(["p1", "p2"], "agg", question, answers)
    assert proposers == expected_proposers
    refs = final["messages"][0]["content"].split("Responses from models:")[1]
    _, expected_final = _reference_requests(
        ["p1", "p2"], "agg", question, [line.split(". ", 1)[1] for line in refs.strip().split("\n")]
    )
    assert final == expected_final
    assert "Keep it brief" not in final["messages"][0]["content"]
    assert not any("seed" in r or "top_p" in r for r in received)
    assert all(line[:3] in ("1. ", "2. ") and line == line.strip() for line in refs.strip().split("\n"))


def test_the_paper_presets_send_the_paper_pipeline_s_max_tokens():
    for name in ("moa", "moa-lite", "self-moa", "llm-ranker"):
        config = moa_lab.preset(name)
        assert {a.max_tokens for a in config.agents()} == {2048}, name
        assert {a.temperature for a in config.agents()} == {0.7}, name


def test_bad_endpoints_never_print_a_traceback():
    script = (
        "import sys; from moa_lab.cli import main; from moa_lab.testing import FakeLLM\n"
        "modes = ['html', 'event-stream', 'no-choices', 'error-body', 'reasoning-exhausted', 'empty']\n"
        "for mode in modes:\n"
        "    with FakeLLM(broken={'omega': mode, 'b': mode}) as s:\n"
        "        main(['run', 'Hi', '--base-url', s.url, '--proposers', 'a,b', '--aggregator', 'omega',"
        " '--no-cache', '--quiet', '--trace-out', 'NUL'.replace('NUL', sys.argv[1] + mode)])\n"
    )
    import tempfile

    folder = tempfile.mkdtemp()
    done = subprocess.run([sys.executable, "-c", script, folder + "/"], capture_output=True, text=True)
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line]
    assert all(line.startswith(("moa-lab: error:", "moa-lab: warning:", "trace:")) for line in lines)


# -- experiments ---------------------------------------------------------------------------------
def test_failed_and_unreadable_judgments_are_counted_apart_not_scored_as_ties(tmp_path):
    from moa_lab.experiments import experiment
    from moa_lab.testing import ChatServer, HTTPReply, completion

    def answer(body):
        text = body["messages"][-1]["content"]
        if body["model"] != "judge":
            return completion(
                body["model"], f"answer of {body['model']}", prompt_tokens=5, completion_tokens=3
            )
        b_is_a = "[Response A]\nanswer of b" in text
        if "Task 0" in text:  # both orders readable: b wins both
            verdict = "A" if b_is_a else "B"
        elif "Task 1" in text and b_is_a:
            verdict = "I cannot decide without more context"
        else:  # Task 1 with b second, and both orders of Task 2
            raise HTTPReply(400, "judge refuses")
        return completion("judge", verdict, prompt_tokens=5, completion_tokens=1)

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"instruction": f"Task {i}"}) + "\n" for i in range(3)))
    with ChatServer(answer) as server:
        configs = {m: MoAConfig.single(Agent(model=m, base_url=server.url)) for m in ("a", "b")}
        judge = Agent(model="judge", base_url=server.url)
        result = experiment(
            configs, data, judge=judge, baseline="a", cache=False, run_dir=tmp_path / "r",
            progress=False,
        )  # fmt: skip
    statuses = sorted(result.judgments["status"])
    assert statuses == ["failed", "failed", "failed", "judged", "judged", "unreadable"]
    row = result.table().loc["b"]
    assert row["judge_failed"] == 3 and row["judge_unreadable"] == 1
    assert row["win_rate"] == 1.0  # only the two readable verdicts count, and b won both
    assert row["win_low"] == row["win_high"] == 1.0  # one judged item: no width to invent


def test_answers_with_no_number_are_counted_apart_from_wrong_ones(tmp_path):
    from moa_lab.experiments import experiment
    from moa_lab.testing import ChatServer, completion

    replies = {"What is 1 + 1?": "2", "What is 2 + 2?": "5", "What is 3 + 3?": "I do not know."}

    def answer(body):
        text = replies[body["messages"][-1]["content"]]
        return completion(body["model"], text, prompt_tokens=5, completion_tokens=2)

    data = tmp_path / "qa.jsonl"
    data.write_text(
        "".join(
            json.dumps({"question": q, "answer": str(2 * i)}) + "\n" for i, q in enumerate(replies, 1)
        )
    )
    with ChatServer(answer) as server:
        config = MoAConfig.single(Agent(model="m", base_url=server.url))
        result = experiment({"m": config}, data, cache=False, run_dir=tmp_path / "r", progress=False)
    row = result.table().loc["m"]
    assert row["no_answer"] == 1 and row["failed"] == 0
    assert row["accuracy"] == 0.5  # one right, one wrong; the answer without a number is left out


def test_the_alpaca_eval_export_leaves_out_failures_and_repeats_and_names_files_safely(tmp_path):
    from moa_lab.experiments import experiment, export_alpaca_eval

    data = tmp_path / "ae.jsonl"
    items = ["Write a haiku.", "Name a colour.", "Write a haiku.", "Say nothing."]
    data.write_text("".join(json.dumps({"instruction": i}) + "\n" for i in items))
    from moa_lab.testing import ChatServer, Reply, completion

    def answer(body):
        text = body["messages"][-1]["content"]
        if text == "Name a colour.":
            return Reply(b"<html>Sign in</html>", content_type="text/html")
        reply = "" if text == "Say nothing." else "An old pond; a frog jumps in."
        return completion(body["model"], reply, prompt_tokens=3, completion_tokens=7)

    with ChatServer(answer) as server:
        agent = Agent(model="llama3:8b-q4", base_url=server.url)
        config = MoAConfig.single(agent, max_retries=0)
        result = experiment(
            {"llama3:8b-q4": config}, data, cache=False, run_dir=tmp_path / "r", progress=False,
            concurrency=1,
        )  # fmt: skip
    assert result.table().loc["llama3:8b-q4", "failed"] == 2
    [exported] = export_alpaca_eval(result, tmp_path / "ae")
    assert exported.path.parent == tmp_path / "ae" and ":" not in exported.path.name
    assert exported.path.name.startswith("llama3-8b-q4-") and exported.path.suffix == ".json"
    records = json.loads(exported.path.read_text())
    assert len(records) == exported.written == 1 == len({r["instruction"] for r in records})
    assert all(r["output"].strip() for r in records)
    assert len(exported.failed) == 2 and len(exported.duplicates) == 1
    assert any("repeated instruction" in w for w in exported.warnings())


# -- timing --------------------------------------------------------------------------------------
def test_a_call_that_waited_for_its_model_records_queue_apart_from_service():
    from moa_lab.testing import ChatServer, Reply, completion

    lock = threading.Lock()

    def serve(body):
        with lock:  # one call at a time, as the local model serves them
            served = time.time()
            time.sleep(0.3)
            answer = completion(body["model"], "an answer", prompt_tokens=4, completion_tokens=2)
            answer["timings"] = {
                "prompt_n": 4,
                "prompt_ms": 10.0,
                "predicted_n": 2,
                "predicted_ms": 290.0,
            }
            return Reply.json(answer, headers={"X-Moa-Lab-Served-At": f"{served:.6f}"})

    with ChatServer(serve) as server:
        trace = _run(fake_config(server.url, proposers=("a", "b", "c")))
    calls = sorted(trace.records(1), key=lambda c: c.served_at)
    for call in calls:
        # service only, never the wait (a loaded machine stretches both, never mixes them)
        assert call.latency == pytest.approx(call.ended_at - call.served_at, abs=0.05)
        assert 0.25 < call.latency < 0.3 + 1.5, call.latency
        assert call.timings["predicted_ms"] == 290.0 and call.sent_at <= call.served_at
    assert calls[2].queued > 0.5 and calls[2].queued > calls[0].queued  # it waited for the first two
    saved = Trace.from_dict(json.loads(json.dumps(trace.to_dict())))
    assert saved[calls[2].id].served_at == calls[2].served_at
