"""Benchmark: the views and ``moa-lab show`` on big traces, each figure printed next to its goal.

Synthetic traces, built directly as graphs (no server) with prose-like text: sentences of
Zipf-distributed words with punctuation, paragraphs, bullets and headings; each answer is made of
sentences taken (some edited) from its references, mixed with fresh ones.

- ``long``: three proposers of ~130 KB each and an aggregator whose answer is ~400 KB; every
  message quotes its references, as the engine's do. Timed in this process: the HTML page
  (``views.to_html``), that call's panel (``views.call_html``), ``TraceExplorer`` (which opens on
  that call), its ``provenance``, and how ``word_diff`` and ``provenance`` grow from a quarter of
  the texts to all of them (linear: 4x).
- ``wide``: 4,999 proposers in one layer and an aggregator (5,000 calls: the shape whose one
  similarity heatmap made a 472 MB page). ``moa-lab view --html`` runs in a child process: its
  wall time, its peak RSS (``os.wait4``) and the page's size.
- ``deep``: 50 layers of 100 proposers and an aggregator (5,001 calls, 490,100 edges), measured as
  ``wide``. Its messages carry the prompt only: quoting 100 references in each would make a
  400 MB trace file.
- ``show``: one layer of 999 (then 9,999) proposers and an aggregator; ``moa-lab show`` in a child
  process against ``Trace.load`` alone in that process (the ratio is the goal), and how both grow.

Goals are judged on wall-clock time; CPU time (this process's, or the child's from ``os.wait4``)
is printed next to it, with the load average, since on a shared machine the two part ways.
Run: ``.venv/bin/python benchmarks/bench_scale.py`` (``--only long`` for one part; ``--help``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx

from moa_lab import Agent, Call, MoAConfig, Trace, Usage

__all__ = ["main", "prose_trace"]

_MODELS = ("qwen-72b", "llama-3-70b", "mixtral-8x22b", "wizardlm-2", "dbrx", "gpt-4o")
_COMMON = (
    "the of and to a in is that it for as with was on be by this are or from at an which not but "
    "have can has more one all their its they we also will other when there been if so these may "
    "each into than only some such any would most what about model answer agents layer response "
    "first because between both same how where while then however often very through used"
).split()
_PROMPT = "Explain how a mixture of agents reaches its answer, with examples."
_URL = "http://127.0.0.1:9/v1"
_MB = 1024 * 1024


class _Prose:
    """Prose-like text: common words most often, a long tail of rarer ones (Zipf), real punctuation."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.words = _COMMON + [f"{stem}{end}" for stem in _stems(rng) for end in ("", "s", "ed", "ing")]
        weights, total = [], 0.0
        for rank in range(len(self.words)):
            total += 1 / (rank + 2)
            weights.append(total)
        self.cumulative = weights

    def sentence(self) -> str:
        words = self.rng.choices(self.words, cum_weights=self.cumulative, k=self.rng.randint(6, 24))
        for at in range(3, len(words) - 2, self.rng.randint(5, 11)):
            words[at] += ","
        return words[0].capitalize() + " " + " ".join(words[1:]) + self.rng.choice(".....?!:")

    def answer(self, size: int, sources: list[list[str]]) -> list[str]:
        """About ``size`` characters of sentences: 60% taken from ``sources``, some of them edited."""
        out: list[str] = []
        length = 0
        while length < size:
            if sources and self.rng.random() < 0.6:
                source = self.rng.choice(sources)
                start = self.rng.randrange(len(source))
                for sentence in source[start : start + self.rng.randint(1, 4)]:
                    if self.rng.random() < 0.3:
                        words = sentence.split()
                        words[self.rng.randrange(len(words))] = self.rng.choice(self.words)
                        sentence = " ".join(words)
                    out.append(sentence)
                    length += len(sentence) + 1
            else:
                sentence = self.sentence()
                out.append(sentence)
                length += len(sentence) + 1
        return out


