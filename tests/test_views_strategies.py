"""The figures of every strategy read as data: the layer graph of a debate and of a search, what
tells agents of one model apart, replays' reused calls apart from cache hits, and the legends kept
clear of the titles."""

from __future__ import annotations

import functools
import json

import plotly.graph_objects as go
import pytest

from moa_lab import Agent, AggregatorTemplate, MoAConfig, Trace, replay, run, views
from moa_lab._debate import DebateConfig
from moa_lab._tot import ToTConfig
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config, game24_oracle
from moa_lab.views import _graph, _positions, _usage

_QUIET = {"cache": False, "trace_path": False, "progress": False}


def _voter(body):
    """alpha says 42, beta 41 then 42, gamma 40: a 2-of-3 majority for 42 in round 2."""
    model, turns = body["model"], len(body["messages"])
    said = {"alpha": "42", "beta": "41" if turns < 3 else "42", "gamma": "40"}[model]
    return completion(model, f"The answer is {said}.", prompt_tokens=9 * turns, completion_tokens=6)


@pytest.fixture(scope="module")
def debate():
    with ChatServer(_voter) as server:
        agents = [Agent(model=m, base_url=server.url) for m in ("alpha", "beta", "gamma")]
        return run("What is 6 * 7?", DebateConfig(agents=agents, rounds=2), **_QUIET)


@pytest.fixture(scope="module")
def search():
    """A search whose every step proposes 10 next steps per state: over 100 evaluations a step."""
    with ChatServer(functools.partial(game24_oracle, width=10)) as server:
        return run("1 3 4 6", ToTConfig(agent=Agent(model="oracle", base_url=server.url)), **_QUIET)


@pytest.fixture(scope="module")
def replayed():
    with FakeLLM() as fake:
        source = run("q", fake_config(fake.url), **_QUIET)
        again = replay(source, AggregatorTemplate("Say it in one line:\n{references}"), **_QUIET)
    return source, again


def _node_traces(figure: go.Figure) -> list:
    return [d for d in figure.data if d.meta == views.NODE_TRACE]


def _drawn(figure: go.Figure) -> dict[str, tuple[float, float, float, str]]:
    """Node id -> (x, y, marker size, label) from the node traces."""
    found = {}
    for data in _node_traces(figure):
        for i, node in enumerate(data.customdata):
            assert node not in found, f"{node} drawn twice"
            label = data.text[i] if data.text is not None else ""
            found[node] = (data.x[i], data.y[i], data.marker.size[i], label)
    return found


def _named(figure: go.Figure, name: str):
    matches = [d for d in figure.data if d.name == name]
    assert len(matches) == 1, f"expected one trace named {name!r}, got {[d.name for d in figure.data]}"
    return matches[0]


def _legend_clear_of_title(figure: go.Figure) -> None:
    legend = figure.layout.legend
    assert legend.y < 0 and legend.yanchor == "top", "the legend must sit below the plot"


def test_the_layer_graph_keeps_its_legend_below_and_explains_size_and_width(search, debate):
    for trace in (search, debate):
        figure = views.layer_graph(trace)
        _legend_clear_of_title(figure)
        names = [d.name for d in figure.data if d.showlegend is not False]
        assert any(n.startswith("size: tokens written") for n in names)
        assert "edge width: carried, 0 to 1 (what was carried on)" in names
        assert len(figure.layout.title.text) <= 70  # fits a 600 px explorer tab
    plain = views.layer_graph(debate, measure=None)
    assert "edge: read" in [d.name for d in plain.data]


def test_a_search_draws_its_evaluators_small_beside_the_calls_they_judge(search):
    figure = views.layer_graph(search)
    drawn = _drawn(figure)
    assert set(drawn) == set(search.calls())
    thoughts = [n for n in search.calls() if search[n].role == "thought"]
    judges = [n for n in search.calls() if search[n].role == "evaluator"]
    per_step = max(sum(1 for n in judges if search[n].layer == s) for s in range(1, 5))
    assert per_step >= 100 and max(search[n].index for n in judges) >= 1100
    rows = 1 + max(search[n].index for n in thoughts)
    assert rows <= 5  # the thoughts keep their rows (the kept states they extend)
    for node in thoughts:
        assert drawn[node][:2] == (search[node].layer, search[node].index)
    for node in judges:
        x, y, size, label = drawn[node]
        assert search[node].layer < x < search[node].layer + 0.7  # beside its step
        assert -0.5 <= y <= rows - 0.5 and size == _positions.SATELLITE_SIZE and label == ""
        judged = [drawn[s][1] for s in search.graph.predecessors(node)]
        assert abs(y - sum(judged) / len(judged)) <= 0.4  # in the rows of the calls it judges
    assert figure.layout.height <= 1000


