"""Replay: each bad edit's exact one-line message, what edits change in the new run, the plan's
words and numbers, and the lineage a replay records.

One FakeLLM serves the whole file; the 3-layer source run is made once.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import replace

import pytest
from core_support import QUESTION, replay, reset, run, sent

import moa_lab
from moa_lab import (
    AddProposer,
    Agent,
    AggregatorTemplate,
    CallCache,
    ConfigError,
    NodeMessage,
    NodeParams,
    Price,
    ProposerTemplate,
    RemoveProposer,
    RunError,
    SetConfig,
    Trace,
    UserPrompt,
    edit_from_dict,
    lineage,
    plan,
)
from moa_lab._cache import canonical_json
from moa_lab._strategies import config_from_dict
from moa_lab._trace.attributes import describe_replay
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config

TERSE = "Answer in one line, using these answers:\n{references}"
NODES = "L1.0, L1.1, L1.2, L2.0, L2.1, L2.2, L3.0"


@pytest.fixture(scope="module")
def server():
    with FakeLLM() as started:
        yield started


@pytest.fixture
def fake(server):
    return reset(server)


@pytest.fixture(scope="module")
def source(server):
    """A 3-layer run: alpha, beta, gamma in layers 1 and 2, then omega."""
    return run(fake_config(server.url, layers=3))


@pytest.fixture(scope="module")
def two_layers(server):
    return run(fake_config(server.url))


def _refused(trace, edits, message):
    with pytest.raises(ConfigError) as caught:
        plan(trace, edits, cache=False)
    assert str(caught.value) == message


# -- what edits say about themselves ---------------------------------------------------------------
def test_an_edit_says_in_a_few_words_what_it_changes():
    assert str(AggregatorTemplate(TERSE)) == "aggregator template"
    assert str(ProposerTemplate(TERSE)) == "proposer template"
    assert str(UserPrompt("q")) == "user prompt"
    assert str(NodeMessage("L1.0", "system", "x")) == "L1.0 system message"
    assert str(NodeParams("L2.1", model="delta", max_tokens=9)) == "L2.1 model=delta, max_tokens=9"
    assert str(NodeParams("L2.1", temperature=0.0)) == "L2.1 temperature=0.0"
    assert str(AddProposer("delta")) == "add delta to every proposer layer"
    assert str(AddProposer(Agent(model="eps"), layer=2)) == "add eps to layer 2"
    assert str(RemoveProposer("L1.2")) == "remove L1.2"


def test_an_unknown_edit_kind_lists_the_kinds():
    with pytest.raises(ConfigError) as caught:
        edit_from_dict({"kind": "rename", "node": "L1.0"})
    assert str(caught.value) == (
        "unknown edit kind 'rename'; choose one of: aggregator_template, proposer_template, "
        "user_prompt, node_message, node_params, add_proposer, remove_proposer, set_config"
    )
    with pytest.raises(ConfigError, match=r"^unknown edit kind None;"):
        edit_from_dict({})


def test_edits_round_trip_as_plain_data():
    agent = Agent(model="eps", base_url="http://x/v1", temperature=0.1)
    for edit in (AddProposer(agent, layer=1), AddProposer("delta"), NodeParams("L1.0", max_tokens=3)):
        data = json.loads(json.dumps(edit.to_dict()))
        assert data["kind"] == edit.kind and edit_from_dict(data) == edit
    assert AddProposer(agent).to_dict()["agent"]["base_url"] == "http://x/v1"


# -- bad edits: one exact line, nothing sent ----------------------------------------------------------
NEEDS = ": the template must contain {references} where the answers go"
NOT_AN_EDIT = (
    " is not an edit; use AggregatorTemplate, ProposerTemplate, UserPrompt, NodeMessage, NodeParams, "
    "AddProposer or RemoveProposer"
)
ROLE = "NodeMessage(L1.0): role must be 'system' or 'user' and content a string"
EMPTY = "UserPrompt: the prompt is empty; give the question to ask"
LAYERS = "AddProposer: layer must be one of [1, 2] (the proposer layers) or None for every one of them"


def test_bad_edits_are_refused_with_what_to_do(fake, source):
    no_node = f"no node 'L4.0' to edit; trace {source.run_id} has {NODES}"
    removed = f"no node 'L1.0' to edit (another edit removes it); trace {source.run_id} has {NODES}"
    cases = [
        (NodeParams("L4.0", model="x"), f"NodeParams(L4.0): {no_node}"),
        ([RemoveProposer("L1.0"), NodeParams("L1.0", model="x")], f"NodeParams(L1.0): {removed}"),
        (["not an edit"], "'not an edit'" + NOT_AN_EDIT),
        ([" ".join(["abc"] * 12)], "'" + "abc " * 8 + "abc…" + NOT_AN_EDIT),  # cut to 40 characters
        (AggregatorTemplate("Sum up."), "AggregatorTemplate" + NEEDS),
        (AggregatorTemplate(None), "AggregatorTemplate" + NEEDS),
        (ProposerTemplate("Improve."), "ProposerTemplate" + NEEDS),
        (UserPrompt("  "), EMPTY),
        (UserPrompt(None), EMPTY),
        (NodeMessage("L1.0", "assistant", "x"), ROLE),
        (NodeMessage("L1.0", "user", None), ROLE),
        (
            NodeMessage("L1.0", "system", "x {references}"),
            "NodeMessage(L1.0): layer 1 reads no references; remove {references} from the message",
        ),
        (NodeMessage("L2.0", "system", "Improve."), "NodeMessage(L2.0)" + NEEDS),
        (
            NodeParams("L1.0"),
            "NodeParams(L1.0): nothing to change; set model, temperature, max_tokens or base_url",
        ),
        (RemoveProposer("L3.0"), "RemoveProposer(L3.0): L3.0 is the aggregator; a mixture needs one"),
        (RemoveProposer("L4.0"), f"RemoveProposer(L4.0): {no_node}"),
        (NodeMessage("L4.0", "user", "x"), f"NodeMessage(L4.0): {no_node}"),
        (
            [RemoveProposer("L2.0"), RemoveProposer("L2.1"), RemoveProposer("L2.2")],
            "RemoveProposer(L2.2): L2.2 is the last proposer of layer 2",
        ),
        (AddProposer("delta", layer=3), LAYERS),
        (AddProposer("delta", layer=0), LAYERS),
    ]
    for edits, message in cases:
        _refused(source, edits, message)
    assert fake.chat_requests() == []


def test_bad_edits_of_other_shapes_of_run(fake, two_layers):
    _refused(
        two_layers,
        ProposerTemplate(TERSE),
        "ProposerTemplate: this run has 2 layers, so no proposer reads references; "
        "use AggregatorTemplate to change the aggregator's",
    )
    one_call = run(fake_config(fake.url, layers=1, proposers=()))
    _refused(
        one_call,
        AggregatorTemplate(TERSE),
        "AggregatorTemplate: this run is one call that reads no references; use "
        "NodeMessage('L1.0', 'system' or 'user', text) to change what it was sent",
    )
    no_user = run(fake_config(fake.url), prompt=[{"role": "system", "content": "Say hi."}])
    no_message = "the run's messages have no user message to replace"
    _refused(no_user, UserPrompt("Hi?"), f"UserPrompt: {no_message}")
    _refused(no_user, NodeMessage("L2.0", "user", "Hi?"), f"NodeMessage(L2.0): {no_message}")


def test_a_bad_agent_setting_is_one_line_naming_the_edit(source):
    with pytest.raises(ConfigError, match=r"^NodeParams\(L1.0\): temperature: ") as caught:
        plan(source, NodeParams("L1.0", temperature=5.0), cache=False)
    assert "\n" not in str(caught.value)
    with pytest.raises(ConfigError, match=r"^AddProposer: "):
        plan(source, AddProposer("", layer=1), cache=False)


# -- what edits change --------------------------------------------------------------------------------
def test_an_aggregator_template_of_a_two_layer_run_leaves_no_proposer_template(fake, two_layers):
    new = replay(two_layers, AggregatorTemplate(TERSE))
    assert new.config["proposer_template"] is None and new.config["aggregator_template"] == TERSE
    assert sent(fake) == ["omega"]


def test_a_second_aggregator_template_keeps_the_proposers_first_template(fake, source):
    new = replay(source, [AggregatorTemplate(TERSE), AggregatorTemplate("Again:\n{references}")])
    assert new.config["proposer_template"] == source.config["aggregator_template"]
    assert new.config["aggregator_template"] == "Again:\n{references}"


def test_a_proposer_template_reaches_the_later_proposers_only(fake, source):
    new = replay(source, ProposerTemplate(TERSE))
    layer2 = [r for r in fake.chat_requests() if r.model != "omega"]
    assert len(layer2) == 3 and all(r.system.startswith("Answer in one line") for r in layer2)
    assert not fake.chat_requests()[-1].system.startswith("Answer in one line")
    assert new.config["proposer_template"] == TERSE


def test_an_added_proposer_copies_the_first_proposers_settings(fake):
    config = fake_config(fake.url, proposers=["alpha", "beta"])
    first = config.proposers[0][0].model_copy(update={"temperature": 0.2, "seed": 4})
    source = run(config.model_copy(update={"proposers": [[first, config.proposers[0][1]]]}))
    fake.requests.clear()
    new = replay(source, AddProposer("delta"))
    added = next(r for r in fake.chat_requests() if r.model == "delta")
    assert added.body["temperature"] == 0.2 and added.body["seed"] == 4
    assert new["L1.2"].model == "delta" and new["L1.2"].origin is None
    (node,) = [n for n in new.to_dict()["nodes"] if n["id"] == "L1.2"]
    assert node["lineage"] == "edited" and "origin" not in node and "picked" not in node
    fake.requests.clear()
    own = Agent(model="eps", base_url=fake.url, temperature=1.5)
    replay(source, AddProposer(own, layer=1))
    assert next(r for r in fake.chat_requests() if r.model == "eps").body["temperature"] == 1.5


def test_an_added_proposer_joins_every_proposer_layer(fake, source):
    new = replay(source, AddProposer("delta"))
    assert [new[n].model for n in new.calls(1)] == ["alpha", "beta", "gamma", "delta"]
    assert [new[n].model for n in new.calls(2)] == ["alpha", "beta", "gamma", "delta"]
    assert new.references("L3.0") == ["L2.0", "L2.1", "L2.2", "L2.3"]


def test_a_user_message_edit_replaces_the_last_user_message_only(fake):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    source = run(fake_config(fake.url), prompt=messages)
    fake.requests.clear()
    new = replay(source, NodeMessage("L1.1", "user", "changed"))
    (request,) = [r for r in fake.chat_requests() if r.model == "beta"]
    assert [m["content"] for m in request.body["messages"]] == ["first", "ok", "changed"]
    assert new.node_messages == {"L1.1": {"user": "changed"}}
    prompt = replay(source, UserPrompt("third"))
    assert [m["content"] for m in prompt.messages] == ["first", "ok", "third"]
    assert prompt.prompt == "third"


def test_a_system_message_edit_replaces_the_users_system_message(fake):
    messages = [{"role": "system", "content": "Be French."}, {"role": "user", "content": QUESTION}]
    source = run(fake_config(fake.url), prompt=messages)
    fake.requests.clear()
    replay(source, NodeMessage("L2.0", "system", "Pick one:\n{references}"))
    aggregator = fake.chat_requests()[-1]
    assert aggregator.system.startswith("Pick one:\n1. ") and "French" not in aggregator.system
    assert aggregator.body["messages"][1:] == [{"role": "user", "content": QUESTION}]


def test_removing_a_node_drops_its_message_edit(fake, source):
    edited = replay(source, NodeMessage("L1.1", "system", "Be brief."))
    again = replay(edited, RemoveProposer("L1.1"))
    assert again.node_messages == {}
    kept = replay(edited, RemoveProposer("L1.0"))
    assert kept.node_messages == {"L1.0": {"system": "Be brief."}}
    assert kept["L1.0"].origin == "L1.1" and kept["L1.0"].reused


# -- the plan -----------------------------------------------------------------------------------------
def test_the_plan_says_why_each_call_is_sent(fake, source):
    planned = plan(
        source,
        [NodeParams("L1.0", model="delta", temperature=0.1), NodeMessage("L2.1", "system", TERSE),
         NodeParams("L3.0", base_url="http://127.0.0.1:9/v1"), AddProposer("eps", layer=1),
         NodeMessage("L1.2", "user", "Why is the sea blue?")],
        cache=False,
    )  # fmt: skip
    reasons = {n.node: (n.lineage, n.reason) for n in planned.nodes}
    assert reasons == {
        "L1.0": ("edited", "model alpha → delta, temperature 0.7 → 0.1"),
        "L1.1": ("reused", "unchanged"),
        "L1.2": ("edited", "user message"),
        "L1.3": ("edited", "new proposer"),
        "L2.0": ("recomputed", "reads L1.0, L1.2, L1.3"),
        "L2.1": ("edited", "system message"),
        "L2.2": ("recomputed", "reads L1.0, L1.2, L1.3"),
        "L3.0": ("edited", f"base_url {fake.url} → http://127.0.0.1:9/v1"),
    }
    prompt = plan(source, UserPrompt("Why?"), cache=False)
    assert {(n.lineage, n.reason) for n in prompt.nodes} == {("edited", "user prompt")}
    template = plan(source, AggregatorTemplate(TERSE), cache=False)
    assert template.nodes[-1].reason == "template"
    # A template is no input of a first-layer call: an edit of one names only what changed.
    both = plan(source, [ProposerTemplate(TERSE), NodeParams("L1.0", temperature=0.1)], cache=False)
    assert both.nodes[0].reason == "temperature 0.7 → 0.1"


def test_a_removed_proposer_leaves_its_readers_with_changed_references(fake, source):
    planned = plan(source, RemoveProposer("L1.2"), cache=False)
    assert [n.reason for n in planned.nodes if n.sends] == ["its references changed"] * 3 + [
        "reads L2.0, L2.1, L2.2"
    ]


def test_the_plan_as_text_and_data(fake):
    prices = {"omega": Price(input=1000.0, output=2000.0)}
    source = run(fake_config(fake.url, prices=prices, proposers=["alpha", "b" * 28, "c" * 27]))
    planned = plan(source, AggregatorTemplate(TERSE), cache=False)
    (node,) = [n for n in planned.nodes if n.sends]
    lines = str(planned).splitlines()
    assert lines[0] == f"{'node':<7}{'lineage':<12}{'model':<28}{'sends':<7}{'in':>7}{'out':>7}  why"
    assert lines[1] == f"{'L1.0':<7}{'reused':<12}{'alpha':<28}{'-':<7}{'':>14}  unchanged"
    assert lines[2].startswith(f"{'L1.1':<7}{'reused':<12}{'b' * 26 + '…':<28}-")
    assert lines[3].startswith(f"{'L1.2':<7}{'reused':<12}{'c' * 27:<28}-")
    assert lines[4] == (
        f"{'L2.0':<7}{'edited':<12}{'omega':<28}{'call':<7}"
        f"{node.prompt_tokens:>7}{node.completion_tokens:>7}  template"
    )
    cost = (1000.0 * node.prompt_tokens + 2000.0 * node.completion_tokens) / 1e6
    assert planned.cost == pytest.approx(cost)
    assert lines[5] == (
        f"replay of {source.run_id}: 1 call to send, 3 reused; about {node.prompt_tokens} prompt + "
        f"{node.completion_tokens} completion tokens, cost ${planned.cost:.4f}"
    )
    assert lines[6] == f"endpoints: {fake.url}"
    assert len(lines) == 7
    data = planned.to_dict()
    assert data == {
        "source": source.run_id,
        "calls": 1,
        "recomputed": ["L2.0"],
        "prompt_tokens": node.prompt_tokens,
        "completion_tokens": node.completion_tokens,
        "cost": planned.cost,
        "problem": None,
        "keys": [],
        "nodes": data["nodes"],
    }
    assert data["nodes"][3] == {
        "node": "L2.0",
        "model": "omega",
        "lineage": "edited",
        "sends": True,
        "reason": "template",
        "prompt_tokens": node.prompt_tokens,
        "completion_tokens": node.completion_tokens,
        "cost": node.cost,
        "endpoint": fake.url,
        "key_env": None,
    }
    assert repr(planned) == f"<Plan of {source.run_id}: 1 calls, recompute ['L2.0']>"
    *_, several, endpoints = str(plan(source, UserPrompt("Why?"), cache=False)).splitlines()
    assert ": 4 calls to send, 0 reused; " in several and several.endswith("cost unknown")
    assert endpoints == f"endpoints: {fake.url}"


def test_a_plan_from_the_cache_sends_nothing_and_says_so(fake, source, tmp_path):
    replay(source, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    planned = plan(source, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    assert planned.calls == 0 and planned.recomputed == ["L3.0"]
    assert str(planned).splitlines()[-2].startswith(f"{'L3.0':<7}{'edited':<12}{'omega':<28}cache")
    assert planned.prompt_tokens == 0 and planned.cost == 0


def test_a_plan_that_would_fail_says_why(fake):
    with FakeLLM(broken={"omega": 400}) as broken, pytest.raises(RunError) as failed:
        run(fake_config(broken.url, max_retries=0))
    source = failed.value.trace
    planned = plan(source, cache=False)
    assert planned.problem and planned.problem.startswith("the aggregator failed: HTTP 400")
    assert str(planned).splitlines()[-1] == f"the replay would fail: {planned.problem}"


def test_the_estimate_is_the_requests_characters_over_the_sources_characters_per_token(fake):
    source = run(fake_config(fake.url, layers=3))
    capped = plan(source, NodeParams("L3.0", max_tokens=3), cache=False)
    assert capped.nodes[-1].completion_tokens == 3
    template = TERSE + " " + "pad " * 400
    planned = plan(source, AggregatorTemplate(template), cache=False)
    new = replay(source, AggregatorTemplate(template))
    chars = sum(len(canonical_json(list(c.messages))) for c in source.records())
    per_token = chars / sum(c.prompt_tokens for c in source.records())
    request = len(canonical_json(list(new["L3.0"].messages)))
    assert planned.prompt_tokens == math.ceil(request / per_token)
    assert planned.completion_tokens == source["L3.0"].completion_tokens


def test_without_recorded_usage_a_token_is_four_characters(fake, source):
    graph = source.graph.copy()
    for node in graph:
        graph.nodes[node]["call"] = replace(graph.nodes[node]["call"], usage=None)
    bare = Trace(graph)
    planned = plan(bare, AggregatorTemplate(TERSE), cache=False)
    new = replay(source, AggregatorTemplate(TERSE))
    request = len(canonical_json(list(new["L3.0"].messages)))
    assert planned.prompt_tokens == math.ceil(request / 4)
    assert planned.completion_tokens == math.ceil(len(source["L3.0"].response) / 4)
    reused = [n for n in planned.nodes if not n.sends]
    assert len(reused) == 6 and {(n.prompt_tokens, n.completion_tokens) for n in reused} == {(0, 0)}


LONG_QUESTION = "Why is the sky blue on some days and grey or white or pink on other days of the year?"


@pytest.fixture(scope="module")
def uneven(server, source):
    """A replay of the 3-layer run in which L1.1 and L2.0 were asked a much longer question, so their
    answers are longer (in words too) than their siblings'."""
    return replay(
        source,
        [NodeMessage("L1.1", "user", LONG_QUESTION), NodeMessage("L2.0", "user", LONG_QUESTION)],
    )


