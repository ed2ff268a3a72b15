"""OpenInference export: the spans of every strategy's traces (MoA, debate, Tree of Thoughts, a
strategy of one's own, replays, an imported ToT log) caught in memory, the ``moa-lab export`` command,
and one real Arize Phoenix server that the spans are sent to over OTLP/HTTP and read back from."""

from __future__ import annotations

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
from moa_lab import (
    Agent,
    AggregatorTemplate,
    ConfigError,
    DebateConfig,
    MoAConfig,
    MoaLabError,
    RunError,
    StrategyConfig,
    ToTConfig,
    Trace,
)
from moa_lab.cli import main
from moa_lab.experiments.game24 import tot_traces
from moa_lab.testing import ChatServer, FakeLLM, fake_config, game24_oracle

ROOT = Path(__file__).parent.parent
SHIPPED = sorted((ROOT / "traces").glob("*.json"))
KIND = "openinference.span.kind"
KEY_ENV, KEY = "MOA_LAB_OTEL_TEST_KEY", "sk-otel-test-5f3a9c"


def _run(prompt, config, **options):
    return moa_lab.run(
        prompt, config, **{"cache": False, "trace_path": False, "progress": False} | options
    )


def _spans(trace, **options):
    """Export to memory: the summary and the finished spans."""
    exporter = InMemorySpanExporter()
    summary = trace.to_otel(exporter=exporter, **options)
    return summary, list(exporter.get_finished_spans())


def _calls(spans):
    return {s.attributes["moa_lab.node"]: s for s in spans if s.attributes[KIND] == "LLM"}


def _root(spans):
    (root,) = [s for s in spans if s.parent is None]
    return root


def _levels(spans):
    root = _root(spans)
    return {s.attributes["moa_lab.layer"]: s for s in spans if s.parent == root.context}


def _assert_structure(trace, summary, spans, *, root_name, word):
    """One span per call, per level and for the run; calls under their level, levels under the run,
    named with the strategy's words; one link per edge, to the span of the answer read."""
    layers = {call.layer for call in trace.records()}
    assert len(spans) == summary.spans == len(trace) + len(layers) + 1
    root = _root(spans)
    assert root.name == root_name and root.attributes[KIND] == "CHAIN"
    assert {s.context.trace_id for s in spans} == {root.context.trace_id}
    assert format_trace_id(root.context.trace_id) == summary.trace_id
    levels = _levels(spans)
    assert sorted(levels) == sorted(layers)
    for layer, span in levels.items():
        assert span.name.startswith(f"{word} {layer}") and span.attributes[KIND] == "CHAIN"
        assert list(span.attributes["moa_lab.calls"]) == trace.calls(layer)
    calls = _calls(spans)
    assert sorted(calls) == sorted(trace.calls())
    for call in trace.records():
        span = calls[call.id]
        assert span.name == f"{call.role} {call.id}" and span.attributes["llm.model_name"] == call.model
        assert span.parent.span_id == levels[call.layer].context.span_id
    node_of = {span.context.span_id: name for name, span in calls.items()}
    links = {
        (node_of[link.context.span_id], name, link.attributes["moa_lab.position"])
        for name, span in calls.items()
        for link in span.links
        if link.attributes["moa_lab.relation"] == "read"
    }
    assert links == {(u, v, p) for u, v, p in trace.graph.edges(data="position")}
    assert summary.links == trace.graph.number_of_edges() and summary.calls == len(trace)
    for name, span in calls.items():
        assert list(span.attributes["moa_lab.references"]) == trace.references(name)


def _near(ns, seconds):
    return abs(ns - seconds * 1e9) < 1_000  # within a microsecond of the recorded time


