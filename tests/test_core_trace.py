"""The trace: what a finished run records, how a file that is off fails, paths, totals and views.

One 3-layer run on one FakeLLM serves the whole file; tests that change a trace change a copy.
"""

from __future__ import annotations

import copy
import json
from datetime import datetime

import pytest
from core_support import reset, run

from moa_lab import Call, CallCache, ConfigError, Totals, Trace, TraceError, Usage
from moa_lab._engine import new_graph
from moa_lab._trace import default_trace_path, set_html_renderer
from moa_lab._trace import trace as trace_module
from moa_lab.testing import FakeLLM, fake_config


@pytest.fixture(scope="module")
def server():
    with FakeLLM() as started:
        yield started


@pytest.fixture
def fake(server):
    return reset(server)


@pytest.fixture(scope="module")
def trace(server):
    return run(fake_config(server.url, layers=3))


@pytest.fixture
def data(trace):
    """The node-link data of the module's trace, to spoil."""
    return copy.deepcopy(trace.to_dict())


def _node(data, node_id):
    return next(n for n in data["nodes"] if n["id"] == node_id)


def _fails(data, message):
    with pytest.raises(TraceError) as caught:
        Trace.from_dict(data)
    assert str(caught.value) == message
    return caught.value


# -- reading a finished run ---------------------------------------------------------------------
def test_a_trace_reads_back_what_the_run_was(trace):
    assert trace.prompt == "Why is the sky blue?"
    assert trace.messages == [{"role": "user", "content": "Why is the sky blue?"}]
    assert trace.status == "complete" and trace.sample == 0 and trace.layers == 3
    assert trace.node_messages == {} and trace.edits == [] and trace.parent_run_id is None
    assert trace.final == trace["L3.0"].response and trace.aggregator() == "L3.0"
    assert list(trace) == trace.calls() == [f"L{a}.{b}" for a in (1, 2) for b in range(3)] + ["L3.0"]
    assert trace.calls(2) == ["L2.0", "L2.1", "L2.2"] and trace.calls(3) == ["L3.0"]
    assert [c.id for c in trace.records(1)] == ["L1.0", "L1.1", "L1.2"]
    assert len(trace) == 7 and "L2.1" in trace and "L4.0" not in trace
    assert trace.references("L1.0") == []


def test_a_missing_call_names_the_calls_there_are(trace):
    with pytest.raises(TraceError) as caught:
        trace.call("L9.9")
    assert str(caught.value) == (
        "no call 'L9.9' in this trace; its calls are L1.0, L1.1, L1.2, L2.0, L2.1, L2.2, L3.0"
    )
    big = Trace(new_graph([{"role": "user", "content": "q"}], {"layers": 2}))
    for index in range(8):
        big.add_call(_call(f"L1.{index}", index=index))
    with pytest.raises(TraceError, match=r"its calls are L1.0, L1.1, .*, L1.7$"):
        big["L2.0"]
    big.add_call(_call("L1.8", index=8))
    with pytest.raises(TraceError, match=r"its calls are L1.0, L1.1, .*, L1.7, …$"):
        big["L2.0"]


def _call(node_id, *, layer=1, index=0, **fields):
    values = {
        "id": node_id,
        "role": "proposer",
        "layer": layer,
        "index": index,
        "model": "m",
        "base_url": "http://x/v1",
        "params": {},
        "messages": ({"role": "user", "content": "q"},),
        "started_at": 1.0,
    }
    return Call(**(values | fields))


def test_calls_are_in_run_order_by_number_not_by_name():
    graph = new_graph([{"role": "user", "content": "q"}], {"layers": 3})
    trace = Trace(graph)
    for layer, index in [(2, 0), (1, 10), (1, 2), (3, 0), (1, 0)]:
        trace.add_call(_call(f"L{layer}.{index}", layer=layer, index=index))
    assert trace.calls() == ["L1.0", "L1.2", "L1.10", "L2.0", "L3.0"]
    trace.add_call(_call("L1.1", index=1))  # a call added later takes its place in the order
    assert trace.calls(1) == ["L1.0", "L1.1", "L1.2", "L1.10"]
    assert trace.aggregator() is None
    trace.add_call(_call("L2.1", layer=2, index=1), references=["L1.10", "L1.0", "L1.2"])
    assert trace.references("L2.1") == ["L1.10", "L1.0", "L1.2"]
    assert trace.update_call("L2.1", picked="L1.0").picked == "L1.0" == trace["L2.1"].picked