def test_a_recomputed_call_is_estimated_from_its_own_source_answer(fake, uneven):
    assert uneven["L1.1"].completion_tokens > uneven["L1.0"].completion_tokens
    planned = plan(uneven, NodeParams("L1.1", temperature=0.1), cache=False)
    (estimate,) = [n for n in planned.nodes if n.node == "L1.1"]
    assert estimate.completion_tokens == uneven["L1.1"].completion_tokens


def test_a_call_reading_an_estimate_is_estimated_on_the_answer_it_will_read(fake, uneven):
    # The fake ignores temperature, so the replay's L1.1 answers exactly as the source's did and
    # L2.x send exactly the requests the dry run estimated.
    planned = plan(uneven, NodeParams("L1.1", temperature=0.1), cache=False)
    new = replay(uneven, NodeParams("L1.1", temperature=0.1))
    chars = sum(len(canonical_json(list(c.messages))) for c in uneven.records())
    per_token = chars / sum(c.prompt_tokens for c in uneven.records())
    for node in ("L2.1", "L2.2"):
        request = len(canonical_json(list(new[node].messages)))
        (estimate,) = [n for n in planned.nodes if n.node == node]
        assert estimate.prompt_tokens == math.ceil(request / per_token), node


def test_a_new_proposer_is_estimated_from_the_first_answer_of_its_layer(fake, uneven):
    planned = plan(uneven, AddProposer("delta", layer=2), cache=False)
    (added,) = [n for n in planned.nodes if n.node == "L2.3"]
    assert added.completion_tokens == uneven["L2.0"].completion_tokens
    assert uneven["L2.0"].completion_tokens > uneven["L2.1"].completion_tokens