# -- MoA: the shipped traces -----------------------------------------------------------------------
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_a_shipped_trace_keeps_its_structure_and_its_llm_attributes(path):
    trace = Trace.load(path)
    summary, spans = _spans(trace)
    _assert_structure(trace, summary, spans, root_name="MoA run", word="layer")
    root = _root(spans)
    assert root.attributes["input.value"] == trace.prompt
    assert root.attributes["output.value"] == trace.final
    assert root.attributes["session.id"] == root.attributes["moa_lab.run_id"] == trace.run_id
    assert json.loads(root.attributes["metadata"])["config"]["layers"] == trace.layers
    assert root.status.status_code is StatusCode.OK
    assert _levels(spans)[trace.layers].name == f"layer {trace.layers} (aggregator)"
    calls = _calls(spans)
    for call in trace.records():
        attributes = calls[call.id].attributes
        assert attributes["llm.system"] == "openai" and attributes["llm.response.model_name"]
        assert json.loads(attributes["llm.invocation_parameters"]) == call.params
        assert json.loads(attributes["input.value"]) == [dict(m) for m in call.messages]
        for number, message in enumerate(call.messages):
            assert attributes[f"llm.input_messages.{number}.message.role"] == message["role"]
            assert attributes[f"llm.input_messages.{number}.message.content"] == message["content"]
        assert f"llm.input_messages.{len(call.messages)}.message.role" not in attributes
        assert attributes["llm.output_messages.0.message.role"] == "assistant"
        assert attributes["llm.output_messages.0.message.content"] == call.response
        assert attributes["output.value"] == call.response
        assert attributes["llm.token_count.prompt"] == call.usage.prompt_tokens
        assert attributes["llm.token_count.completion"] == call.usage.completion_tokens
        assert attributes["llm.token_count.total"] == call.usage.total_tokens
        assert attributes["llm.cost.total"] == call.cost
        assert attributes["llm.finish_reason"] == call.finish_reason
        assert attributes["moa_lab.cache_hit"] is False and attributes["moa_lab.latency"] == call.latency
        assert attributes["moa_lab.base_url"] == "local" and "llm.provider" not in attributes
        assert calls[call.id].status.status_code is StatusCode.OK


@pytest.mark.parametrize("source", ["older", "shipped", "fresh"])
def test_spans_keep_the_times_of_the_trace(source, fake):
    # recorded by an older moa_lab (no serving times), recorded again with them, or run here
    shipped = {"older": "reasoning-apples", "shipped": "factual-capital-of-australia"}
    if source == "fresh":
        trace = _run("Why?", fake_config(fake.url))
    else:
        trace = Trace.load(ROOT / "traces" / f"{shipped[source]}.json")
    spans = _spans(trace)[1]
    calls = _calls(spans)
    for call in trace.records():
        span = calls[call.id]
        # A call's span is the endpoint's work, as Call.latency counts it (the wait before it apart).
        begun = call.served_at or call.sent_at or call.started_at
        assert _near(span.start_time, begun) and _near(span.end_time, call.ended_at)
        fresh = source != "older"  # calls sent and streamed: the first token is known
        # (an older trace knows only when moa_lab began the call: its span starts there)
        assert not fresh or abs((span.end_time - span.start_time) / 1e9 - call.latency) < 0.01
        assert span.attributes.get("moa_lab.queued") == call.queued
        assert (call.sent_at is not None) == (call.ttft is not None) == fresh
        events = {event.name: event.timestamp for event in span.events}
        assert events.keys() == ({"first token"} if fresh else set())
        assert not fresh or _near(events["first token"], begun + call.ttft)
        assert span.attributes.get("moa_lab.ttft") == call.ttft
        assert span.attributes.get("moa_lab.token_rate") == call.token_rate
    for layer, span in _levels(spans).items():
        assert _near(span.start_time, min(c.started_at for c in trace.records(layer)))
        assert _near(span.end_time, max(c.ended_at for c in trace.records(layer)))
    root = _root(spans)
    assert _near(root.start_time, trace.graph.graph["created_at"])
    assert _near(root.end_time, trace.graph.graph["finished_at"])
    assert root.attributes["moa_lab.times_recorded"] is True


def test_a_reasoning_models_thinking_and_its_tokens_are_on_its_span():
    with FakeLLM(broken={"alpha": "reasoning-field"}) as server:
        trace = _run("Why?", fake_config(server.url))
    (thinker,) = [c for c in trace.records() if c.reasoning]
    attributes = _calls(_spans(trace)[1])[thinker.id].attributes
    assert attributes["moa_lab.reasoning"] == thinker.reasoning
    assert attributes["llm.output_messages.0.message.content"] == thinker.response
    reasoning_tokens = attributes["llm.token_count.completion_details.reasoning"]
    assert reasoning_tokens == thinker.usage.reasoning_tokens == 5