def _stems(rng: random.Random) -> list[str]:
    consonants, vowels = "bcdfghklmnprstvwz", "aeiou"
    stems = set()
    while len(stems) < 1500:
        stems.add(
            "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(rng.randint(1, 3)))
            + rng.choice(consonants)
        )
    ordered = sorted(stems)
    rng.shuffle(ordered)  # the rank (how common a word is) must not follow the alphabet
    return ordered


def _layout(rng: random.Random, sentences: list[str]) -> str:
    """Sentences laid out as markdown: paragraphs, some bullet lists, an occasional heading."""
    blocks: list[str] = []
    at = 0
    while at < len(sentences):
        kind = rng.random()
        take = rng.randint(2, 6)
        chunk = sentences[at : at + take]
        at += take
        if kind < 0.08:
            blocks.append("## " + chunk[0].rstrip(".?!:"))
            blocks.append(" ".join(chunk[1:]))
        elif kind < 0.25:
            blocks.append("\n".join(f"- {s}" for s in chunk))
        else:
            blocks.append(" ".join(chunk))
    return "\n\n".join(b for b in blocks if b)


def prose_trace(
    shape: list[int], *, size: int = 800, final_size: int | None = None, quote: bool = True,
    seed: int = 0,
) -> Trace:  # fmt: skip
    """A finished trace with ``shape[i]`` proposers in layer i+1, then one aggregator.

    Proposer answers are about ``size`` characters, the aggregator's ``final_size`` (default
    ``size``); every call reads all answers of the layer before. ``quote``: messages carry the
    references (as the engine sends them), else the prompt only.
    """
    from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE, with_references

    rng = random.Random(seed)
    prose = _Prose(rng)
    agents = max(shape)
    config = MoAConfig(
        proposers=[
            [Agent(model=_MODELS[i % len(_MODELS)], base_url=_URL) for i in range(count)]
            for count in shape
        ],
        aggregator=Agent(model=_MODELS[0], base_url=_URL),
        layers=len(shape) + 1,
    )
    graph = nx.DiGraph(
        schema="moa_lab.trace",
        schema_version=1,
        run_id=f"scale-{len(shape)}x{agents}",
        created_at=1_700_000_000.0,
        finished_at=None,
        status="complete",
        prompt=_PROMPT,
        messages=[{"role": "user", "content": _PROMPT}],
        config=config.to_dict(),
        final=None,
        sample=0,
        moa_lab_version="bench",
    )
    trace = Trace(graph)
    clock = 1_700_000_000.0
    previous: list[str] = []
    sources: list[list[str]] = []
    for layer, count in enumerate([*shape, 1], start=1):
        last = layer == len(shape) + 1
        names, made = [], []
        # Each call draws from a few of its references: enough to copy from, cheap to generate.
        for index in range(count):
            picked = rng.sample(sources, min(len(sources), 4))
            sentences = prose.answer((final_size or size) if last else size, picked)
            made.append(sentences)
            text = _layout(rng, sentences)
            latency = rng.uniform(0.5, 4.0)
            hit = rng.random() < 0.1
            user = [{"role": "user", "content": _PROMPT}]
            messages = (
                with_references(user, AGGREGATE_AND_SYNTHESIZE, [trace[p].response for p in previous])
                if quote and previous
                else user
            )
            name = f"L{layer}.{index}"
            trace.add_call(
                Call(
                    id=name,
                    role="aggregator" if last else "proposer",
                    layer=layer,
                    index=index,
                    model=_MODELS[0] if last else _MODELS[index % len(_MODELS)],
                    base_url=_URL,
                    params={"temperature": 0.7, "max_tokens": 4096},
                    messages=tuple(messages),
                    response=text,
                    finish_reason="stop",
                    usage=Usage(
                        prompt_tokens=sum(len(m["content"]) for m in messages) // 4,
                        completion_tokens=len(text) // 4,
                    ),
                    cost=0.000002 * len(text),
                    latency=latency,
                    started_at=clock + rng.uniform(0, 0.5),
                    ended_at=clock + 0.5 + (0.001 if hit else latency),
                    cache_hit=hit,
                ),
                previous,
            )
            names.append(name)
        clock = max(trace[n].ended_at for n in names)
        previous, sources = names, made
    graph.graph.update(final=trace[previous[0]].response, finished_at=clock)
    return trace