def test_a_call_with_no_answer_to_go_by_is_estimated_as_empty(fake, two_layers):
    killed = Trace(two_layers.graph.copy())
    killed.graph.remove_node("L2.0")
    planned = plan(killed, cache=False)
    assert planned.nodes[-1].node == "L2.0" and planned.nodes[-1].completion_tokens == 0


def test_plans_use_the_default_cache(fake, source):
    replay(source, AggregatorTemplate(TERSE), cache=True)
    assert plan(source, AggregatorTemplate(TERSE)).calls == 0
    assert plan(source, AggregatorTemplate(TERSE), cache=False).calls == 1


def test_a_new_proposer_is_estimated_from_a_sibling_of_its_layer(fake, two_layers):
    planned = plan(two_layers, AddProposer("delta", layer=1), cache=False)
    added = next(n for n in planned.nodes if n.node == "L1.3")
    assert added.completion_tokens == two_layers["L1.0"].completion_tokens > 0
    assert added.prompt_tokens > 0


# -- lineage ------------------------------------------------------------------------------------------
def test_the_lineage_of_a_plain_run_is_itself(source, tmp_path):
    assert lineage(source) == [{"run_id": source.run_id, "path": None, "edits": []}]
    new = replay(source, AggregatorTemplate(TERSE), trace_path=tmp_path / "r.json")
    chain = lineage(new)
    assert chain[0] == {
        "run_id": new.run_id,
        "path": str(tmp_path / "r.json"),
        "edits": [{"kind": "aggregator_template", "text": TERSE}],
    }
    assert chain[1] == {"run_id": source.run_id, "path": None, "edits": []}
    assert new.parent_run_id == source.run_id and new.graph.graph["parent_path"] is None


