"""The embedded local model: assembly from part packages, the resolver, the loopback server, the preset.

Fast tests replace only llama.cpp itself (``load_llama``) with a fake model; everything else is real:
the engine, the openai client, HTTP on loopback and the part-package import machinery. The slow test
runs the real packaged model end to end through the CLI.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

import moa_lab
import moa_lab.local as local
from moa_lab import Agent, ConfigError, MoAConfig, Trace
from moa_lab.cli import main
from moa_lab.local import _models, _server
from moa_lab.testing import FakeLLM

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent


# -- the registry of packaged models ------------------------------------------------------------


def _part_packages(root: Path, model: local.PackagedModel, parts: list[bytes], skip=()) -> None:
    for part, data in zip(model.parts, parts, strict=True):
        if part.package in skip:
            continue
        package = root / part.package.replace("-", "_")
        (package / "data").mkdir(parents=True, exist_ok=True)
        (package / "__init__.py").write_text("")
        (package / part.file).write_bytes(data)


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """A three-part fake model, its part packages importable from a temp dir, and its bytes.

    Its layout is not the default's (parts number files from 0, under their own names), so the
    per-part layout is what is read, not a convention.
    """
    parts = [os.urandom(300_000), os.urandom(1), os.urandom(123_457)]
    whole = b"".join(parts)
    prefix = f"moafake-{tmp_path.name.replace('_', '-').lower()}-part"
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def make(skip=(), sha256: str | None = None, sizes=None, name="fake-model") -> local.PackagedModel:
        model = local.PackagedModel(
            name=name,
            served_name=f"{name}-q4",
            description="a fake model",
            licence="CC0-1.0",
            version="9.9.9",
            parts=tuple(
                local.Part(f"{prefix}{n}", f"data/fake.gguf.part{n - 1:02d}", size)
                for n, size in enumerate(sizes or [len(p) for p in parts], start=1)
            ),
            sha256=sha256 or hashlib.sha256(whole).hexdigest(),
        )
        _part_packages(tmp_path / "site", model, parts, skip=skip)
        return model

    make.whole = whole
    make.prefix = prefix
    return make


@pytest.fixture
def registry(packaged, tmp_path, monkeypatch):
    """The fake model registered by name next to the real ones; models assemble into tmp_path."""
    model = packaged()
    monkeypatch.setitem(_models.MODELS, model.name, model)
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    return model


def test_parts_are_assembled_once_into_a_verified_file(packaged, tmp_path, capsys):
    model = packaged()
    assert model.size == len(packaged.whole)
    first = model.ensure(tmp_path / "models")
    assert first == tmp_path / "models" / "fake-model-q4.gguf"
    assert first.read_bytes() == packaged.whole
    assert "assembling the local model fake-model" in capsys.readouterr().err
    for part in (tmp_path / "site").glob("*/data/*"):
        part.unlink()  # the parts are gone: only reuse can succeed now
    assert model.ensure(tmp_path / "models") == first
    assert capsys.readouterr().err == ""
    model.verify(first)


def test_a_hash_mismatch_fails_and_leaves_no_file(packaged, tmp_path):
    model = packaged(sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"corrupt .*SHA-256 .*pip install --force-reinstall"):
        model.ensure(tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_missing_parts_are_one_line_naming_the_packages_to_install(packaged, tmp_path):
    model = packaged(skip={f"{packaged.prefix}1", f"{packaged.prefix}3"})
    with pytest.raises(ConfigError) as failure:
        model.ensure(tmp_path / "models")
    message = str(failure.value)
    assert "\n" not in message
    assert (
        f"the local model fake-model needs 2 of its 3 part packages, which are not installed: "
        f"pip install {packaged.prefix}1==9.9.9 {packaged.prefix}3==9.9.9 (or run" in message
    )
    assert "setup.sh" in message
    assert not (tmp_path / "models").exists()


def test_a_part_of_the_wrong_size_is_named_before_anything_is_written(packaged, tmp_path):
    model = packaged(sizes=[300_000, 2, 123_457])
    with pytest.raises(ConfigError, match=rf"reinstall them: .* {packaged.prefix}2==9.9.9$"):
        model.ensure(tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_a_changed_file_fails_verification(packaged, tmp_path):
    model = packaged()
    path = model.ensure(tmp_path / "models")
    path.write_bytes(b"x" * model.size)
    with pytest.raises(ConfigError, match="does not match the pinned SHA-256"):
        model.verify(path)


def test_a_packaged_model_is_chosen_by_name(registry, packaged, tmp_path, monkeypatch):
    path = local.gguf_path("local:fake-model")
    assert path == tmp_path / "models" / "fake-model-q4.gguf"
    assert path.read_bytes() == packaged.whole
    assert local.named_model("local:fake-model") is registry
    assert local.model_name("local:fake-model") == "fake-model-q4"
    assert local.named_model("local") is local.DEFAULT_MODEL
    assert local.named_model(f"local:{path}") is None
    assert local.model_name(f"local:{path}") == "fake-model-q4"
    monkeypatch.setenv(local.GGUF_ENV, "fake-model")
    assert local.gguf_path("local") == path
    with pytest.raises(ConfigError, match=r"name an existing .gguf model file or a packaged model "):
        local.gguf_path("local:no-such-model")


def test_the_default_model_is_assembled_from_its_part_packages(packaged, tmp_path, monkeypatch):
    monkeypatch.setattr(_models, "DEFAULT_MODEL", packaged(name=local.DEFAULT_MODEL.name))
    monkeypatch.setitem(_models.MODELS, local.DEFAULT_MODEL.name, _models.DEFAULT_MODEL)
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    assert local.gguf_path("local").read_bytes() == packaged.whole
    assert local.gguf_path("local:") == local.gguf_path(f"local:{local.DEFAULT_MODEL.name}")


def test_the_registry_pins_three_models_and_the_local_extra_installs_them():
    assert list(local.MODELS) == ["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b", "gemma-3-270m"]
    assert local.DEFAULT_MODEL is local.MODELS["qwen2.5-coder-1.5b"]
    assert local.DEFAULT_MODEL.served_name == "qwen2.5-coder-1.5b-instruct-q4_k_m"  # shipped traces
    assert [m.size for m in local.MODELS.values()] == [1_117_320_768, 491_400_064, 253_113_024]
    extra = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["local"]
    )
    for model in local.MODELS.values():
        assert re.fullmatch("[0-9a-f]{64}", model.sha256)
        assert model.description and model.licence
        assert len({part.package for part in model.parts}) == len(model.parts)
        assert set(model.requirements().split()) <= extra, model.name


# -- the loopback server and the resolver, with llama.cpp replaced by a fake ----------------------


class FakeLlama:
    """Stands in for llama_cpp.Llama: answers after a delay and fails if entered twice at once.

    It records the thread that loaded it and the thread of every call.
    """

    tokens = 3
    """Tokens each call generates (10 ms apart); the reply counts 3 whatever it is."""
    filler = ""
    """The text of each token after the first two, whose text is ``seed`` and `` ``; the answer is
    that text and the seed, which is left for the whole answer to give (as a real model leaves text
    that may start a stop string)."""

    def __init__(self, delay: float = 0.0, chat_format=None):
        self.delay = delay
        self.chat_format = chat_format
        self.on_token = None
        self.prompt_cached = 0
        self.calls: list[dict] = []
        self.intervals: list[tuple[float, float]] = []
        self.loaded_on = threading.get_ident()
        self.threads: set[int] = set()
        self.closed_on = None
        self._active = 0

    def create_chat_completion(self, messages, **options):
        self._active += 1
        started = time.time()
        self.threads.add(threading.get_ident())
        try:
            assert self._active == 1, "two sequences ran on one model at once"
            # As the real model: a prompt equal to the previous one is not prefilled again.
            same = bool(self.calls) and self.calls[-1]["messages"] == messages
            self.prompt_cached = 11 if same else 0
            self.calls.append({"messages": messages, **options})
            if "too long" in messages[-1]["content"]:
                raise ValueError("Requested tokens (9000) exceed context window of 8192")
            time.sleep(self.delay)
            for number in range(self.tokens):
                time.sleep(0.01)
                self.on_token(("seed", " ")[number] if number < 2 else self.filler)
            content = f"seed {self.filler * (self.tokens - 2)}{options['seed']}"
            return {
                "model": "ignored",
                "choices": [
                    {
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            }
        finally:
            self.intervals.append((started, time.time()))
            self._active -= 1

    def close(self):
        self.closed_on = threading.get_ident()


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A GGUF path whose 'model' is a FakeLlama; yields (path, the fakes loaded so far)."""
    path = tmp_path / "tiny-chat.gguf"
    path.write_bytes(b"GGUF")
    loaded: list[FakeLlama] = []

    def load(gguf: Path, chat_format=None) -> FakeLlama:
        assert gguf.suffix == ".gguf"
        time.sleep(0.1)
        loaded.append(FakeLlama(delay=0.2, chat_format=chat_format))
        return loaded[-1]

    monkeypatch.setattr(_server, "load_llama", load)
    yield path, loaded
    _server.stop_servers()