# -- measuring ------------------------------------------------------------------------------------
class _Table:
    """Rows of (what, measured, goal, met), printed as they come and again at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str, str, str]] = []

    def add(self, what: str, value: float, unit: str, goal: float | None, note: str = "") -> None:
        shown = f"{value:.2f} {unit}".strip() if value == value else "did not finish"
        met = "-" if goal is None else ("met" if value <= goal else "NOT met")
        target = "-" if goal is None else f"< {goal:g} {unit}".strip()
        self.rows.append((what, shown + (f" ({note})" if note else ""), target, met))
        print(f"  {what:<52}{self.rows[-1][1]:<28}{target:<12}{met}", flush=True)

    def print(self) -> None:
        print(f"\nload average {os.getloadavg()[0]:.2f} (2 cores shared)")
        print(f"| {'figure':<52} | {'measured':<28} | {'goal':<10} | met     |")
        print(f"|{'-' * 54}|{'-' * 30}|{'-' * 12}|---------|")
        for what, shown, target, met in self.rows:
            print(f"| {what:<52} | {shown:<28} | {target:<10} | {met:<7} |")


def _timed(work: Callable[[], object]) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result): on a shared machine the two differ."""
    started, used = time.perf_counter(), time.process_time()
    result = work()
    return time.perf_counter() - started, time.process_time() - used, result


def _child(code: str, timeout: float) -> tuple[float, float, float, str]:
    """Run ``code`` in a fresh interpreter: (wall s, CPU s, peak RSS MB, stdout); NaN on timeout."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        process = subprocess.Popen([sys.executable, "-c", code], stdout=out)
        deadline = started + timeout
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                process.kill()
                os.wait4(process.pid, 0)
                return float("nan"), float("nan"), float("nan"), ""
            time.sleep(0.05)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"child failed ({process.returncode}): {code}")
        out.seek(0)
        return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, out.read().decode()


def _long(table: _Table, size: int) -> None:
    from moa_lab import _analysis, views

    started = time.perf_counter()
    trace = prose_trace([3], size=size // 3, final_size=size)
    final = trace.aggregator()
    print(
        f"long: {len(trace[final].response) / 1024:.0f} KB answer, references of "
        f"{', '.join(f'{len(trace[r].response) / 1024:.0f}' for r in trace.references(final))} KB "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )
    views.TraceExplorer(prose_trace([2], size=200))  # imports ipywidgets and plotly before timing
    wall, cpu, page = _timed(lambda: views.to_html(trace))
    table.add("400 KB answer: views.to_html (the whole page)", wall, "s", 3, f"cpu {cpu:.2f} s")
    table.add("  page size", len(page) / _MB, "MB", None)
    _analysis._measures._memo.clear()
    wall, cpu, _ = _timed(lambda: views.call_html(trace, final))
    table.add("400 KB answer: views.call_html(aggregator), cold", wall, "s", 3, f"cpu {cpu:.2f} s")
    _analysis._measures._memo.clear()
    wall, cpu, _ = _timed(lambda: views.TraceExplorer(trace))
    table.add("400 KB answer: TraceExplorer(trace), cold", wall, "s", 3, f"cpu {cpu:.2f} s")
    old, new = trace[trace.references(final)[0]].response, trace[final].response
    _, quarter, _ = _timed(lambda: _analysis.word_diff(old[: len(old) // 4], new[: len(new) // 4]))
    _, whole, _ = _timed(lambda: _analysis.word_diff(old, new))
    table.add(
        "word_diff growth, 4x the text (linear: 4x)", whole / quarter, "x", 6,
        f"cpu {quarter:.2f} s -> {whole:.2f} s",
    )  # fmt: skip
    wall, cpu, _ = _timed(lambda: _analysis.provenance(trace, final))
    table.add("400 KB answer: provenance (spans, 3 references)", wall, "s", 1, f"cpu {cpu:.2f} s")
    # A trace a quarter the size, made alike (a quarter of each text would cut its copies apart).
    small = prose_trace([3], size=size // 12, final_size=size // 4)
    quarter = min(_timed(lambda: _analysis.provenance(small, final))[1] for _ in range(3))
    whole = min(_timed(lambda: _analysis.provenance(trace, final))[1] for _ in range(3))
    table.add(
        "provenance growth, 4x the texts (linear: 4x)", whole / quarter, "x", 6,
        f"cpu {quarter:.2f} s -> {whole:.2f} s",
    )  # fmt: skip


def _view(table: _Table, name: str, shape: list[int], quote: bool, timeout: float) -> None:
    with tempfile.TemporaryDirectory() as where:
        started = time.perf_counter()
        trace = prose_trace(shape, quote=quote)
        path = trace.save(Path(where) / f"{name}.json")
        edges = trace.graph.number_of_edges()
        print(
            f"{name}: {len(trace)} calls, {edges} edges, trace file "
            f"{path.stat().st_size / _MB:.0f} MB (built in {time.perf_counter() - started:.1f} s)"
        )
        del trace
        out = Path(where) / f"{name}.html"
        argv = ["view", str(path), "--html", str(out)]
        wall, cpu, peak, _ = _child(
            f"from moa_lab.cli import main; raise SystemExit(main({argv!r}))", timeout
        )
        label = f"{name} ({'x'.join(map(str, (len(shape), max(shape))))} + 1 calls)"
        table.add(f"{label}: moa-lab view --html", wall, "s", 15, f"cpu {cpu:.1f} s")
        table.add(f"{label}: peak memory", peak, "MB", 1024)
        size = out.stat().st_size / _MB if out.exists() else float("nan")
        table.add(f"{label}: page size", size, "MB", 20)


_SHOW = """
import contextlib, io, json, time
from moa_lab._trace import Trace
from moa_lab.cli import main
import moa_lab.views._text
started = time.perf_counter(); Trace.load({path!r}); load = time.perf_counter() - started
with contextlib.redirect_stdout(io.StringIO()):
    started = time.perf_counter(); main(['show', {path!r}]); show = time.perf_counter() - started