def test_a_trace_with_a_bad_config_is_named_in_the_error(source):
    graph = source.graph.copy()
    graph.graph["config"] = source.config | {"max_retries": -1}
    with pytest.raises(ConfigError) as caught:
        plan(Trace(graph), AggregatorTemplate(TERSE), cache=False)
    assert str(caught.value).startswith(f"trace {source.run_id}: max_retries: ")


def test_failed_calls_do_not_skew_the_characters_per_token(fake):
    fake.broken["beta"] = 400
    failed = run(fake_config(fake.url, max_retries=0))
    del fake.broken["beta"]
    planned = plan(failed, AggregatorTemplate(TERSE), cache=False)
    new = replay(failed, AggregatorTemplate(TERSE))
    answered = [c for c in failed.records() if c.ok]
    per_token = sum(len(canonical_json(list(c.messages))) for c in answered) / sum(
        c.prompt_tokens for c in answered
    )
    request = len(canonical_json(list(new["L2.0"].messages)))
    assert planned.prompt_tokens == math.ceil(request / per_token)


def test_replay_defaults_cache_save_and_show_progress(fake, source, capsys, tmp_path):
    seen = []

    def on_call(trace, node):
        if node in trace:  # each call once, when it is recorded
            seen.append(node)

    new = moa_lab.replay(source, AggregatorTemplate(TERSE), on_call=on_call)
    assert re.fullmatch(r"[0-9a-f]{12}", new.run_id) and new.path.exists()
    assert new.path.name.endswith(f"-why-is-the-sky-blue-replay-{new.run_id}.json")
    assert seen == new.calls() and "MoA" in capsys.readouterr().err
    assert len(CallCache(tmp_path / "cache")) == 1
    fake.requests.clear()
    again = asyncio.run(moa_lab.areplay(source, AggregatorTemplate(TERSE), on_call=on_call))
    assert fake.chat_requests() == [] and again["L3.0"].cache_hit  # from the default cache
    assert again.path.exists() and again.path != new.path and "MoA" in capsys.readouterr().err
    assert seen == new.calls() * 2