def test_older_files_without_messages_status_or_sample_read_as_defaults(data):
    for name in ("messages", "status", "sample"):
        del data["graph"][name]
    old = Trace.from_dict(data)
    assert old.messages == [{"role": "user", "content": "Why is the sky blue?"}]
    assert old.status == "running" and old.sample == 0


def test_to_pandas_is_one_row_per_call_with_every_field(trace):
    frame = trace.to_pandas()
    settings = ["temperature", "seed", "max_tokens"]
    assert list(frame.columns) == [
        "node", "role", "layer", "index", "model", "base_url", *settings, "prompt_tokens",
        "completion_tokens", "latency", "queued", "cost", "cache_hit", "reused", "finish_reason",
        "truncated", "error", "references", "response", "started_at", "ended_at",
    ]  # fmt: skip
    for row, call in zip(frame.to_dict("records"), trace.records(), strict=True):
        fields = {name: getattr(call, name) for name in frame.columns if hasattr(call, name)}
        fields |= {name: call.params.get(name) for name in settings}
        assert row == fields | {"node": call.id, "references": trace.references(call.id)}
    assert list(frame["temperature"]) == [0.7] * 7 and list(frame["max_tokens"]) == [512] * 7


def test_repr_and_notebook_display(trace):
    text = repr(trace)
    final = trace.final[:59] + "…"
    assert text == (
        f"<Trace {trace.run_id} complete: 3 layers, 7 calls, 0 cached, 0 errors; final={final!r}>"
    )
    before = trace_module._html_renderer
    try:
        set_html_renderer(lambda shown: f"<b>{shown.run_id}</b>")
        assert trace._repr_html_() == f"<b>{trace.run_id}</b>"
        set_html_renderer(None)
        assert trace._repr_html_() is None
    finally:
        set_html_renderer(before)


# -- totals -------------------------------------------------------------------------------------
def test_totals_keep_sent_apart_from_cached_and_reused():
    sent = _call("L1.0", usage=Usage(10, 5, 15), cost=0.5, response="a", latency=1.0, ended_at=4.0)
    cached = _call(
        "L1.1", index=1, usage=Usage(7, 3, 10), cost=0.25, response="b", cache_hit=True, ended_at=2.0
    )
    reused = _call(
        "L1.2", index=2, usage=Usage(1, 1, 2), cost=1.0, response="c", cache_hit=True,
        lineage="reused", latency=0.5, started_at=0.5,
    )  # fmt: skip
    failed = _call("L1.3", index=3, error="HTTP 500", ended_at=3.0)
    totals = Totals.of([sent, cached, reused, failed])
    assert totals.to_dict() == {
        "calls": 4,
        "sent": 2,
        "cache_hits": 1,
        "reused": 1,
        "errors": 1,
        "prompt_tokens": 18,
        "completion_tokens": 9,
        "sent_prompt_tokens": 10,
        "sent_completion_tokens": 5,
        "cost": 1.75,
        "spent": 0.5,
        "wall_time": 3.5,
        "latency": 1.5,
        "saved": 1.25,
        "tokens": 27,
        "sent_tokens": 15,
    }
    assert type(totals.prompt_tokens) is int


