"""When does a user first see the answer? The aggregator's time to first token, streamed or not.

A 2-layer mixture (3 proposers, then the aggregator) on the loopback FakeLLM over real HTTP through
the openai client. Each call waits ``--delay`` seconds before its first word (prefill), then writes a
word every ``--token-seconds`` (decode). Streamed, the user sees the aggregator's first words as soon
as they are written; not streamed, only when its whole answer has arrived (the run's end). The table
gives, from the run's start: when the first word of the answer was visible, when the run ended, and
the aggregator's own ``ttft`` as recorded in the trace. Medians of ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_stream.py [--delay 0.3] [--token-seconds 0.05] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import moa_lab
from moa_lab.testing import FakeLLM, fake_config


def one_run(url: str, stream: bool, prompt: str) -> tuple[float, float, float | None]:
    """(seconds to the answer's first visible word, seconds to the run's end, recorded ttft)."""
    seen: list[float] = []
    started = time.perf_counter()

    def on_call(trace, node):
        flight = trace.in_flight.get(node)
        if not seen and flight is not None and flight.call.role == "aggregator" and flight.text:
            seen.append(time.perf_counter() - started)

    config = fake_config(url, stream=stream)
    trace = moa_lab.run(prompt, config, cache=False, trace_path=False, progress=False, on_call=on_call)
    ended = time.perf_counter() - started
    return (seen[0] if seen else ended), ended, trace[trace.aggregator()].ttft


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.3, help="seconds before a call's first word")
    parser.add_argument("--token-seconds", type=float, default=0.05, help="seconds between words")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: dict[bool, list[tuple[float, float, float | None]]] = {True: [], False: []}
    with FakeLLM(delay=args.delay, token_seconds=args.token_seconds) as server:
        for repeat in range(args.repeats):
            for stream in (True, False):
                rows[stream].append(one_run(server.url, stream, f"Question {repeat}: why?"))
    print(f"delay {args.delay} s, a word every {args.token_seconds} s, {args.repeats} runs each\n")
    print(f"{'':<14}{'first word seen':>16}{'run ended':>11}{'aggregator ttft':>17}")
    medians = {}
    for stream, label in ((True, "streamed"), (False, "not streamed")):
        first = statistics.median(r[0] for r in rows[stream])
        end = statistics.median(r[1] for r in rows[stream])
        ttfts = [r[2] for r in rows[stream] if r[2] is not None]
        ttft = f"{statistics.median(ttfts):.3f} s" if ttfts else "–"
        medians[stream] = first
        print(f"{label:<14}{first:>14.3f} s{end:>9.3f} s{ttft:>17}")
    print(f"\nthe answer shows {medians[False] / medians[True]:.2f}x sooner streamed")


if __name__ == "__main__":
    main()