def test_a_recomputed_call_the_cache_answers_needs_no_key(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("MOA_CORE_KEY", "sk-core")
    config = fake_config(fake.url, proposers=["alpha"])
    keyed = config.model_copy(
        update={"aggregator": config.aggregator.model_copy(update={"api_key_env": "MOA_CORE_KEY"})}
    )
    source = run(keyed)
    replay(source, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    monkeypatch.delenv("MOA_CORE_KEY")
    again = replay(source, AggregatorTemplate(TERSE), cache=tmp_path / "c")
    assert again["L2.0"].cache_hit


def test_an_edit_carried_from_the_source_is_no_change(fake, source, capsys):
    first = replay(source, NodeMessage("L3.0", "system", "Pick the shortest:\n{references}"))
    planned = plan(first, NodeParams("L3.0", max_tokens=64), cache=False)
    assert planned.nodes[-1].reason == "max_tokens 512 → 64"
    assert capsys.readouterr().err == ""  # a plan shows no progress bar


def test_a_reused_call_carries_its_sources_answer_and_costs_nothing_new(fake):
    prices = {"alpha": Price(input=1e6, output=1e6)}
    fake.broken["beta"] = 400
    source = run(fake_config(fake.url, prices=prices, max_retries=0))
    del fake.broken["beta"]
    fake.requests.clear()
    new = replay(source, [])
    assert fake.chat_requests() == []
    for node in source:
        old, again = source[node], new[node]
        assert (again.response, again.finish_reason, again.usage, again.served_model) == (
            old.response,
            old.finish_reason,
            old.usage,
            old.served_model,
        )
        assert (again.latency, again.error, again.cost, again.replicate) == (
            old.latency,
            old.error,
            old.cost,
            old.replicate,
        )
        assert again.cache_hit and again.attempts == 0 and again.origin == node
        assert again.ended_at >= again.started_at >= old.ended_at
    assert new["L1.0"].cost == new["L1.0"].usage.tokens
    assert new.totals().spent == 0 and new.totals().reused == 4


def test_a_system_message_edit_keeps_every_message_of_the_conversation(fake):
    messages = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    source = run(fake_config(fake.url), prompt=messages)
    fake.requests.clear()
    replay(source, NodeMessage("L2.0", "system", "Pick one:\n{references}"))
    (aggregator,) = fake.chat_requests()
    assert aggregator.system.startswith("Pick one:\n1. ") and aggregator.body["messages"][1:] == messages


def test_a_replay_says_in_words_which_edits_made_it(fake, source):
    edits = [
        AggregatorTemplate("Pick the best answer:\n{references}" + "!" * 60),
        UserPrompt("Why?"),
        NodeMessage("L1.1", "system", "Be brief."),
        NodeParams("L1.0", temperature=0.1, max_tokens=7),
        AddProposer("delta", layer=1),
        RemoveProposer("L1.2"),
        SetConfig(shuffle_references=True, shuffle_seed=3),
    ]
    new = replay(source, edits)
    assert describe_replay(new.graph.graph) == (
        f"replay of {source.run_id}: aggregator template 'Pick the best answer: {{references}}"
        f"{'!' * 25}…'; user prompt 'Why?'; L1.1 system message 'Be brief.'; "
        "L1.0 temperature=0.1, max_tokens=7; add delta; remove L1.2; "
        "set shuffle_references='True', shuffle_seed='3'"
    )
    assert describe_replay(source.graph.graph) is None
    assert describe_replay({"parent_run_id": "abc", "edits": []}) == "replay of abc: no edit"


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        ("not an edit", "an unreadable edit"),
        ({}, "?"),
        ({"kind": "future_edit_kind"}, "future edit kind"),
        ({"kind": "node_message", "content": "hi"}, "user message 'hi'"),
        ({"kind": "add_proposer", "agent": {"model": "m" * 50}}, f"add {'m' * 39}…"),
        ({"kind": "set_config", "fields": {"rounds": "9" * 40}}, f"set rounds='{'9' * 29}…'"),
        ({"kind": "set_config", "fields": "garbled"}, "set "),
        ({"kind": "remove_proposer", "node": "L1.0", "text": "x"}, "remove L1.0"),
        ({"kind": "node_params", "node": "L1.0", "model": "m" * 40}, f"L1.0 model={'m' * 29}…"),
    ],
)
def test_an_edit_a_newer_or_hand_made_file_holds_is_still_said_in_words(edit, said):
    assert describe_replay({"parent_run_id": "abc", "edits": [edit]}) == f"replay of abc: {said}"


