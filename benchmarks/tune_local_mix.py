"""Settings of the ``local-mix`` preset, by measurement: each packaged model alone, then mixtures.

``--singles``: every packaged model answers the first ``--items`` arithmetic problems alone at each
of ``--temperatures``, with a ``--max-tokens`` cap generous enough to see how long its answers run.
The table gives accuracy (95% bootstrap interval), the share of answers cut off at the cap, the
median and 90th percentile of completion tokens, and decode tokens/s (llama.cpp's own timing).

``--mixtures``: the ``local`` preset against ``local-mix`` (and the presets named by ``--variants``)
on ``--items`` items of ``--dataset``: ``arithmetic`` (numeric match), ``game24`` (a seeded sample,
the Tree-of-Thoughts checker) or ``instructions`` (a pairwise judge, the packaged 1.5B model at
temperature 0, in both orders, against ``local``): accuracy or win rate, tokens, the critical path
and the aggregators cut off at their cap.

Every call goes through the call cache (``--cache-dir``), so a re-run only sends what is missing.

    .venv/bin/python benchmarks/tune_local_mix.py --singles [--items 8] [--temperatures 0.2,0.7]
    .venv/bin/python benchmarks/tune_local_mix.py --mixtures [--items 8] [--dataset game24]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import moa_lab
from moa_lab import Agent, MoAConfig
from moa_lab.experiments import Candidate, experiment, load_dataset, singles
from moa_lab.local import MODELS, model_name

#: What each dataset's items are sent with (the notebooks' wording).
SYSTEMS = {
    "arithmetic": (
        "Solve the problem. Show at most two short lines of working, then end with 'Answer: <number>'."
    ),
    "game24": (
        "Use each of the four numbers exactly once with + - * / and parentheses to make 24. End with "
        "one line 'Answer: <expression> = 24' and nothing after it."
    ),
    "instructions": None,
}
#: The judge of open-ended answers: the strongest packaged model, greedy.
JUDGE = Agent(
    model=model_name("local:qwen2.5-coder-1.5b"),
    base_url="local:qwen2.5-coder-1.5b",
    temperature=0,
    seed=0,
)


def _calls(result, name: str, role: str | None = None) -> list:
    calls = []
    for item in result.dataset.items:
        trace = result.trace(name, item.id)
        calls += [c for c in trace.records() if role is None or c.role == role]
    return calls


def _describe(calls: list) -> str:
    tokens = sorted(c.completion_tokens or 0 for c in calls)
    cut = sum(c.finish_reason == "length" for c in calls)
    rates = [
        c.timings["predicted_per_second"]
        for c in calls
        if c.timings and c.timings.get("predicted_per_second")
    ]
    p90 = tokens[min(len(tokens) - 1, int(0.9 * len(tokens)))]
    rate = f"{statistics.median(rates):5.1f}" if rates else "    –"
    median = statistics.median(tokens)
    return f"cut {cut}/{len(calls)}  tokens median {median:4.0f} p90 {p90:4d}  tok/s {rate}"


def tune_singles(args: argparse.Namespace, dataset, run_dir: Path) -> None:
    temperatures = [float(t) for t in args.temperatures.split(",")]
    agents = [
        Agent(
            model=model_name(f"local:{name}"),
            base_url=f"local:{name}",
            temperature=temperature,
            seed=1,
            max_tokens=args.max_tokens,
        )
        for name in MODELS
        for temperature in temperatures
    ]
    config = MoAConfig(proposers=agents, aggregator=agents[0], layers=2)
    candidates = singles(config)
    result = experiment(
        candidates,
        dataset,
        system=SYSTEMS["arithmetic"],
        run_dir=run_dir,
        cache=args.cache_dir,
        concurrency=1,
    )
    table = result.table()
    print(f"{len(dataset)} arithmetic items, each model alone, cap {args.max_tokens} tokens\n")
    for candidate, agent in zip(candidates, agents, strict=True):
        row = table.loc[candidate.name]
        accuracy = f"{row['accuracy']:.2f} [{row['accuracy_low']:.2f}, {row['accuracy_high']:.2f}]"
        print(
            f"{agent.base_url.removeprefix('local:'):<20} T={agent.temperature:<4} accuracy {accuracy}  "
            f"no answer {int(row['no_answer'])}  {_describe(_calls(result, candidate.name))}"
        )


def tune_mixtures(args: argparse.Namespace, dataset, run_dir: Path) -> None:
    names = ["local", "local-mix", *filter(None, args.variants.split(","))]
    candidates = [Candidate(name, moa_lab.preset(name)) for name in names]
    judged = dataset.name == "instructions"
    started = time.perf_counter()
    result = experiment(
        candidates,
        dataset,
        system=SYSTEMS[dataset.name],
        run_dir=run_dir,
        cache=args.cache_dir,
        concurrency=1,
        judge=JUDGE if judged else None,
        baseline="local" if judged else None,
    )
    table = result.table()
    print(f"{len(dataset)} {dataset.name} items ({time.perf_counter() - started:.0f} s)\n")
    for name in names:
        row = table.loc[name]
        measure = "win_rate" if judged else "accuracy"
        low, high = ("win_low", "win_high") if judged else ("accuracy_low", "accuracy_high")
        if measure in row and row[measure] == row[measure]:
            accuracy = f"{measure} {row[measure]:.2f} [{row[low]:.2f}, {row[high]:.2f}]"
        else:
            accuracy = "(the baseline)"
        aggregators = _describe(_calls(result, name, "aggregator"))
        print(
            f"{name:<12} {accuracy}  tokens/item {row['tokens']:6.0f}  "
            f"critical path {row['latency']:5.1f} s  aggregator {aggregators}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", action="store_true")
    parser.add_argument("--mixtures", action="store_true")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--dataset", default="arithmetic")
    parser.add_argument("--temperatures", default="0.2,0.7")
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--variants", default="", help="more presets to compare, comma-separated")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "moa_lab-tune-cache"))
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    # Game of 24's puzzles come in numeric order: a seeded sample spans easy and hard ones.
    dataset = dataset.sample(args.items) if dataset.name == "game24" else dataset.head(args.items)
    run_dir = Path(tempfile.mkdtemp(prefix="moa_lab-tune-"))
    if args.singles:
        tune_singles(args, dataset, run_dir / "singles")
    if args.mixtures:
        tune_mixtures(args, dataset, run_dir / "mixtures")


if __name__ == "__main__":
    main()
