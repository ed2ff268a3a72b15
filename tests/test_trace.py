"""Traces: save, load, validation of foreign or malformed files, and the DataFrame view."""

from __future__ import annotations

import json

import pytest

import moa_lab
from moa_lab import Trace, TraceError
from moa_lab._trace import default_trace_path
from moa_lab.testing import fake_config


@pytest.fixture
def trace(fake):
    return moa_lab.run(
        "What is 2+2?", fake_config(fake.url, layers=3), cache=False, trace_path=False, progress=False
    )


def test_a_trace_round_trips_through_json(trace, tmp_path):
    path = trace.save(tmp_path / "t.json")
    again = Trace.load(path)
    assert again.to_dict() == json.loads(path.read_text())
    assert again.calls() == trace.calls() and again.final == trace.final
    assert sorted(again.graph.edges) == sorted(trace.graph.edges)
    assert again.graph.graph["schema_version"] == 1 and again.run_id == trace.run_id


def test_default_trace_paths_are_time_slug_and_run_id(monkeypatch, tmp_path):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path))
    path = default_trace_path("Why is the sky blue?!", "abc123", when=0)
    assert path.parent == tmp_path and path.name.endswith("-why-is-the-sky-blue-abc123.json")


def test_run_writes_under_traces_by_default(fake, tmp_path):
    trace = moa_lab.run("Hi there", fake_config(fake.url), cache=False, progress=False)
    assert trace.path.parent == tmp_path / "traces"
    assert trace.path.name.endswith(f"-hi-there-{trace.run_id}.json")
    assert Trace.load(trace.path).final == trace.final


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not a JSON trace"),
        ('{"nodes": []}', "not a moa_lab trace (no graph attributes)"),
        ('{"graph": {"schema": "langsmith"}, "nodes": [], "edges": []}', "schema is 'langsmith'"),
        (
            '{"graph": {"schema": "moa_lab.trace", "schema_version": 99}}',
            "schema version 99 is not supported",
        ),
    ],
)
def test_foreign_or_malformed_files_fail_with_one_line(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(TraceError) as caught:
        Trace.load(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_node_missing_fields_is_named(trace, tmp_path):
    data = trace.to_dict()
    (node,) = [n for n in data["nodes"] if n["id"] == "L1.1"]
    del node["messages"]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError, match=r"node L1.1 lacks fields \['messages'\]"):
        Trace.load(path)


def test_an_edge_to_nowhere_is_rejected(trace, tmp_path):
    data = trace.to_dict()
    data["edges"].append({"source": "L9.9", "target": "L2.0", "position": 4})
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TraceError, match="names a node that is not in the trace"):
        Trace.load(path)


def test_to_pandas_has_one_row_per_call(trace):
    frame = trace.to_pandas()
    assert list(frame["node"]) == trace.calls()
    assert list(frame["layer"]) == [1, 1, 1, 2, 2, 2, 3]
    assert frame.loc[6, "role"] == "aggregator"
    assert frame.loc[6, "references"] == ["L2.0", "L2.1", "L2.2"]
    assert (frame["completion_tokens"] > 0).all()


def test_repr_is_a_compact_summary(trace):
    text = repr(trace)
    assert text.startswith(f"<Trace {trace.run_id} complete: 3 layers, 7 calls")
    assert len(text) < 200


def test_a_run_in_progress_is_a_journal_that_survives_a_torn_last_line(trace, tmp_path):
    path = tmp_path / "live.json"
    trace.start_journal(path)
    for node in trace.calls()[:4]:
        trace.journal(node)
    with open(path, "a", encoding="utf-8") as journal:
        journal.write('{"node": {"id": "L2.1", "role": "propo')  # killed mid-write
    partial = Trace.load(path)
    assert partial.calls() == trace.calls()[:4]
    assert partial.references("L2.0") == ["L1.0", "L1.1", "L1.2"]
    assert partial["L2.0"].response == trace["L2.0"].response
    trace.save(path)  # a finished run is written as node-link JSON
    assert "nodes" in json.loads(path.read_text()) and len(Trace.load(path)) == len(trace)