def test_exporting_a_run_twice_gives_the_same_ids():
    first = _spans(Trace.load(SHIPPED[0]))[1]
    again = _spans(Trace.load(SHIPPED[0]))[1]
    other = _spans(Trace.load(SHIPPED[1]))[1]

    def ids(spans):
        return {(s.name, s.context.trace_id, s.context.span_id) for s in spans}

    assert ids(first) == ids(again)
    assert not {s.context.span_id for s in first} & {s.context.span_id for s in other}


def test_a_long_conversation_keeps_every_message():
    data = Trace.load(SHIPPED[0]).to_dict()
    node = data["nodes"][0]
    node["messages"] = [
        {"role": ("user", "assistant")[i % 2], "content": f"turn {i}"} for i in range(90)
    ]
    attributes = _calls(_spans(Trace.from_dict(data))[1])[node["id"]].attributes
    assert attributes["llm.input_messages.89.message.content"] == "turn 89"
    assert len(attributes) > 180  # past the SDK's default cap of 128 attributes per span


# -- replays, failures and secrets ------------------------------------------------------------------
@pytest.fixture
def replayed(monkeypatch):
    """A run on a loopback fake whose proposer beta fails, then a replay with a new aggregator
    prompt (L1.* are reused answers, L2.0 an edited, freshly sent call); the agents' key is KEY."""
    monkeypatch.setenv(KEY_ENV, KEY)
    with FakeLLM(broken={"beta": 500}) as server:
        models = ("alpha", "beta", "gamma", "omega")
        agents = [Agent(model=m, base_url=server.url, api_key_env=KEY_ENV) for m in models]
        config = MoAConfig(proposers=agents[:3], aggregator=agents[3], layers=2, max_retries=0)
        source = _run("Why is the sky blue?", config)
        edit = AggregatorTemplate("Be brief:\n{references}")
        return source, moa_lab.replay(source, edit, cache=False, trace_path=False, progress=False)


def test_a_replay_links_to_its_parent_and_a_failed_call_is_an_error_span(replayed):
    source, trace = replayed
    summary, spans = _spans(trace)
    _assert_structure(trace, summary, spans, root_name="MoA replay", word="layer")
    calls = _calls(spans)
    failed = calls["L1.1"]
    assert failed.status.status_code is StatusCode.ERROR and "HTTP 500" in trace["L1.1"].error
    assert failed.status.description == trace["L1.1"].error
    (event,) = [e for e in failed.events if e.name == "exception"]
    assert event.attributes["exception.message"] == trace["L1.1"].error
    assert "llm.output_messages.0.message.content" not in failed.attributes
    parent = {s.attributes["moa_lab.node"]: s.context for s in _calls(_spans(source)[1]).values()}
    for name in ("L1.0", "L1.2"):
        attributes = calls[name].attributes
        assert attributes["moa_lab.lineage"] == "reused" and attributes["moa_lab.origin"] == name
        # Nothing was sent, so nothing was spent: the usage is reported as saved.
        assert "llm.token_count.prompt" not in attributes and "llm.cost.total" not in attributes
        assert attributes["moa_lab.saved.token_count.prompt"] == trace[name].usage.prompt_tokens
    for name, span in calls.items():
        (origin,) = [link for link in span.links if link.attributes["moa_lab.relation"] == "replays"]
        assert origin.context == parent[name]  # the same call's span in the parent's trace
    aggregator = calls["L2.0"].attributes
    assert aggregator["moa_lab.lineage"] == "edited" and aggregator["llm.token_count.completion"] > 0
    root = _root(spans)
    assert root.attributes["moa_lab.parent_run_id"] == source.run_id
    assert root.attributes["session.id"] == source.run_id  # a run and its replays: one session
    assert json.loads(root.attributes["metadata"])["edits"] == trace.edits


