"""Strategies beyond the grid: debate (Du et al. 2023), Tree of Thoughts (Yao et al. 2023), your own.

Each runs through the same seam as MoA, so its calls land in the same kind of trace, replay the same
way and show in the same views; these tests check each strategy is faithful to its paper's code.
"""

from __future__ import annotations

import json
import random
import re

import networkx as nx
import pytest

import moa_lab
from moa_lab import (
    Agent,
    AggregatorTemplate,
    ConfigError,
    DebateConfig,
    NodeMessage,
    NodeParams,
    SetConfig,
    StrategyConfig,
    ToTConfig,
    Trace,
)
from moa_lab.cli import main
from moa_lab.experiments.game24 import check, puzzles
from moa_lab.testing import ChatServer, completion, game24_oracle


def _run(prompt, config, **options):
    options = {"cache": False, "trace_path": False, "progress": False} | options
    return moa_lab.run(prompt, config, **options)


# -- debate ---------------------------------------------------------------------------------------
def test_round_two_gives_each_agent_its_own_answer_as_its_turn_and_the_others_answers(fake):
    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b", "c")]
    trace = _run("Why is the sky blue?", DebateConfig(agents=agents, rounds=2, decide="aggregate"))
    first = {r.model: r.body for r in fake.chat_requests()[:3]}
    second = [r for r in fake.chat_requests()[3:6]]
    answers = {m: trace[f"D1.{i}"].response for i, m in enumerate("abc")}
    for request in second:
        me = request.model
        messages = request.body["messages"]
        assert first[me]["messages"] == [{"role": "user", "content": "Why is the sky blue?"}]
        assert messages[0] == {"role": "user", "content": "Why is the sky blue?"}
        assert messages[1] == {"role": "assistant", "content": answers[me]}
        update = messages[2]["content"]
        assert messages[2]["role"] == "user" and len(messages) == 3
        assert update.startswith("These are the solutions to the problem from other agents: ")
        others = [answers[m] for m in "abc" if m != me]
        assert update.count("One agent solution: ```") == 2
        assert all(f"\n\n One agent solution: ```{o}```" in update for o in others)
        assert answers[me] not in update
    assert trace.references("D2.0") == ["D1.0", "D1.1", "D1.2"]
    assert trace.aggregator() == "A3.0" and trace.graph.graph["decision"]["method"] == "aggregator"


def _scripted(answers):
    """A server whose model ``m`` answers ``answers[m][round]`` (round from the conversation)."""

    def answer(body):
        rounds = 1 + sum(1 for m in body["messages"] if m["role"] == "assistant")
        text = answers[body["model"]][rounds - 1]
        return completion(body["model"], text, prompt_tokens=5, completion_tokens=5)

    return ChatServer(answer)


def test_short_answers_are_decided_by_majority_with_ties_to_the_earliest_agent():
    script = {
        "a": ["I think 41.", "So the answer is \\boxed{42}."],
        "b": ["It is 42.", "Answer: 42"],
        "c": ["Maybe 40.", "Final answer: 40"],
    }
    with _scripted(script) as server:
        agents = [Agent(model=m, base_url=server.url) for m in "abc"]
        trace = _run("What is six times seven?", DebateConfig(agents=agents, rounds=2))
        calls = len(server.chat_requests())
    decision = trace.graph.graph["decision"]
    assert decision == {
        "method": "majority",
        "answer": "42",
        "votes": {"42": 2, "40": 1},
        "chosen": "D2.0",
    }
    assert trace.final == "So the answer is \\boxed{42}." and calls == 6  # no aggregator call


def test_long_answers_go_to_the_aggregator():
    script = {m: ["Blue light scatters more.", "Rayleigh scattering of sunlight."] for m in "ab"}
    script["z"] = ["Sunlight scatters off air molecules; blue scatters most."]
    with _scripted(script) as server:
        agents = [Agent(model=m, base_url=server.url) for m in "ab"]
        config = DebateConfig(agents=agents, rounds=2, aggregator=Agent(model="z", base_url=server.url))
        trace = _run("Why is the sky blue?", config)
    assert trace.final == script["z"][0] and trace.references("A3.0") == ["D2.0", "D2.1"]