def test_set_config_changes_settings_of_a_mixture_but_not_its_shape(fake, source):
    for field in ("proposers", "aggregator", "layers"):
        with pytest.raises(ConfigError) as caught:
            replay(source, SetConfig({field: 1}))
        assert str(caught.value) == (
            f"SetConfig: ['{field}'] shape the mixture; use AddProposer, RemoveProposer or NodeParams"
        )
    for fields, why in (
        ({"max_retries": -1}, "max_retries: Input should be greater than or equal to 0"),
        (
            {"temperature": 0.5},
            "temperature: unknown field; check its spelling against moa_lab.MoAConfig",
        ),
    ):
        with pytest.raises(ConfigError) as caught:
            replay(source, SetConfig(fields))
        assert str(caught.value) == f"replay: {why}"
    assert fake.requests == []
    # A ranker is sent what an aggregator is; only its answer is read as a pick.
    ranked = replay(source, SetConfig(aggregation="rank"))
    assert ranked.config["aggregation"] == "rank" and fake.requests == []
    picked = ranked["L3.0"].picked
    assert picked in ranked.references("L3.0") and ranked.final == ranked[picked].response
    shuffled = replay(source, SetConfig(shuffle_references=True, shuffle_seed=5))
    assert sorted(sent(fake)) == ["alpha", "beta", "gamma", "omega"]
    assert [n for n in shuffled.calls() if shuffled[n].reused] == ["L1.0", "L1.1", "L1.2"]


