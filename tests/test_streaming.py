"""Streamed calls: time to first token, the same answers and cache entries as whole ones, broken
streams retried and never stored half, endpoints that refuse streaming asked again, the CLI writing
the answer as it comes. Over real HTTP to the loopback FakeLLM through the real openai client."""

from __future__ import annotations

import pytest

import moa_lab
from moa_lab import CallCache
from moa_lab.cli import main
from moa_lab.testing import FakeLLM, fake_config


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


def test_a_streamed_call_records_its_time_to_first_token_and_decode_rate():
    with FakeLLM(delay=0.3, token_seconds=0.02) as server:
        trace = _run(fake_config(server.url))
        bodies = [r.body for r in server.chat_requests()]
    assert all(b["stream"] is True and b["stream_options"] == {"include_usage": True} for b in bodies)
    for call in trace.records():
        words = len(call.response.split())
        assert 0.28 < call.ttft < call.latency, call.ttft  # the server's wait before the first word
        assert call.latency - call.ttft >= (words - 1) * 0.02 * 0.9  # then a word every 20 ms
        assert call.usage.completion_tokens == words  # usage came in the last event
        assert 10 < call.token_rate < 60, call.token_rate


def test_streamed_and_whole_answers_give_the_same_trace_and_cache_entries(tmp_path):
    with FakeLLM() as server:
        streamed = _run(fake_config(server.url), cache=tmp_path / "a")
        whole = _run(fake_config(server.url, stream=False), cache=tmp_path / "b")
        assert not any("stream" in r.body for r in server.chat_requests()[len(streamed) :])
        again = _run(fake_config(server.url), cache=tmp_path / "a")
    assert [c.response for c in streamed.records()] == [c.response for c in whole.records()]
    assert [c.usage for c in streamed.records()] == [c.usage for c in whole.records()]
    assert all(c.ttft is None for c in whole.records())
    a, b = CallCache(tmp_path / "a"), CallCache(tmp_path / "b")
    for call in whole.records():
        one, other = a.get(call.cache_key), b.get(call.cache_key)
        assert {k: one[k] for k in ("text", "usage", "finish_reason")} == {
            k: other[k] for k in ("text", "usage", "finish_reason")
        }
    a.close()
    b.close()
    assert all(c.cache_hit for c in again.records())
    assert [c.ttft for c in again.records()] == [c.ttft for c in streamed.records()]


def test_a_stream_that_breaks_is_retried_and_never_stored_half(tmp_path):
    restarts = {}

    def on_call(trace, node):
        if node in trace.in_flight:
            restarts[node] = max(restarts.get(node, 0), trace.in_flight[node].restarts)

    with FakeLLM(faults={"beta": ["stream-break"]}, token_seconds=0.001) as server:
        trace = _run(fake_config(server.url), on_call=on_call, cache=tmp_path)
    beta = trace["L1.1"]
    assert beta.error is None and beta.attempts == 2
    assert "the stream ended before the answer did" in beta.retried_errors[0]
    assert beta.response.endswith("]")  # the whole answer, digest and all
    assert restarts["L1.1"] == 1
    with FakeLLM(broken={"beta": "stream-break"}) as server:
        config = fake_config(server.url, max_retries=0)
        failed = _run(config, cache=tmp_path / "broken")
    assert "the stream ended before the answer did" in failed["L1.1"].error
    cache = CallCache(tmp_path / "broken")
    assert cache.get(failed["L1.1"].cache_key) is None and cache.get(failed["L1.0"].cache_key)
    cache.close()


def test_an_endpoint_that_refuses_streaming_is_asked_for_whole_answers():
    with FakeLLM(broken={"alpha": "stream-refused"}) as server:
        backend = moa_lab.Backend()
        trace = _run(fake_config(server.url), backend=backend)
        alpha = [r.body for r in server.chat_requests() if r.body["model"] == "alpha"]
    assert [b.get("stream") for b in alpha][:2] == [True, None]
    call = trace["L1.0"]
    assert call.error is None and call.attempts == 1 and call.ttft is None
    assert any("asked again, whole" in w for w in call.warnings)


@pytest.mark.parametrize("flag", ["--stream", "--no-stream"])
def test_the_cli_writes_the_answer_once_streamed_or_not(flag, capsys, monkeypatch):
    with FakeLLM(token_seconds=0.11) as server:
        argv = ["run", "Why?", "--base-url", server.url, "--proposers", "a,b", "--aggregator", "z"]
        written = []
        real_write = __import__("sys").stdout.write

        def spy(text):
            written.append(text)
            return real_write(text)

        monkeypatch.setattr("sys.stdout.write", spy)
        assert main([*argv, "--no-cache", "--quiet", flag]) == 0
    out = capsys.readouterr().out
    final = out.strip()
    assert final.startswith("z answers 'Why?' having read 2 references")
    assert out.count("z answers") == 1
    pieces = [w for w in written if w.strip()]
    assert (len(pieces) > 3) == (flag == "--stream")  # streamed word by word, or printed whole
