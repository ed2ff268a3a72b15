"""Replay: only the calls an edit reaches are sent (counted at a real loopback server), lineage, the CLI,
and the PromptLab widget driven without a kernel."""

from __future__ import annotations

import html
import json

import pytest

import moa_lab
from moa_lab import (
    AddProposer,
    Agent,
    AggregatorTemplate,
    ConfigError,
    NodeMessage,
    NodeParams,
    Price,
    ProposerTemplate,
    RemoveProposer,
    Trace,
    UserPrompt,
    edit_from_dict,
    lineage,
    plan,
    replay,
)
from moa_lab._prompts import RANKER_TEMPLATE
from moa_lab.cli import main
from moa_lab.testing import FakeLLM, fake_config

TERSE = "Answer in one line, using these answers:\n{references}"


def _run(config, prompt="Why is the sky blue?", **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


def _replay(trace, edits=(), **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return replay(trace, edits, **options)


@pytest.fixture
def three_layers(fake):
    """A 3-layer run (alpha, beta, gamma twice, then omega) and the server it ran on."""
    trace = _run(fake_config(fake.url, layers=3))
    fake.requests.clear()
    return trace


def _sent(fake):
    return [(r.model, r.body["messages"]) for r in fake.chat_requests()]


def test_an_aggregator_template_edit_sends_exactly_one_call(fake, three_layers):
    new = _replay(three_layers, AggregatorTemplate(TERSE))
    (request,) = fake.chat_requests()
    assert request.model == "omega"
    assert request.system.startswith("Answer in one line, using these answers:\n1. ")
    assert new.final == new["L3.0"].response != three_layers.final
    for node in new.calls(1) + new.calls(2):
        assert new[node].response == three_layers[node].response
        assert new[node].lineage == "reused" and new[node].cache_hit
    assert new["L3.0"].lineage == "edited" and not new["L3.0"].cache_hit
    # The proposers of layer 2 shared the aggregator's template; they keep the old one.
    assert new.config["proposer_template"] == three_layers.config["aggregator_template"]
    assert new.config["aggregator_template"] == TERSE
    assert new.references("L3.0") == ["L2.0", "L2.1", "L2.2"]


def test_editing_one_proposer_of_layer_two_sends_it_and_the_aggregator(fake, three_layers):
    new = _replay(three_layers, NodeParams("L2.1", model="delta", temperature=0.1))
    assert [r.model for r in fake.chat_requests()] == ["delta", "omega"]
    assert fake.chat_requests()[0].body["temperature"] == 0.1
    assert {n: new[n].lineage for n in new if new[n].lineage != "reused"} == {
        "L2.1": "edited",
        "L3.0": "recomputed",
    }
    assert new["L2.1"].response in fake.chat_requests()[1].system


# Each edit kind on the 3-layer run (3 proposers per layer): the calls it must send, no more.
MINIMAL = [
    pytest.param([], [], id="no-edits"),
    pytest.param(AggregatorTemplate(TERSE), ["L3.0"], id="aggregator-template"),
    pytest.param(ProposerTemplate(TERSE), ["L2.0", "L2.1", "L2.2", "L3.0"], id="proposer-template"),
    pytest.param(
        UserPrompt("Why is grass green?"),
        ["L1.0", "L1.1", "L1.2", "L2.0", "L2.1", "L2.2", "L3.0"],
        id="user-prompt",
    ),
    pytest.param(
        NodeMessage("L1.1", "system", "You are terse."),
        ["L1.1", "L2.0", "L2.1", "L2.2", "L3.0"],
        id="layer-1-system",
    ),
    pytest.param(
        NodeMessage("L3.0", "user", "Why is the sky blue at noon?"), ["L3.0"], id="aggregator-user"
    ),
    pytest.param(NodeMessage("L2.2", "system", TERSE), ["L2.2", "L3.0"], id="layer-2-system"),
    pytest.param(
        NodeParams("L1.2", temperature=0.1),
        ["L1.2", "L2.0", "L2.1", "L2.2", "L3.0"],
        id="layer-1-temperature",
    ),
    pytest.param(NodeParams("L3.0", max_tokens=64), ["L3.0"], id="aggregator-max-tokens"),
    pytest.param(NodeParams("L3.0", model="delta"), ["L3.0"], id="aggregator-model"),
    pytest.param(AddProposer("delta", layer=2), ["L2.3", "L3.0"], id="add-to-layer-2"),
    pytest.param(
        AddProposer("delta", layer=1), ["L1.3", "L2.0", "L2.1", "L2.2", "L3.0"], id="add-to-layer-1"
    ),
    pytest.param(RemoveProposer("L2.1"), ["L3.0"], id="remove-from-layer-2"),
    pytest.param(RemoveProposer("L1.1"), ["L2.0", "L2.1", "L2.2", "L3.0"], id="remove-from-layer-1"),
]


@pytest.mark.parametrize(("edits", "recomputed"), MINIMAL)
def test_each_edit_sends_only_the_calls_it_reaches(fake, three_layers, edits, recomputed):
    planned = plan(three_layers, edits, cache=False)
    assert fake.chat_requests() == []  # planning sends nothing
    new = _replay(three_layers, edits)
    assert len(fake.chat_requests()) == len(recomputed) == planned.calls
    assert [n for n in new if new[n].lineage != "reused"] == recomputed == planned.recomputed
    assert sorted(r.model for r in fake.chat_requests()) == sorted(new[n].model for n in recomputed)
    assert new.status == "complete" and new.final == new[new.aggregator()].response


def test_removing_a_proposer_shifts_the_later_ones_and_reuses_them(fake, three_layers):
    new = _replay(three_layers, RemoveProposer("L1.0"))
    assert [new[n].model for n in new.calls(1)] == ["beta", "gamma"]
    assert [new[n].origin for n in new.calls(1)] == ["L1.1", "L1.2"]
    assert [new[n].lineage for n in new.calls(1)] == ["reused", "reused"]
    assert new["L1.0"].response == three_layers["L1.1"].response
    assert sorted(r.model for r in fake.chat_requests()) == ["alpha", "beta", "gamma", "omega"]


def test_a_replay_with_no_edits_works_from_the_file_alone(tmp_path):
    with FakeLLM() as server:
        source = _run(fake_config(server.url), trace_path=tmp_path / "source.json")
    # The server is gone and there is no cache: nothing may be sent, and nothing needs to be.
    new = _replay(Trace.load(tmp_path / "source.json"), cache=tmp_path / "empty-cache")
    assert new.final == source.final
    assert all(new[n].lineage == "reused" for n in new)
    assert new.totals().spent == 0


def test_an_aggregator_edit_from_a_file_needs_no_cache(fake, tmp_path):
    _run(fake_config(fake.url), trace_path=tmp_path / "source.json", cache=tmp_path / "cache")
    fake.requests.clear()
    new = _replay(tmp_path / "source.json", AggregatorTemplate(TERSE), cache=tmp_path / "other-cache")
    assert [r.model for r in fake.chat_requests()] == ["omega"]
    assert new.graph.graph["parent_path"] == str(tmp_path / "source.json")


def test_recomputed_calls_go_through_the_cache(fake, three_layers, tmp_path):
    first = _replay(three_layers, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    again = _replay(three_layers, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    assert len(fake.chat_requests()) == 1
    assert again.final == first.final and again["L3.0"].cache_hit
    assert plan(three_layers, AggregatorTemplate(TERSE), cache=tmp_path / "c").calls == 0


def test_a_replay_of_a_replay_keeps_the_whole_lineage(fake, three_layers, tmp_path):
    first = _replay(three_layers, AggregatorTemplate(TERSE), trace_path=tmp_path / "first.json")
    second = _replay(
        Trace.load(tmp_path / "first.json"),
        NodeParams("L2.1", model="delta"),
        trace_path=tmp_path / "2.json",
    )
    third = _replay(Trace.load(tmp_path / "2.json"))
    chain = lineage(Trace.load(tmp_path / "2.json"))
    assert [step["run_id"] for step in chain] == [second.run_id, first.run_id, three_layers.run_id]
    assert [[e["kind"] for e in step["edits"]] for step in chain] == [
        ["node_params"],
        ["aggregator_template"],
        [],
    ]
    assert chain[1]["path"] == str(tmp_path / "first.json")
    assert second.graph.graph["parent_run_id"] == first.run_id
    assert [s["run_id"] for s in lineage(third)][1:] == [s["run_id"] for s in chain]
    # Edits compose: the second replay still sends the first one's template.
    assert fake.chat_requests()[-1].system.startswith("Answer in one line")
    assert [r.model for r in fake.chat_requests()] == ["omega", "delta", "omega"]


def test_a_nodes_message_edit_carries_into_replays_of_the_replay(fake, three_layers):
    first = _replay(three_layers, NodeMessage("L3.0", "system", "Pick the shortest.\n{references}"))
    second = _replay(first, NodeParams("L1.0", temperature=0.2))
    aggregator = fake.chat_requests()[-1]
    assert aggregator.model == "omega" and aggregator.system.startswith("Pick the shortest.\n1. ")
    assert second.graph.graph["node_messages"] == {
        "L3.0": {"system": "Pick the shortest.\n{references}"}
    }


def test_recorded_edits_rebuild_the_same_replay(fake, three_layers):
    edits = [AggregatorTemplate(TERSE), AddProposer(Agent(model="delta", base_url=fake.url), layer=2),
             RemoveProposer("L2.0"), NodeMessage("L1.0", "user", "Why is the sea blue?")]  # fmt: skip
    first = _replay(three_layers, edits)
    rebuilt = [edit_from_dict(json.loads(json.dumps(d))) for d in first.graph.graph["edits"]]
    assert rebuilt == edits
    assert _replay(three_layers, rebuilt, cache=True).final == first.final


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            NodeParams("L4.0", model="x"),
            r"NodeParams\(L4.0\): no node 'L4.0' to edit; trace \w+ has L1.0, L1.1",
        ),
        (
            AggregatorTemplate("Summarize."),
            r"AggregatorTemplate: the template must contain \{references\}",
        ),
        (ProposerTemplate("Improve."), r"ProposerTemplate: the template must contain \{references\}"),
        (NodeMessage("L2.0", "system", "Improve."), r"NodeMessage\(L2.0\): the template must contain"),
        (NodeMessage("L1.0", "system", "x {references}"), r"layer 1 reads no references; remove"),
        (NodeMessage("L1.0", "assistant", "x"), r"role must be 'system' or 'user'"),
        (NodeParams("L1.0"), r"nothing to change; set model, temperature, max_tokens or base_url"),
        (NodeParams("L1.0", temperature=5.0), r"NodeParams\(L1.0\): temperature: Input should be less"),
        (RemoveProposer("L3.0"), r"L3.0 is the aggregator; a mixture needs one"),
        (AddProposer("delta", layer=3), r"layer must be one of \[1, 2\]"),
        (UserPrompt("  "), r"UserPrompt: the prompt is empty"),
        ("not an edit", r"'not an edit' is not an edit; use AggregatorTemplate"),
    ],
)
def test_bad_edits_fail_with_one_line_before_any_call(fake, three_layers, edit, message):
    for attempt in (plan, _replay):
        with pytest.raises(ConfigError, match=message) as caught:
            attempt(three_layers, [AggregatorTemplate(TERSE), edit])
        assert "\n" not in str(caught.value)
    assert fake.chat_requests() == []


def test_removing_every_proposer_of_a_layer_or_an_edited_removed_node_is_refused(fake, three_layers):
    with pytest.raises(ConfigError, match=r"L1\.2 is the last proposer of layer 1"):
        plan(three_layers, [RemoveProposer("L1.0"), RemoveProposer("L1.1"), RemoveProposer("L1.2")])
    with pytest.raises(ConfigError, match=r"no node 'L1.0' to edit \(another edit removes it\)"):
        plan(three_layers, [RemoveProposer("L1.0"), NodeParams("L1.0", model="x")])
    with pytest.raises(ConfigError, match="this run has 2 layers"):
        plan(_run(fake_config(fake.url)), ProposerTemplate(TERSE))


def test_the_plan_estimates_tokens_and_cost_of_what_it_will_send(fake, tmp_path):
    prices = {"omega": Price(input=2.0, output=4.0), "alpha": Price(input=1.0, output=1.0)}
    source = _run(fake_config(fake.url, layers=3, prices=prices))
    planned = plan(source, AggregatorTemplate(TERSE), cache=False)
    new = _replay(source, AggregatorTemplate(TERSE))
    usage = new["L3.0"].usage
    assert planned.calls == 1 and planned.recomputed == ["L3.0"]
    assert 0.6 < planned.prompt_tokens / usage.prompt_tokens < 1.6
    assert planned.completion_tokens == source["L3.0"].completion_tokens
    assert planned.cost == pytest.approx(
        (2.0 * planned.prompt_tokens + 4.0 * planned.completion_tokens) / 1e6
    )
    unknown = plan(source, NodeParams("L1.1", temperature=0.1), cache=False)  # beta has no price
    assert unknown.calls == 5 and unknown.cost is None
    text = str(planned)
    assert "L3.0   edited" in text and "template" in text and "1 call to send, 6 reused" in text
    assert json.loads(json.dumps(planned.to_dict()))["recomputed"] == ["L3.0"]
    assert [n.reason for n in unknown.nodes if n.node in ("L1.1", "L2.0")] == [
        "temperature 0.7 → 0.1",
        "reads L1.1",
    ]


def test_a_dry_run_writes_no_trace_and_no_cache_entry(fake, three_layers, tmp_path, monkeypatch):
    monkeypatch.setenv("MOA_LAB_TRACE_DIR", str(tmp_path / "traces"))
    cache = moa_lab.CallCache(tmp_path / "cache")
    plan(three_layers, [UserPrompt("Why is grass green?")], cache=cache)
    assert len(cache) == 0 and not (tmp_path / "traces").exists()
    assert fake.chat_requests() == []


def test_replays_are_saved_under_traces_by_default(fake, three_layers, tmp_path):
    new = replay(three_layers, AggregatorTemplate(TERSE), cache=False, progress=False)
    assert new.path.parent == tmp_path / "traces"
    assert new.path.name.endswith(f"-replay-{new.run_id}.json")
    assert Trace.load(new.path).graph.graph["parent_run_id"] == three_layers.run_id


def test_self_moa_samples_stay_distinct_when_a_replay_adds_one(fake, tmp_path):
    source = _run(fake_config(fake.url, proposers=["same", "same", "same"]), cache=tmp_path / "c")
    fake.requests.clear()
    edits = [AddProposer("same", layer=1), NodeParams("L1.0", max_tokens=100)]
    new = _replay(source, edits, cache=tmp_path / "c")
    assert len({new[n].cache_key for n in new.calls(1)}) == 4
    # Reused samples keep their replicate; the added copy of them takes a fresh one.
    assert [new[n].replicate for n in new.calls(1)] == [0, 1, 2, 3]
    assert [new[n].lineage for n in new.calls(1)] == ["edited", "reused", "reused", "edited"]
    # Both the edited sample and the new one were sent, not served the old samples from the cache.
    assert len(fake.chat_requests()) == 3


def test_a_failed_proposer_is_reused_as_failed_and_a_missing_call_is_made(tmp_path):
    with FakeLLM(broken={"beta": 400}) as server:
        source = _run(fake_config(server.url, max_retries=0))
        server.requests.clear()
        new = _replay(source, AggregatorTemplate(TERSE))
        assert [r.model for r in server.chat_requests()] == ["omega"]
        assert new["L1.1"].error and new.references("L2.0") == ["L1.0", "L1.2"]
        # A run killed before its aggregator finished: the replay makes just that call.
        source.graph.remove_node("L2.0")
        server.requests.clear()
        resumed = _replay(source)
        assert [r.model for r in server.chat_requests()] == ["omega"]
        assert resumed["L2.0"].lineage == "recomputed"
        assert plan(source, cache=False).nodes[-1].reason == "not in the source trace"


def test_a_rank_replay_picks_again(fake):
    source = _run(fake_config(fake.url, aggregation="rank", aggregator_template=RANKER_TEMPLATE))
    new = _replay(source, RemoveProposer("L1.0"))
    assert new["L2.0"].lineage == "recomputed"
    assert new["L2.0"].response.endswith(f"having read 2 references [{new['L2.0'].response[-9:-1]}]")
    assert new["L2.0"].picked == "L1.1" and new.final == new["L1.1"].response


def test_only_the_agents_called_need_their_key(fake, monkeypatch):
    config = fake_config(fake.url)
    keyed = config.model_copy(
        update={
            "proposers": [
                [a.model_copy(update={"api_key_env": "MOA_TEST_KEY"}) for a in config.proposers[0]]
            ]
        }
    )
    monkeypatch.setenv("MOA_TEST_KEY", "sk-test")
    source = _run(keyed)
    monkeypatch.delenv("MOA_TEST_KEY")
    fake.requests.clear()
    assert _replay(source, AggregatorTemplate(TERSE)).final
    with pytest.raises(ConfigError, match="MOA_TEST_KEY is not set"):
        _replay(source, NodeParams("L1.0", temperature=0.1))
    assert [r.model for r in fake.chat_requests()] == ["omega"]


# -- the command line ------------------------------------------------------------------------
def _cli(argv: list[str]) -> int:
    return main(argv)


def test_cli_aggregator_prompt_prints_the_new_answer_after_one_call(
    fake, three_layers, tmp_path, capsys
):
    three_layers.save(tmp_path / "t.json")
    (tmp_path / "agg.txt").write_text(TERSE)
    out = tmp_path / "new.json"
    code = _cli(["replay", str(tmp_path / "t.json"), "--aggregator-prompt", str(tmp_path / "agg.txt"),
                 "--trace-out", str(out), "--no-cache", "--quiet"])  # fmt: skip
    printed = capsys.readouterr()
    assert code == 0 and [r.model for r in fake.chat_requests()] == ["omega"]
    new = Trace.load(out)
    assert printed.out == new.final + "\n" and f"trace: {out}" in printed.err
    assert new.config["aggregator_template"] == TERSE


def test_cli_dry_run_prints_the_plan_and_sends_nothing(fake, three_layers, tmp_path, capsys):
    three_layers.save(tmp_path / "t.json")
    (tmp_path / "p.txt").write_text(TERSE)
    _cli(["replay", str(tmp_path / "t.json"), "--proposer-prompt", str(tmp_path / "p.txt"), "--dry-run"])
    out = capsys.readouterr().out
    assert fake.chat_requests() == []
    assert "4 calls to send, 3 reused" in out and "L3.0   recomputed" in out
    _cli(["replay", str(tmp_path / "t.json"), "--model", "L2.1", "delta", "--dry-run", "--json"])
    assert json.loads(capsys.readouterr().out)["recomputed"] == ["L2.1", "L3.0"]


def test_cli_every_edit_kind(fake, three_layers, tmp_path, capsys):
    three_layers.save(tmp_path / "t.json")
    (tmp_path / "s.txt").write_text("You are terse.")
    _cli(["replay", str(tmp_path / "t.json"), "--prompt", "Why is grass green?",
          "--system", "L1.0", str(tmp_path / "s.txt"), "--user", "L1.1", "Why is the sea blue?",
          "--temperature", "L1.2", "0.1", "--max-tokens", "L3.0", "99", "--add-proposer", "all", "delta",
          "--remove-proposer", "L2.0", "--no-cache", "--quiet", "--json",
          "--trace-out", str(tmp_path / "new.json")])  # fmt: skip
    printed = json.loads(capsys.readouterr().out)
    new = Trace.load(tmp_path / "new.json")
    assert printed == {"answer": new.final, "trace": str(tmp_path / "new.json")}
    assert [e["kind"] for e in new.graph.graph["edits"]] == [
        "user_prompt", "node_message", "node_message", "node_params", "node_params", "add_proposer",
        "remove_proposer",
    ]  # fmt: skip
    assert [new[n].model for n in new.calls(2)] == ["beta", "gamma", "delta"]
    assert len(fake.chat_requests()) == len(new) == 8


def test_cli_bad_input_is_one_line(fake, three_layers, tmp_path, cli_fails):
    three_layers.save(tmp_path / "t.json")
    cli_fails(
        r"--aggregator-prompt: cannot read .*missing.txt",
        ["replay", str(tmp_path / "t.json"), "--aggregator-prompt", str(tmp_path / "missing.txt")],
    )
    cli_fails(
        r"--temperature: 'hot' is not a float",
        ["replay", str(tmp_path / "t.json"), "--temperature", "L1.0", "hot"],
    )
    (tmp_path / "bad.txt").write_text("no placeholder")
    cli_fails(
        r"must contain \{references\}",
        ["replay", str(tmp_path / "t.json"), "--aggregator-prompt", str(tmp_path / "bad.txt")],
    )
    assert fake.chat_requests() == []


# -- the PromptLab widget ----------------------------------------------------------------------
def test_prompt_lab_runs_an_aggregator_template_for_one_call(fake, three_layers, tmp_path):
    from moa_lab.views import NODE_TRACE, PromptLab

    lab = PromptLab(three_layers, cache=False, trace_dir=tmp_path / "attempts")
    assert lab.template.value == three_layers.config["aggregator_template"]
    assert "send <b>0</b> calls" in lab.plan_panel.value
    lab.template.value = TERSE
    assert "send <b>1</b> call " in lab.plan_panel.value and "L3.0" in lab.plan_panel.value
    lab.run_button.click()
    assert [r.model for r in fake.chat_requests()] == ["omega"]
    (attempt,) = lab.attempts
    assert attempt.recomputed == ["L3.0"]
    assert attempt.summary == (
        f"replay of {three_layers.run_id}: aggregator template "
        "'Answer in one line, using these answers: {references}'"
    )
    assert html.escape(attempt.summary) in lab.history.value  # what the attempt is, in the history
    assert attempt.trace.path == tmp_path / "attempts" / f"{three_layers.run_id}-attempt-1.json"
    assert Trace.load(attempt.trace.path).final == attempt.trace.final
    assert "after · " + attempt.trace.run_id in lab.answers.value
    assert "<ins" in lab.answers.value and "<del" in lab.answers.value
    lit = [(d.customdata, d.marker.opacity) for d in lab.graph.data if d.meta == NODE_TRACE]
    bright = {n for nodes, alpha in lit for n, a in zip(nodes, alpha, strict=True) if a == 1.0}
    assert bright == {"L3.0"}
    assert str(attempt.trace.path) in lab.history.value


def test_prompt_lab_edits_one_calls_messages_and_keeps_a_history(fake, three_layers, tmp_path):
    from moa_lab.views import PromptLab

    lab = PromptLab(three_layers, cache=False, trace_dir=tmp_path)
    lab.node.value = "L2.1"
    assert lab.system.value == three_layers.config["aggregator_template"]
    assert lab.user.value == "Why is the sky blue?"
    lab.system.value = "Correct the others.\n{references}"
    assert lab.edits() == [NodeMessage("L2.1", "system", "Correct the others.\n{references}")]
    first = lab.run()
    assert [r.model for r in fake.chat_requests()] == ["beta", "omega"] and first.recomputed == [
        "L2.1",
        "L3.0",
    ]
    lab.system.value = three_layers.config["aggregator_template"]  # back as it was: no edit
    lab.template.value = "<b>bold</b> {references}"
    second = lab.run()
    assert [a.number for a in lab.attempts] == [1, 2] and second.summary == (
        f"replay of {three_layers.run_id}: aggregator template '<b>bold</b> {{references}}'"
    )
    assert "&lt;b&gt;bold&lt;/b&gt;" in lab.history.value
    lab.show(1)
    assert first.trace.run_id in lab.answers.value
    assert len(list(tmp_path.glob("*-attempt-*.json"))) == 2


def test_prompt_lab_shows_a_bad_template_as_one_line_and_sends_nothing(fake, three_layers):
    from moa_lab.views import PromptLab

    lab = PromptLab(three_layers, cache=False, trace_dir=None)
    lab.template.value = "Summarize the answers."
    assert "must contain {references}" in lab.status.value
    assert lab.run() is None and lab.attempts == []
    assert fake.chat_requests() == []