def test_an_unknown_count_or_price_makes_its_sum_unknown_not_zero():
    known = _call("L1.0", usage=Usage(10, 5, 15), cost=0.5, response="a")
    no_usage = _call("L1.1", index=1, response="b", cost=None)
    half = _call("L1.2", index=2, usage=Usage(3, None, None), cost=0.1, response="c")
    totals = Totals.of([known, no_usage])
    assert (totals.prompt_tokens, totals.tokens, totals.cost, totals.spent, totals.saved) == (
        None, None, None, None, None,
    )  # fmt: skip
    partial = Totals.of([known, half])
    assert partial.prompt_tokens == 13 and partial.completion_tokens is None
    assert partial.tokens is None and partial.sent_tokens is None
    # A failed call without usage counts for nothing; one that was never answered has no times.
    failed = _call("L1.3", index=3, error="boom")
    assert Totals.of([known, failed]).prompt_tokens == 10
    assert Totals.of([failed]).wall_time == 0.0 and Totals.of([failed]).latency == 0.0


# -- files that are off -------------------------------------------------------------------------
MESSAGES = "a list of {role: string, content: string}"


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("role", 5, "a string, not 5"),
        ("layer", True, "a whole number >= 0, not True"),
        ("layer", -1, "a whole number >= 0, not -1"),
        ("index", 1.5, "a whole number >= 0, not 1.5"),
        ("started_at", -1, "a number of seconds >= 0, not -1"),
        ("started_at", "now", "a number of seconds >= 0, not 'now'"),
        ("started_at", float("nan"), "a number of seconds >= 0, not nan"),
        ("api_key_env", 3, "a string or null, not 3"),
        ("cost", "1", "a number of dollars >= 0 or null, not '1'"),
        ("cost", True, "a number of dollars >= 0 or null, not True"),
        ("cost", -0.01, "a number of dollars >= 0 or null, not -0.01"),
        ("latency", -0.5, "a number of seconds >= 0 or null, not -0.5"),
        ("cache_hit", "yes", "true or false, not 'yes'"),
        ("cache_hit", 1, "true or false, not 1"),
        ("attempts", -1, "a whole number >= 0, not -1"),
        ("params", [], "an object, not []"),
        ("messages", "hi", "a list of chat messages, not 'hi'"),
        ("messages", ["hi"], f"{MESSAGES}, not 'hi'"),
        ("messages", [{"role": "user"}], f"{MESSAGES}, not {{'role': 'user'}}"),
        ("messages", [{"role": 1, "content": "x"}], f"{MESSAGES}, not {{'role': 1, 'content': 'x'}}"),
        ("usage", "lots", "an object of token counts or null, not 'lots'"),
        ("retried_errors", "x", "a list of strings, not 'x'"),
        ("retried_errors", [1], "a list of strings, not [1]"),
        ("retry_waits", "x", "a list of seconds, not 'x'"),
        ("retry_waits", [-1], "a list of seconds, not [-1]"),
        ("timings", {"prompt_ms": "1"}, "an object of numbers or null, not {'prompt_ms': '1'}"),
        ("annotations", 5, "an object or null, not 5"),
        ("role", ["a" * 50], "a string, not ['" + "a" * 37 + "…"),  # cut to 40 characters
        ("role", ["a" * 36], "a string, not ['" + "a" * 36 + "']"),  # 40 characters: kept whole
        ("role", ["a" * 37], "a string, not ['" + "a" * 37 + "…"),  # 41: cut
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_type_is_one_line_naming_it(data, field, value, expected):
    _node(data, "L1.0")[field] = value
    _fails(data, f"trace: node L1.0: field {field!r} must be {expected}")


def test_values_at_the_limits_load(data):
    node = _node(data, "L1.0")
    node |= {"cost": 1, "latency": 0, "started_at": 0, "attempts": 0, "role": "r" * 40}
    node["usage"] = {"prompt_tokens": 0, "completion_tokens": None}
    node["messages"] = [{"role": "user", "content": "q", "name": "me"}]
    del node["retried_errors"]
    call = Trace.from_dict(data)["L1.0"]
    assert call.cost == 1.0 and type(call.cost) is float and type(call.started_at) is float
    assert call.usage == Usage(0, None, None) and call.retried_errors == ()
    assert call.messages == ({"role": "user", "content": "q", "name": "me"},)