def _run(config, prompt="Why is the sky blue?"):
    return moa_lab.run(prompt, config, cache=False, trace_path=False, progress=False)


def _local_agent(path, **params) -> Agent:
    return Agent(model="tiny", base_url=f"local:{path}", **params)


def test_local_calls_are_serialized_and_recorded_like_remote_ones(fake_gguf):
    path, loaded = fake_gguf
    proposers = [
        _local_agent(path, temperature=t, seed=s, top_p=0.9, max_tokens=64)
        for t, s in ((0.2, 1), (0.6, 2), (1.0, 3))
    ]
    trace = _run(MoAConfig(proposers=proposers, aggregator=_local_agent(path, seed=7), layers=2))
    assert len(loaded) == 1, "one server and one loaded model per GGUF"
    llm = loaded[0]
    assert len(llm.calls) == 4
    starts = sorted(llm.intervals)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(starts))
    sent = {call["seed"]: call for call in llm.calls}
    assert {(sent[s]["temperature"], sent[s]["top_p"], sent[s]["max_tokens"]) for s in (1, 2, 3)} == {
        (0.2, 0.9, 64),
        (0.6, 0.9, 64),
        (1.0, 0.9, 64),
    }
    for node in trace.calls():
        data = trace[node]
        assert data.usage.to_dict() == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
        assert data.finish_reason == "length"
        assert data.served_model == "tiny-chat"
        assert data.base_url == f"local:{path}"
        assert data.error is None
    assert trace.final == "seed 7"


