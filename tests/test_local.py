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
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import moa_lab
import moa_lab.local as local
from moa_lab import Agent, ConfigError, MoAConfig, Trace
from moa_lab.cli import main
from moa_lab.local import _models, _server
from moa_lab.testing import FakeLLM

ROOT = Path(__file__).resolve().parent.parent


# -- assembling a packaged model ---------------------------------------------------------------


def _part_packages(root: Path, prefix: str, parts: list[bytes], skip: int | None = None) -> None:
    for number, data in enumerate(parts, start=1):
        if number == skip:
            continue
        package = root / f"{prefix}{number}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{number:02d}.bin").write_bytes(data)


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """A three-part fake model installed as importable packages, and the bytes it must assemble to."""
    prefix = f"moafake_{tmp_path.name.replace('-', '_')}_part"
    parts = [os.urandom(300_000), os.urandom(1), os.urandom(123_457)]
    whole = b"".join(parts)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def make(skip: int | None = None, sha256: str | None = None) -> local.PackagedModel:
        _part_packages(tmp_path / "site", prefix, parts, skip=skip)
        return local.PackagedModel(
            name="fake-model",
            module_prefix=prefix,
            parts=len(parts),
            sha256=sha256 or hashlib.sha256(whole).hexdigest(),
            size=len(whole),
        )

    make.whole = whole
    make.prefix = prefix
    return make


def test_parts_are_assembled_once_into_a_verified_file(packaged, tmp_path, capsys):
    model = packaged()
    first = model.ensure(tmp_path / "models")
    assert first == tmp_path / "models" / "fake-model.gguf"
    assert first.read_bytes() == packaged.whole
    assert "assembling the local model fake-model" in capsys.readouterr().err
    for part in (tmp_path / "site").glob("*/data/*.bin"):
        part.unlink()  # the parts are gone: only reuse can succeed now
    assert model.ensure(tmp_path / "models") == first
    assert capsys.readouterr().err == ""
    model.verify(first)


def test_a_hash_mismatch_fails_and_leaves_no_file(packaged, tmp_path):
    model = packaged(sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"corrupt .*SHA-256 .*reinstall the part packages"):
        model.ensure(tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_missing_part_is_named_in_one_line(packaged, tmp_path):
    model = packaged(skip=2)
    with pytest.raises(ConfigError) as failure:
        model.ensure(tmp_path / "models")
    message = str(failure.value)
    assert "\n" not in message
    assert f"needs the package {packaged.prefix.replace('_', '-')}2, which is not installed" in message
    assert "setup.sh" in message
    assert not (tmp_path / "models" / "fake-model.gguf").exists()


def test_a_changed_file_fails_verification(packaged, tmp_path):
    model = packaged()
    path = model.ensure(tmp_path / "models")
    path.write_bytes(b"x" * model.size)
    with pytest.raises(ConfigError, match="does not match the pinned SHA-256"):
        model.verify(path)


def test_the_packaged_default_is_assembled_from_its_part_packages(packaged, tmp_path, monkeypatch):
    monkeypatch.setattr(_models, "DEFAULT_MODEL", packaged())
    monkeypatch.setattr(local, "DEFAULT_MODEL", _models.DEFAULT_MODEL)
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    assert local.gguf_path("local").read_bytes() == packaged.whole


# -- the loopback server and the resolver, with llama.cpp replaced by a fake ----------------------


class FakeLlama:
    """Stands in for llama_cpp.Llama: answers after a delay and fails if entered twice at once."""

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.on_token = None
        self.calls: list[dict] = []
        self.intervals: list[tuple[float, float]] = []
        self._active = 0

    def create_chat_completion(self, messages, **options):
        self._active += 1
        started = time.time()
        try:
            assert self._active == 1, "two sequences ran on one model at once"
            self.calls.append({"messages": messages, **options})
            if "too long" in messages[-1]["content"]:
                raise ValueError("Requested tokens (9000) exceed context window of 8192")
            time.sleep(self.delay)
            for _ in range(3):
                self.on_token()
            return {
                "model": "ignored",
                "choices": [
                    {
                        "message": {"role": "assistant", "content": f"seed {options['seed']}"},
                        "finish_reason": "length",
                    }
                ],
                "usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
            }
        finally:
            self.intervals.append((started, time.time()))
            self._active -= 1

    def reset(self):
        assert self._active == 0, "the context was reset during a call"

    def close(self):
        self.closed = True


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A GGUF path whose 'model' is a FakeLlama; yields (path, the fakes loaded so far)."""
    path = tmp_path / "tiny-chat.gguf"
    path.write_bytes(b"GGUF")
    loaded: list[FakeLlama] = []

    def load(gguf: Path) -> FakeLlama:
        assert gguf == path.resolve()
        loaded.append(FakeLlama(delay=0.2))
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


def test_missing_part_packages_surface_through_a_run(tmp_path, monkeypatch):
    monkeypatch.setattr(
        _models, "DEFAULT_MODEL", local.PackagedModel("gone", "moa_lab_absent_part", 2, "0" * 64, 10)
    )
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    with pytest.raises(ConfigError, match=r"needs the package moa-lab-absent-part1 \(and 1 more"):
        _run("local")


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


def _command(*argv: str) -> int:
    return main(["local-model", *argv])


def test_local_model_command_prints_the_model_path(packaged, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(_models, "DEFAULT_MODEL", packaged())
    monkeypatch.setattr(local, "DEFAULT_MODEL", _models.DEFAULT_MODEL)
    monkeypatch.setenv(local.MODEL_DIR_ENV, str(tmp_path / "models"))
    monkeypatch.delenv(local.GGUF_ENV, raising=False)
    assert _command("--verify") == 0
    out, err = capsys.readouterr()
    assert out == f"{tmp_path / 'models' / 'fake-model.gguf'}\n"
    assert "matches its pinned SHA-256" in err
    monkeypatch.setenv(local.GGUF_ENV, str(tmp_path / "models" / "fake-model.gguf"))
    assert _command("--verify") == 1
    assert "--verify checks the packaged model" in capsys.readouterr().err


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
        assert data.served_model == local.DEFAULT_MODEL.name
        assert data.completion_tokens > 0
        assert data.finish_reason in ("stop", "length")
        assert data.cost == 0


@pytest.mark.slow
def test_a_seeded_local_call_answers_the_same_whatever_ran_before_it():
    url = local.resolve("local")

    def ask(question: str, seed: int) -> str:
        body = {
            "model": local.DEFAULT_MODEL.name,
            "messages": [{"role": "user", "content": question}],
            "temperature": 0.8,
            "max_tokens": 48,
            "seed": seed,
        }
        request = urllib.request.Request(
            f"{url}/chat/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=300) as response:
            return json.load(response)["choices"][0]["message"]["content"]

    question = "Alice has 3 apples and buys 8 more. How many apples does she have?"
    try:
        first = ask(question, seed=2)
        ask(question, seed=1)  # leaves the same prompt, sampled differently, in llama.cpp's cache
        assert ask(question, seed=2) == first
    finally:
        _server.stop_servers()
