"""Benchmark: build every figure of ``moa_lab.views`` for a synthetic 500-call trace.

Goal: under 1 s for all figures on a cold start (attribution computed from scratch). The trace is
built directly as a graph (no server): ``--agents`` proposers per layer for ``--layers - 1`` layers
plus one aggregator, every call reading all responses of the layer before, and each response made of
spans copied from its references plus fresh words, so the text measures have real work to do.

Run: ``.venv/bin/python benchmarks/bench_figures.py`` (``--help`` for the shape of the trace).
"""

from __future__ import annotations

import argparse
import random
import time

import networkx as nx

from moa_lab import Agent, Call, MoAConfig, Trace, Usage

__all__ = ["main", "synthetic_trace"]

_MODELS = ("qwen-72b", "llama-3-70b", "mixtral-8x22b", "wizardlm-2", "dbrx", "gpt-4o")


def _response(rng: random.Random, vocabulary: list[str], parents: list[str], size: int) -> str:
    """About ``size`` words: spans of 4-12 words taken from the parents, mixed with fresh words."""
    out: list[str] = []
    while len(out) < size:
        if parents and rng.random() < 0.6:
            source = rng.choice(parents).split()
            start = rng.randrange(max(len(source) - 4, 1))
            out.extend(source[start : start + rng.randint(4, 12)])
        else:
            out.extend(rng.choices(vocabulary, k=rng.randint(3, 10)))
    return " ".join(out[:size])


def synthetic_trace(layers: int = 51, agents: int = 10, words: int = 120, seed: int = 0) -> Trace:
    """A finished trace of ``(layers - 1) * agents + 1`` calls with realistic text and timing."""
    rng = random.Random(seed)
    vocabulary = [f"w{i}" for i in range(2000)] + "the a of to and is in that it for".split() * 40
    models = [_MODELS[i % len(_MODELS)] for i in range(agents)]
    config = MoAConfig(
        proposers=[Agent(model=m, base_url="http://127.0.0.1:9/v1") for m in models],
        aggregator=Agent(model=_MODELS[0], base_url="http://127.0.0.1:9/v1"),
        layers=layers,
    )
    graph = nx.DiGraph(
        schema="moa_lab.trace",
        schema_version=1,
        run_id="synthetic",
        created_at=1_700_000_000.0,
        finished_at=None,
        status="complete",
        prompt="Explain how a mixture of agents reaches its answer.",
        messages=[{"role": "user", "content": "Explain how a mixture of agents reaches its answer."}],
        config=config.to_dict(),
        final=None,
        sample=0,
        moa_lab_version="bench",
    )
    trace = Trace(graph)
    clock = 1_700_000_000.0
    previous: list[str] = []
    for layer in range(1, layers + 1):
        roster = models if layer < layers else [_MODELS[0]]
        names = []
        for index, model in enumerate(roster):
            parents = [trace[p].response or "" for p in previous]
            text = _response(rng, vocabulary, parents, rng.randint(words // 2, words * 3 // 2))
            latency = rng.uniform(0.5, 4.0)
            hit = rng.random() < 0.1
            name = f"L{layer}.{index}"
            call = Call(
                id=name,
                role="proposer" if layer < layers else "aggregator",
                layer=layer,
                index=index,
                model=model,
                base_url="http://127.0.0.1:9/v1",
                params={"temperature": 0.7, "max_tokens": 512},
                messages=({"role": "user", "content": graph.graph["prompt"]},),
                response=text,
                finish_reason="stop",
                usage=Usage(prompt_tokens=40 + 150 * len(previous), completion_tokens=len(text.split())),
                cost=0.0001 * len(text.split()),
                latency=latency,
                started_at=clock,
                ended_at=clock + (0.001 if hit else latency),
                cache_hit=hit,
            )
            trace.add_call(call, previous)
            names.append(name)
        clock = max(trace[n].ended_at for n in names)
        previous = names
    graph.graph.update(final=trace[previous[0]].response, finished_at=clock)
    return trace


def _size(data: object) -> int:
    """Points in one plotly trace (x values, or the rows of a heatmap)."""
    for name in ("x", "z"):
        values = getattr(data, name, None)
        if values is not None:
            return len(values)
    return 0


def main() -> None:
    """Time each figure on a fresh synthetic trace and print the total."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=51, help="layers, the aggregator's included")
    parser.add_argument("--agents", type=int, default=10, help="proposers per layer")
    parser.add_argument("--words", type=int, default=120, help="mean words per response")
    args = parser.parse_args()

    started = time.perf_counter()
    from moa_lab import views

    # Load every figure's module now, so the import is timed apart from the figures.
    for name in ("export_html", "layer_graph", "timeline", "usage", "evolution"):
        getattr(views, name)

    imported = time.perf_counter() - started
    trace = synthetic_trace(args.layers, args.agents, args.words)
    print(
        f"trace: {len(trace)} calls, {trace.graph.number_of_edges()} edges, "
        f"~{args.words} words per response (import of moa_lab.views: {imported:.2f} s)"
    )
    builders = {
        "layer_graph": views.layer_graph,
        "timeline": views.timeline,
        "usage": views.usage,
        "evolution": views.evolution,
        "attribution": views.attribution,
        "reference_reuse": views.reference_reuse,
    }
    # CPU time next to wall time: on a shared machine the wall clock also counts other processes.
    wall = cpu = 0.0
    for name, build in builders.items():
        started, used = time.perf_counter(), time.process_time()
        figure = build(trace)
        spent, busy = time.perf_counter() - started, time.process_time() - used
        wall, cpu = wall + spent, cpu + busy
        points = sum(_size(t) for t in figure.data)
        print(
            f"  {name:<16}{spent:7.3f} s wall {busy:7.3f} s cpu  "
            f"({len(figure.data)} traces, {points} points)"
        )
    print(f"all figures, cold: {wall:.3f} s wall, {cpu:.3f} s cpu (goal < 1 s)")
    started, used = time.perf_counter(), time.process_time()
    for build in builders.values():
        build(trace)
    print(
        f"all figures again (text measures memoized): {time.perf_counter() - started:.3f} s wall, "
        f"{time.process_time() - used:.3f} s cpu"
    )


if __name__ == "__main__":
    main()