# -- Tree of Thoughts -----------------------------------------------------------------------------
SAMPLE = [*random.Random(7).sample(puzzles(), 12), "1 3 4 6", "3 3 8 8", "1 5 5 5"]  # fractions too


@pytest.fixture(scope="module")
def oracle():
    with ChatServer(game24_oracle) as server:
        yield server


@pytest.mark.parametrize("puzzle", SAMPLE)
def test_a_search_with_a_correct_scripted_model_solves_every_puzzle(oracle, puzzle):
    config = ToTConfig(agent=Agent(model="oracle", base_url=oracle.url))
    # In-process through the transport seam: the same requests, without sockets (the other search
    # tests go over HTTP).
    trace = _run(puzzle, config, backend=moa_lab.Backend(transport=oracle.transport()))
    assert check(puzzle, trace.final), trace.final
    assert trace.layers == 4 and {c.layer for c in trace.records()} == {1, 2, 3, 4}
    assert all(c.role in ("thought", "evaluator") for c in trace.records())


def _expected_requests(puzzle, breadth, n_evaluate, width=3):
    """The request count of one propose/value search, worked out from the paper's algorithm and
    the oracle's answers alone (not from moa_lab's search)."""
    import itertools

    def reply(prompt):
        return game24_oracle({"messages": [{"role": "user", "content": prompt}]}, width)["choices"][0][
            "message"
        ]["content"]

    task = ToTConfig(agent=Agent(model="x")).task_object()
    ys, asked, requests = [""], set(), 0
    for _ in range(task.steps):
        requests += len(ys)  # one proposal call per kept state
        new_ys = list(
            itertools.chain(
                *[
                    [y + line + "\n" for line in reply(task.propose_prompt(puzzle, y)).split("\n")]
                    for y in ys
                ]
            )
        )
        values, seen = [], set()
        for y in new_ys:
            if y in seen:
                values.append(0)
                continue
            seen.add(y)
            prompt = task.value_prompt(puzzle, y)
            if prompt not in asked:
                asked.add(prompt)
                requests += n_evaluate  # n value samples, each a request
            values.append(
                task.value_of(
                    puzzle,
                    y,
                    [reply(prompt)] * n_evaluate,
                    {"impossible": 0.001, "likely": 1.0, "sure": 20.0},
                )
            )
        ys = [
            new_ys[i]
            for i in sorted(range(len(new_ys)), key=lambda i: values[i], reverse=True)[:breadth]
        ]
    return requests


@pytest.mark.parametrize(("breadth", "n_evaluate"), [(5, 3), (2, 1), (1, 2)])
def test_a_search_sends_exactly_what_its_parameters_ask_for(breadth, n_evaluate):
    puzzle = "4 5 6 10"
    with ChatServer(game24_oracle) as server:
        agent = Agent(model="oracle", base_url=server.url)
        config = ToTConfig(agent=agent, breadth=breadth, n_evaluate_sample=n_evaluate)
        trace = _run(puzzle, config)
        sent = len(server.chat_requests())
    assert sent == len(trace) == _expected_requests(puzzle, breadth, n_evaluate)
    generations = [c for c in trace.records() if c.role == "thought"]
    assert [c.id for c in generations if c.layer == 1] == ["G1.0"]
    assert all(len([c for c in generations if c.layer == s]) <= breadth for s in (2, 3, 4))


def test_an_evaluation_asked_once_serves_every_state_that_shares_its_prompt(oracle):
    # From 2 2 2 3, "2 + 2 = 4" and "2 * 2 = 4" both leave 2 3 4: one value prompt for both.
    with ChatServer(lambda body: game24_oracle(body, width=8)) as server:
        config = ToTConfig(agent=Agent(model="oracle", base_url=server.url), n_evaluate_sample=1)
        trace = _run("2 2 2 3", config)
        asked = [r.body["messages"][0]["content"] for r in server.chat_requests()]
    values = [p for p in asked if p.startswith("Evaluate if given numbers")]
    assert len(values) == len(set(values))  # no value prompt was sent twice
    shared = [c for c in trace.records() if c.role == "evaluator" and c.annotations.get("shared")]
    assert shared
    for call in shared:
        assert len(call.annotations["states"]) >= 2 and trace.references(call.id)
    assert check("2 2 2 3", trace.final)
    trace = _run("4 5 6 10", ToTConfig(agent=Agent(model="oracle", base_url=oracle.url)))
    kept = [
        s for c in trace.records() if c.role == "thought" for s in c.annotations["states"] if s["kept"]
    ]
    assert kept and all("value" in s for s in kept)
    chosen = [c.id for c in trace.records() if c.annotations and c.annotations.get("chosen")]
    assert len(chosen) == 4 and [trace[c].layer for c in chosen] == [1, 2, 3, 4]
    assert trace.graph.graph["outputs"][0].strip() == trace.final  # the final answer is stripped