def test_remote_calls_do_not_wait_for_local_ones(fake_gguf):
    path, loaded = fake_gguf
    with FakeLLM(delay=0.3) as remote:
        remotes = [Agent(model=m, base_url=remote.url) for m in ("alpha", "beta", "gamma")]
        locals_ = [_local_agent(path, seed=s) for s in (1, 2, 3)]
        _run(MoAConfig(proposers=remotes + locals_, aggregator=remotes[0], layers=2))
        first_round = remote.chat_requests()[:3]
    first_local_done = min(end for _, end in loaded[0].intervals)
    assert len(first_round) == 3
    assert all(request.received_at < first_local_done for request in first_round)


def test_a_prompt_too_long_is_a_clear_error_not_retried(fake_gguf):
    path, loaded = fake_gguf
    config = MoAConfig(proposers=[_local_agent(path)], aggregator=_local_agent(path), layers=2)
    with pytest.raises(moa_lab.RunError) as failure:
        _run(config, prompt="too long")
    error = failure.value.trace["L1.0"].error
    assert error.startswith("HTTP 400 ") and "tiny-chat: Requested tokens" in error
    assert "gave up" not in error
    assert len(loaded[0].calls) == 1


def test_parameters_the_local_model_cannot_honour_are_refused(fake_gguf):
    path, loaded = fake_gguf
    odd = _local_agent(path, extra={"logprobs": True})
    config = MoAConfig(
        proposers=[odd, _local_agent(path, seed=1)], aggregator=_local_agent(path), layers=2
    )
    trace = _run(config)
    assert "the local model does not take ['logprobs']" in trace["L1.0"].error
    assert trace["L1.1"].error is None
    assert all("logprobs" not in call for call in loaded[0].calls)