# -- replays of other strategies (nodes by id) --------------------------------------------------------
@pytest.fixture(scope="module")
def debate(server):
    """A 3-round debate of a, b and c decided by majority: 9 calls, D1.0 to D3.2."""
    agents = [Agent(model=m, base_url=server.url) for m in ("a", "b", "c")]
    return run(moa_lab.DebateConfig(agents=agents, rounds=3, decide="majority"))


def test_a_debate_replay_asks_a_new_question_of_every_call(fake, debate):
    new = replay(debate, UserPrompt("Why is the sea blue?"))
    assert len(fake.chat_requests()) == len(debate) and not any(c.reused for c in new.records())
    assert new.messages == [{"role": "user", "content": "Why is the sea blue?"}]
    asked = {
        json.dumps(next(m for m in r.body["messages"] if m["role"] == "user"))
        for r in fake.chat_requests()
    }
    assert asked == {json.dumps({"role": "user", "content": "Why is the sea blue?"})}
    assert debate.messages == [{"role": "user", "content": QUESTION}]
    for text in ("", "  \n"):
        with pytest.raises(ConfigError) as caught:
            replay(debate, UserPrompt(text))
        assert str(caught.value) == "UserPrompt: the prompt is empty; give the question to ask"


def test_a_debate_replay_sends_a_nodes_new_settings(fake, debate):
    edits = [NodeParams("D3.2", max_tokens=33, model="b"), NodeParams("D3.2", temperature=0.25)]
    new = replay(debate, edits)  # two edits of one node add up
    (request,) = fake.chat_requests()
    assert (request.model, request.body["max_tokens"], request.body["temperature"]) == ("b", 33, 0.25)
    assert (new["D3.2"].model, new["D3.2"].params["max_tokens"]) == ("b", 33)
    with pytest.raises(ConfigError) as caught:
        replay(debate, NodeParams("D3.2"))
    assert str(caught.value) == (
        "NodeParams(D3.2): nothing to change; set model, temperature, max_tokens or base_url"
    )


def test_a_debate_replay_names_the_nodes_there_are_when_one_is_missing(debate):
    with pytest.raises(ConfigError) as caught:
        replay(debate, AggregatorTemplate(TERSE))
    assert str(caught.value) == (
        "AggregatorTemplate: edits a mixture's layout, but this trace was made by the debate "
        "strategy; use NodeMessage, NodeParams, SetConfig or UserPrompt"
    )
    assert len(debate) == 9
    for edit in (NodeParams("L1.0", temperature=0.1), NodeMessage("L1.0", "user", "x")):
        with pytest.raises(ConfigError) as caught:
            replay(debate, edit)
        assert str(caught.value) == (
            f"{type(edit).__name__}(L1.0): no node 'L1.0' to edit; trace {debate.run_id} has "
            "D1.0, D1.1, D1.2, D2.0, D2.1, D2.2, D3.0, D3.1, …"
        )
    eight = Trace.from_dict(debate.to_dict())
    eight.graph.remove_node("D3.2")
    with pytest.raises(ConfigError) as caught:
        replay(eight, NodeParams("L1.0", temperature=0.1))
    assert str(caught.value).endswith(" has D1.0, D1.1, D1.2, D2.0, D2.1, D2.2, D3.0, D3.1")


async def briefed(run):
    """One call with the user's message alone, one with a system message alone."""
    (member,) = run.config.members
    first = await run.call(member, role="proposer", layer=1, index=0, messages=run.messages, id="S1.0")
    alone = [{"role": "system", "content": f"Say it again: {first.response}"}]
    again = await run.call(
        member, role="aggregator", layer=2, index=0, references=[first.id], messages=alone, id="S2.0"
    )
    return again.response


def test_a_node_message_edit_sets_the_system_and_last_user_message_a_strategy_sent(fake):
    config = moa_lab.StrategyConfig(name="briefed", members=[Agent(model="a", base_url=fake.url)])
    source = run(config, strategy=briefed)
    fake.requests.clear()
    edits = [NodeMessage("S1.0", "system", "Be brief."), NodeMessage("S1.0", "user", "Why?")]
    assert plan(source, edits, strategy=briefed, cache=False).recomputed == ["S1.0", "S2.0"]
    new = replay(source, edits, strategy=briefed)
    first, second = (r.body["messages"] for r in fake.chat_requests())
    assert first == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Why?"}]
    assert second == [{"role": "system", "content": f"Say it again: {new['S1.0'].response}"}]
    fake.requests.clear()
    # A node that sent no user message has none to replace; its system message is still replaced.
    edits = [NodeMessage("S2.0", "user", "Why?"), NodeMessage("S2.0", "system", "Repeat.")]
    replay(source, edits, strategy=briefed)
    assert [r.body["messages"] for r in fake.chat_requests()] == [
        [{"role": "system", "content": "Repeat."}]
    ]


