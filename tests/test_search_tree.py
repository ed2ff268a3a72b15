"""The tree of thoughts of a search: every state a node, pruned ones marked, the chosen path drawn."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import moa_lab
from moa_lab import Agent, ToTConfig, thought_tree, views
from moa_lab.experiments.game24 import check, read_tot_log, tot_traces
from moa_lab.testing import ChatServer, game24_oracle

DATA = Path(
    os.environ.get("MOA_LAB_TOT_GAME24_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tot-game24"
)
TOT_LOG = DATA / "gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"


@pytest.fixture(scope="module")
def imported():
    if not TOT_LOG.is_file():
        pytest.skip(f"the ToT paper's logs are not at {DATA}")
    return tot_traces(TOT_LOG)[:10], read_tot_log(TOT_LOG)[:10]


def test_the_tree_of_an_imported_search_has_every_logged_state_once(imported):
    for trace, search in zip(*imported, strict=True):
        tree = thought_tree(trace)
        for step in search.steps:
            states = {s for s, _ in step.proposals}
            nodes = [d for _, d in tree.nodes(data=True) if d["step"] == step.step + 1]
            assert {d["state"] for d in nodes} == states
            assert {d["state"] for d in nodes if d["kept"]} == set(step.kept)
            value = {}
            for state, v in step.proposals:
                value.setdefault(state, v)  # a repeated state is worth 0 the second time
            assert all(d["value"] == value[d["state"]] for d in nodes)
        chosen = [d for _, d in tree.nodes(data=True) if d["chosen"] and d["step"] > 0]
        assert [d["step"] for d in sorted(chosen, key=lambda d: d["step"])] == [1, 2, 3, 4]
        assert max(chosen, key=lambda d: d["step"])["state"] == search.outputs[0]
        # every state extends its parent by exactly the thought it added
        for parent, child in tree.edges:
            if parent != "S0":
                assert tree.nodes[child]["state"].startswith(tree.nodes[parent]["state"])


def test_the_figure_marks_pruned_states_values_and_the_verdict(imported):
    trace = imported[0][0]
    figure = views.search_tree(trace)
    tree = thought_tree(trace)
    markers = {d.name: d for d in figure.data if d.meta == "moa:states"}
    pruned, kept = markers["pruned"], markers["kept (colour: value)"]
    assert len(pruned.customdata) == sum(1 for _, d in tree.nodes(data=True) if not d["kept"])
    assert len(kept.customdata) == sum(1 for n, d in tree.nodes(data=True) if d["kept"] and n != "S0")
    assert pruned.marker.color == "white" and kept.marker.showscale
    correct = check(trace.prompt, trace.final)
    assert figure.layout.title.text.endswith("the best output is " + ("correct" if correct else "wrong"))
    assert any(t.endswith("✓") for t in kept.text) == any(
        check(trace.prompt, o) for o in trace.graph.graph["outputs"]
    )


def test_our_own_search_draws_the_same_way_and_escapes_model_text(tmp_path):
    def evil(body):
        reply = game24_oracle(body)
        if "Possible next steps" in body["messages"][-1]["content"]:
            reply["choices"][0]["message"]["content"] += "\n<img src=x onerror=alert(1)> (left: 1 2 3)"
        return reply

    with ChatServer(evil) as server:
        config = ToTConfig(
            agent=Agent(model="oracle", base_url=server.url), breadth=2, n_evaluate_sample=1
        )
        trace = moa_lab.run("1 3 4 6", config, cache=False, trace_path=False, progress=False)
    figure = views.search_tree(trace)
    hovers = " ".join(h for d in figure.data if d.hovertext for h in d.hovertext)
    assert "<img" not in hovers and "&lt;img src=x" in hovers
    assert "the best output is correct" in figure.layout.title.text


def test_a_run_without_a_search_says_so():
    from moa_lab.testing import FakeLLM, fake_config

    with FakeLLM() as server:
        trace = moa_lab.run("hi", fake_config(server.url), cache=False, trace_path=False, progress=False)
    assert thought_tree(trace).number_of_nodes() == 1
    figure = views.search_tree(trace)
    assert "no search tree" in figure.layout.annotations[0].text