def test_no_key_no_key_variable_and_no_url_credentials_reach_a_span(replayed):
    _, trace = replayed
    data = trace.to_dict()
    raw = "https://alice:hunter2@api.together.xyz/v1?api_key=sk-query-77#frag"
    for node in data["nodes"]:
        node["base_url"] = raw
        if node["error"]:
            node["error"] = f"HTTP 500 from {raw} for {node['model']}: boom"
    config = data["graph"]["config"]
    for agent in [*(a for layer in config["proposers"] for a in layer), config["aggregator"]]:
        agent["base_url"] = raw
    spans = _spans(Trace.from_dict(data))[1]
    dumped = "\n".join(span.to_json() for span in spans)
    for secret in (KEY, KEY_ENV, "hunter2", "alice", "sk-query-77", "frag"):
        assert secret not in dumped
    calls = _calls(spans)
    assert {s.attributes["moa_lab.base_url"] for s in calls.values()} == {"https://api.together.xyz/v1"}
    assert {s.attributes["llm.provider"] for s in calls.values()} == {"together"}
    assert calls["L1.1"].status.description == "HTTP 500 from https://api.together.xyz/v1 for beta: boom"
    config = json.loads(_root(spans).attributes["metadata"])["config"]
    assert config["aggregator"]["base_url"] == "https://api.together.xyz/v1"


# -- the other strategies ---------------------------------------------------------------------------
def test_a_debate_is_rounds_of_debaters_and_its_decision(fake):
    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b", "c")]
    trace = _run("Why is the sky blue?", DebateConfig(agents=agents, rounds=2, decide="aggregate"))
    summary, spans = _spans(trace)
    _assert_structure(trace, summary, spans, root_name="debate run", word="round")
    assert [s.name for s in sorted(_levels(spans).values(), key=lambda s: s.start_time)] == [
        "round 1",
        "round 2",
        "round 3 (aggregator)",
    ]
    assert _calls(spans)["D2.0"].name == "debater D2.0"
    decision = json.loads(_root(spans).attributes["metadata"])["decision"]
    assert decision == trace.graph.graph["decision"] and decision["chosen"] == "A3.0"


@pytest.fixture(scope="module")
def oracle():
    with ChatServer(game24_oracle) as server:
        yield server


def test_a_search_is_steps_whose_calls_carry_the_states_and_their_values(oracle):
    trace = _run("1 1 4 6", ToTConfig(agent=Agent(model="oracle", base_url=oracle.url)))
    summary, spans = _spans(trace)
    _assert_structure(trace, summary, spans, root_name="Tree of Thoughts run", word="step")
    calls = _calls(spans)
    for call in trace.records():
        assert json.loads(calls[call.id].attributes["metadata"]) == call.annotations
    values = {
        json.loads(calls[c.id].attributes["metadata"])["value"]
        for c in trace.records()
        if c.role == "evaluator"
    }
    assert 60.0 in values  # three samples of "sure" (20 each): a state that reaches 24
    root = _root(spans)
    assert list(root.attributes["moa_lab.outputs"]) == trace.graph.graph["outputs"]
    assert root.attributes["output.value"] == trace.final


async def best_of_two(run):
    """Ask the first member twice; the second improves the shorter answer."""
    first, second = run.config.members
    drafts = [
        await run.call(first, role="proposer", layer=1, index=k, messages=run.messages, id=f"P1.{k}")
        for k in range(2)
    ]
    shortest = min(drafts, key=lambda c: len(c.response or ""))
    messages = [*run.messages, {"role": "user", "content": f"Improve: {shortest.response}"}]
    judge = await run.call(
        second, role="aggregator", layer=2, index=0, references=[shortest.id], messages=messages
    )
    return judge.response


def test_a_strategy_of_ones_own_is_named_by_its_config(fake):
    members = [Agent(model=m, base_url=fake.url) for m in ("a", "b")]
    config = StrategyConfig(name="best-of-two", members=members, depth=2)
    trace = _run("Why is the sky blue?", config, strategy=best_of_two)
    summary, spans = _spans(trace)
    _assert_structure(trace, summary, spans, root_name="best-of-two run", word="depth")


