"""Tokens/s of a local call through moa_lab against a bare llama-cpp-python call, in one process.

The moa_lab side is the path every run takes: ``Backend.complete`` -> ``openai`` client -> HTTP on
loopback -> the local server -> llama.cpp. The bare side is ``Llama.create_chat_completion`` on a
second instance of the same GGUF with the same context size and threads. Each round both sides get
the same fresh prompt and the same sampling parameters (seed included, so they should produce the
same tokens) and start from an empty context, as the local server does for every call; the side
that goes first alternates, and an uncounted first round warms both up. Tokens/s is completion
tokens over the wall time of the call, prompt evaluation included.
Goal: median ratio >= 0.95.

Run: .venv/bin/python benchmarks/bench_local.py [--rounds 6] [--max-tokens 128] [--gguf PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from pathlib import Path

from llama_cpp import Llama

from moa_lab import Agent, Backend, RetryPolicy
from moa_lab.local import N_CTX, gguf_path, n_threads, resolve

__all__ = ["main"]

PROMPT = "({round}) Explain step by step how a hash map handles collisions, with an example."


async def _bench(gguf: Path, rounds: int, max_tokens: int) -> list[float]:
    agent = Agent(model=gguf.stem, base_url=f"local:{gguf}")
    url = resolve(agent.base_url)  # loads the model behind the loopback server
    bare = Llama(model_path=str(gguf), n_ctx=N_CTX, n_threads=n_threads(), verbose=False)
    backend = Backend()
    policy = RetryPolicy(timeout=600, max_retries=0)
    params = {"temperature": 0.7, "top_p": 0.95, "max_tokens": max_tokens, "seed": 42}
    ratios = []
    for number in range(-1, rounds):  # round -1 warms both models up (page cache, first decode)
        messages = [{"role": "user", "content": PROMPT.format(round=number)}]

        async def through_moa_lab(messages=messages) -> tuple[float, str]:
            done = await backend.complete(
                model=agent.model,
                messages=messages,
                params=params,
                base_url=url,
                key_env=None,
                policy=policy,
            )
            return done.usage["completion_tokens"] / done.latency, done.text

        async def bare_llama(messages=messages) -> tuple[float, str]:
            started = time.perf_counter()
            bare.reset()  # the local server starts every call from an empty context too
            result = bare.create_chat_completion(messages=messages, **params)
            seconds = time.perf_counter() - started
            return result["usage"]["completion_tokens"] / seconds, result["choices"][0]["message"][
                "content"
            ]

        if number % 2:
            (lab, lab_text), (raw, raw_text) = await through_moa_lab(), await bare_llama()
        else:
            (raw, raw_text), (lab, lab_text) = await bare_llama(), await through_moa_lab()
        if number < 0:
            continue
        ratios.append(lab / raw)
        same = "same text" if lab_text == raw_text else "text differs"
        print(
            f"round {number}: moa_lab {lab:.2f} tok/s, bare {raw:.2f} tok/s, "
            f"ratio {lab / raw:.3f}, {same}"
        )
    await backend.aclose()
    bare.close()
    return ratios


def main() -> None:
    """Run the comparison and print per-round figures and the median ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--gguf", type=Path, help="default: the packaged local model")
    args = parser.parse_args()
    gguf = args.gguf.resolve() if args.gguf else gguf_path("local")
    print(f"{gguf.name}, {n_threads()} threads, n_ctx {N_CTX}, {args.max_tokens} tokens per call")
    ratios = asyncio.run(_bench(gguf, args.rounds, args.max_tokens))
    print(f"median ratio moa_lab / bare: {statistics.median(ratios):.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