def test_a_missing_gguf_fails_before_any_call(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere.gguf"
    with FakeLLM() as remote:
        config = MoAConfig(
            proposers=[Agent(model="alpha", base_url=remote.url), _local_agent(missing)],
            aggregator=Agent(model="omega", base_url=remote.url),
            layers=2,
        )
        with pytest.raises(
            ConfigError, match=re.escape(f"base_url 'local:{missing}': {missing} is not a file")
        ):
            _run(config)
        assert remote.chat_requests() == []
    monkeypatch.setenv(local.GGUF_ENV, str(missing))
    with pytest.raises(ConfigError, match=re.escape(f"${local.GGUF_ENV}: {missing} is not a file")):
        local.resolve("local")


def test_missing_part_packages_surface_through_a_run(packaged, tmp_path, monkeypatch):
    gone = packaged(skip={f"{packaged.prefix}{n}" for n in (1, 2, 3)}, name="gone")
    monkeypatch.setitem(_models.MODELS, "gone", gone)
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.setenv(local.GGUF_ENV, "gone")
    with pytest.raises(
        ConfigError, match=rf"needs 3 of its 3 part packages.*{packaged.prefix}3==9.9.9 "
    ):
        _run("local")
    agent = Agent(model="m", base_url="local:gone")
    config = MoAConfig(proposers=[agent], aggregator=agent, layers=2)
    with pytest.raises(ConfigError, match=rf"pip install {packaged.prefix}1==9.9.9 "):
        _run(config)


def _post(url: str, content: str = "hi", timeout=30, **params) -> tuple[dict, dict, float, float]:
    """One chat request over HTTP: (body, headers, time sent, time answered)."""
    body = {"model": "tiny", "messages": [{"role": "user", "content": content}], **params}
    request = urllib.request.Request(
        f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    sent = time.time()
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response), dict(response.headers), sent, time.time()


def test_every_llama_call_and_the_load_run_on_one_thread_per_model(fake_gguf):
    path, loaded = fake_gguf
    url = local.resolve(f"local:{path}")
    assert loaded == [], "the model loads on its first call, not before"
    with ThreadPoolExecutor(max_workers=4) as clients:  # 4 connections: 4 HTTP handler threads
        replies = list(clients.map(lambda seed: _post(url, seed=seed), range(6)))
    assert [body["choices"][0]["message"]["content"] for body, *_ in replies] == [
        f"seed {n}" for n in range(6)
    ]
    assert len(loaded) == 1
    llm = loaded[0]
    assert llm.threads == {llm.loaded_on}
    assert llm.loaded_on != threading.get_ident()
    starts = sorted(llm.intervals)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(starts))
    _server.stop_servers()
    assert llm.closed_on == llm.loaded_on


def test_exiting_stops_a_call_in_progress_at_its_next_token(fake_gguf, monkeypatch):
    path, loaded = fake_gguf
    monkeypatch.setattr(FakeLlama, "tokens", 1000)  # 10 s of generation
    url = local.resolve(f"local:{path}")
    with ThreadPoolExecutor(max_workers=1) as client:
        reply = client.submit(_post, url, seed=1)
        while not loaded or not loaded[0].calls:
            time.sleep(0.01)
        time.sleep(0.3)  # it is generating now
        started = time.perf_counter()
        _server.stop_servers()  # what runs at exit
        assert time.perf_counter() - started < 1.0
        with pytest.raises(urllib.error.HTTPError) as failure:
            reply.result()
    assert failure.value.code == 503
    assert "shutting down" in json.load(failure.value)["error"]["message"]
    assert loaded[0].closed_on == loaded[0].loaded_on


def test_calls_to_different_models_overlap(fake_gguf, tmp_path):
    path, loaded = fake_gguf
    other = tmp_path / "other-chat.gguf"
    other.write_bytes(b"GGUF")
    urls = [local.resolve(f"local:{path}"), local.resolve(f"local:{other}")]
    with ThreadPoolExecutor(max_workers=2) as clients:
        replies = list(clients.map(lambda url: _post(url, seed=1), urls))
    assert [body["model"] for body, *_ in replies] == ["tiny-chat", "other-chat"]
    (a_start, a_end), (b_start, b_end) = loaded[0].intervals[0], loaded[1].intervals[0]
    assert a_start < b_end and b_start < a_end, "one model waited for the other"
    assert loaded[0].loaded_on != loaded[1].loaded_on


def test_a_reply_tells_when_and_how_long_the_call_was_served(fake_gguf):
    path, loaded = fake_gguf
    url = local.resolve(f"local:{path}")
    with ThreadPoolExecutor(max_workers=2) as clients:
        first, second = clients.map(lambda seed: _post(url, seed=seed), (1, 2))
        if first[0]["timings"]["load_ms"] == 0:  # the second request reached the model first
            first, second = second, first
    for body, headers, sent, answered in (first, second):
        timings = body["timings"]
        served_at = float(headers[local.SERVED_AT_HEADER])
        assert sent < served_at < answered
        assert timings["prompt_n"] + timings["cache_n"] == 11 and timings["predicted_n"] == 3
        assert timings["prompt_ms"] >= 200  # the fake's delay, before its first token
        assert 15 <= timings["predicted_ms"] < 200  # between its first and last token
        assert timings["predicted_per_second"] == pytest.approx(3000 / timings["predicted_ms"])
        assert timings["prompt_per_second"] == pytest.approx(
            timings["prompt_n"] * 1000 / timings["prompt_ms"]
        )
    assert first[0]["timings"]["load_ms"] >= 100 and first[0]["timings"]["queued_ms"] < 50
    assert first[0]["timings"]["cache_n"] == 0 and second[0]["timings"]["cache_n"] == 11
    # The second waited while the first loaded the model and was served; it did not load it.
    assert second[0]["timings"]["load_ms"] == 0
    assert second[0]["timings"]["queued_ms"] >= 300
    assert float(second[1][local.SERVED_AT_HEADER]) >= loaded[0].intervals[0][1]