def _tot_log(tmp_path) -> Path:
    """A two-step ToT propose/value log in the paper's run.py format: two kept states, then one."""
    first = ["4 + 5 = 9 (left: 6 9 10)\n", "10 - 6 = 4 (left: 4 4 5)\n"]
    second = [first[0] + "6 + 9 = 15 (left: 10 15)\n", first[1] + "4 * 5 = 20 (left: 4 20)\n"]
    steps = [
        {"step": 0, "x": "4 5 6 10", "ys": [""], "new_ys": first, "values": [3.0, 1.0],
         "select_new_ys": first},
        {"step": 1, "x": "4 5 6 10", "ys": first, "new_ys": second, "values": [0.001, 20.0],
         "select_new_ys": second[1:]},
    ]  # fmt: skip
    entry = {"steps": steps, "idx": 3, "ys": second[1:], "infos": [{"r": 0}],
             "usage_so_far": {"completion_tokens": 10, "prompt_tokens": 20, "cost": 0.1}}  # fmt: skip
    path = tmp_path / "gpt-4_0.7_propose1_value3_greedy2_start3_end4.json"
    path.write_text(json.dumps([entry]))
    return path


def _assert_imported(trace, summary, spans):
    """An imported search: structure intact, and no times but the import's own, as instants."""
    _assert_structure(trace, summary, spans, root_name="Tree of Thoughts run", word="step")
    root = _root(spans)
    assert root.attributes["moa_lab.times_recorded"] is False
    assert json.loads(root.attributes["metadata"])["imported"] == trace.graph.graph["imported"]
    calls = _calls(spans)
    starts = [calls[c.id].start_time for c in trace.records()]
    assert starts == sorted(starts)  # the log's order
    for call in trace.records():
        span = calls[call.id]
        assert span.end_time == span.start_time and _near(span.start_time, call.started_at)
        assert "llm.token_count.prompt" not in span.attributes  # the log counts a search, not a call
        assert json.loads(span.attributes["metadata"]) == call.annotations


def test_an_imported_search_keeps_its_structure_and_says_it_has_no_times(tmp_path):
    (trace,) = tot_traces(_tot_log(tmp_path))
    summary, spans = _spans(trace)
    _assert_imported(trace, summary, spans)
    assert summary.calls == 3 and summary.links == 2


def test_every_imported_search_of_the_papers_log_exports():
    log = ROOT.parent / "shared" / "data" / "tot-game24"
    log = Path(os.environ.get("MOA_LAB_TOT_GAME24_DATA") or log)
    path = log / "gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"
    if not path.is_file():
        pytest.skip(f"the ToT paper's Game of 24 logs are not at {log}")
    for trace in tot_traces(path):
        _assert_imported(trace, *_spans(trace))


# -- destinations and the command line --------------------------------------------------------------
def _unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "destinations",
    [{"endpoint": "http://127.0.0.1:6006/v1/traces", "out": "x.jsonl"}, {"endpoint": "ftp://h/"}],
)
def test_a_bad_destination_is_one_line_before_anything_is_sent(destinations, tmp_path):
    with pytest.raises(ConfigError) as caught:
        Trace.load(SHIPPED[0]).to_otel(**destinations)
    assert "\n" not in str(caught.value) and not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize(
    ("variable", "value", "tried"),
    [
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:{port}/otlp", "/otlp"),
        ("PHOENIX_COLLECTOR_ENDPOINT", "http://127.0.0.1:{port}/", "/v1/traces"),
        (None, "http://pat:hunter2@127.0.0.1:{port}/v1/traces?key=sk-9", "/v1/traces"),
    ],
)
def test_an_endpoint_nobody_listens_on_is_one_clear_line(monkeypatch, variable, value, tried):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused
        url = value.format(port=probe.getsockname()[1])
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
        monkeypatch.delenv("PHOENIX_COLLECTOR_ENDPOINT", raising=False)
        if variable:
            monkeypatch.setenv(variable, url)
        with pytest.raises(MoaLabError, match=r"0 of \d+ accepted.*receiver") as caught:
            Trace.load(SHIPPED[0]).to_otel(endpoint=None if variable else url, timeout=1)
        port = probe.getsockname()[1]
    message = str(caught.value)
    assert f"127.0.0.1:{port}{tried} (" in message and "\n" not in message
    assert "hunter2" not in message and "sk-9" not in message


