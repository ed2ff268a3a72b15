"""Experiments against a real HTTP server on loopback: runner, resume, scorers, judge, export, CLI."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest

from moa_lab import Agent, CallCache, ConfigError, MoAConfig, Trace
from moa_lab.cli import main
from moa_lab.experiments import (
    Candidate,
    DatasetError,
    aexperiment,
    bootstrap_ci,
    experiment,
    export_alpaca_eval,
    extract_answer,
    is_correct,
    load_dataset,
    load_experiment_file,
    paper_variants,
    pareto_front,
    parse_verdict,
    singles,
    sweep,
)
from moa_lab.experiments._make_datasets import arithmetic_items, instruction_items
from moa_lab.testing import ChatServer, FakeLLM, completion, fake_config


def _qa(tmp_path, count=3, name="qa.jsonl"):
    path = tmp_path / name
    items = [{"id": f"q{n}", "question": f"What is {n} + {n}?", "answer": 2 * n} for n in range(count)]
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def _run(configs, dataset, tmp_path, **options):
    options.setdefault("run_dir", tmp_path / "run")
    options.setdefault("cache", tmp_path / "cache")
    options.setdefault("progress", False)
    return experiment(configs, dataset, **options)


def test_every_config_runs_on_every_item_with_a_trace_each(fake, tmp_path):
    base = fake_config(fake.url)
    candidates = [Candidate("moa", base), *singles(base)]
    result = _run(candidates, _qa(tmp_path), tmp_path)
    rows = result.rows
    assert list(rows["config"].unique()) == ["moa", "alpha", "beta", "gamma"]
    assert len(rows) == 4 * 3 and (rows["status"] == "complete").all()
    for _, row in rows.iterrows():
        trace = Trace.load(row["trace"])
        assert trace.status == "complete" and trace.final == row["output"]
        assert trace.prompt == f"What is {row['item'][1:]} + {row['item'][1:]}?"
    # A model alone sends exactly its layer-1 call of the mixture, so it comes from the cache.
    assert len(fake.chat_requests()) == 3 * 4
    alone = rows[rows["config"] == "beta"]
    assert (alone["cache_hits"] == 1).all() and (alone["calls"] == 1).all()
    moa = result.trace("moa", "q1")
    assert result.trace("beta", "q1").final == moa[moa.calls(1)[1]].response
    table = result.table()
    assert list(table.index) == ["moa", "alpha", "beta", "gamma"]
    assert table.loc["moa", "calls"] == 4 and table.loc["alpha", "layers"] == 1
    assert table.loc["moa", "tokens"] > table.loc["alpha", "tokens"]
    assert (result.run_dir / "summary.csv").is_file() and (result.run_dir / "results.jsonl").is_file()


def test_a_rerun_sends_no_calls_and_gives_the_same_table(fake, tmp_path):
    candidates = [Candidate("moa", fake_config(fake.url, layers=3))]
    first = _run(candidates, _qa(tmp_path), tmp_path)
    sent = len(fake.chat_requests())
    second = _run(candidates, _qa(tmp_path), tmp_path, run_dir=tmp_path / "elsewhere")
    assert len(fake.chat_requests()) == sent == 3 * 7
    assert (second.rows["cache_hits"] == 7).all()
    assert second.rows["output"].tolist() == first.rows["output"].tolist()
    assert second.table()["latency"].tolist() == first.table()["latency"].tolist()


def test_an_interrupted_experiment_resumes_with_only_the_missing_calls(tmp_path):
    dataset = _qa(tmp_path, count=8)
    with FakeLLM(delay=0.05) as server:
        candidates = [Candidate("moa", fake_config(server.url))]

        async def interrupted():
            task = asyncio.ensure_future(
                aexperiment(
                    candidates,
                    dataset,
                    run_dir=tmp_path / "run",
                    cache=tmp_path / "cache",
                    concurrency=2,
                    progress=False,
                )
            )
            while len(server.chat_requests()) < 14:
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(interrupted())
        first_requests = len(server.chat_requests())
        cache = CallCache(tmp_path / "cache")
        finished = len(cache)
        cache.close()
        finished_runs = [
            p
            for p in (tmp_path / "run" / "traces" / "moa").glob("*.json")
            if Trace.load(p).status == "complete"
        ]
        assert 0 < finished < 8 * 4 and 0 < len(finished_runs) < 8
        kept = {path: Trace.load(path).run_id for path in finished_runs}
        result = _run(candidates, dataset, tmp_path)
        resumed_requests = len(server.chat_requests()) - first_requests
    assert resumed_requests == 8 * 4 - finished
    assert (result.rows["status"] == "complete").all() and len(result.rows) == 8
    # The runs finished before the interruption were loaded, not re-run.
    for path, run_id in kept.items():
        assert result.trace("moa", path.stem).run_id == run_id


def test_a_failed_run_is_a_row_not_the_end_of_the_experiment(tmp_path):
    with FakeLLM(broken={"omega": 400}) as server:
        base = fake_config(server.url)
        result = _run([Candidate("moa", base), *singles(base)], _qa(tmp_path), tmp_path)
    moa = result.rows[result.rows["config"] == "moa"]
    assert (moa["status"] == "failed").all() and moa["output"].isna().all()
    assert moa["error"].str.contains("aggregator failed").all()
    assert not moa["correct"].any()
    table = result.table()
    assert table.loc["moa", "failed"] == 3 and table.loc["alpha", "failed"] == 0


def test_a_missing_key_fails_before_any_call(fake, tmp_path, monkeypatch):
    monkeypatch.delenv("MOA_LAB_TEST_NO_KEY", raising=False)
    agent = Agent(model="alpha", base_url=fake.url, api_key_env="MOA_LAB_TEST_NO_KEY")
    with pytest.raises(ConfigError, match="MOA_LAB_TEST_NO_KEY is not set"):
        _run([Candidate("moa", fake_config(fake.url)), Candidate.single(agent)], _qa(tmp_path), tmp_path)
    assert fake.chat_requests() == []


@pytest.mark.parametrize(
    ("text", "answer", "expected"),
    [
        ("3 apples and 4 more make 7 apples.", "7", True),
        ("So the total is $1,234.", "1234", True),
        ("First 12, then 30. Answer: 42. Check: 42 = 12 + 30", "42", True),
        ("Working: 2 + 2 = 4 ... \\boxed{5} hmm 4", "5", True),
        ("#### -3", "-3", True),
        ("It is 3/4 of the cake", "0.75", True),
        ("The answer is 41.", "42", False),
        ("I do not know.", "42", False),
        (None, "42", False),
        ("The capital is\nParis.", "paris", True),
        ("The capital is\nLyon.", "paris", False),
    ],
)
def test_exact_and_numeric_match(text, answer, expected):
    assert is_correct(text, answer) is expected


def test_answer_extraction_prefers_a_stated_answer_over_the_last_number():
    assert extract_answer("Answer: 12 (checked with 3 methods)") == "12"
    assert extract_answer("no numbers here") is None


def test_scoring_a_qa_dataset_counts_correct_answers(tmp_path):
    def arithmetic(body):
        question = body["messages"][-1]["content"]
        a, b = map(int, re.findall(r"\d+", question))
        text = f"Adding them gives {a + b}." if body["model"] != "wrong" else "It is 99."
        return completion(body["model"], text, prompt_tokens=10, completion_tokens=5)

    with ChatServer(arithmetic) as server:
        right = Candidate.single(Agent(model="right", base_url=server.url))
        wrong = Candidate.single(Agent(model="wrong", base_url=server.url))
        table = _run([right, wrong], _qa(tmp_path, count=5), tmp_path).table()
    assert table.loc["right", "accuracy"] == 1.0 and table.loc["wrong", "accuracy"] == 0.0
    assert table.loc["right", "tokens"] == 15 and table.loc["right", "mean_length"] == len(
        "Adding them gives 0."
    )


def test_a_game24_experiment_is_scored_by_the_checker(tmp_path):
    from moa_lab.experiments.game24 import COT_PROMPT, STANDARD_PROMPT
    from moa_lab.testing import game24_oracle

    def io(body):  # an IO answer that never uses the right numbers
        return completion(body["model"], "Answer: 4 * 6 = 24", prompt_tokens=10, completion_tokens=5)

    puzzles = load_dataset("game24", limit=3)
    with ChatServer(game24_oracle) as oracle, ChatServer(io) as wrong:
        cot = Candidate.single(Agent(model="oracle", base_url=oracle.url))
        cot = Candidate("cot", cot.config, alone=0, prompt_template=COT_PROMPT)
        naive = Candidate.single(Agent(model="io", base_url=wrong.url))
        naive = Candidate("io", naive.config, alone=0, prompt_template=STANDARD_PROMPT)
        table = _run([cot, naive], puzzles, tmp_path).table()
    # Scored by the checker, though a puzzle has no single answer to match.
    assert table.loc["cot", "accuracy"] == 1.0 and table.loc["io", "accuracy"] == 0.0
    assert table.loc["cot", "no_answer"] == 0


def _judge_server(prefer):
    """A judge on loopback that answers with ``prefer(response_a, response_b)``."""

    def handler(body):
        user = body["messages"][-1]["content"]
        a = user.split("[Response A]\n", 1)[1].split("\n\n[Response B]", 1)[0]
        b = user.split("[Response B]\n", 1)[1].split("\n\nWhich response", 1)[0]
        return completion(body["model"], prefer(a, b), prompt_tokens=50, completion_tokens=1)

    return ChatServer(handler)


def test_the_judge_sees_both_orders_so_position_bias_cancels(fake, tmp_path):
    base = fake_config(fake.url)
    with _judge_server(lambda a, b: "A") as judge_server:
        judge = Agent(model="judge", base_url=judge_server.url)
        result = _run([Candidate("moa", base), *singles(base)], _qa(tmp_path), tmp_path, judge=judge)
        judge_requests = judge_server.chat_requests()
    assert result.baseline == "alpha"
    judgments = result.judgments
    assert len(judgments) == len(judge_requests) == 3 * 3 * 2  # 3 configs vs alpha, 3 items, 2 orders
    assert set(judgments["order"]) == {"candidate-first", "baseline-first"}
    table = result.table()
    assert (table.drop(index="alpha")["win_rate"] == 0.5).all()
    assert table["win_rate"].isna()["alpha"]
    first = judgments[(judgments["config"] == "moa") & (judgments["item"] == "q0")]
    moa_answer = result.trace("moa", "q0").final
    alpha_answer = result.trace("alpha", "q0").final
    bodies = [Trace.load(p)["L1.0"].messages[-1]["content"] for p in first["trace"]]
    assert bodies[0].index(moa_answer) < bodies[0].index(alpha_answer)
    assert bodies[1].index(alpha_answer) < bodies[1].index(moa_answer)


def test_a_judge_that_prefers_the_mixture_gives_it_every_win_and_is_cached(fake, tmp_path):
    base = fake_config(fake.url)
    prefer = lambda a, b: "A" if a.startswith("omega") else "B"  # noqa: E731
    with _judge_server(prefer) as judge_server:
        judge = Agent(model="judge", base_url=judge_server.url)
        options = {"judge": judge, "baseline": "beta"}
        table = _run(
            [Candidate("moa", base), *singles(base)], _qa(tmp_path), tmp_path, **options
        ).table()
        calls = len(judge_server.chat_requests())
        again = _run([Candidate("moa", base), *singles(base)], _qa(tmp_path), tmp_path, **options)
        assert len(judge_server.chat_requests()) == calls
    assert table.loc["moa", "win_rate"] == 1.0
    assert table.loc["moa", "win_low"] == 1.0 and table.loc["alpha", "win_rate"] == 0.5
    assert again.table().loc["moa", "win_rate"] == 1.0


def test_the_judge_can_compare_with_the_datasets_reference_outputs(fake, tmp_path):
    path = tmp_path / "alpaca.jsonl"
    items = [{"instruction": f"Say {n}.", "output": f"reference {n}"} for n in range(3)]
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    prefer = lambda a, b: "B" if a.startswith("reference") else "A"  # noqa: E731
    with _judge_server(prefer) as judge_server:
        judge = Agent(model="judge", base_url=judge_server.url)
        options = {"judge": judge, "baseline": "reference"}
        result = _run([Candidate("moa", fake_config(fake.url))], path, tmp_path, **options)
        sent = [r.body["messages"][-1]["content"] for r in judge_server.chat_requests()]
    assert result.table().loc["moa", "win_rate"] == 1.0
    assert len(sent) == 6 and sum("[Response A]\nreference" in body for body in sent) == 3
    with pytest.raises(ConfigError, match="items without a reference"):
        _run([Candidate("moa", fake_config(fake.url))], _qa(tmp_path), tmp_path, **options)


def test_verdicts_are_read_from_common_replies():
    assert parse_verdict("A") == "A"
    assert parse_verdict("**B**") == "B"
    assert parse_verdict("Verdict: B. Response A is longer but wrong.") == "B"
    assert parse_verdict("Response A is better.") == "A"
    assert parse_verdict("It's a tie.") == "tie"
    assert parse_verdict("I cannot decide") is None


def test_bootstrap_interval():
    mean, low, high = bootstrap_ci([0.0, 1.0] * 50, seed=1)
    assert mean == 0.5
    assert low == pytest.approx(0.5 - 1.96 * 0.05, abs=0.02) and high == pytest.approx(
        0.5 + 1.96 * 0.05, abs=0.02
    )
    assert bootstrap_ci([0.0, 1.0] * 50, seed=1) == (mean, low, high)
    small = bootstrap_ci([0.0, 1.0] * 5, seed=1)
    assert small[2] - small[1] > high - low
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0, 1.0)
    assert all(v != v for v in bootstrap_ci([]))


def test_pareto_front_keeps_only_undominated_points():
    costs = [1.0, 2.0, 3.0, 2.5, float("nan"), 1.0]
    quality = [0.5, 0.7, 0.9, 0.6, 1.0, 0.4]
    assert pareto_front(costs, quality) == [0, 1, 2]


def test_export_writes_alpaca_eval_model_outputs(fake, tmp_path):
    result = _run([Candidate("moa", fake_config(fake.url))], "instructions", tmp_path, limit=4)
    [exported] = export_alpaca_eval(result, tmp_path / "alpaca")
    path = exported.path
    records = json.loads(path.read_text())
    assert exported.written == 4 and exported.failed == exported.duplicates == []
    assert path.name == "moa.json" and len(records) == 4
    assert all(set(r) == {"instruction", "output", "generator"} for r in records)
    items = load_dataset("instructions").items[:4]
    assert [r["instruction"] for r in records] == [i.instruction for i in items]
    assert records[3]["instruction"] != items[3].prompt  # the item with an input is sent with it
    assert [r["output"] for r in records] == result.rows["output"].tolist()
    assert {r["generator"] for r in records} == {"moa"}


def test_shipped_datasets_load_and_are_generated_by_code():
    arithmetic = load_dataset("arithmetic")
    assert arithmetic.shape == "qa" and len(arithmetic) == 40
    on_disk = [(i.id, i.prompt, i.answer) for i in arithmetic.items]
    assert on_disk == [(i["id"], i["question"], str(i["answer"])) for i in arithmetic_items()]
    for item in arithmetic.items:
        if item.extra["kind"] == "expression":
            expression = item.prompt.removeprefix("What is ").rstrip("?")
            assert eval(expression.replace("×", "*").replace("−", "-")) == int(item.answer)
    instructions = load_dataset("instructions")
    assert instructions.shape == "instruct" and len(instructions) == 20 == len(instruction_items())


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.jsonl", '{"question": "q", "answer": 1}\n{oops\n', "bad.jsonl: line 2 is not valid JSON"),
        ("noanswer.jsonl", '{"question": "q"}\n', "line 1: a 'question' item needs an 'answer'"),
        ("neither.jsonl", '{"prompt": "q"}\n', "needs 'instruction' (AlpacaEval shape) or 'question'"),
        ("mixed.jsonl", '{"question": "q", "answer": 1}\n{"instruction": "i"}\n', "line 2 mixes"),
        (
            "dup.jsonl",
            '{"id": 1, "instruction": "i"}\n{"id": 1, "instruction": "j"}\n',
            "repeats the id",
        ),
        ("empty.jsonl", "\n\n", "has no items"),
        ("obj.json", '{"instruction": "i"}', "must be a list of objects"),
        ("list.jsonl", "[1, 2]\n", "line 1: an item must be a JSON object"),
        ("blank.jsonl", '{"instruction": "  "}\n', "the instruction is empty"),
        ("data.csv", "a,b\n", "unknown dataset format '.csv'"),
    ],
)
def test_malformed_datasets_fail_with_one_line(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DatasetError) as caught:
        load_dataset(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_dataset_names_the_shipped_ones(tmp_path):
    with pytest.raises(DatasetError, match=r"no such dataset file.*arithmetic, instructions"):
        load_dataset(tmp_path / "nope.jsonl")


def test_the_alpaca_eval_shape_joins_instruction_and_input(tmp_path):
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps([{"instruction": "Translate.", "input": "Bonjour", "output": "Hello"}]))
    [item] = load_dataset(path).items
    assert item.prompt == "Translate.\n\nBonjour" and item.reference == "Hello" and item.id == "0001"


def test_paper_variants_and_singles_are_derived_from_one_config(fake):
    base = fake_config(fake.url)
    variants = {c.name: c.config for c in paper_variants(base)}
    assert list(variants) == ["moa", "moa-lite", "self-moa", "llm-ranker", "debate"]
    assert variants["moa"].layers == 3 and variants["moa-lite"].layers == 2
    assert {a.model for a in variants["self-moa"].agents()} == {"alpha"}
    assert variants["llm-ranker"].aggregation == "rank"
    debate = variants["debate"]
    assert debate.strategy == "debate" and debate.rounds == 3 and len(debate.agents_) == 3
    assert debate.timeout == base.timeout and "other agents" in debate.update_template
    assert [c.name for c in singles(variants["self-moa"])] == ["alpha"]
    assert [c.name for c in sweep(base, layers=(2, 3), proposers=(1, 3))] == [
        "L2-P1",
        "L2-P3",
        "L3-P1",
        "L3-P3",
    ]


def _cli(argv: list[str]) -> int:
    return main(argv)


def test_the_command_prints_the_table_and_writes_figures(fake, tmp_path, capsys):
    spec = tmp_path / "compare.yaml"
    spec.write_text(
        f"configs:\n"
        f"  - name: fake-moa\n"
        f"    with_singles: true\n"
        f"    config: {{proposers: [{{model: alpha, base_url: '{fake.url}'}}, {{model: beta, base_url: "
        f"'{fake.url}'}}], aggregator: {{model: omega, base_url: '{fake.url}'}}, layers: 2}}\n"
        f"max_tokens: 32\n"
    )
    out = tmp_path / "run"
    status = _cli(
        [
            "experiment",
            str(spec),
            "--dataset",
            str(_qa(tmp_path)),
            "--out",
            str(out),
            "--quiet",
            "--cache-dir",
            str(tmp_path / "cache"),
            "--alpaca-eval",
            str(tmp_path / "ae"),
        ]
    )
    printed = capsys.readouterr()
    assert status == 0
    table_lines = printed.out.splitlines()
    assert table_lines[0].split()[0] == "layers" and [line.split()[0] for line in table_lines[2:]] == [
        "fake-moa-alpha",
        "fake-moa-beta",
        "fake-moa",
    ]
    assert {r.body["max_tokens"] for r in fake.chat_requests()} == {32}
    assert (out / "figures" / "accuracy-vs-tokens.html").is_file()
    assert (tmp_path / "ae" / "fake-moa.json").is_file()
    assert "figure:" in printed.err


def test_a_bad_experiment_file_is_one_line(tmp_path, cli_fails):
    spec = tmp_path / "bad.yaml"
    spec.write_text("configs:\n  - {preset: moa, file: x.yaml}\n")
    cli_fails(
        "configs item 1: give exactly one of preset, file",
        ["experiment", str(spec), "--dataset", "arithmetic"],
    )
    spec.write_text("configs: [moa]\njudges: {}\n")
    cli_fails(r"unknown keys \['judges'\]", ["experiment", str(spec), "--dataset", "arithmetic"])


def _table():
    import pandas as pd

    return pd.DataFrame(
        {
            "config": ["a", "b", "c", "d"],
            "layers": [1, 2, 3, 2],
            "proposers": [1, 3, 3, 2],
            "accuracy": [0.5, 0.7, 0.9, 0.6],
            "accuracy_low": [0.4, 0.6, 0.8, 0.5],
            "accuracy_high": [0.6, 0.75, 1.0, 0.7],
            "tokens": [100.0, 400.0, 900.0, 500.0],
            "cost": [float("nan")] * 4,
            "latency": [1.0, 2.0, 3.0, 2.5],
        }
    ).set_index("config")


def test_the_pareto_figure_marks_the_front_and_the_intervals():
    from moa_lab.views import pareto_figure

    figure = pareto_figure(_table(), x="tokens")
    points, front, labels = figure.data
    assert list(front.x) == [100.0, 400.0, 900.0] and list(front.y) == [0.5, 0.7, 0.9]
    assert list(points.text) == ["a", "b", "c", "d"] and points.hovertemplate is None
    assert list(points.error_y.array) == pytest.approx([0.1, 0.05, 0.1, 0.1])
    assert list(points.error_y.arrayminus) == pytest.approx([0.1, 0.1, 0.1, 0.1])
    assert sorted(labels.text) == ["a", "b", "c", "d"]  # apart: a label each
    assert figure.layout.legend.y < 0  # below the plot, clear of the title
    with pytest.raises(ConfigError, match=r"no cost values.*x='tokens'"):
        pareto_figure(_table(), x="cost")


def test_points_that_would_overlap_share_a_label_and_no_label_is_clipped():
    from moa_lab.views import pareto_figure

    table = _table()
    table.loc["b-twin"] = table.loc["b"]
    table.loc["long-" * 12] = table.loc["c"] + [0, 0, 0.001, 0, 0, 1.0, 0, 0]
    figure = pareto_figure(table, x="tokens")
    labels = figure.data[-1]
    assert labels.name == "config names" and labels.cliponaxis is False
    texts = list(labels.text)
    assert len(texts) == 4 and sum("b-twin" in t for t in texts) == 1
    shared = next(t for t in texts if "b-twin" in t)
    assert shared.split("<br>") == ["b", "b-twin"]
    assert max(len(line) for t in texts for line in t.split("<br>")) <= 30  # long names clipped
    x_low, x_high = figure.layout.xaxis.range
    y_low, y_high = figure.layout.yaxis.range
    for x, y, where in zip(labels.x, labels.y, labels.textposition, strict=True):
        assert x_low < x < x_high and y_low < y < y_high
        if x == max(labels.x):  # at the right edge the label reads leftwards, not off the plot
            assert where.endswith("left")
    assert y_high > table["accuracy_high"].max()  # room above the highest interval for its label


def test_bars_and_ablation_figures_are_built_from_the_table():
    from moa_lab.views import by_layers_figure, by_proposers_figure, experiment_figures

    figures = experiment_figures(_table())
    assert set(figures) == {
        "accuracy-vs-tokens",
        "accuracy-vs-latency",
        "accuracy-bars",
        "accuracy-by-layers",
        "accuracy-by-proposers",
    }
    bars = figures["accuracy-bars"].data[0]
    assert bars.orientation == "h" and list(bars.y) == ["a", "b", "c", "d"]
    assert list(bars.x) == [0.5, 0.7, 0.9, 0.6] and bars.marker.color[0] != bars.marker.color[1]
    lines = {t.name: (list(t.x), list(t.y)) for t in by_layers_figure(_table()).data if t.mode != "text"}
    assert lines["proposers = 3"] == ([2, 3], [0.7, 0.9])
    lines = {
        t.name: (list(t.x), list(t.y)) for t in by_proposers_figure(_table()).data if t.mode != "text"
    }
    assert lines["layers = 2"] == ([2, 3], [0.6, 0.7])


def test_win_rates_get_their_intervals_as_error_bars():
    from moa_lab.views import bars_figure, pareto_figure

    table = _table().drop(columns=["accuracy", "accuracy_low", "accuracy_high"])
    table["win_rate"], table["win_low"], table["win_high"] = [0.5] * 4, [0.3] * 4, [0.8] * 4
    assert list(bars_figure(table).data[0].error_x.array) == pytest.approx([0.3] * 4)
    assert list(pareto_figure(table, x="tokens").data[0].error_y.arrayminus) == pytest.approx([0.2] * 4)


def test_single_models_of_one_model_are_labelled_with_their_settings(tmp_path):
    from moa_lab.views import bars_figure, pareto_figure

    def answer(body):
        return completion(body["model"], "It is 0.", prompt_tokens=5, completion_tokens=3)

    with ChatServer(answer) as server:
        agents = [
            Agent(model="qwen", base_url=server.url, temperature=t, seed=s, max_tokens=128)
            for t, s in ((0.5, 1), (1.0, 3))
        ]
        base = MoAConfig(proposers=agents, aggregator=agents[0])
        result = _run(singles(base), _qa(tmp_path, count=2), tmp_path)
    assert [c.name for c in result.candidates] == ["qwen", "qwen#1"]
    table = result.table()
    assert list(table["sampling"]) == ["T0.5 seed 1 ≤128", "T1.0 seed 3 ≤128"]
    assert list(table["model"]) == ["qwen", "qwen"]
    for source in (result, table):  # the figures tell them apart from the table alone too
        labels = " ".join(pareto_figure(source, x="tokens").data[-1].text)
        assert "T0.5 seed 1 ≤128" in labels and "T1.0 seed 3 ≤128" in labels
    bars = bars_figure(result).data[0]
    assert list(bars.y) == ["qwen · T0.5 seed 1 ≤128", "qwen#1 · T1.0 seed 3 ≤128"]
    assert "qwen T1.0 seed 3 ≤128" in bars.hovertext[1]


def test_config_names_are_escaped_in_figures():
    import json as _json

    from moa_lab.views import bars_figure, experiment_figures

    table = _table().rename(index={"a": "<img src=x onerror=alert(1)>", "b": "%{x}"})
    assert "<img" not in bars_figure(table).data[0].y[0]
    for name, figure in experiment_figures(table).items():
        page = _json.dumps(figure.to_plotly_json())
        assert "<img" not in page and "&lt;img" in page, name
        assert all(d.hovertemplate is None for d in figure.data), name  # %{x} stays text


def _loaded_after(code):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return out.split()


def test_the_experiments_package_does_not_import_plotly():
    code = (
        "import sys; from moa_lab.experiments import experiment, ExperimentResult; "
        "print('plotly' in sys.modules, 'ipywidgets' in sys.modules)"
    )
    assert _loaded_after(code) == ["False", "False"]


def test_every_public_name_loads():
    import moa_lab.experiments as experiments

    assert all(getattr(experiments, name) is not None for name in experiments.__all__)


def test_labels_of_neighbouring_points_are_placed_apart():
    from moa_lab.views._placing import place_labels

    points = [(0.0, 0.5), (1.0, 0.5), (2.0, 0.5), (2.0, 0.5)]
    labels = place_labels(
        points, ["config-name-a", "config-name-b", "twin-1", "twin-2"], (0, 10), (0, 1)
    )
    assert [label.text for label in labels if "twin" in label.text] == ["twin-1<br>twin-2"]
    assert len({label.position for label in labels}) == len(labels)  # no two in one spot, side by side
    edge = place_labels([(10.0, 1.0)], ["at the top right corner"], (0, 10), (0, 1))
    assert edge[0].position == "bottom left"


def test_the_readme_experiment_file_loads(tmp_path):
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text("utf-8")
    block = readme.split("# local-vs-singles.yaml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "local-vs-singles.yaml"
    path.write_text(block, "utf-8")
    loaded = load_experiment_file(path)
    names = [c.name for c in loaded["configs"]]
    assert names[-1] == "self-moa" and len(names) == 4  # three proposers alone, then the mixture
    assert loaded["dataset"] == "arithmetic" and loaded["system"].startswith("End with")
    assert all(a.max_tokens == 96 for c in loaded["configs"] for a in c.config.agents())