def test_the_first_layer_is_one(data):
    _node(data, "L1.0")["layer"] = 0
    _fails(data, "trace: node L1.0: field 'layer' must be a whole number >= 1, not 0")


def test_a_usage_count_of_the_wrong_type_is_named(data):
    _node(data, "L2.1")["usage"] = {"prompt_tokens": -1}
    expected = "field 'usage.prompt_tokens' must be a whole number >= 0 or null, not -1"
    _fails(data, f"trace: node L2.1: {expected}")


POSITION = "trace: edge L1.0 -> L2.0: field 'position' must be a whole number >= 1, not"
NO_ID = "trace: a node: field 'id' must be a non-empty string, not"
NOT_IN = "trace: an edge names a node that is not in the trace"
LISTS = "trace: the trace needs 'nodes' and 'edges' lists"


@pytest.mark.parametrize(
    ("spoil", "message"),
    [
        (lambda d: d["nodes"].append("x"), "trace: a node is not an object"),
        (lambda d: d["nodes"].append({"id": ""}), f"{NO_ID} ''"),
        (lambda d: d["nodes"].append({"id": 3}), f"{NO_ID} 3"),
        (lambda d: d["nodes"].append(d["nodes"][0]), "trace: node L1.0 appears twice"),
        (lambda d: d["graph"].pop("final"), "trace: the trace lacks graph fields ['final']"),
        (lambda d: d["graph"].pop("run_id"), "trace: the trace lacks graph fields ['run_id']"),
        (lambda d: d.update(nodes={}), LISTS),
        (lambda d: d.update(edges=None), LISTS),
        (lambda d: d["edges"].append("L1.0"), NOT_IN),
        (lambda d: d["edges"].append({"source": "L1.0", "target": 7}), NOT_IN),
        (lambda d: d["edges"][0].update(position=0), f"{POSITION} 0"),
        (lambda d: d["edges"][0].update(position=True), f"{POSITION} True"),
        (lambda d: d["edges"][0].update(position="1"), f"{POSITION} '1'"),
        (
            lambda d: d["graph"].update(schema_version="1"),
            "trace: trace schema version '1' is not supported (this moa_lab reads version 1); "
            "upgrade moa_lab",
        ),
        (lambda d: d.update(graph=[]), "trace: not a moa_lab trace (no graph attributes)"),
        (
            lambda d: d["graph"].update(schema="other/v9"),
            "trace: not a moa_lab trace (schema is 'other/v9')",
        ),
        (
            lambda d: d["graph"].update(final=5),
            "trace: the run: field 'final' must be a string or null, not 5",
        ),
        (
            lambda d: d["graph"]["config"].update(layers=0),
            "trace: the run: field 'config.layers' must be a whole number from 1 to 10000, not 0",
        ),
    ],
)
def test_a_malformed_trace_is_one_line(data, spoil, message):
    spoil(data)
    _fails(data, message)


def test_a_node_lacking_fields_names_them_in_order(data):
    node = _node(data, "L2.2")
    del node["cache_hit"], node["role"]
    _fails(data, "trace: node L2.2 lacks fields ['role', 'cache_hit']")


def test_a_file_that_is_not_a_trace_names_the_file(tmp_path):
    missing = tmp_path / "none.json"
    with pytest.raises(TraceError, match=f"^{missing}: no such trace file$"):
        Trace.load(missing)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TraceError, match=f"^{binary}: not a JSON trace"):
        Trace.load(binary)
    spoiled = tmp_path / "spoiled.json"
    spoiled.write_text('{"graph": {"schema": "moa_lab.trace", "schema_version": 1}}')
    with pytest.raises(TraceError, match=f"^{spoiled}: the trace lacks graph fields"):
        Trace.load(spoiled)


