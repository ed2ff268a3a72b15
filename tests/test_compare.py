"""Comparing two traces: aligned calls, word diffs, deltas, the figure and the widget as data."""

from __future__ import annotations

import json

import pytest

import moa_lab
from moa_lab import (
    AddProposer,
    Agent,
    AggregatorTemplate,
    Price,
    RemoveProposer,
    compare,
    replay,
    views,
)
from moa_lab._debate import DebateConfig
from moa_lab._tot import ToTConfig
from moa_lab.testing import ChatServer, completion, fake_config, game24_oracle

TERSE = "Answer in one line, using these answers:\n{references}"


def _run(config, prompt="Why is the sky blue?"):
    return moa_lab.run(prompt, config, cache=False, trace_path=False, progress=False)


def _replay(trace, edits):
    return replay(trace, edits, cache=False, trace_path=False, progress=False)


def _joined(runs, keep):
    return "".join(text for op, text in runs if op in keep)


@pytest.fixture
def priced(fake):
    prices = {m: Price(input=1.0, output=2.0) for m in ("alpha", "beta", "gamma", "omega")}
    return _run(fake_config(fake.url, prices=prices))


def test_a_trace_compared_with_itself_has_no_differences(priced):
    same = compare(priced, priced)
    assert same.identical and same.differences == []
    assert all(c.status == "same" and c.changed == () and c.prompt_diff == () for c in same.calls)
    assert all(c.cost == 0 and c.latency == 0 and c.completion_tokens == 0 for c in same.calls)
    assert set(same.delta.values()) == {0}
    assert same.final_diff == (("equal", priced.final),)


def test_a_replay_without_edits_differs_only_in_what_it_sent(priced):
    again = compare(priced, _replay(priced, []))
    assert again.identical
    assert again.delta["sent"] == -4 and again.delta["cost"] == 0
    assert again.right_totals.spent == 0 and again.left_totals.spent > 0


def test_an_aggregator_edit_changes_only_the_aggregator(fake, priced):
    new = _replay(priced, AggregatorTemplate(TERSE))
    result = compare(priced, new)
    assert not result.identical
    (changed,) = result.differences
    assert changed.node == "L2.0" and changed.status == "changed" and changed.lineage == "edited"
    assert set(changed.changed) == {"messages", "response"}
    assert _joined(changed.response_diff, {"equal", "delete"}) == priced.final
    assert _joined(changed.response_diff, {"equal", "insert"}) == new.final
    assert "Answer in one line" in _joined(changed.prompt_diff, {"insert"})
    assert _joined(result.final_diff, {"equal", "insert"}) == new.final
    usage = new["L2.0"].usage
    before = priced["L2.0"].usage
    assert changed.prompt_tokens == usage.prompt_tokens - before.prompt_tokens < 0
    assert changed.cost == pytest.approx(new["L2.0"].cost - priced["L2.0"].cost)
    assert result.right_totals.sent == 1
    assert result["L1.0"].status == "same" and result["L1.0"].lineage == "reused"
    frame = result.to_pandas()
    assert list(frame["node"]) == ["L1.0", "L1.1", "L1.2", "L2.0"]
    assert list(frame["status"]) == ["same", "same", "same", "changed"]
    assert json.loads(json.dumps(result.to_dict()))["identical"] is False


def test_added_and_removed_calls_are_aligned_by_layer_and_index(fake):
    source = _run(fake_config(fake.url))
    new = _replay(source, [RemoveProposer("L1.0"), AddProposer("delta", layer=1)])
    result = compare(source, new)
    assert [(c.node, c.status) for c in result.calls] == [
        ("L1.0", "changed"),  # beta now sits where alpha was
        ("L1.1", "changed"),
        ("L1.2", "changed"),
        ("L2.0", "changed"),
    ]
    bigger = compare(new, _replay(new, AddProposer("epsilon", layer=1)))
    assert [(c.node, c.status) for c in bigger.differences] == [("L1.3", "added"), ("L2.0", "changed")]
    assert bigger["L1.3"].left_model is None and bigger["L1.3"].cost is None
    smaller = compare(new, _replay(new, RemoveProposer("L1.2")))
    assert smaller["L1.2"].status == "removed" and smaller["L1.2"].right_response is None


def test_unknown_prices_give_unknown_deltas_not_zero(fake):
    plain = _run(fake_config(fake.url))
    result = compare(plain, _replay(plain, AggregatorTemplate(TERSE)))
    assert result["L2.0"].cost is None and result.delta["cost"] is None
    assert plain.totals().cost is None