def test_a_search_marks_pruned_calls_the_chosen_path_and_the_states_kept(search):
    figure = views.layer_graph(search)
    pruned = [
        n for n in search.calls()
        if search[n].role == "thought"
        and not any(s["kept"] for s in search[n].annotations["states"])
    ]  # fmt: skip
    assert _named(figure, "pruned: no state kept").showlegend is not False
    assert pruned and sorted(_named(figure, "pruned calls").customdata) == sorted(pruned)
    path = [n for n in search.calls() if (search[n].annotations or {}).get("chosen")]
    assert len(path) == 4
    path_edges = _named(figure, "the chosen path")
    assert path_edges.line.width > 3 and len(path_edges.x) == 3 * 3  # three edges, NaN-separated
    labels = {n: label for n, (_, _, _, label) in _drawn(figure).items()}
    assert all(labels[n].endswith("pruned") for n in pruned)
    assert "5 of 10 kept" in labels["G1.0"]
    ticks = list(figure.layout.xaxis.ticktext)
    assert ticks[0].startswith("step 1<br>") and ticks[0].endswith("kept")
    hover = _node_traces(figure)[0].hovertext[0]
    assert "proposed 10 states, 5 kept" in hover and "✓" in hover


def test_a_debate_names_its_rounds_and_marks_the_chosen_answer(debate):
    figure = views.layer_graph(debate)
    assert list(figure.layout.xaxis.ticktext) == ["round 1", "round 2"]  # no empty third column
    decision = debate.graph.graph["decision"]
    assert list(_named(figure, "the chosen answer").customdata) == [decision["chosen"]]
    assert "majority answer 42 (2 of 3 votes)" in figure.layout.title.text
    labels = {n: label for n, (_, _, _, label) in _drawn(figure).items()}
    assert "votes 42" in labels["D2.0"] and "votes 40" in labels["D2.2"]
    assert "votes" not in labels["D1.0"]
    trace = next(d for d in _node_traces(figure) if "D2.2" in d.customdata)
    assert "(outvoted)" in trace.hovertext[list(trace.customdata).index("D2.2")]


def test_labels_show_what_tells_apart_agents_of_one_model():
    with FakeLLM(broken={"qwen": "truncated"}) as fake:
        settings = ((0.5, 1), (0.8, 2), (1.0, 3))
        one_model = MoAConfig(
            proposers=[Agent(model="qwen", base_url=fake.url, temperature=t, seed=s, max_tokens=128)
                       for t, s in settings],
            aggregator=Agent(model="omega", base_url=fake.url, temperature=0.3),
        )  # fmt: skip
        varied = run("q", one_model, **_QUIET)
        same = MoAConfig(
            proposers=[Agent(model="omega", base_url=fake.url)] * 3,
            aggregator=Agent(model="omega", base_url=fake.url),
        )
        samples = run("q", same, **_QUIET)
    figure = views.layer_graph(varied)
    labels = {n: label for n, (_, _, _, label) in _drawn(figure).items()}
    for node, (t, s) in zip(varied.calls(1), settings, strict=True):
        assert labels[node] == f"{node} ✂<br>T{t} seed {s} ≤128"
    assert sorted(_named(figure, "✂ cut off at max_tokens").customdata) == varied.calls(1)
    hover = "".join(h for d in _node_traces(figure) for h in d.hovertext)
    assert "T0.5 seed 1 ≤128" in hover and "cut off</b> at max_tokens" in hover
    # Identical agents: only the sample index tells them apart; the shared settings are said once.
    figure = views.layer_graph(samples)
    labels = {n: label for n, (_, _, _, label) in _drawn(figure).items()}
    assert [labels[n] for n in samples.calls(1)] == ["L1.0", "L1.1<br>sample 1", "L1.2<br>sample 2"]
    assert figure.layout.title.subtitle.text == "every call: T0.7 ≤512"


def test_a_replays_reused_calls_are_marked_apart_from_cache_hits(replayed):
    _, again = replayed
    figure = views.layer_graph(again)
    reused = [n for n in again.calls() if again[n].reused]
    assert reused and sorted(_named(figure, "reused from the source run").customdata) == sorted(reused)
    assert not _named(figure, "cache hit").customdata
    trace = _node_traces(figure)[0]
    hover = trace.hovertext[0]
    assert "<b>reused</b> from the source run" in hover and "cache hit" not in hover


def test_model_names_and_answers_reach_the_graph_escaped(debate):
    data = debate.to_dict()
    evil = "<script>alert(1)</script>"
    for node in data["nodes"]:
        node["model"] = evil + node["model"]
    data["graph"]["decision"]["answer"] = evil
    crafted = Trace.from_dict(json.loads(json.dumps(data)))
    page = json.dumps(views.layer_graph(crafted).to_plotly_json())
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_node_positions_keep_moa_rows_and_centre_the_aggregator(replayed):
    source, _ = replayed
    positions = _graph.node_positions(source)
    assert positions == {"L1.0": (1.0, 0.0), "L1.1": (1.0, 1.0), "L1.2": (1.0, 2.0), "L2.0": (2.0, 1.0)}