# -- files ----------------------------------------------------------------------------------------
def test_a_saved_trace_is_node_link_json_in_run_order(trace, tmp_path):
    path = trace.save(tmp_path / "deep" / "er" / "t.json")
    assert trace.path == path and [p.name for p in path.parent.iterdir()] == ["t.json"]
    written = json.loads(path.read_text("utf-8"))
    assert written["directed"] is True and written["multigraph"] is False
    assert [n["id"] for n in written["nodes"]] == trace.calls()
    assert written["edges"][:3] == [
        {"position": 1, "source": "L1.0", "target": "L2.0"},
        {"position": 2, "source": "L1.1", "target": "L2.0"},
        {"position": 3, "source": "L1.2", "target": "L2.0"},
    ]
    assert len(written["edges"]) == 9 + 3
    assert "origin" not in written["nodes"][0] and "picked" not in written["nodes"][0]
    assert written["nodes"][0]["retried_errors"] == [] and written["nodes"][0]["usage"]["total_tokens"]
    assert path.read_text("utf-8").startswith('{\n "directed": true')
    again = Trace.load(path)
    assert again.path == path and again.to_dict() == written


def test_a_trace_saves_under_the_trace_folder_by_default(trace, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "mine"))
    copy_ = Trace(trace.graph)
    path = copy_.save()
    assert path.parent == tmp_path / "mine"
    assert path.name.endswith(f"-why-is-the-sky-blue-{trace.run_id}.json")
    assert Trace(trace.graph, path=tmp_path / "kept.json").save() == tmp_path / "kept.json"


def test_a_journal_line_holds_the_call_and_its_edges_and_unicode_stays_text(trace, tmp_path):
    path = tmp_path / "live.json"
    trace.start_journal(path)
    trace.journal("L2.0")
    header, line = path.read_text("utf-8").splitlines()
    assert json.loads(header)["journal"] == "moa_lab.trace"
    entry = json.loads(line)
    assert entry["node"]["id"] == "L2.0"
    assert sorted(e["position"] for e in entry["edges"]) == [1, 2, 3]
    assert {e["target"] for e in entry["edges"]} == {"L2.0"}
    unicode_trace = run(fake_config(trace["L1.0"].base_url), prompt="Ça va ? 😀")
    unicode_trace.start_journal(path)
    unicode_trace.journal("L1.0")
    header, line = path.read_text("utf-8").splitlines()
    assert "Ça va ? 😀" in header and "Ça va ? 😀" in line
    unicode_trace.save(path)
    assert "Ça va ? 😀" in path.read_text("utf-8")


def test_a_journal_torn_in_the_middle_is_not_a_trace(trace, tmp_path):
    path = tmp_path / "torn.json"
    trace.start_journal(path)
    with open(path, "a", encoding="utf-8") as journal:
        journal.write('{"node": {"id": "L1.0"\n')
    trace.journal("L1.1")
    with pytest.raises(TraceError, match="not a JSON trace"):
        Trace.load(path)


def test_default_trace_paths(monkeypatch, tmp_path):
    when = datetime(2024, 3, 5, 14, 7, 9).timestamp()
    monkeypatch.delenv("MOA_LAB_TRACE_DIR")
    path = default_trace_path("Why is the sky blue?!", "a1b2c3", when=when)
    assert str(path) == "traces/20240305-140709-why-is-the-sky-blue-a1b2c3.json"
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path))
    assert (
        default_trace_path("¿¿Qué?? 2+2", "r", when=when) == tmp_path / "20240305-140709-qué-2-2-r.json"
    )
    assert default_trace_path("!!!", "r", when=when).name == "20240305-140709-run-r.json"
    long = default_trace_path("x" * 36 + " yes and more words", "r", when=when)
    assert long.name == "20240305-140709-" + "x" * 36 + "-yes-r.json"
    cut = default_trace_path("x" * 39 + " yes", "r", when=when)
    assert cut.name == "20240305-140709-" + "x" * 39 + "-r.json"  # no dash left dangling
    assert default_trace_path("y" * 60, "r", when=when).name == "20240305-140709-" + "y" * 40 + "-r.json"
    replayed = default_trace_path("Why?", "r", kind="replay", when=when)
    assert replayed.name == "20240305-140709-why-replay-r.json"
    assert default_trace_path("now", "r").name.startswith(datetime.now().strftime("%Y%m%d-"))