# -- replay for any DAG ---------------------------------------------------------------------------
def _minimum(trace, changed):
    reached = set(changed)
    for node in changed:
        reached |= nx.descendants(trace.graph, node)
    return len(reached)


def test_a_debate_replay_sends_exactly_the_edited_call_and_what_reads_it(fake):
    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b", "c")]
    source = _run("Why is the sky blue?", DebateConfig(agents=agents, rounds=3, decide="aggregate"))
    for edit, changed in (
        (NodeParams("D2.1", temperature=0.1), {"D2.1"}),
        (NodeMessage("D1.0", "user", "Why is the sea blue?"), {"D1.0"}),
        (NodeParams("A4.0", model="c"), {"A4.0"}),
    ):
        before = len(fake.chat_requests())
        new = moa_lab.replay(source, edit, cache=False, trace_path=False, progress=False)
        assert len(fake.chat_requests()) - before == _minimum(source, changed), edit
        assert {c.id for c in new.records() if not c.reused} == changed | set().union(
            *(nx.descendants(source.graph, n) for n in changed)
        )
    with pytest.raises(ConfigError, match="edits a mixture's layout"):
        moa_lab.replay(source, AggregatorTemplate("x {references}"), cache=False)
    more = moa_lab.plan(source, SetConfig(rounds=4), cache=False)
    assert more.calls == 4  # the three debaters of a new round, and the aggregator


def test_a_search_replay_reuses_everything_an_edit_does_not_reach(oracle):
    source = _run("4 5 6 10", ToTConfig(agent=Agent(model="oracle", base_url=oracle.url)))
    evaluator = next(c.id for c in source.records() if c.role == "evaluator" and c.layer == 2)
    before = len(oracle.chat_requests())
    new = moa_lab.replay(
        source, NodeParams(evaluator, temperature=0.1), cache=False, trace_path=False, progress=False
    )
    assert len(oracle.chat_requests()) - before == 1 and new.final == source.final
    planned = moa_lab.plan(
        source, NodeMessage("G1.0", "user", "Input: 1 2 3 4\nPossible next steps:\n"), cache=False
    )
    assert planned.calls >= len(source) - 1  # the root's change reaches every later call
    value = moa_lab.plan(source, SetConfig(value_prompt="Can {input} make 24?\n"), cache=False)
    evaluators = [c for c in source.records() if c.role == "evaluator"]
    # The value prompt judges steps 1-3; the answer step has its own (value_last_step_prompt).
    assert set(value.recomputed) >= {c.id for c in evaluators if c.layer < 4}
    assert not {c.id for c in evaluators if c.layer == 4} & set(value.recomputed)


def test_the_prompt_lab_edits_a_searchs_value_prompt_and_a_debates_update_prompt(oracle, fake):
    from moa_lab.views import PromptLab

    source = _run("4 5 6 10", ToTConfig(agent=Agent(model="oracle", base_url=oracle.url)))
    lab = PromptLab(source, cache=False, trace_dir=None)
    assert list(lab.prompt.options)[:2] == ["propose prompt", "value prompt"]
    lab.prompt.value = "value prompt"
    assert "Evaluate if given numbers can reach 24" in lab.template.value
    lab.template.value = lab.template.value.replace("Evaluate if", "Judge whether")
    (edit,) = lab.edits()
    assert isinstance(edit, SetConfig) and set(edit.fields) == {"value_prompt"}
    planned = moa_lab.plan(source, edit, cache=False)
    assert f"send <b>{planned.calls}</b> calls" in lab.plan_panel.value
    lab.prompt.value = "propose prompt"  # switching keeps the edit
    lab.prompt.value = "value prompt"
    assert lab.template.value.startswith("Judge whether")

    agents = [Agent(model=m, base_url=fake.url) for m in ("a", "b")]
    debate = _run("Why is the sky blue?", DebateConfig(agents=agents, rounds=2, decide="aggregate"))
    lab = PromptLab(debate, cache=False, trace_dir=None)
    lab.template.value = "Others said: {answers}. Answer again, briefly."
    before = len(fake.chat_requests())
    attempt = lab.run()
    assert len(fake.chat_requests()) - before == 3  # the two round-2 answers and the aggregator
    assert set(attempt.recomputed) == {"D2.0", "D2.1", "A3.0"}
    assert "running" not in lab.status.value and attempt.trace.run_id in lab.answers.value
    lab.node.value = "D2.0"
    assert lab.user.value == [m for m in debate["D2.0"].messages if m["role"] == "user"][-1]["content"]


