"""Wall time of a 3-layer x 6-proposer mixture against a loopback server whose calls take 1 s.

The critical path is 3 calls deep (two proposer layers and the aggregator), so the ideal wall time
is 3 s; the ratio wall / critical path shows what moa_lab's scheduling costs. For comparison the same
call pattern is timed as a bare ``openai`` ``asyncio.gather`` loop. Goal: ratio <= 1.05.

    .venv/bin/python benchmarks/bench_layers.py [--delay 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import openai

import moa_lab
from moa_lab.testing import FakeLLM, fake_config

PROPOSERS = [f"p{i}" for i in range(6)]


async def bare_gather(url: str) -> None:
    """The same 13 calls in 3 waves with nothing but the openai client."""
    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    question = [{"role": "user", "content": "Why is the sky blue?"}]
    for _layer in range(2):
        await asyncio.gather(
            *[client.chat.completions.create(model=m, messages=question) for m in PROPOSERS]
        )
    await client.chat.completions.create(model="agg", messages=question)
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=1.0, help="seconds each call takes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    critical = 3 * args.delay
    with FakeLLM(delay=args.delay) as server:
        config = fake_config(server.url, proposers=PROPOSERS, aggregator="agg", layers=3)
        moa_walls, bare_walls = [], []
        for _ in range(args.repeats):
            started = time.perf_counter()
            moa_lab.run("Why is the sky blue?", config, cache=False, trace_path=False, progress=False)
            moa_walls.append(time.perf_counter() - started)
            started = time.perf_counter()
            asyncio.run(bare_gather(server.url))
            bare_walls.append(time.perf_counter() - started)
    moa, bare = statistics.median(moa_walls), statistics.median(bare_walls)
    print(f"3 layers x 6 proposers, {args.delay:.2f} s per call, median of {args.repeats}")
    print(f"{'':<28}{'wall (s)':>10}{'/ critical path':>18}")
    print(f"{'moa_lab.run':<28}{moa:>10.3f}{moa / critical:>18.3f}")
    print(f"{'bare openai asyncio.gather':<28}{bare:>10.3f}{bare / critical:>18.3f}")
    print(
        f"goal: moa_lab.run / critical path <= 1.05 -> {'met' if moa / critical <= 1.05 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
