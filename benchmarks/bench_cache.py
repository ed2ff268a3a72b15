"""An identical re-run served from the cache: calls made (goal 0) and time of a 19-call run (< 100 ms).

The 19-call run is three proposer layers of 6 plus the aggregator (``layers=4`` in moa_lab's count)
against a loopback server with 0.2 s calls. The re-run goes through the default path a user takes:
the disk cache, a trace file written after every call, the progress bar. A 20-item experiment
re-run (resumed from its run directory: traces loaded, nothing sent) is timed too.

    .venv/bin/python benchmarks/bench_cache.py [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import moa_lab
from moa_lab.experiments import Candidate, experiment
from moa_lab.testing import FakeLLM, fake_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    proposers = [f"p{i}" for i in range(6)]
    with tempfile.TemporaryDirectory() as folder, FakeLLM(delay=0.2) as server:
        root = Path(folder)
        config = fake_config(server.url, proposers=proposers, aggregator="agg", layers=4)
        options = {"cache": root / "cache", "progress": True}
        started = time.perf_counter()
        first = moa_lab.run("Why is the sky blue?", config, trace_path=root / "first.json", **options)
        cold = time.perf_counter() - started
        sent = len(server.chat_requests())
        times = []
        for repeat in range(args.repeats):
            started = time.perf_counter()
            again = moa_lab.run(
                "Why is the sky blue?", config, trace_path=root / f"r{repeat}.json", **options
            )
            times.append(time.perf_counter() - started)
        rerun_calls = len(server.chat_requests()) - sent
        assert again.final == first.final and len(again) == 19

        dataset = root / "items.jsonl"
        dataset.write_text(
            "".join(
                json.dumps({"question": f"What is {n} + 1?", "answer": n + 1}) + "\n" for n in range(20)
            )
        )
        candidates = [Candidate("moa-lite", fake_config(server.url))]
        settings = {"run_dir": root / "run", "cache": root / "cache", "progress": False}
        experiment(candidates, dataset, **settings)
        before = len(server.chat_requests())
        started = time.perf_counter()
        experiment(candidates, dataset, **settings)
        experiment_rerun = time.perf_counter() - started
        experiment_calls = len(server.chat_requests()) - before
    warm = statistics.median(times)
    print(f"{'':<46}{'calls made':>11}{'time (ms)':>11}")
    print(f"{'19-call run, first (0.2 s calls)':<46}{sent:>11}{cold * 1000:>11.0f}")
    print(
        f"{f'19-call run, identical re-run (median of {args.repeats})':<46}"
        f"{rerun_calls // args.repeats:>11}{warm * 1000:>11.1f}"
    )
    label = "20-item experiment, identical re-run"
    print(f"{label:<46}{experiment_calls:>11}{experiment_rerun * 1000:>11.1f}")
    none_sent = rerun_calls == 0 and experiment_calls == 0
    print(f"goal: re-run makes 0 calls -> {'met' if none_sent else 'NOT met'}")
    print(f"goal: 19-call re-run < 100 ms -> {'met' if warm < 0.1 else 'NOT met'}")


if __name__ == "__main__":
    main()
