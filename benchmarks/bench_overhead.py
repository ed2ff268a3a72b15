"""Overhead per call of moa_lab against bare ``openai`` ``asyncio.gather`` on a 0-latency server.

moa_lab runs a 2-layer mixture (20 proposers, then the aggregator: 21 calls); the bare loop then
sends the very same request bodies the server recorded, in the same two waves, under the same
concurrency cap, through one ``openai.AsyncOpenAI`` client. Both talk to the same loopback server,
so the difference per call is what moa_lab adds: building messages, cache keys, the trace, the
progress bar, and (in the second row) the cache lookup and write and the trace file written after
every call. Both stream the answers (moa_lab's default) and read every event. Goal: <= 1 ms per
call.

    .venv/bin/python benchmarks/bench_overhead.py [--proposers 20] [--repeats 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import openai

import moa_lab
from moa_lab.testing import FakeLLM, fake_config


async def bare(url: str, waves: list[list[dict]], limit: int) -> None:
    """Send the recorded bodies wave by wave with nothing but the openai client."""
    client = openai.AsyncOpenAI(base_url=url, api_key="none", max_retries=0)
    gate = asyncio.Semaphore(limit)

    async def send(body: dict) -> None:
        async with gate:
            answer = await client.chat.completions.create(**body)
            if body.get("stream"):  # read it to the end, as moa_lab does
                async for _ in answer:
                    pass

    for wave in waves:
        await asyncio.gather(*[send(body) for body in wave])
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proposers", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    models = [f"p{i}" for i in range(args.proposers)]
    calls = args.proposers + 1
    variants = {
        "no cache, trace in memory": (False, False),
        "cache (misses), trace in memory": (True, False),
        "no cache, trace file": (False, True),
        "cache (misses) + trace file": (True, True),
    }
    rows: dict[str, list[float]] = {label: [] for label in variants}
    with tempfile.TemporaryDirectory() as folder, FakeLLM() as server:
        config = fake_config(server.url, proposers=models, aggregator="agg", layers=2)
        for repeat in range(args.repeats):
            for label, (cached, traced) in variants.items():
                prompt = f"Question {repeat} {label}: why is the sky blue?"
                options = {
                    "cache": Path(folder) / "cache" if cached else False,
                    "trace_path": Path(folder) / f"t{repeat}.json" if traced else False,
                    "progress": True,
                }
                before = len(server.chat_requests())
                started = time.perf_counter()
                moa_lab.run(prompt, config, **options)
                ours = time.perf_counter() - started
                bodies = [r.body for r in server.chat_requests()[before:]]
                started = time.perf_counter()
                asyncio.run(bare(server.url, [bodies[:-1], bodies[-1:]], config.max_concurrency))
                theirs = time.perf_counter() - started
                rows[label].append((ours - theirs) / calls * 1000)
    print(
        f"{calls} calls per run (2 layers, {args.proposers} proposers), 0-latency loopback server, "
        f"median of {args.repeats}"
    )
    print(f"{'moa_lab.run':<34}{'overhead per call (ms)':>24}")
    for label, values in rows.items():
        print(f"{label:<34}{statistics.median(values):>24.3f}")
    for label, values in rows.items():
        verdict = "met" if statistics.median(values) <= 1.0 else "NOT met"
        print(f"goal: <= 1 ms per call, {label} -> {verdict}")


if __name__ == "__main__":
    main()