# -- the call cache's folder ------------------------------------------------------------------------
def test_the_cache_lives_where_the_environment_says(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_CACHE_DIR", str(tmp_path / "here"))
    run(fake_config(fake.url, layers=1, proposers=()), cache=True)
    cache = CallCache()
    assert cache.directory == tmp_path / "here" and len(cache) == 1
    assert repr(cache) == f"CallCache({str(tmp_path / 'here')!r}, entries=1)"
    cache.close()


def test_without_the_variable_the_cache_is_the_users_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("MOA_LAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = CallCache()
    assert cache.directory == tmp_path / "xdg" / "moa_lab" / "calls"
    cache.close()


def test_records_validated_on_their_own_name_what_they_are():
    with pytest.raises(TraceError) as caught:
        Usage.from_dict("lots")
    assert (
        str(caught.value) == "usage: field 'usage' must be an object of token counts or null, not 'lots'"
    )
    with pytest.raises(TraceError) as caught:
        Call.from_dict({"id": ""})
    assert str(caught.value) == "trace: a node: field 'id' must be a non-empty string, not ''"


def test_a_long_node_id_is_cut_in_messages(data):
    node = _node(data, "L1.0")
    node["id"] = "L1." + "0" * 60
    node["cost"] = "free"
    expected = "field 'cost' must be a number of dollars >= 0 or null, not 'free'"
    _fails(data, f"trace: node {node['id'][:40]}: {expected}")


def test_only_old_one_call_configs_are_upgraded(data):
    config = data["graph"]["config"]
    judge = copy.deepcopy(data)
    judge["graph"]["config"] = config | {"kind": "judge"}  # already in today's shape: kept
    assert Trace.from_dict(judge).config == config | {"kind": "judge"}
    odd = copy.deepcopy(data)
    del odd["graph"]["config"]["proposers"]  # not a one-call config: left as it is
    assert "proposers" not in Trace.from_dict(odd).config
    old = copy.deepcopy(data)  # one call, as moa_lab 0.1 wrote a single model's run
    old["graph"]["config"] = {"kind": "single", "agent": config["aggregator"]}
    old["nodes"], old["edges"] = [_node(data, "L1.0")], []
    assert Trace.from_dict(old).config == {
        "layers": 1,
        "proposers": [],
        "aggregator": config["aggregator"],
    }


def test_a_bad_node_in_a_file_names_the_file(data, tmp_path):
    _node(data, "L1.1")["cache_hit"] = "no"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError) as caught:
        Trace.load(path)
    assert str(caught.value) == f"{path}: node L1.1: field 'cache_hit' must be true or false, not 'no'"


@pytest.mark.parametrize(
    ("final", "shown"),
    [
        (None, ""),
        ("two\nlines ", "two lines"),
        ("x" * 60, "x" * 60),
        ("x" * 61, "x" * 59 + "…"),
    ],
)
def test_repr_shows_the_final_answer_on_one_short_line(final, shown):
    trace = Trace(new_graph([{"role": "user", "content": "q"}], {"layers": 2}))
    trace.graph.graph["final"] = final
    assert repr(trace).endswith(f"running: 2 layers, 0 calls, 0 cached, 0 errors; final={shown!r}>")


def test_a_trace_folder_is_made_however_deep_it_is(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "a" / "b" / "c"))
    saved = run(fake_config(fake.url), trace_path=True)
    assert saved.path.parent == tmp_path / "a" / "b" / "c" and Trace.load(saved.path).final
    named = run(fake_config(fake.url), trace_path=tmp_path / "d" / "e" / "t.json")
    assert Trace.load(named.path).final == named.final