def test_timings_reach_the_openai_client(fake_gguf):
    openai = pytest.importorskip("openai")
    path, _ = fake_gguf
    client = openai.OpenAI(base_url=local.resolve(f"local:{path}"), api_key="none")
    raw = client.chat.completions.with_raw_response.create(
        model="tiny", messages=[{"role": "user", "content": "hi"}], seed=3
    )
    assert float(raw.headers[local.SERVED_AT_HEADER]) > 0
    assert json.loads(raw.http_response.content)["timings"]["predicted_n"] == 3
    assert raw.parse().choices[0].message.content == "seed 3"


def _stream(url: str, content: str = "hi", **params) -> tuple[list, dict]:
    """One streamed chat request over a raw socket: (the events' data, the headers)."""
    body = json.dumps(
        {"model": "tiny", "messages": [{"role": "user", "content": content}], "stream": True, **params}
    ).encode()
    port = int(url.split(":")[-1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        raw = b""
        while data := connection.recv(65536):
            raw += data
    head, _, chunked = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK", lines[0]
    headers = dict(line.split(": ", 1) for line in lines[1:])
    payload = b""
    while True:
        size, _, chunked = chunked.partition(b"\r\n")
        if int(size, 16) == 0:
            break
        payload, chunked = payload + chunked[: int(size, 16)], chunked[int(size, 16) + 2 :]
    events = [e.removeprefix("data: ") for e in payload.decode().split("\n\n") if e]
    return [e if e == "[DONE]" else json.loads(e) for e in events], headers


def test_a_streamed_call_is_openai_events_with_the_same_answer_and_timings(fake_gguf, monkeypatch):
    path, loaded = fake_gguf
    url = local.resolve(f"local:{path}")
    whole, *_ = _post(url, seed=4)
    writes: list[bytes] = []
    write = socketserver._SocketWriter.write
    monkeypatch.setattr(
        socketserver._SocketWriter,
        "write",
        lambda self, data: writes.append(bytes(data)) or write(self, data),
    )
    events, headers = _stream(url, seed=4, stream_options={"include_usage": True})
    assert headers["Content-Type"] == "text/event-stream"
    # The headers, the role and the first text leave in one write (no Nagle stall between them).
    assert writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert b'"role": "assistant"' in writes[0] and b'"content": "seed"' in writes[0]
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "tiny-chat" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    # Text as llama.cpp makes it, the rest from the whole answer, then the finish reason alone.
    assert [d.get("content") for d in deltas[1:]] == ["seed", " ", "4", None]
    finish, usage = chunks[-2], chunks[-1]
    assert finish["choices"][0]["finish_reason"] == "length"
    assert finish["timings"]["predicted_n"] == 3 and finish["timings"]["prompt_ms"] >= 200
    assert usage["choices"] == [] and usage["usage"] == whole["usage"]
    assert "".join(d.get("content") or "" for d in deltas) == whole["choices"][0]["message"]["content"]
    assert float(headers[local.SERVED_AT_HEADER]) > 0
    events, _ = _stream(url, seed=4)
    assert all(e == "[DONE]" or e["choices"] for e in events), "usage only when asked for"
    assert loaded[0].threads == {loaded[0].loaded_on}


def test_local_calls_stream_through_a_run_and_record_their_time_to_first_token(fake_gguf):
    path, _ = fake_gguf
    agents = [_local_agent(path, seed=s) for s in (1, 2)]
    trace = _run(MoAConfig(proposers=agents, aggregator=_local_agent(path, seed=7), layers=2))
    for call in trace.records():
        assert call.warnings == (), call.warnings  # no refused stream asked again whole
        assert 0.2 <= call.ttft < call.latency  # the fake's delay before its first token
        assert call.timings["predicted_n"] == 3 and call.timings["queued_ms"] >= 0
        assert call.served_at is not None
    assert trace.final == "seed 7"


def test_a_client_that_hangs_up_stops_the_generation(fake_gguf, monkeypatch):
    path, loaded = fake_gguf
    monkeypatch.setattr(FakeLlama, "tokens", 1000)  # 10 s of generation
    monkeypatch.setattr(FakeLlama, "filler", ".")  # a piece of text each token
    url = local.resolve(f"local:{path}")
    port = int(url.split(":")[-1].split("/")[0])
    body = json.dumps({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
            f"{body}".encode()
        )
        assert b"data: " in connection.recv(65536)
    hung_up = time.time()
    monkeypatch.setattr(FakeLlama, "tokens", 3)
    started = time.perf_counter()
    answer, *_ = _post(url, seed=9, timeout=5)  # served next: the model is free again at once
    assert answer["choices"][0]["message"]["content"] == "seed .9"
    assert loaded[0].intervals[0][1] - hung_up < 1.0
    assert time.perf_counter() - started < 10.0


def test_models_load_one_at_a_time(monkeypatch, tmp_path):
    """llama-cpp-python swaps stdout and stderr for /dev/null while it loads; two loads at once
    (local-mix loads three models on three threads) left the process printing nothing."""
    from moa_lab.local import _llama

    inside, most = [0], [0]

    class Loading:
        def __init__(self, **options):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            time.sleep(0.1)
            inside[0] -= 1

    monkeypatch.setattr(_llama, "_serving_llama", lambda: Loading)
    with ThreadPoolExecutor(max_workers=3) as threads:
        list(threads.map(lambda n: _llama.load_llama(tmp_path / f"{n}.gguf"), range(3)))
    assert most[0] == 1


def test_the_streamed_text_is_always_a_prefix_of_the_answer():
    """Bytes split inside a character and text that may start a stop string wait for the next
    tokens; a stop string ends the stream where llama-cpp-python ends the answer."""
    from moa_lab.local._llama import _AnswerText

    answer = "Café ☕ ok <|end|> never".encode()
    for cut in range(1, 6):
        tokens = [answer[i : i + cut] for i in range(0, len(answer), cut)]
        text = _AnswerText(("<|end|>",))
        pieces = [text.add(token) for token in tokens]
        assert "".join(pieces) == "Café ☕ ok "
        streamed = ""
        for piece, end in zip(pieces, itertools.accumulate(tokens), strict=True):
            streamed += piece
            assert end.decode("utf-8", errors="ignore").startswith(streamed)
    assert _AnswerText(()).add("Café".encode()[:4]) == "Caf"


def test_a_model_that_cannot_load_is_one_clear_error_not_retried(fake_gguf, monkeypatch):
    path, _ = fake_gguf
    attempts = []

    def broken(gguf, chat_format=None):
        attempts.append(gguf)
        raise ConfigError(f"{gguf}: llama.cpp cannot load it as a GGUF model (unknown architecture)")

    monkeypatch.setattr(_server, "load_llama", broken)
    config = MoAConfig(
        proposers=[_local_agent(path, seed=s) for s in (1, 2)], aggregator=_local_agent(path)
    )
    with pytest.raises(moa_lab.RunError) as failure:
        _run(config)
    error = failure.value.trace["L1.0"].error
    assert error.startswith("HTTP 400 ") and "cannot load it as a GGUF model" in error
    assert "gave up" not in error
    assert len(attempts) == 1, "a failed load is not tried again"


def test_a_file_that_is_not_a_gguf_fails_before_any_call(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("not a model")
    with pytest.raises(ConfigError, match=r"notes.gguf is not a GGUF model file"):
        local.resolve(f"local:{text}")


def test_a_packaged_model_is_served_by_name_with_its_chat_format(registry, fake_gguf, monkeypatch):
    _, loaded = fake_gguf
    monkeypatch.setitem(_models.MODELS, registry.name, replace(registry, chat_format="gemma"))
    registry.ensure(local.model_dir()).write_bytes(b"GGUF" + b"\0" * (registry.size - 4))
    agent = Agent(model=local.model_name("local:fake-model"), base_url="local:fake-model", seed=5)
    trace = _run(MoAConfig(proposers=[agent], aggregator=agent, layers=2))
    assert {trace[n].served_model for n in trace.calls()} == {"fake-model-q4"}
    assert len(loaded) == 1 and loaded[0].chat_format == "gemma"


# -- the preset and the command ----------------------------------------------------------------


def test_local_preset_is_self_moa_lite_on_the_local_model_at_no_cost(fake_gguf, monkeypatch):
    path, loaded = fake_gguf
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    default = moa_lab.preset("local")
    assert default.layers == 2 and len(default.proposers[0]) == 3
    assert {a.base_url for a in default.agents()} == {"local"}
    assert len({(a.temperature, a.seed) for a in default.proposers[0]}) == 3
    monkeypatch.setenv(local.GGUF_ENV, str(path))
    trace = _run("local")
    assert trace.status == "complete"
    assert {trace[n].base_url for n in trace.calls()} == {f"local:{path}"}
    assert {trace[n].model for n in trace.calls()} == {"tiny-chat"}
    assert trace.totals().cost == 0
    assert len(loaded[0].calls) == 4


def test_local_mix_mixes_three_packaged_models_with_the_papers_prompt(fake_gguf, tmp_path, monkeypatch):
    _, loaded = fake_gguf
    files = {}
    for name in local.MODELS:  # each packaged model's GGUF stands in a file of its own
        files[name] = tmp_path / f"{local.MODELS[name].served_name}.gguf"
        files[name].write_bytes(b"GGUF")
    monkeypatch.setattr(_server, "gguf_path", lambda base_url: files[base_url.partition(":")[2]])
    monkeypatch.setenv(local.GGUF_ENV, "/elsewhere/ignored.gguf")  # names models: not redirected
    trace = _run("local-mix")
    assert trace.status == "complete" and trace.totals().cost == 0
    proposers = [trace[n] for n in trace.calls(1)]
    assert [p.base_url for p in proposers] == [f"local:{name}" for name, *_ in local.MIX_PROPOSERS]
    assert len({p.served_model for p in proposers}) == 3
    assert len({p.params["seed"] for p in proposers}) == 3
    aggregator = trace[trace.aggregator()]
    assert aggregator.served_model == local.DEFAULT_MODEL.served_name
    assert aggregator.messages[0]["content"].startswith(moa_lab.AGGREGATE_AND_SYNTHESIZE.split("{")[0])
    assert len(loaded) == 3, "one loaded model per packaged model"
    assert {fake.chat_format for fake in loaded} == {None, "gemma"}


def _command(*argv: str) -> int:
    return main(["local-model", *argv])


def test_local_model_command_prints_the_model_path(registry, tmp_path, monkeypatch, capsys):
    assert _command("--model", "fake-model", "--verify") == 0
    out, err = capsys.readouterr()
    assembled = tmp_path / "models" / "fake-model-q4.gguf"
    assert out == f"{assembled}\n"
    assert "matches its pinned SHA-256" in err
    assert _command("--gguf", str(assembled), "--verify") == 1
    assert "--verify checks a packaged model" in capsys.readouterr().err
    assert _command("--model", "nope") == 1
    assert "no packaged model 'nope'; choose one of qwen2.5-coder-1.5b, " in capsys.readouterr().err
    assert _command("--list") == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].startswith("qwen2.5-coder-1.5b (default)\t1117.3 MB\tApache-2.0\t")
    assert listed[-1].startswith("fake-model\t0.4 MB\tCC0-1.0\tassembled\ta fake model")


def test_local_model_check_loads_and_answers(fake_gguf, capsys):
    path, loaded = fake_gguf
    assert _command("--gguf", str(path), "--check") == 0
    assert len(loaded) == 1 and loaded[0].closed_on == loaded[0].loaded_on
    said = capsys.readouterr().err
    assert re.search(r"tiny-chat.gguf loads \(\d+\.\d s\) and answers \(3 tokens", said)


# -- shipped traces and the real model ---------------------------------------------------------


def test_shipped_traces_load_and_are_complete():
    shipped = sorted((ROOT / "traces").glob("*.json"))
    assert len(shipped) >= 3
    for path in shipped:
        trace = Trace.load(path)
        assert trace.status == "complete", path
        assert trace.final
        assert {trace[n].base_url for n in trace.calls()} == {"local"}
        assert all(trace[n].usage and trace[n].served_model for n in trace.calls())


@pytest.mark.slow
def test_the_real_local_model_answers_through_the_cli(tmp_path):
    trace_path = tmp_path / "france.json"
    env = {k: v for k, v in os.environ.items() if k != local.GGUF_ENV}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from moa_lab.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            "What is the capital of France?",
            "--preset",
            "local",
            "--trace-out",
            str(trace_path),
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)["answer"]
    assert "paris" in answer.lower()
    trace = Trace.load(trace_path)
    assert trace.status == "complete" and trace.final == answer
    assert len(trace.calls()) == 4
    for node in trace.calls():
        data = trace[node]
        assert data.error is None and data.response
        assert data.served_model == local.DEFAULT_MODEL.served_name
        assert data.completion_tokens > 0
        assert data.finish_reason in ("stop", "length")
        assert data.cost == 0


@pytest.mark.slow
def test_the_real_model_tells_how_each_call_was_served_and_a_seeded_call_repeats():
    url = local.resolve("local")
    question = "Alice has 3 apples and buys 8 more. How many apples does she have?"

    def ask(seed: int) -> tuple[dict, dict, float, float]:
        return _post(url, question, temperature=0.8, max_tokens=48, seed=seed, timeout=300)

    try:
        first = ask(seed=2)
        ask(seed=1)  # leaves the same prompt, sampled differently, in llama.cpp's cache
        again = ask(seed=2)
    finally:
        _server.stop_servers()
    assert again[0]["choices"] == first[0]["choices"]
    assert first[0]["timings"]["load_ms"] > 0 and again[0]["timings"]["load_ms"] == 0
    # The repeat reused the prefill of the same prompt, and still answered the same.
    assert (first[0]["timings"]["cache_n"], again[0]["timings"]["prompt_n"]) == (0, 0)
    for body, headers, sent, answered in (first, again):
        timings, usage = body["timings"], body["usage"]
        assert timings["prompt_n"] + timings["cache_n"] == usage["prompt_tokens"] > 0
        assert timings["predicted_n"] == usage["completion_tokens"] > 0
        assert timings["prompt_ms"] > 0 and timings["predicted_ms"] > 0
        served_at = float(headers[local.SERVED_AT_HEADER])
        assert sent + timings["load_ms"] / 1000 <= served_at + 0.01
        assert served_at + (timings["prompt_ms"] + timings["predicted_ms"]) / 1000 <= answered


@pytest.mark.slow
@pytest.mark.parametrize("name", list(local.MODELS))
def test_every_packaged_model_answers_by_name(name):
    url = local.resolve(f"local:{name}")
    try:
        body, *_ = _post(url, "Name a colour.", temperature=0, max_tokens=8, timeout=300)
    finally:
        _server.stop_servers()
    assert body["model"] == local.MODELS[name].served_name
    assert body["timings"]["predicted_n"] > 0 and body["timings"]["load_ms"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen2.5-coder-0.5b", "gemma-3-270m"])
def test_a_real_model_streams_the_answer_it_gives_whole(name):
    url = local.resolve(f"local:{name}")
    question = "Write two sentences about why the sky is blue."
    params = {"temperature": 0.8, "max_tokens": 64, "seed": 3}
    try:
        whole, *_ = _post(url, question, timeout=300, **params)
        events, headers = _stream(url, question, stream_options={"include_usage": True}, **params)
    finally:
        _server.stop_servers()
    deltas = [e["choices"][0]["delta"] for e in events[:-1] if e["choices"]]
    texts = [d["content"] for d in deltas[1:] if d.get("content")]
    assert len(texts) > 10, "the answer came in pieces as it was written"
    assert "".join(texts) == whole["choices"][0]["message"]["content"]
    assert events[-2]["usage"] == whole["usage"]
    finish = events[-3]
    assert finish["choices"][0]["finish_reason"] == whole["choices"][0]["finish_reason"]
    assert finish["timings"]["predicted_n"] == whole["usage"]["completion_tokens"]
    assert float(headers[local.SERVED_AT_HEADER]) > 0


@pytest.mark.slow
def test_local_mix_answers_offline_with_three_different_models_through_the_cli(tmp_path):
    trace_path = tmp_path / "mix.json"
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from moa_lab.cli import main; sys.exit(main(sys.argv[1:]))",
            "run",
            "What is 12 + 30? Answer with the number.",
            "--preset",
            "local-mix",
            "--trace-out",
            str(trace_path),
            "--no-cache",
            "--stream",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    trace = Trace.load(trace_path)
    assert trace.status == "complete" and done.stdout.strip() == trace.final.strip()
    served = {trace[n].served_model for n in trace.calls(1)}
    assert served == {model.served_name for model in local.MODELS.values()}
    for node in trace.calls():
        call = trace[node]
        assert call.error is None and call.response and call.ttft is not None, node
        assert call.warnings == () or all("stream" not in w for w in call.warnings)