# -- your own strategy ----------------------------------------------------------------------------
async def best_of_two(run):
    """Ask the first member twice, then the second picks the shorter answer."""
    first, second = run.config.members
    drafts = [
        await run.call(first, role="proposer", layer=1, index=k, messages=run.messages, id=f"P1.{k}")
        for k in range(2)
    ]
    shortest = min(drafts, key=lambda c: len(c.response or ""))
    pick = await run.call(
        second,
        role="aggregator",
        layer=2,
        index=0,
        references=[shortest.id],
        messages=[*run.messages, {"role": "user", "content": f"Improve: {shortest.response}"}],
        id="J2.0",
    )
    return pick.response


def test_a_strategy_written_in_a_cell_runs_traces_and_replays(fake, tmp_path):
    members = [Agent(model=m, base_url=fake.url) for m in ("a", "b")]
    config = StrategyConfig(name="best-of-two", members=members, depth=2)
    trace = _run("Why is the sky blue?", config, strategy=best_of_two, trace_path=tmp_path / "t.json")
    assert trace.calls() == ["P1.0", "P1.1", "J2.0"] and trace.final == trace["J2.0"].response
    saved = Trace.load(tmp_path / "t.json")
    assert saved.config["strategy"] == "custom" and saved.config["name"] == "best-of-two"
    with pytest.raises(ConfigError, match=r"pass it, e\.g\."):
        moa_lab.replay(saved, [], cache=False)
    again = moa_lab.replay(saved, [], cache=False, trace_path=False, strategy=best_of_two)
    assert all(c.reused for c in again.records())


# -- the command line -----------------------------------------------------------------------------
def test_the_cli_runs_a_search_and_a_debate(oracle, fake, capsys, tmp_path):
    out = tmp_path / "tot.json"
    argv = ["run", "4 5 6 10", "--preset", "tot-game24", "--base-url", oracle.url, "--model", "oracle"]
    assert main([*argv, "--no-cache", "--quiet", "--trace-out", str(out)]) == 0
    answer = capsys.readouterr().out
    assert check("4 5 6 10", answer) and Trace.load(out).config["strategy"] == "tot"
    argv = ["run", "Why?", "--preset", "debate", "--base-url", fake.url, "--model", "m"]
    assert main([*argv, "--no-cache", "--quiet", "--trace-out", str(tmp_path / "d.json")]) == 0
    assert len(Trace.load(tmp_path / "d.json")) == 6  # short answers: a vote, no aggregator call
    assert main([*argv, "--proposers", "a,b"]) == 1
    assert "shape a mixture" in capsys.readouterr().err
    shown = json.loads(json.dumps(Trace.load(out).to_dict()))
    assert shown["graph"]["outputs"]
    capsys.readouterr()
    assert main(["show", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Tree of Thoughts (Yao et al. 2023), game24 task: 4 steps, propose value x3, keep 5" in text
    assert re.search(r"^G1\.0 +thought +oracle .*\[chosen\] \d+ states, \d+ kept$", text, re.M)
    assert re.search(r"^V1\.0\.0 +evaluator .* value \d", text, re.M)
    assert main(["show", str(tmp_path / "d.json")]) == 0
    text = capsys.readouterr().out
    assert "debate (Du et al. 2023): 3 agents, 2 rounds" in text and "decided by majority" in text
