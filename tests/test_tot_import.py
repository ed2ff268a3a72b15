"""The ToT paper's GPT-4 searches imported as traces: rebuilt exactly, judged, never overwriting.

Reads the paper's log from ../shared/data/tot-game24 (or MOA_LAB_TOT_GAME24_DATA); skips without it.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import pytest

from moa_lab import ToTConfig, Trace
from moa_lab.cli import main
from moa_lab.experiments.game24 import LogError, check, import_tot_log, read_tot_log, tot_traces

DATA = Path(
    os.environ.get("MOA_LAB_TOT_GAME24_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tot-game24"
)
TOT_LOG = "gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"


@pytest.fixture(scope="module")
def log() -> Path:
    if not (DATA / TOT_LOG).is_file():
        pytest.skip(f"the ToT paper's Game of 24 logs are not at {DATA} (see its README.md)")
    return DATA / TOT_LOG


@pytest.fixture(scope="module")
def traces(log):
    return tot_traces(log)


def _steps_back(trace) -> list[dict]:
    """The log's steps, rebuilt from the trace alone (the inverse of the import)."""
    steps = []
    for layer in range(1, trace.layers + 1):
        calls = sorted((c for c in trace.records() if c.layer == layer), key=lambda c: c.index)
        proposals = [s for c in calls for s in c.annotations["states"]]
        steps.append(
            {
                "new_ys": [s["state"] for s in proposals],
                "values": [s["value"] for s in proposals],
                "kept": {s["state"] for s in proposals if s["kept"]},
            }
        )
    return steps


def test_every_search_rebuilds_to_exactly_the_logged_steps(log, traces):
    searches = read_tot_log(log)
    assert len(traces) == len(searches) == 100
    for trace, search in zip(traces, searches, strict=True):
        assert trace.prompt == search.puzzle and trace.graph.graph["outputs"] == list(search.outputs)
        for rebuilt, step in zip(_steps_back(trace), search.steps, strict=True):
            assert rebuilt["new_ys"] == [state for state, _ in step.proposals]
            assert rebuilt["values"] == [value for _, value in step.proposals]
            assert rebuilt["kept"] == set(step.kept)


def test_each_call_holds_the_papers_prompt_and_a_reply_whose_lines_are_its_states(traces):
    task = ToTConfig(agent="x").task_object()
    for trace in traces[:20]:
        for call in trace.records():
            y = _parent_state(trace, call)
            assert call.messages[-1]["content"] == task.propose_prompt(trace.prompt, y, step=call.layer)
            states = [s["state"] for s in call.annotations["states"]]
            if call.annotations.get("asked", 1) == 1:
                assert states == [y + line + "\n" for line in call.response.split("\n")]
            assert call.model == "gpt-4" and call.params["temperature"] == 0.7
            assert call.usage is None and call.latency is None  # the log does not say


def _parent_state(trace, call) -> str:
    refs = trace.references(call.id)
    if not refs:
        return ""
    parent = trace.call(refs[0])
    first = call.annotations["states"][0]["state"]
    return max(
        (s["state"] for s in parent.annotations["states"] if first.startswith(s["state"])), key=len
    )


def test_the_chosen_path_leads_to_the_best_output_and_the_settings_come_from_the_file_name(traces):
    for trace in traces:
        chosen = [c for c in trace.records() if c.annotations.get("chosen")]
        assert [c.layer for c in chosen] == [1, 2, 3, 4]
        last = chosen[-1].annotations["states"]
        assert trace.final in [s["state"] for s in last]
        for a, b in itertools.pairwise(chosen):
            assert trace.references(b.id) == [a.id]
    config = traces[0].graph.graph["config"]
    assert (config["strategy"], config["breadth"], config["n_evaluate_sample"]) == ("tot", 5, 3)


def test_the_checker_agrees_with_the_log_and_finds_69_of_100(log, tmp_path):
    done = import_tot_log(log, tmp_path / "gpt4")
    assert (done.searches, done.any_correct, done.log_any_correct, done.disagreements) == (
        100,
        69,
        69,
        0,
    )
    best = sum(check(t.prompt, t.final) for t in map(Trace.load, done.paths))
    assert done.best_correct == best
    spent = [Trace.load(p).graph.graph["imported"]["spent"] for p in done.paths]
    assert all(s["prompt_tokens"] > 0 and s["cost"] > 0 for s in spent)
    assert round(sum(s["cost"] for s in spent), 4) == round(read_tot_log(log)[-1].usage.cost, 4)


def test_the_cli_prints_the_count_and_never_overwrites(log, tmp_path, capsys, cli_fails):
    out = tmp_path / "traces"
    assert main(["import", "tot", str(log), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.startswith("69 of 100 searches end with a correct output by moa_lab's checker")
    assert len(list(out.glob("*.json"))) == 100 and (out / "0900-4-5-6-10.json").is_file()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    cli_fails("already exist; import into a new folder", ["import", "tot", str(log), "--out", str(out)])
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    # One taken name: nothing at all is written (checked before the first file).
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    taken = sorted(before)[50]
    (fresh / taken).write_text("mine")
    cli_fails(taken, ["import", "tot", str(log), "--out", str(fresh)])
    assert [p.name for p in fresh.iterdir()] == [taken] and (fresh / taken).read_text() == "mine"


def _crafted(tmp_path, entries, name=TOT_LOG) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return path


def _entry(**changes):
    step = {"step": 0, "x": "4 5 6 10", "ys": [""], "new_ys": ["4 + 5 = 9 (left: 6 9 10)\n"],
            "values": [1.0], "select_new_ys": ["4 + 5 = 9 (left: 6 9 10)\n"]}  # fmt: skip
    entry = {"steps": [step], "idx": 3, "ys": step["select_new_ys"], "infos": [{"r": 0}],
             "usage_so_far": {"completion_tokens": 1, "prompt_tokens": 2, "cost": 0.1}}  # fmt: skip
    for key, value in changes.items():
        if key in step:
            step[key] = value
        else:
            entry[key] = value
    return entry


@pytest.mark.parametrize(
    ("entry", "name", "message"),
    [
        (_entry(x="../../etc/passwd"), TOT_LOG, "its 'x' must be four numbers"),
        (_entry(x="1 2 3 4; rm -rf /"), TOT_LOG, "its 'x' must be four numbers"),
        (_entry(idx=-4), TOT_LOG, "'idx' >= 0"),
        (_entry(new_ys=["nothing to do with it"]), TOT_LOG, "does not extend the kept states"),
        (_entry(values=["high"]), TOT_LOG, "'values' must be 1 numbers"),
        ({"idx": 0, "ys": ["x"], "infos": [{"r": 0}]}, TOT_LOG, "has no search to import"),
        (_entry(), "gpt-4_0.7_sample1_value3_greedy5_start0_end1.json", "cannot be rebuilt"),
    ],
)
def test_a_bad_log_is_one_line_and_writes_nothing(tmp_path, entry, name, message, cli_fails):
    path = _crafted(tmp_path, [entry], name)
    out = tmp_path / "out"
    cli_fails(message, ["import", "tot", str(path), "--out", str(out)])
    assert not out.exists()


def test_a_renamed_log_still_imports_with_what_its_steps_show(tmp_path):
    traces = tot_traces(_crafted(tmp_path, [_entry()], "mine.json"))
    config = traces[0].graph.graph["config"]
    assert config["agent"]["model"] == "unknown" and config["breadth"] == 1
    with pytest.raises(LogError, match="cannot read it"):
        tot_traces(tmp_path / "missing.json")