def test_a_reference_added_later_takes_the_next_position_and_is_saved(trace, tmp_path):
    later = Trace.from_dict(trace.to_dict())
    later.add_reference("L1.0", "L3.0")
    assert later.references("L3.0") == ["L2.0", "L2.1", "L2.2", "L1.0"]
    later.add_reference("L1.2", "L3.0")
    assert later.references("L3.0")[3:] == ["L1.0", "L1.2"]
    later.save(tmp_path / "t.json")
    assert Trace.load(tmp_path / "t.json").references("L3.0")[3:] == ["L1.0", "L1.2"]
    first = Trace.from_dict(trace.to_dict())
    first.add_reference("L3.0", "L1.0")  # a call that read nothing before
    assert first.references("L1.0") == ["L3.0"]


def test_a_trace_is_exported_as_spans_to_the_destination_it_is_given(trace, tmp_path):
    done = trace.to_otel(out=tmp_path / "spans.jsonl")
    lines = (tmp_path / "spans.jsonl").read_text().splitlines()
    assert done.calls == len(trace) == 7 and done.spans == len(lines) == 7 + 3 + 1
    assert done.destination == str(tmp_path / "spans.jsonl")
    with pytest.raises(ConfigError, match=r"ftp://example\.test"):
        trace.to_otel(endpoint="ftp://example.test/v1/traces")


def test_what_a_call_recorded_of_its_endpoint_and_retries_is_read_back(data):
    node = _node(data, "L1.0")
    node |= {"timings": {"prompt_ms": 1.5}, "retry_waits": [0.5, 1], "annotations": {"k": "v"}}
    node["index"] = 1_000_000  # the most agents a layer may have
    call = Trace.from_dict(data)["L1.0"]
    assert (call.timings, call.retry_waits, call.annotations) == (
        {"prompt_ms": 1.5},
        (0.5, 1.0),
        {"k": "v"},
    )
    node["index"] = 1_000_001
    _fails(data, "trace: node L1.0: field 'index' is 1000001, more agents than any run has")


def test_a_trace_file_that_cannot_be_begun_says_what_is_in_the_way(trace, tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    (tmp_path / "taken.json").write_text("x")
    tail = "; choose another --trace-out or $MOA_LAB_TRACE_DIR"
    for path, exclusive, why in (
        (tmp_path / "file" / "t.json", False, f"{tmp_path / 'file'} is a file, not a folder"),
        (tmp_path / "file" / "a" / "t.json", True, f"{tmp_path / 'file'} is a file, not a folder"),
        (tmp_path / "gone" / "t.json", True, f"{tmp_path / 'gone'} is a file, not a folder"),
        (tmp_path / "taken.json", True, "File exists"),
    ):
        with pytest.raises(TraceError) as caught:
            Trace.from_dict(trace.to_dict()).start_journal(path, exclusive=exclusive)
        assert str(caught.value) == f"cannot write the trace to {path}: {why}{tail}"


def test_reasoning_tokens_are_stored_only_when_reported(data, tmp_path):
    counted = Usage(prompt_tokens=4, completion_tokens=9, total_tokens=13, reasoning_tokens=5)
    assert counted.to_dict() == {
        "prompt_tokens": 4,
        "completion_tokens": 9,
        "total_tokens": 13,
        "reasoning_tokens": 5,
    }
    assert "reasoning_tokens" not in Usage(1, 2, 3).to_dict()
    _node(data, "L1.0")["usage"] = counted.to_dict()
    Trace.from_dict(data).save(tmp_path / "t.json")
    assert Trace.load(tmp_path / "t.json")["L1.0"].usage == counted


def test_a_run_may_have_begun_at_the_epoch_and_its_settings_are_columns(data, fake):
    data["graph"]["created_at"] = 0.5
    assert Trace.from_dict(data).graph.graph["created_at"] == 0.5
    config = fake_config(fake.url)
    seeded = config.model_copy(update={"aggregator": config.aggregator.model_copy(update={"seed": 3})})
    frame = run(seeded).to_pandas()
    assert frame["seed"].isna().tolist() == [True, True, True, False] and frame["seed"][3] == 3
