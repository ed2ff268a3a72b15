"""Contracts a user's files depend on: the cache key, and traces written by earlier versions.

A change to how requests are canonicalised and hashed would silently invalidate every user's cache,
and a change to the trace format would strand their saved runs; these tests fail loudly instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from moa_lab import AggregatorTemplate, NodeMessage, RunError, Trace, plan, replay
from moa_lab._cache import call_key
from moa_lab.views import summary_text, to_html

ROOT = Path(__file__).resolve().parents[1]
#: Traces written by moa_lab 0.1 (commit 5c0d448): a failed proposer, replays, a ranker, a failed
#: aggregator, an experiment's single-model and judge traces, and the journal of a killed run.
OLD = sorted((ROOT / "tests" / "data" / "v0.1").glob("*.json"))
SHIPPED = sorted((ROOT / "traces").glob("*.json"))

GOLDEN = [
    (
        {
            "model": "gpt-4o",
            "base_url": "https://api.openai.com/v1",
            "messages": [{"role": "user", "content": "Why is the sky blue?"}],
            "params": {"temperature": 0.7, "max_tokens": 512},
        },
        "moa_lab.call.v1:aea7e878e8e0b4a05e43d5d0e1ef056e48bb4384393a0116add820000e7117bb",
    ),
    (
        {
            "model": "qwen2.5-coder-1.5b-instruct-q4_k_m",
            "base_url": "local",
            "messages": [
                {"role": "system", "content": 'Réponds en français. {braces} "quotes"'},
                {"role": "user", "content": "Ça va ? 😀"},
            ],
            "params": {"seed": 3, "temperature": 1.0, "max_tokens": 128},
            "replicate": 1001,
        },
        "moa_lab.call.v1:4303355f66d161852e81c89f6a9bb0f0d18e55db9de818efb24801ec31bd6d37",
    ),
    (
        {"model": "m", "base_url": "http://127.0.0.1:8000/v1", "messages": [], "params": {}},
        "moa_lab.call.v1:235e198822c09c34a021449f3ea565caf79cccb4d5c30afbe3a77d202a65265a",
    ),
    (
        {
            "model": "m",
            "base_url": "http://127.0.0.1:8000/v1",
            "messages": [{"role": "user", "content": "x"}],
            "params": {"extra_list": [1, 2.5, None, True], "nested": {"b": 1, "a": 2}},
            "replicate": 7,
        },
        "moa_lab.call.v1:eda82400f3eb5dc25ba0923fbb3155cb75f5a1d08c5e8dadb479e491912d011f",
    ),
]


@pytest.mark.parametrize(("request_", "key"), GOLDEN)
def test_the_cache_key_of_a_fixed_request_never_changes(request_, key):
    assert call_key(**request_) == key


def test_key_order_in_a_request_does_not_change_its_key():
    request_, key = GOLDEN[3]
    shuffled = dict(reversed(list(request_.items())))
    shuffled["params"] = {"nested": {"a": 2, "b": 1}, "extra_list": [1, 2.5, None, True]}
    assert call_key(**shuffled) == key


@pytest.mark.parametrize("path", SHIPPED + OLD, ids=lambda p: p.name)
def test_every_recorded_call_keeps_the_key_it_was_cached_under(path):
    trace = Trace.load(path)
    for call in trace.records():
        request_ = {
            "model": call.model,
            "base_url": call.base_url,
            "messages": [dict(m) for m in call.messages],
            "params": dict(call.params),
        }
        assert call_key(**request_, replicate=call.replicate) == call.cache_key, call.id


def test_the_old_traces_cover_what_users_keep():
    names = {p.name for p in OLD}
    assert {
        "failed-proposer.json",
        "failed-aggregator.json",
        "replay.json",
        "replay-of-replay.json",
        "rank.json",
        "experiment-single.json",
        "experiment-judge.json",
        "killed-journal.json",
    } <= names


@pytest.mark.parametrize("path", SHIPPED + OLD, ids=lambda p: p.name)
def test_old_and_shipped_traces_load_show_and_view(path):
    trace = Trace.load(path)
    text = summary_text(trace)
    assert trace.run_id in text
    for call in trace.records():
        assert call.id in text
    page = to_html(trace)
    assert page.startswith("<!DOCTYPE html>") and trace.run_id in page


@pytest.mark.parametrize(
    "path", [p for p in SHIPPED + OLD if p.name != "killed-journal.json"], ids=lambda p: p.name
)
def test_old_and_shipped_traces_replay_from_the_file_alone(path, tmp_path):
    trace = Trace.load(path)
    out = tmp_path / "again.json"
    if trace.status == "failed":
        # A replay reproduces its source except for the edits: here, the aggregator's failure.
        with pytest.raises(RunError, match="the aggregator failed"):
            replay(trace, [], cache=False, trace_path=out, progress=False)
        again = Trace.load(out)
    else:
        again = replay(trace, [], cache=False, trace_path=out, progress=False)
        assert again.final == trace.final
    assert again.parent_run_id == trace.run_id
    assert all(c.reused for c in again.records()) and len(again) == len(trace)
    aggregator = trace.aggregator() or max(trace.calls())
    if trace.layers == 1:
        edit = NodeMessage(aggregator, "user", "Answer again, briefly.")
    else:
        edit = AggregatorTemplate("Check every claim, then answer in one line:\n{references}")
    edited = plan(trace, edit, cache=False)
    assert edited.calls == 1 and edited.recomputed == [aggregator]


def test_an_old_single_model_trace_is_a_one_layer_run():
    trace = Trace.load(ROOT / "tests" / "data" / "v0.1" / "experiment-single.json")
    assert trace.layers == 1 and trace.config["proposers"] == []
    assert trace.config["aggregator"]["model"] == "alpha"
