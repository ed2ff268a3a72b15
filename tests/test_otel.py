"""OpenInference export: spans of shipped and fresh traces caught in memory, and one real Phoenix server
that the spans are sent to over OTLP/HTTP and read back from through its REST API."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is missing: pip install -e '.[otel]'")

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode, format_trace_id

import moa_lab
from moa_lab import Agent, AggregatorTemplate, ConfigError, MoAConfig, MoaLabError, RunError
from moa_lab._otel import export_trace, to_otel
from moa_lab.testing import FakeLLM, fake_config

SHIPPED = sorted((Path(__file__).parent.parent / "traces").glob("*.json"))
KIND = "openinference.span.kind"
KEY_ENV, KEY = "MOA_LAB_OTEL_TEST_KEY", "sk-otel-test-5f3a9c"


def _spans(trace, **options):
    """Export to memory: the summary and the finished spans."""
    exporter = InMemorySpanExporter()
    summary = to_otel(trace, exporter=exporter, **options)
    return summary, list(exporter.get_finished_spans())


def _calls(spans):
    return {s.attributes["moa_lab.node"]: s for s in spans if "moa_lab.node" in s.attributes}


def _layers(spans):
    return {s.attributes["moa_lab.layer"]: s for s in spans if s.name.startswith("layer ")}


def _root(spans):
    (root,) = [s for s in spans if s.parent is None]
    return root


def _assert_structure(data, summary, spans):
    """One span per call, per layer and for the run; calls under their layer, layers under the run;
    one link per edge, to the span of the answer read, with its position."""
    layers = {node["layer"] for node in data["nodes"]}
    assert len(spans) == summary.spans == len(data["nodes"]) + len(layers) + 1
    root = _root(spans)
    assert root.name == "moa_lab run" and root.attributes[KIND] == "CHAIN"
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert format_trace_id(root.context.trace_id) == summary.trace_id
    by_layer = _layers(spans)
    assert sorted(by_layer) == sorted(layers)
    for layer, span in by_layer.items():
        assert span.name == f"layer {layer}" and span.attributes[KIND] == "CHAIN"
        assert span.parent.span_id == root.context.span_id
    calls = _calls(spans)
    assert sorted(calls) == sorted(node["id"] for node in data["nodes"])
    for node in data["nodes"]:
        assert calls[node["id"]].parent.span_id == by_layer[node["layer"]].context.span_id
    node_of = {span.context.span_id: name for name, span in calls.items()}
    links = {
        (node_of[link.context.span_id], name, link.attributes["moa_lab.position"])
        for name, span in calls.items()
        for link in span.links
    }
    assert links == {(e["source"], e["target"], e["position"]) for e in data["edges"]}
    assert summary.links == len(data["edges"]) and summary.calls == len(data["nodes"])
    for name, span in calls.items():
        read = sorted((e["position"], e["source"]) for e in data["edges"] if e["target"] == name)
        assert list(span.attributes["moa_lab.references"]) == [source for _, source in read]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_a_shipped_trace_becomes_a_run_span_layer_spans_and_linked_call_spans(path):
    data = json.loads(path.read_text("utf-8"))
    summary, spans = _spans(data)
    _assert_structure(data, summary, spans)
    root = _root(spans)
    assert root.attributes["input.value"] == data["graph"]["prompt"]
    assert root.attributes["output.value"] == data["graph"]["final"]
    assert root.attributes["moa_lab.run_id"] == data["graph"]["run_id"]
    assert root.status.status_code is StatusCode.OK


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_call_spans_carry_the_openinference_llm_attributes_of_their_call(path):
    data = json.loads(path.read_text("utf-8"))
    calls = _calls(_spans(data)[1])
    for node in data["nodes"]:
        attributes = calls[node["id"]].attributes
        assert attributes[KIND] == "LLM" and attributes["llm.system"] == "openai"
        assert attributes["llm.model_name"] == node["model"]
        assert attributes["llm.response.model_name"] == node["served_model"]
        assert json.loads(attributes["llm.invocation_parameters"]) == node["params"]
        for number, message in enumerate(node["messages"]):
            assert attributes[f"llm.input_messages.{number}.message.role"] == message["role"]
            assert attributes[f"llm.input_messages.{number}.message.content"] == message["content"]
        assert f"llm.input_messages.{len(node['messages'])}.message.role" not in attributes
        assert attributes["llm.output_messages.0.message.role"] == "assistant"
        assert attributes["llm.output_messages.0.message.content"] == node["response"]
        assert attributes["output.value"] == node["response"]
        assert attributes["llm.token_count.prompt"] == node["usage"]["prompt_tokens"]
        assert attributes["llm.token_count.completion"] == node["usage"]["completion_tokens"]
        assert attributes["llm.token_count.total"] == node["usage"]["total_tokens"]
        assert attributes["llm.cost.total"] == node["cost"]
        assert attributes["llm.finish_reason"] == node["finish_reason"]
        assert attributes["moa_lab.cache_hit"] is False
        assert attributes["moa_lab.base_url"] == "local" and "llm.provider" not in attributes
        assert calls[node["id"]].status.status_code is StatusCode.OK


@pytest.mark.parametrize("path", SHIPPED[:1], ids=lambda p: p.stem)
def test_spans_keep_the_times_of_the_trace(path):
    data = json.loads(path.read_text("utf-8"))
    spans = _spans(data)[1]
    calls = _calls(spans)

    def near(ns, seconds):
        return abs(ns - seconds * 1e9) < 1_000  # within a microsecond of the recorded time

    for node in data["nodes"]:
        span = calls[node["id"]]
        assert near(span.start_time, node["started_at"]) and near(span.end_time, node["ended_at"])
    for layer, span in _layers(spans).items():
        nodes = [n for n in data["nodes"] if n["layer"] == layer]
        assert near(span.start_time, min(n["started_at"] for n in nodes))
        assert near(span.end_time, max(n["ended_at"] for n in nodes))
    root = _root(spans)
    assert near(root.start_time, data["graph"]["created_at"])
    assert near(root.end_time, data["graph"]["finished_at"])


@pytest.fixture
def replayed(monkeypatch):
    """A run on a loopback fake whose proposer beta fails, then a replay with a new aggregator
    prompt (so L1.* are reused answers and L2.0 is an edited, freshly sent call); the key variable
    named by every agent holds KEY."""
    monkeypatch.setenv(KEY_ENV, KEY)
    options = {"cache": False, "trace_path": False, "progress": False}
    with FakeLLM(broken={"beta": 500}) as server:
        agents = [Agent(model=m, base_url=server.url, api_key_env=KEY_ENV) for m in ("alpha", "beta")]
        config = MoAConfig(
            proposers=[*agents, Agent(model="gamma", base_url=server.url, api_key_env=KEY_ENV)],
            aggregator=Agent(model="omega", base_url=server.url, api_key_env=KEY_ENV),
            layers=2,
            max_retries=0,
        )
        source = moa_lab.run("Why is the sky blue?", config, **options)
        return source, moa_lab.replay(source, AggregatorTemplate("Be brief:\n{references}"), **options)


def test_a_failed_call_is_an_error_span_and_reused_calls_are_marked(replayed):
    source, trace = replayed
    data = trace.to_dict()
    summary, spans = _spans(trace)
    _assert_structure(data, summary, spans)
    calls = _calls(spans)
    failed = calls["L1.1"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == trace["L1.1"]["error"] and "HTTP 500" in trace["L1.1"]["error"]
    (event,) = failed.events
    assert event.name == "exception" and event.attributes["exception.message"] == trace["L1.1"]["error"]
    assert "llm.output_messages.0.message.content" not in failed.attributes
    for name in ("L1.0", "L1.2"):
        attributes = calls[name].attributes
        assert attributes["moa_lab.lineage"] == "reused" and attributes["moa_lab.origin"] == name
        assert attributes["moa_lab.cache_hit"] is True
        # Nothing was sent, so nothing was spent: the usage is reported as saved.
        assert "llm.token_count.prompt" not in attributes
        assert attributes["moa_lab.saved_tokens.prompt"] == trace[name]["usage"]["prompt_tokens"]
    aggregator = calls["L2.0"].attributes
    assert aggregator["moa_lab.lineage"] == "edited" and aggregator["moa_lab.cache_hit"] is False
    assert aggregator["llm.token_count.completion"] == trace["L2.0"]["usage"]["completion_tokens"]
    root = _root(spans)
    assert root.attributes["moa_lab.parent_run_id"] == source.run_id
    assert json.loads(root.attributes["moa_lab.edits"]) == data["graph"]["edits"]
    assert root.status.status_code is StatusCode.OK


def _everything(spans) -> str:
    return "\n".join(span.to_json() for span in spans)


def test_no_key_and_no_url_credentials_reach_a_span(replayed):
    _, trace = replayed
    data = trace.to_dict()
    raw = "https://alice:hunter2@api.together.xyz/v1?api_key=sk-query-77#frag"
    for node in data["nodes"]:
        node["base_url"] = raw
        if node["error"]:
            node["error"] = f"HTTP 500 from {raw} for {node['model']}: boom"
    spans = _spans(data)[1]
    dumped = _everything(spans)
    for secret in (KEY, "hunter2", "alice", "sk-query-77", "frag"):
        assert secret not in dumped
    assert KEY_ENV not in dumped  # not even the variable's name is needed by a backend
    calls = _calls(spans)
    assert {span.attributes["moa_lab.base_url"] for span in calls.values()} == {
        "https://api.together.xyz/v1"
    }
    assert {span.attributes["llm.provider"] for span in calls.values()} == {"together"}
    assert calls["L1.1"].status.description == "HTTP 500 from https://api.together.xyz/v1 for beta: boom"


def test_a_failed_run_file_exports_to_json_lines_with_an_error_root(tmp_path):
    path = tmp_path / "failed.json"
    with FakeLLM(broken={"omega": 503}) as server:
        with pytest.raises(RunError):
            moa_lab.run(
                "Why?",
                fake_config(server.url, max_retries=0),
                cache=False,
                trace_path=path,
                progress=False,
            )
    out = tmp_path / "spans" / "failed.jsonl"
    summary = export_trace(path, out=out)
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(lines) == summary.spans == 4 + 2 + 1
    assert summary.to_dict()["destination"] == str(out)
    assert {line["context"]["trace_id"] for line in lines} == {"0x" + summary.trace_id}
    (root,) = [line for line in lines if line["parent_id"] is None]
    assert root["status"]["status_code"] == "ERROR"
    assert root["status"]["description"].startswith("the run failed: HTTP 503 from ")
    assert "output.value" not in root["attributes"]
    models = {line["attributes"].get("llm.model_name") for line in lines} - {None}
    assert models == {"alpha", "beta", "gamma", "omega"}


def test_exporting_a_run_twice_gives_the_same_ids(tmp_path):
    first = _spans(json.loads(SHIPPED[0].read_text("utf-8")))[1]
    again = _spans(moa_lab.Trace.load(SHIPPED[0]))[1]
    other = _spans(json.loads(SHIPPED[1].read_text("utf-8")))[1]

    def ids(spans):
        return {(s.name, s.context.trace_id, s.context.span_id) for s in spans}

    assert ids(first) == ids(again)
    assert not {s.context.span_id for s in first} & {s.context.span_id for s in other}


def test_a_long_conversation_keeps_every_message():
    data = json.loads(SHIPPED[0].read_text("utf-8"))
    node = data["nodes"][0]
    node["messages"] = [
        {"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(90)
    ]
    attributes = _calls(_spans(data)[1])[node["id"]].attributes
    assert attributes["llm.input_messages.89.message.content"] == "turn 89"
    assert len(attributes) > 180  # past the SDK's default cap of 128 attributes per span


@pytest.mark.parametrize(
    "destinations",
    [{}, {"endpoint": "http://127.0.0.1:6006/v1/traces", "out": "x.jsonl"}, {"endpoint": "ftp://h/"}],
)
def test_a_bad_destination_is_one_line_before_anything_is_sent(destinations):
    with pytest.raises(ConfigError) as caught:
        to_otel(json.loads(SHIPPED[0].read_text("utf-8")), **destinations)
    assert "\n" not in str(caught.value)


def test_an_endpoint_nobody_listens_on_is_one_clear_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        with pytest.raises(MoaLabError, match=r"0 of \d+ accepted.*receiver") as caught:
            to_otel(
                json.loads(SHIPPED[0].read_text("utf-8")),
                endpoint=f"http://127.0.0.1:{port}/v1/traces",
                timeout=1,
            )
    assert "\n" not in str(caught.value)


def test_without_the_extra_the_error_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if it were not installed
    monkeypatch.delitem(sys.modules, "moa_lab._otel")
    with pytest.raises(MoaLabError) as caught:
        importlib.import_module("moa_lab._otel")
    message = str(caught.value)
    assert "pip install 'moa_lab[otel]'" in message and "\n" not in message


# -- a real Phoenix server ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def phoenix(tmp_path):
    """Arize Phoenix on loopback ports, with its database in tmp_path; yields its base URL.

    ``$MOA_LAB_PHOENIX_PYTHON`` names a Python with arize-phoenix installed (a venv of its own keeps
    Phoenix's 140 dependencies out of the project's); by default this test's Python runs it.
    """
    python = os.environ.get("MOA_LAB_PHOENIX_PYTHON")
    if python is None:
        if importlib.util.find_spec("phoenix") is None:  # finding it is cheap, importing it is not
            pytest.skip("pip install arize-phoenix (or set MOA_LAB_PHOENIX_PYTHON) to run this test")
        python = sys.executable
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env |= {
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
        # Loopback only: no telemetry, web fonts or other requests of its own to the internet.
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log_path = tmp_path / "phoenix.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [python, "-m", "phoenix.server.main", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started, deadline = time.monotonic(), time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"Phoenix exited ({server.returncode}): {log_path.read_text()[-2000:]}")
            try:
                _get(url + "/readyz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"Phoenix not ready in 180 s: {log_path.read_text()[-2000:]}")
                time.sleep(0.25)
        print(f"Phoenix ready in {time.monotonic() - started:.1f} s")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _phoenix_spans(url: str, project: str, trace_id: str, count: int) -> list[dict]:
    """The trace's spans as Phoenix's REST API returns them, once it has stored ``count``."""
    query = f"{url}/v1/projects/{project}/spans?limit=1000&trace_id={trace_id}"
    deadline = time.monotonic() + 60
    spans: list[dict] = []
    while time.monotonic() < deadline:
        try:
            spans = _get(query)["data"]
        except urllib.error.HTTPError as error:
            if error.code != 404:  # the project exists once its first span is stored
                raise
        if len(spans) >= count:
            return spans
        time.sleep(0.5)
    pytest.fail(f"Phoenix stored {len(spans)} of {count} spans of trace {trace_id}")


@pytest.mark.slow
def test_phoenix_receives_a_shipped_trace_and_returns_its_spans(phoenix):
    path = Path(__file__).parent.parent / "traces" / "open-ended-learning-a-language.json"
    data = json.loads(path.read_text("utf-8"))
    endpoint = phoenix + "/v1/traces"
    summary = export_trace(path, endpoint=endpoint, project="moa-lab-test")
    spans = _phoenix_spans(phoenix, "moa-lab-test", summary.trace_id, summary.spans)
    assert len(spans) == summary.spans == len(data["nodes"]) + 2 + 1
    by_id = {span["context"]["span_id"]: span for span in spans}
    (root,) = [span for span in spans if span["parent_id"] is None]
    assert root["name"] == "moa_lab run" and root["span_kind"] == "CHAIN"
    assert root["attributes"]["input.value"] == data["graph"]["prompt"]
    calls = {span["attributes"]["moa_lab.node"]: span for span in spans if span["span_kind"] == "LLM"}
    assert sorted(calls) == sorted(node["id"] for node in data["nodes"])
    for node in data["nodes"]:
        span = calls[node["id"]]
        layer = by_id[span["parent_id"]]
        assert layer["name"] == f"layer {node['layer']}" and layer["span_kind"] == "CHAIN"
        assert layer["parent_id"] == root["context"]["span_id"]
        assert span["attributes"]["llm.model_name"] == node["model"]
        assert span["attributes"]["llm.token_count.prompt"] == node["usage"]["prompt_tokens"]
        assert span["attributes"]["llm.token_count.completion"] == node["usage"]["completion_tokens"]
        assert span["attributes"]["llm.output_messages.0.message.content"] == node["response"]
    # Exporting the run again keeps one copy (the ids repeat); a second run lands beside it.
    export_trace(path, endpoint=endpoint, project="moa-lab-test")
    other = export_trace(SHIPPED[0], endpoint=endpoint, project="moa-lab-test")
    _phoenix_spans(phoenix, "moa-lab-test", other.trace_id, other.spans)
    again = _get(f"{phoenix}/v1/projects/moa-lab-test/spans?limit=1000&trace_id={summary.trace_id}")
    assert sorted(s["context"]["span_id"] for s in again["data"]) == sorted(by_id)