# -- the spend figure -----------------------------------------------------------------------------
def _free(body):
    return completion(body["model"], "an answer", prompt_tokens=10, completion_tokens=4)


def test_the_spend_figure_of_a_free_run_draws_no_cost_panel_and_says_free():
    """A local model costs nothing: no empty cost panel on a -1..1 axis, the title says so."""
    with ChatServer(_free) as server:
        config = fake_config(
            server.url,
            prices={m: {"input": 0, "output": 0} for m in ("alpha", "beta", "gamma", "omega")},
        )
        free = run("q", config, **_QUIET)
        unpriced = run("q", fake_config(server.url), **_QUIET)
    assert {free[n].cost for n in free.calls()} == {0.0}
    for trace, said in ((free, "free"), (unpriced, "cost unknown")):
        figure = views.usage(trace)
        titles = [a.text for a in figure.layout.annotations]
        assert not [t for t in titles if t.startswith("Cost")], titles
        assert not [d for d in figure.data if d.name.startswith("cost")]
        assert "xaxis5" not in figure.layout and said in figure.layout.title.text
        _legend_clear_of_title(figure)


def test_the_spend_figure_keeps_reused_calls_apart_and_never_counts_their_old_latency(replayed):
    _, again = replayed
    figure = views.usage(again)
    reused = [n for n in again.calls() if again[n].reused]
    by_depth = next(
        d for d in figure.data if d.name == "tokens reused from the source run" and d.xaxis == "x"
    )
    assert sum(by_depth.y) == sum(again[n].prompt_tokens + again[n].completion_tokens for n in reused)
    assert not [d for d in figure.data if d.name == "tokens served from cache"]
    latency = next(d for d in figure.data if d.type == "box" and d.xaxis == "x3")
    assert sorted(latency.hovertext) == sorted(n for n in again.calls() if not again[n].reused)
    assert all(again[n].latency is not None for n in reused)  # there was an old latency to leave out
    assert [a.text for a in figure.layout.annotations][:2] == ["Tokens by layer", "Tokens by model"]


def test_the_spend_figure_names_depths_for_the_strategy_and_keeps_model_labels_short(debate, search):
    figure = views.usage(debate)
    assert list(figure.layout.xaxis.categoryarray) == ["round 1", "round 2"]
    assert "Tokens by round" in [a.text for a in figure.layout.annotations]
    assert list(views.usage(search).layout.xaxis.categoryarray) == [f"step {s}" for s in range(1, 5)]
    labels = _usage.model_labels(
        ["meta-llama/Llama-3-70b-chat-hf", "Qwen/Qwen1.5-110B-Chat", "<b>x</b>/very-long-model-name-v2"]
    )
    assert labels["Qwen/Qwen1.5-110B-Chat"] == "Qwen1.5-110B<br>-Chat"
    assert all(len(part) <= 20 for label in labels.values() for part in label.split("<br>"))
    assert _usage.model_labels(["a/llama", "b/llama"]) == {"a/llama": "a/llama", "b/llama": "b/llama"}
    assert "<b>" not in "".join(_usage.model_labels(["<b>x</b>"]).values())
    assert views.usage(debate).layout.xaxis2.tickangle == 0


# -- how the answer evolved, what was reused ------------------------------------------------------
def test_evolution_compares_a_debates_rounds_and_gives_a_search_its_two_panels(debate, search):
    figure = views.evolution(debate)
    heatmaps = [d for d in figure.data if d.type == "heatmap"]
    assert [list(h.x) for h in heatmaps] == [debate.calls(1), debate.calls(2)]
    titles = [a.text for a in figure.layout.annotations]
    assert titles[:2] == ["Round 1: similarity between answers", "Round 2: similarity between answers"]
    assert figure.layout.xaxis3.title.text == "round"
    figure = views.evolution(search)
    assert not [d for d in figure.data if d.type == "heatmap"]
    assert [a.text for a in figure.layout.annotations] == [
        "Similarity to the final answer",
        "Response length (words)",
    ]
    assert figure.layout.xaxis.title.text == "step" and "xaxis3" not in figure.layout


def test_attribution_of_a_search_summarises_by_step(search):
    (heatmap,) = views.attribution(search).data
    assert all(label.startswith("step ") for label in heatmap.y)


def test_a_search_imported_without_usage_says_so_instead_of_drawing_empty_panels(search):
    data = json.loads(json.dumps(search.to_dict()))
    for node in data["nodes"]:
        node.update(usage=None, latency=None, cost=None, sent_at=None, served_at=None)
    data["graph"]["imported"] = {
        "spent": {"prompt_tokens": 28451, "completion_tokens": 9161, "cost": 1.4}
    }
    imported = Trace.from_dict(data)
    figure = views.usage(imported)
    assert not figure.data
    (note,) = figure.layout.annotations
    assert "record no tokens, latency or cost" in note.text and "28,451 prompt tokens" in note.text
    keys = [d.name for d in views.layer_graph(imported).data if d.legendgroup == _graph.KEY]
    assert "size: no tokens recorded" in keys