def test_a_plan_names_each_key_it_would_send_and_whether_it_may(fake, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    config = fake_config(fake.url)
    keyed = config.model_copy(
        update={"aggregator": config.aggregator.model_copy(update={"api_key_env": "TEST_KEY"})}
    )
    source = run(keyed)  # the user's own run approves its key for its host
    host = fake.url.split("//")[1].split("/")[0]
    planned = plan(source, AggregatorTemplate(TERSE), cache=False)
    assert planned.keys() == [(host, "TEST_KEY", True)]
    assert planned.to_dict()["keys"] == [{"host": host, "key_env": "TEST_KEY", "approved": True}]
    assert str(planned).splitlines()[-1] == f"key $TEST_KEY goes to {host} (approved)"
    monkeypatch.setenv("MOA_LAB_CONFIG_DIR", str(tmp_path / "elsewhere"))  # another user's machine
    refused = plan(source, AggregatorTemplate(TERSE), cache=False)
    assert refused.keys() == [(host, "TEST_KEY", False)]
    assert str(refused).splitlines()[-1] == (
        f"key $TEST_KEY goes to {host} (NOT approved: the replay will refuse it (--allow-host))"
    )
    fake.requests.clear()
    with pytest.raises(ConfigError) as caught:  # a trace from someone else: its key is not sent
        replay(source, AggregatorTemplate(TERSE))
    assert str(caught.value).startswith(f"refusing to send $TEST_KEY to {host}: the trace names")
    assert fake.requests == []
    allowed = replay(source, AggregatorTemplate(TERSE), allow_hosts=[host.upper()])
    assert sent(fake) == ["omega"] and allowed["L2.0"].api_key_env == "TEST_KEY"
    fake.requests.clear()
    # An endpoint the edit itself names is the user's own choice, so its key goes there.
    moved = fake.url.replace("127.0.0.1", "localhost")
    new = replay(source, NodeParams("L2.0", base_url=moved))
    assert new["L2.0"].base_url == moved and sent(fake) == ["omega"]
    only_proposer = plan(source, NodeParams("L1.0", temperature=0.1), cache=False)
    assert only_proposer.calls == 2 and only_proposer.keys() == [(host, "TEST_KEY", False)]
    nothing_sent = plan(source, [], cache=False)
    assert nothing_sent.keys() == [] and nothing_sent.to_dict()["keys"] == []


def test_a_replay_replaces_the_file_it_is_told_to_write(fake, source, tmp_path):
    (tmp_path / "t.json").write_text("an older replay")
    new = replay(source, AggregatorTemplate(TERSE), trace_path=tmp_path / "t.json")
    assert new.path == tmp_path / "t.json" and Trace.load(new.path).run_id == new.run_id


@pytest.mark.parametrize("name", ["moa", "debate", "tot"])
def test_a_built_in_strategys_config_reads_back_as_its_own_class(name):
    config = moa_lab.preset(name)
    again = config_from_dict(config.to_dict(), source="trace r")
    assert type(again) is type(config) and again == config
    with pytest.raises(ConfigError) as caught:
        config_from_dict(config.to_dict() | {"strategy": "beam"}, source="trace r")
    assert str(caught.value) == (
        "trace r: strategy: unknown strategy 'beam'; choose one of moa, debate, tot, custom"
    )
    with pytest.raises(ConfigError) as caught:
        config_from_dict([config.to_dict()])
    assert str(caught.value) == "config: a config is a mapping of fields"


def test_a_replay_of_a_replay_keeps_the_whole_lineage(fake, source, tmp_path):
    first = replay(source, AggregatorTemplate(TERSE), trace_path=tmp_path / "1.json")
    second = replay(first, UserPrompt("Why?"), trace_path=tmp_path / "2.json")
    assert lineage(Trace.load(second.path)) == [
        {"run_id": second.run_id, "path": str(tmp_path / "2.json"), "edits": second.edits},
        {"run_id": first.run_id, "path": str(tmp_path / "1.json"), "edits": first.edits},
        {"run_id": source.run_id, "path": None, "edits": []},
    ]


def test_calls_a_replayed_strategy_adds_have_no_origin(fake, debate):
    longer = replay(debate, SetConfig(rounds=4))
    assert sorted(sent(fake)) == ["a", "b", "c"] and longer.calls()[-3:] == ["D4.0", "D4.1", "D4.2"]
    assert [longer[n].origin for n in ("D3.2", "D4.0", "D4.1", "D4.2")] == ["D3.2", None, None, None]


def test_a_reused_call_keeps_the_warnings_it_was_recorded_with(fake):
    def odd(body):
        text = "alpha \ud800 says" if body["model"] == "alpha" else f"{body['model']} says"
        return completion(body["model"], text, prompt_tokens=3, completion_tokens=2)

    source = run(fake_config(fake.url), backend=moa_lab.Backend(transport=ChatServer(odd).transport()))
    warned = source["L1.0"].warnings
    assert warned and "lone UTF-16 surrogates" in warned[0]
    new = replay(source, AggregatorTemplate(TERSE))
    assert new["L1.0"].reused and new["L1.0"].warnings == warned and new["L1.1"].warnings == ()