def test_the_figure_pairs_before_and_after_for_every_call(priced):
    from moa_lab.views import STATUS_COLORS, compare_figure

    new = _replay(priced, AggregatorTemplate(TERSE))
    figure = compare_figure(priced, new)
    bars = [d for d in figure.data if d.type == "bar" and d.y[0] is not None]
    assert len(bars) == 6  # before and after, for tokens, latency and cost
    tokens_before, tokens_after = bars[0], bars[1]
    assert list(tokens_before.y) == ["L1.0", "L1.1", "L1.2", "L2.0"]
    total = new["L2.0"].prompt_tokens + new["L2.0"].completion_tokens
    assert tokens_after.x[3] == total
    assert list(tokens_after.marker.color) == [STATUS_COLORS["same"]] * 3 + [STATUS_COLORS["changed"]]
    cost_after = bars[5]
    assert cost_after.x[3] == pytest.approx(new["L2.0"].cost)
    assert "1 of 4 calls differ" in figure.layout.title.text
    keys = [d.name for d in figure.data if d.showlegend is not False]
    assert keys[:3] == [
        f"before ({priced.run_id})",
        f"after ({new.run_id}): same",
        f"after ({new.run_id}): changed",
    ]
    assert figure.layout.legend.y < 0 and figure.layout.legend.yanchor == "top"  # clear of the title
    assert "T0.7 ≤512" in tokens_after.hovertext[3]
    latency_after = bars[3]  # reused calls were not sent: no latency of this run is drawn
    assert list(latency_after.x[:3]) == [None] * 3 and latency_after.x[3] == new["L2.0"].latency
    assert list(tokens_after.marker.pattern.shape) == ["x", "x", "x", ""]
    assert "hatched: reused from the source run (not sent)" in [d.name for d in figure.data]


def test_the_widget_shows_the_finals_side_by_side_escaped(fake):
    from moa_lab.views import CompareView

    source = _run(fake_config(fake.url), prompt="<script>alert(1)</script> why?")
    new = _replay(source, AggregatorTemplate(TERSE))
    view = CompareView(source, new)
    assert "<script>" not in view.finals.value and "&lt;script&gt;" in view.finals.value
    assert (
        f"before · {source.run_id}" in view.finals.value and f"after · {new.run_id}" in view.finals.value
    )
    assert view.picker.value == "L2.0" and "changed" in view.call_panel.value
    assert "<ins" in view.call_panel.value and "<b>prompt</b>" in view.call_panel.value
    view.show("L1.0")
    assert "differs in: nothing" in view.call_panel.value and "<script>" not in view.call_panel.value
    assert "calls sent" in view.totals.value


def _voter(body):
    said = {"alpha": "42", "beta": "41", "gamma": "40"}[body["model"]]
    return completion(body["model"], f"It is {said}.", prompt_tokens=5, completion_tokens=3)


def test_two_debates_align_by_call_id_and_the_figure_names_their_calls():
    with ChatServer(_voter) as server:
        agents = [Agent(model=m, base_url=server.url) for m in ("alpha", "beta", "gamma")]
        two = _run(DebateConfig(agents=agents, rounds=2, decide="majority"))
        three = _run(DebateConfig(agents=agents, rounds=3, decide="majority"))
    result = compare(two, three)
    assert [c.node for c in result.calls] == [f"D{r}.{a}" for r in (1, 2, 3) for a in range(3)]
    assert [c.status for c in result.calls][6:] == ["added"] * 3
    assert result["D2.1"].status == "same" and result["D2.1"].right_response == three["D2.1"].response
    figure = views.compare_figure(two, three)
    assert list(figure.data[0].y) == [c.node for c in result.calls]
    titles = [a.text for a in figure.layout.annotations]
    assert titles == ["tokens (prompt + completion)", "latency (s)"]  # unpriced: no cost panel
    added = figure.data[1].hovertext[6]
    assert added.startswith("<b>D3.0</b> – → alpha · added") and "– → T0.7 ≤512" in added
    view = views.CompareView(two, three)
    view.show("D3.0")
    assert "added" in view.call_panel.value


def test_two_searches_align_by_call_id_and_their_evaluations_fold_into_a_row_per_step():
    """A search's index packs the sample number: aligning by (layer, index) paired unrelated calls."""
    with ChatServer(game24_oracle) as server:
        agent = Agent(model="oracle", base_url=server.url)
        one = _run(ToTConfig(agent=agent, generation="sample", n_generate_sample=1, steps=2), "4 5 6 10")
        two = _run(ToTConfig(agent=agent, generation="sample", n_generate_sample=2, steps=2), "4 5 6 10")
    result = compare(one, two)
    nodes = {c.node: c for c in result.calls}
    assert set(nodes) == set(one.calls()) | set(two.calls())
    # G2.1.0 is index 1 in the first search and index 2 in the second: the same call, by its id.
    assert one["G2.0.0"].index == 0 and two["G2.0.1"].index == 1 and two["G2.1.0"].index == 2
    assert nodes["G1.0.0"].left_model == nodes["G1.0.0"].right_model == "oracle"
    assert nodes["G1.0.1"].status == "added"
    figure = views.compare_figure(one, two)
    labels = list(figure.data[0].y)
    evaluators = [n for n in nodes if n.startswith("V")]
    folded = [lab for lab in labels if lab.endswith("evaluations")]
    assert len(evaluators) > 2 * len(folded)
    assert not [lab for lab in labels if lab.startswith("V")]  # folded, a row per step
    assert folded == [
        f"step {s} · {sum(1 for n in evaluators if nodes[n].layer == s)} evaluations" for s in (1, 2)
    ]
    row = labels.index(folded[0])
    tokens_after = figure.data[1]
    assert tokens_after.x[row] == sum(
        two[n].usage.tokens for n in evaluators if n in two and two[n].layer == 1
    )