def test_without_the_extra_the_error_gives_the_pip_command(monkeypatch, cli_fails):
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if it were not installed
    for name in ("_spans", "_exporters"):
        monkeypatch.delitem(sys.modules, f"moa_lab._otel.{name}", raising=False)
        monkeypatch.delattr(sys.modules["moa_lab._otel"], name, raising=False)
    with pytest.raises(MoaLabError) as caught:
        Trace.load(SHIPPED[0]).to_otel(out=os.devnull)
    message = str(caught.value)
    assert f"{sys.executable} -m pip install -e " in message and "[otel]" in message
    assert "\n" not in message
    cli_fails(r"pip install -e .*\[otel\]", ["export", str(SHIPPED[0]), "--out", os.devnull])


def test_importing_moa_lab_and_its_export_type_loads_no_opentelemetry():
    code = (
        "import sys, moa_lab\n"
        "moa_lab.OtelExport, moa_lab.Trace.to_otel\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry', 'openinference'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_cli_writes_the_spans_of_several_traces_and_of_a_failed_run(tmp_path, capsys):
    failed = tmp_path / "failed.json"
    with FakeLLM(broken={"omega": 503}) as server:
        with pytest.raises(RunError):
            _run("Why?", fake_config(server.url, max_retries=0), trace_path=failed)
    out = tmp_path / "spans.jsonl"
    assert (
        main(["export", str(SHIPPED[0]), str(failed), "--format", "openinference", "--out", str(out)])
        == 0
    )
    printed = capsys.readouterr()
    rows = [line.split() for line in printed.out.splitlines()]
    assert [row[-1] for row in rows] == [str(SHIPPED[0]), str(failed)]
    assert printed.err == f"exported 2 traces to {out}\n"
    lines = [json.loads(line) for line in out.read_text("utf-8").splitlines()]
    assert len(lines) == int(rows[0][1]) + int(rows[1][1]) == 7 + (4 + 2 + 1)
    mine = [line for line in lines if line["context"]["trace_id"] == "0x" + rows[1][0]]
    (root,) = [line for line in mine if line["parent_id"] is None]
    assert root["name"] == "MoA run" and root["status"]["status_code"] == "ERROR"
    assert root["status"]["description"].startswith("the run failed: HTTP 503 from ")
    assert "output.value" not in root["attributes"]
    models = {line["attributes"].get("llm.model_name") for line in mine} - {None}
    assert models == {"alpha", "beta", "gamma", "omega"}


def test_the_cli_refuses_two_destinations_and_names_a_missing_trace(tmp_path, capsys, cli_fails):
    with pytest.raises(SystemExit):
        main(["export", str(SHIPPED[0]), "--endpoint", "http://127.0.0.1:9/v1/traces", "--out", "x"])
    assert "not allowed with argument" in capsys.readouterr().err
    cli_fails("missing.json", ["export", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # nothing is written before every trace has loaded


# -- a real Phoenix server -------------------------------------------------------------------------
def _phoenix_python() -> str:
    """A Python with arize-phoenix: ``$MOA_LAB_PHOENIX_PYTHON``, else ``.venv-phoenix`` (a venv of its
    own keeps Phoenix's ~140 dependencies out of the project's; .ci/run makes it), else this one."""
    named = os.environ.get("MOA_LAB_PHOENIX_PYTHON")
    if named:
        return named
    venv = ROOT / ".venv-phoenix" / "bin" / "python"
    if venv.is_file():
        return str(venv)
    if importlib.util.find_spec("phoenix") is not None:  # finding it is cheap, importing it is not
        return sys.executable
    pytest.skip(
        "no Arize Phoenix: make .venv-phoenix as .ci/run does (python3 -m venv .venv-phoenix && "
        ".venv-phoenix/bin/pip install arize-phoenix==20.26.1) or set MOA_LAB_PHOENIX_PYTHON"
    )


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read() or b"null")


@pytest.fixture
def phoenix(tmp_path):
    """Arize Phoenix on loopback ports, its database in tmp_path; yields its base URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PHOENIX_", "OTEL_"))}
    env |= {
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port := _unused_port()),
        "PHOENIX_GRPC_PORT": str(_unused_port()),
        "PHOENIX_WORKING_DIR": str(tmp_path / "phoenix"),
        # Loopback only: no telemetry, web fonts or other requests of its own to the internet.
        "PHOENIX_TELEMETRY_ENABLED": "false",
        "PHOENIX_ALLOW_EXTERNAL_RESOURCES": "false",
    }
    log_path = tmp_path / "phoenix.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [_phoenix_python(), "-m", "phoenix.server.main", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            if server.poll() is not None:
                pytest.fail(f"Phoenix exited ({server.returncode}): {log_path.read_text()[-2000:]}")
            try:
                _get(url + "/readyz")
                break
            except OSError:
                if time.monotonic() > started + 240:
                    pytest.fail(f"Phoenix not ready in 240 s: {log_path.read_text()[-2000:]}")
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


def _stored(url: str, trace_id: str, count: int) -> list[dict]:
    """The trace's spans as Phoenix's REST API returns them, once it has stored ``count``."""
    query = f"{url}/v1/projects/moa-lab-test/spans?limit=1000&trace_id={trace_id}"
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


def _assert_in_phoenix(url: str, trace: Trace, root_name: str) -> list[dict]:
    """Send the trace; Phoenix gives back every span, each under its parent, with the models, the
    token counts of the calls sent and the failures."""
    summary = trace.to_otel(endpoint=url + "/v1/traces", project="moa-lab-test")
    spans = _stored(url, summary.trace_id, summary.spans)
    assert len(spans) == summary.spans == len(trace) + len({c.layer for c in trace.records()}) + 1
    by_id = {span["context"]["span_id"]: span for span in spans}
    (root,) = [span for span in spans if span["parent_id"] is None]
    assert root["name"] == root_name and root["span_kind"] == "CHAIN"
    assert root["attributes"]["input.value"] == trace.prompt
    calls = {s["attributes"]["moa_lab.node"]: s for s in spans if s["span_kind"] == "LLM"}
    assert sorted(calls) == sorted(trace.calls())
    for call in trace.records():
        span = calls[call.id]
        level = by_id[span["parent_id"]]
        assert level["attributes"]["moa_lab.layer"] == call.layer and level["span_kind"] == "CHAIN"
        assert level["parent_id"] == root["context"]["span_id"]
        attributes = span["attributes"]
        assert span["name"] == f"{call.role} {call.id}" and attributes["llm.model_name"] == call.model
        assert span["status_code"] == ("ERROR" if call.error else "OK")
        if call.usage and not call.cache_hit:
            assert attributes["llm.token_count.prompt"] == call.usage.prompt_tokens
            assert attributes["llm.token_count.completion"] == call.usage.completion_tokens
        if call.response is not None:
            assert attributes["llm.output_messages.0.message.content"] == call.response
    return spans


@pytest.mark.slow
def test_phoenix_receives_every_kind_of_trace_and_returns_its_spans(
    phoenix, fake, oracle, replayed, tmp_path
):
    shipped = Trace.load(ROOT / "traces" / "open-ended-learning-a-language.json")
    first = _assert_in_phoenix(phoenix, shipped, "MoA run")
    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b", "c")]
    debate = _run("Why is the sky blue?", DebateConfig(agents=agents, rounds=2, decide="aggregate"))
    _assert_in_phoenix(phoenix, debate, "debate run")
    search = _run("4 5 6 10", ToTConfig(agent=Agent(model="oracle", base_url=oracle.url)))
    _assert_in_phoenix(phoenix, search, "Tree of Thoughts run")
    (imported,) = tot_traces(_tot_log(tmp_path))
    _assert_in_phoenix(phoenix, imported, "Tree of Thoughts run")
    source, replay = replayed
    _assert_in_phoenix(phoenix, source, "MoA run")
    _assert_in_phoenix(phoenix, replay, "MoA replay")
    # Exporting a run again keeps one copy: its ids repeat.
    again = shipped.to_otel(endpoint=phoenix + "/v1/traces", project="moa-lab-test")
    stored = _get(f"{phoenix}/v1/projects/moa-lab-test/spans?limit=1000&trace_id={again.trace_id}")
    assert sorted(s["context"]["span_id"] for s in stored["data"]) == sorted(
        s["context"]["span_id"] for s in first
    )
