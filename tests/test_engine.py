"""The engine against a real HTTP server on loopback, through the real openai client."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import moa_lab
from moa_lab import Agent, CallCache, MoAConfig, Price, RunError, Trace
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
from moa_lab.testing import FakeLLM, fake_config


def _run(config, prompt="Why is the sky blue?", **options):
    options.setdefault("cache", False)
    options.setdefault("trace_path", False)
    options.setdefault("progress", False)
    return moa_lab.run(prompt, config, **options)


def _by_model(requests):
    grouped = {}
    for request in requests:
        grouped.setdefault(request.model, []).append(request)
    return grouped


def test_each_layer_sees_every_answer_of_the_layer_before(fake):
    trace = _run(fake_config(fake.url, layers=3))
    requests = fake.chat_requests()
    assert len(requests) == 7
    layer1 = [trace[n].response for n in trace.calls(1)]
    layer2 = [trace[n].response for n in trace.calls(2)]
    first_round, second_round, final = requests[:3], requests[3:6], requests[6]
    for request in first_round:
        assert request.body["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
    preamble = AGGREGATE_AND_SYNTHESIZE.replace("{references}", "")
    for request in second_round:
        assert request.system.startswith(preamble)
        assert request.system.endswith("\n".join(f"{i}. {r}" for i, r in enumerate(layer1, 1)))
        assert request.body["messages"][-1] == {"role": "user", "content": "Why is the sky blue?"}
    assert final.model == "omega"
    assert final.system.endswith("\n".join(f"{i}. {r}" for i, r in enumerate(layer2, 1)))
    assert trace.final == trace[trace.aggregator()].response
    assert trace.graph.number_of_edges() == 9 + 3
    assert trace.references("L3.0") == ["L2.0", "L2.1", "L2.2"]
    assert trace.status == "complete"


def test_node_records_what_was_sent_and_returned(fake):
    trace = _run(fake_config(fake.url))
    node = trace["L2.0"]
    request = fake.chat_requests()[-1]
    sent = request.body
    assert request.headers["x-moa-lab-call"] == "L2.0"  # names the call, e.g. in local progress bars
    assert list(node.messages) == sent["messages"]
    assert node.params == {"temperature": 0.7, "max_tokens": 512}
    assert sent["temperature"] == 0.7 and sent["max_tokens"] == 512
    assert node.role == "aggregator" and node.layer == 2 and node.index == 0
    assert node.completion_tokens == len(node.response.split())
    assert node.finish_reason == "stop"
    assert node.served_model == "omega"
    assert node.started_at <= node.ended_at
    assert node.latency > 0 and node.cache_hit is False and node.error is None
    assert node.cost is None  # unknown model: unknown cost, not 0


def test_a_users_system_message_is_kept_and_the_template_appended(fake):
    messages = [
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    _run(fake_config(fake.url), prompt=messages)
    aggregator = fake.chat_requests()[-1]
    assert aggregator.system.startswith("Answer in French.\n\nYou have been provided")
    assert len(aggregator.body["messages"]) == 2


def test_proposers_of_a_layer_run_concurrently():
    with FakeLLM(delay=0.5) as server:
        config = fake_config(server.url, proposers=["a", "b", "c", "d", "e", "f"], layers=3)
        started = time.perf_counter()
        trace = _run(config)
        wall = time.perf_counter() - started
    assert len(trace) == 13
    assert 1.5 <= wall < 2.5, wall  # 3 layers of 0.5 s, not 13 calls of 0.5 s
    starts = [trace[n].started_at for n in trace.calls(2)]
    assert max(starts) - min(starts) < 0.2


def test_the_concurrency_cap_holds():
    with FakeLLM(delay=0.2) as server:
        config = fake_config(server.url, proposers=["a", "b", "c", "d"], max_concurrency=1)
        started = time.perf_counter()
        _run(config)
        wall = time.perf_counter() - started
    assert wall >= 5 * 0.2


def test_500_and_429_are_retried_honouring_retry_after():
    with FakeLLM(faults={"alpha": [500, 429]}, retry_after=0.3) as server:
        trace = _run(fake_config(server.url, backoff_max=1.0))
        alpha = _by_model(server.chat_requests())["alpha"]
    assert len(alpha) == 3
    assert trace["L1.0"].attempts == 3 and trace["L1.0"].error is None
    assert alpha[2].received_at - alpha[1].received_at >= 0.3
    assert "HTTP 429" in trace["L1.0"].retried_errors[1]


def test_a_400_is_not_retried_and_the_proposer_is_dropped():
    with FakeLLM(faults={"alpha": [400]}) as server:
        trace = _run(fake_config(server.url))
        alpha = _by_model(server.chat_requests())["alpha"]
    assert len(alpha) == 1
    assert trace["L1.0"].error.startswith("HTTP 400 from http://127.0.0.1")
    assert trace.references("L2.0") == ["L1.1", "L1.2"]
    assert trace.final is not None


def test_a_timeout_is_retried():
    with FakeLLM(faults={"alpha": ["hang"]}, hang_seconds=3) as server:
        trace = _run(fake_config(server.url, timeout=0.5))
    assert trace["L1.0"].attempts == 2
    assert "timed out" in trace["L1.0"].retried_errors[0]
    assert trace["L1.0"].response.startswith("alpha answers")


def test_a_proposer_that_always_fails_is_dropped():
    with FakeLLM(broken={"beta": 500}) as server:
        trace = _run(fake_config(server.url, max_retries=2))
        beta = _by_model(server.chat_requests())["beta"]
    assert len(beta) == 3
    assert "gave up after 3 attempts" in trace["L1.1"].error
    assert "L1.1" not in trace.references("L2.0")
    assert "having read 2 references" in trace.final


def test_on_proposer_error_fail_stops_the_run_and_keeps_the_trace(tmp_path):
    path = tmp_path / "t.json"
    with FakeLLM(broken={"beta": 503}) as server:
        config = fake_config(server.url, max_retries=0, on_proposer_error="fail")
        with pytest.raises(RunError, match=r"proposer L1\.1 failed: HTTP 503"):
            _run(config, trace_path=path)
        assert not [r for r in server.chat_requests() if r.model == "omega"]
    saved = Trace.load(path)
    assert saved.status == "failed" and len(saved) == 3


def test_every_proposer_failing_is_one_clear_error():
    with FakeLLM(broken={"alpha": 500, "beta": 500, "gamma": 500}) as server:
        with pytest.raises(RunError, match="every proposer of layer 1 failed; first error: HTTP 500"):
            _run(fake_config(server.url, max_retries=0))


def test_a_second_identical_run_is_served_from_the_cache(fake, tmp_path):
    prices = {"alpha": Price(input=1.0, output=2.0), "omega": Price(input=1.0, output=2.0)}
    config = fake_config(fake.url, prices=prices)
    first = _run(config, cache=tmp_path / "c")
    sent = len(fake.chat_requests())
    second = _run(config.model_copy(update={"timeout": 99.0, "max_retries": 1}), cache=tmp_path / "c")
    assert len(fake.chat_requests()) == sent == 4
    assert all(second[n].cache_hit for n in second)
    assert second.final == first.final
    assert second["L1.0"].usage == first["L1.0"].usage
    assert first["L1.0"].cost > 0
    assert second["L1.0"].cost == pytest.approx(first["L1.0"].cost)
    totals = second.totals()
    assert totals.cache_hits == 4 and totals.spent == 0
    assert totals.saved is None  # beta and gamma have no price


def test_errors_are_not_cached(tmp_path):
    with FakeLLM(faults={"alpha": [400]}) as server:
        config = fake_config(server.url)
        _run(config, cache=tmp_path / "c")
        again = _run(config, cache=tmp_path / "c")
        alpha = _by_model(server.chat_requests())["alpha"]
    assert len(alpha) == 2 and again["L1.0"].error is None


def test_samples_of_one_prompt_stay_distinct_in_the_cache(fake, tmp_path):
    config = fake_config(fake.url, proposers=["same", "same", "same"])
    trace = _run(config, cache=tmp_path / "c")
    keys = {trace[n].cache_key for n in trace.calls(1)}
    assert len(keys) == 3
    assert [trace[n].replicate for n in trace.calls(1)] == [0, 1, 2]
    _run(config, cache=tmp_path / "c")
    other_sample = _run(config, cache=tmp_path / "c", sample=1)
    assert len(fake.chat_requests()) == 4 + 4
    assert not any(other_sample[n].cache_hit for n in other_sample)


def test_own_previous_answer_can_be_hidden(fake):
    trace = _run(fake_config(fake.url, layers=3, include_own_previous=False))
    assert trace.references("L2.1") == ["L1.0", "L1.2"]
    assert trace.references("L3.0") == ["L2.0", "L2.1", "L2.2"]
    beta_round_two = [r for r in fake.chat_requests() if r.model == "beta"][1]
    assert trace["L1.1"].response not in beta_round_two.system


def test_reference_shuffle_is_seeded(fake):
    config = fake_config(fake.url, proposers=list("abcdef"), shuffle_references=True, shuffle_seed=7)
    orders = {tuple(_run(config).references("L2.0")) for _ in range(2)}
    assert len(orders) == 1
    (order,) = orders
    assert sorted(order) == [f"L1.{i}" for i in range(6)] and list(order) != sorted(order)
    other = _run(config.model_copy(update={"shuffle_seed": 8})).references("L2.0")
    assert tuple(other) != order


def test_rank_aggregation_returns_the_picked_reference(fake):
    from moa_lab._prompts import RANKER_TEMPLATE

    trace = _run(fake_config(fake.url, aggregation="rank", aggregator_template=RANKER_TEMPLATE))
    aggregator = trace[trace.aggregator()]
    assert "having read 3 references" in aggregator.response  # the fake names 3 first
    assert aggregator.picked == "L1.2"
    assert trace.final == trace["L1.2"].response


def test_no_api_key_reaches_any_file(tmp_path, monkeypatch):
    secret = "sk-test-SECRET-3f9a1c"
    monkeypatch.setenv("MOA_TEST_KEY", secret)
    with FakeLLM(faults={"alpha": [401]}) as server:
        agents = [Agent(model=m, base_url=server.url, api_key_env="MOA_TEST_KEY") for m in "abc"]
        config = MoAConfig(
            proposers=[*agents, Agent(model="alpha", base_url=server.url, api_key_env="MOA_TEST_KEY")],
            aggregator=agents[0],
            max_retries=0,
        )
        _run(config, cache=tmp_path / "cache", trace_path=tmp_path / "trace.json")
        assert server.chat_requests()[0].headers["authorization"] == f"Bearer {secret}"
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []
    saved = json.loads((tmp_path / "trace.json").read_text())
    assert saved["nodes"][0]["api_key_env"] == "MOA_TEST_KEY"


def test_a_missing_key_fails_before_any_call(fake, monkeypatch):
    monkeypatch.delenv("MOA_NOT_SET", raising=False)
    config = fake_config(fake.url).model_copy(
        update={"aggregator": Agent(model="omega", base_url=fake.url, api_key_env="MOA_NOT_SET")}
    )
    with pytest.raises(moa_lab.ConfigError, match="MOA_NOT_SET is not set"):
        _run(config)
    assert fake.chat_requests() == []


def test_the_trace_file_is_rewritten_as_each_call_finishes(tmp_path):
    path = tmp_path / "live.json"
    seen = []
    with FakeLLM() as server:
        _run(
            fake_config(server.url),
            trace_path=path,
            on_call=lambda trace, node: node in trace and seen.append(len(Trace.load(path))),
        )
    assert seen == [1, 2, 3, 4]


def test_the_hook_hears_each_call_start_its_stream_and_its_finish():
    heard = []

    def on_call(trace, node):
        flight = trace.in_flight.get(node)
        state = "done" if node in trace else "streaming" if flight.text else "started"
        heard.append((node, state, sorted(trace.in_flight), flight.text if flight else None))

    with FakeLLM(delay=0.05, token_seconds=0.03) as server:
        trace = _run(fake_config(server.url), on_call=on_call)
    for node in trace.calls():
        events = [(state, flight, text) for n, state, flight, text in heard if n == node]
        states = [state for state, _, _ in events]
        assert states[0] == "started" and states[-1] == "done" and "streaming" in states, states
        assert set(states[1:-1]) == {"streaming"}
        texts = [text for state, _, text in events if state == "streaming"]
        assert all(trace[node].response.startswith(t.strip()) for t in texts)  # a growing prefix
        assert node in events[0][1] and node not in events[-1][1]
    started = [n for n, state, _, _ in heard if state == "started"]
    assert started[:3] == ["L1.0", "L1.1", "L1.2"] == [n for n, _, _, _ in heard[:3]]  # in parallel
    assert trace.in_flight == {}


_KILLED_RUN = """
import sys, moa_lab
from moa_lab.testing import fake_config
moa_lab.run("Why?", fake_config(sys.argv[1]), cache=False, trace_path=sys.argv[2], progress=False)
"""


def test_a_killed_run_keeps_every_call_it_finished(tmp_path):
    path = tmp_path / "killed.json"
    with FakeLLM(delay={"omega": 30.0}) as server:
        child = subprocess.Popen([sys.executable, "-c", _KILLED_RUN, server.url, str(path)])
        try:
            deadline = time.time() + 30
            while time.time() < deadline:
                if path.exists() and len(Trace.load(path)) == 3:
                    break
                time.sleep(0.05)
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.wait()
    trace = Trace.load(path)
    assert trace.calls() == ["L1.0", "L1.1", "L1.2"]
    assert trace.status == "running" and trace.final is None
    assert all(trace[n].response for n in trace)
    assert not list(Path(tmp_path).glob("*.tmp"))


def test_a_shared_cache_object_is_left_open(fake, tmp_path):
    cache = CallCache(tmp_path / "shared")
    _run(fake_config(fake.url), cache=cache)
    assert len(cache) == 4
    cache.close()


def test_the_transport_seam_answers_in_process_exactly_as_over_http(fake):
    over_http = _run(fake_config(fake.url))
    sent = sorted(json.dumps(r.body, sort_keys=True) for r in fake.chat_requests())
    nowhere = "http://127.0.0.1:9/v1"  # nothing listens there: every byte must go through the seam
    with FakeLLM() as seam:
        backend = moa_lab.Backend(transport=seam.transport())
        in_process = moa_lab.run(
            "Why is the sky blue?",
            fake_config(nowhere),
            cache=False,
            trace_path=False,
            progress=False,
            backend=backend,
        )
        assert sorted(json.dumps(r.body, sort_keys=True) for r in seam.chat_requests()) == sent
        assert seam.requests[0].headers["x-moa-lab-call"].startswith("L1.")
    assert in_process.final == over_http.final
    assert [c.response for c in in_process.records()] == [c.response for c in over_http.records()]