print(json.dumps({{"load": load, "show": show}}))
"""


def _show(table: _Table, counts: list[int], timeout: float) -> None:
    seen: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as where:
        for count in counts:
            path = prose_trace([count - 1], size=600).save(Path(where) / f"show{count}.json")
            *_, out = _child(_SHOW.format(path=str(path)), timeout)
            if not out:
                table.add(f"show, {count} calls: show / load", float("nan"), "x", 3)
                continue
            seen[count] = json.loads(out)
            load, show = seen[count]["load"], seen[count]["show"]
            table.add(
                f"show, {count} calls: show / load", show / load, "x", 3,
                f"{show:.2f} s / {load:.2f} s",
            )  # fmt: skip
    if len(seen) == 2:
        small, big = (seen[c] for c in counts)
        factor = counts[1] / counts[0]
        table.add(
            f"show growth, {factor:g}x the calls (load: {big['load'] / small['load']:.1f}x)",
            big["show"] / small["show"], "x", 2 * factor,
        )  # fmt: skip


def main() -> None:
    """Build the traces, measure, print a table of figures and goals."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", choices=("long", "wide", "deep", "show"), action="append", help="parts to run"
    )
    parser.add_argument("--answer-kb", type=int, default=400, help="size of the long answer")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a child is killed")
    args = parser.parse_args()
    parts = args.only or ["long", "wide", "deep", "show"]
    print(f"load average {os.getloadavg()[0]:.2f} (2 cores shared)")
    table = _Table()
    if "long" in parts:
        _long(table, args.answer_kb * 1024)
    if "wide" in parts:
        _view(table, "wide", [4999], True, args.timeout)
    if "deep" in parts:
        _view(table, "deep", [100] * 50, False, args.timeout)
    if "show" in parts:
        _show(table, [1000, 10000], args.timeout)
    table.print()


if __name__ == "__main__":
    main()
