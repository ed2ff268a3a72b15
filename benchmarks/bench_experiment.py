"""Wall time of a 200-item experiment at concurrency 32 against a loopback server with 1 s calls.

Each item runs a 2-layer mixture (3 proposers, then the aggregator), so one run's critical path is
2 calls deep; with 32 runs in flight the ideal wall time is ceil(200 / 32) x 2 x 1 s = 14 s. The
ratio wall / ideal shows what the runner's scheduling costs. A second, identical run from the same
run directory then shows the resume: calls made (goal 0) and its time. Goal: ratio <= 1.05.

    .venv/bin/python benchmarks/bench_experiment.py [--items 200] [--concurrency 32] [--delay 1.0]
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from moa_lab.experiments import Candidate, experiment
from moa_lab.testing import FakeLLM, fake_config


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each call takes")
    args = parser.parse_args()
    ideal = math.ceil(args.items / args.concurrency) * 2 * args.delay
    with tempfile.TemporaryDirectory() as folder, FakeLLM(delay=args.delay) as server:
        dataset = Path(folder) / "items.jsonl"
        dataset.write_text(
            "".join(
                json.dumps({"question": f"What is {n} + {n}?", "answer": 2 * n}) + "\n"
                for n in range(args.items)
            )
        )
        options = {
            "run_dir": Path(folder) / "run",
            "cache": Path(folder) / "cache",
            "concurrency": args.concurrency,
            "progress": False,
        }
        candidates = [Candidate("moa-lite", fake_config(server.url, max_concurrency=16))]
        started = time.perf_counter()
        result = experiment(candidates, dataset, **options)
        wall = time.perf_counter() - started
        calls = len(server.chat_requests())
        started = time.perf_counter()
        experiment(candidates, dataset, **options)
        rerun = time.perf_counter() - started
        rerun_calls = len(server.chat_requests()) - calls
    failed = int((result.rows["status"] == "failed").sum())
    print(
        f"{args.items} items x 1 config (3 proposers + aggregator), concurrency {args.concurrency}, "
        f"{args.delay:.2f} s per call"
    )
    print(f"{'':<22}{'calls':>7}{'wall (s)':>10}{'ideal (s)':>11}{'wall / ideal':>14}")
    print(f"{'first run':<22}{calls:>7}{wall:>10.2f}{ideal:>11.2f}{wall / ideal:>14.3f}")
    print(f"{'identical re-run':<22}{rerun_calls:>7}{rerun:>10.2f}{'-':>11}{'-':>14}")
    print(f"failed runs: {failed}")
    print(f"goal: wall / ideal <= 1.05 -> {'met' if wall / ideal <= 1.05 else 'NOT met'}")
    print(f"goal: re-run makes 0 calls -> {'met' if rerun_calls == 0 else 'NOT met'}")


if __name__ == "__main__":
    main()
