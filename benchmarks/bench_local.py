"""A default local run, whole process, against raw llama-cpp-python generating the same tokens.

moa_lab side: a real ``moa-lab run PROMPT --no-cache`` (the ``local`` preset) in a fresh process,
exactly as a user runs it: interpreter start, imports, the engine, the ``openai`` client, HTTP on
loopback, the local server, llama.cpp, the trace file.

raw side, the physical limit here: a fresh process that imports ``llama_cpp``, loads the same GGUF
with the same context size and threads on its main thread, and runs the very same calls on that
thread one after another, each from an empty context: the messages and sampling arguments are read
from the trace of a first (uncounted) moa_lab run, so both sides generate the same tokens, and every
round checks that they did (same texts).

Each round runs both sides, the one that goes first alternating. Tokens/s is all completion tokens
of the run over the whole process's wall time. Goal: median ratio moa_lab / raw <= 1.05.

``--prefix-reuse`` runs the calls of a default run raw twice, in fresh processes: from an empty
context each (as the local server does) and reusing the longest prompt prefix the previous call left
in llama.cpp's cache; it reports whether the seeded texts stayed byte-identical and the time saved.

``--decode`` instead measures decode tokens/s of each packaged model at several thread counts, each
in a fresh process generating on the thread that loaded the model (llama.cpp's own counters: decode
only, prompt apart).

Run: .venv/bin/python benchmarks/bench_local.py [--rounds 5] [--prompt TEXT]
     .venv/bin/python benchmarks/bench_local.py --prefix-reuse [--rounds 3] [--prompt TEXT]
     .venv/bin/python benchmarks/bench_local.py --decode [--threads 1,2] [--models NAME,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import moa_lab
import moa_lab.local
from moa_lab import Trace
from moa_lab.local import N_CTX, gguf_path, n_threads, sampling_options

__all__ = ["main"]

#: The raw side: reads {gguf, n_ctx, n_threads, chat_format, calls, reset} on stdin, loads and
#: generates on the main thread, prints {texts, load_s (the Llama() call), calls: [llama.cpp's
#: counters per call]}.
#: ``reset: false`` lets llama-cpp-python reuse the longest prompt prefix the previous call left.
RAW = r"""
import json, sys, time
import llama_cpp
job = json.load(sys.stdin)
started = time.perf_counter()
llm = llama_cpp.Llama(model_path=job["gguf"], n_ctx=job["n_ctx"], n_threads=job["n_threads"],
                      n_threads_batch=job["n_threads"], chat_format=job["chat_format"], verbose=False)
loaded = time.perf_counter()
texts, calls = [], []
for call in job["calls"]:
    if job.get("reset", True):
        llm.reset()
    llama_cpp.llama_perf_context_reset(llm.ctx)
    result = llm.create_chat_completion(messages=call["messages"], **call["options"])
    perf = llama_cpp.llama_perf_context(llm.ctx)
    texts.append(result["choices"][0]["message"]["content"] or "")
    calls.append({"prompt_n": perf.n_p_eval, "prompt_ms": perf.t_p_eval_ms,
                  "predicted_n": perf.n_eval, "predicted_ms": perf.t_eval_ms})
print(json.dumps({"texts": texts, "load_s": loaded - started, "calls": calls}))
"""

#: The environment moa_lab gives llama.cpp, so the raw side runs with the same settings (read with a
#: default so the script also measures a checkout from before the settings existed).
LLAMA_ENV: dict[str, str] = getattr(moa_lab.local, "LLAMA_ENV", {})

#: The moa_lab side: the CLI's own entry point, as the ``moa-lab`` script runs it.
CLI = "import sys; from moa_lab.cli import main; sys.exit(main(sys.argv[1:]))"


def _env() -> dict[str, str]:
    """The environment of both sides: this moa_lab on the path, no GGUF or llama.cpp settings."""
    env = {k: v for k, v in os.environ.items() if k not in ("MOA_LAB_GGUF", *LLAMA_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(moa_lab.__file__).resolve().parents[1]), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def _moa_lab_run(prompt: str, trace: Path) -> float:
    """Wall seconds of one ``moa-lab run`` in a fresh process (its trace written to ``trace``)."""
    argv = [sys.executable, "-c", CLI, "run", prompt, "--no-cache", "--trace-out", str(trace)]
    started = time.perf_counter()
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"moa-lab run failed:\n{done.stderr}")
    return seconds


def _raw_run(job: dict[str, Any], env: dict[str, str] | None = None) -> tuple[float, dict[str, Any]]:
    """Wall seconds of the raw process, and what it printed (``env`` added to its environment;
    by default moa_lab's settings for llama.cpp)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", RAW],
        input=json.dumps(job),
        env={**_env(), **(LLAMA_ENV if env is None else env)},
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode:
        sys.exit(f"the raw llama-cpp-python process failed:\n{done.stderr}")
    return seconds, json.loads(done.stdout)


def _in_order(trace: Trace) -> list[Any]:
    """The calls of a trace in the order they were sent."""
    return sorted((trace[n] for n in trace.calls()), key=lambda call: call.started_at)


def _raw_job(trace: Trace, gguf: Path) -> dict[str, Any]:
    """The calls of a trace as the local server hands them to llama.cpp (the default model's)."""
    return {
        "gguf": str(gguf),
        "n_ctx": N_CTX,
        "n_threads": n_threads(),
        "chat_format": None,
        "calls": [
            {
                "messages": [dict(m) for m in call.messages],
                "options": sampling_options({"messages": [], **call.params}),
            }
            for call in _in_order(trace)
        ],
    }


def _uptime() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_run(prompt: str, rounds: int) -> None:
    """Print per-round wall times and tokens/s of both sides, and the median ratio."""
    gguf = gguf_path("local")
    with tempfile.TemporaryDirectory() as folder:
        first = Path(folder) / "first.json"
        print(f"{gguf.name}, {n_threads()} threads, n_ctx {N_CTX}; {_uptime()}")
        _moa_lab_run(prompt, first)  # uncounted: warms the page cache, gives the calls to replay
        trace = Trace.load(first)
        texts = [call.response for call in _in_order(trace)]
        tokens = sum(call.completion_tokens or 0 for call in _in_order(trace))
        job = _raw_job(trace, gguf)
        print(f"{len(texts)} calls, {tokens} completion tokens per run; prompt {prompt!r}")
        print(f"{'round':>5} {'first':>8} {'moa_lab (s)':>12} {'raw (s)':>8} {'ratio':>6}  same texts")
        labs, raws = [], []
        for number in range(rounds):
            out = Path(folder) / f"round{number}.json"
            if number % 2:
                lab = _moa_lab_run(prompt, out)
                raw, printed = _raw_run(job)
            else:
                raw, printed = _raw_run(job)
                lab = _moa_lab_run(prompt, out)
            lab_texts = [call.response for call in _in_order(Trace.load(out))]
            same = lab_texts == texts and [t.strip() for t in printed["texts"]] == texts
            labs.append(lab)
            raws.append(raw)
            print(
                f"{number:>5} {'moa_lab' if number % 2 else 'raw':>8} {lab:>12.2f} {raw:>8.2f} "
                f"{lab / raw:>6.3f}  {'yes' if same else 'NO'}"
            )
        lab, raw = statistics.median(labs), statistics.median(raws)
        print(
            f"median wall: moa_lab {lab:.2f} s ({tokens / lab:.2f} tok/s), raw {raw:.2f} s "
            f"({tokens / raw:.2f} tok/s)"
        )
        ratio = statistics.median(a / b for a, b in zip(labs, raws, strict=True))
        print(f"median ratio moa_lab / raw (whole process): {ratio:.3f} (goal <= 1.05)")
        print(_uptime())


def bench_prefix_reuse(prompt: str, rounds: int) -> None:
    """Print the texts and times of the calls of a run, raw, with and without prefix reuse."""
    with tempfile.TemporaryDirectory() as folder:
        first = Path(folder) / "first.json"
        _moa_lab_run(prompt, first)
        job = _raw_job(Trace.load(first), gguf_path("local"))
    print(f"{len(job['calls'])} calls of a default run, raw, fresh process each; {_uptime()}")
    print(f"{'round':>5} {'mode':>13} {'wall (s)':>9} {'prefill tokens':>15} {'prefill (s)':>12}  texts")
    reference: list[str] = []
    walls: dict[bool, list[float]] = {True: [], False: []}
    for number in range(rounds):
        # Round 0 starts from an empty context, so its texts are the reference of every later run.
        for reset in (True, False) if number % 2 == 0 else (False, True):
            wall, printed = _raw_run({**job, "reset": reset})
            reference = reference or printed["texts"]
            walls[reset].append(wall)
            differing = [
                i for i, (a, b) in enumerate(zip(printed["texts"], reference, strict=True)) if a != b
            ]
            print(
                f"{number:>5} {'empty context' if reset else 'prefix reuse':>13} {wall:>9.2f} "
                f"{sum(c['prompt_n'] for c in printed['calls']):>15} "
                f"{sum(c['prompt_ms'] for c in printed['calls']) / 1000:>12.2f}  "
                + (f"calls {differing} differ" if differing else "same")
            )
    print(
        f"median wall: empty context {statistics.median(walls[True]):.2f} s, "
        f"prefix reuse {statistics.median(walls[False]):.2f} s; {_uptime()}"
    )


def bench_decode(models: list[str], threads: list[int], policies: list[str], repeats: int) -> None:
    """Print decode and prefill tokens/s per model, thread count and OpenMP wait policy.

    Each measurement is a fresh process; the settings of a model take turns within each repeat
    (in reverse order every other repeat), so a burst of load from elsewhere hits them alike.
    """
    from moa_lab.local import MODELS

    messages = [{"role": "user", "content": "Explain step by step how a hash map handles collisions."}]
    options = sampling_options({"messages": [], "temperature": 0.7, "seed": 1, "max_tokens": 64})
    print(f"tokens/s from llama.cpp's counters, median of {repeats} fresh processes; {_uptime()}")
    print(
        f"{'model':<20} {'threads':>7} {'OpenMP wait':>11} {'decode tok/s':>13} {'prefill tok/s':>14} "
        f"{'load (s)':>9}  text"
    )
    settings = [(count, policy) for count in threads for policy in policies]
    for name in models:
        model = MODELS[name]
        gguf = str(gguf_path(f"local:{name}"))
        runs: dict[tuple[int, str], list[dict[str, Any]]] = {setting: [] for setting in settings}
        for number in range(repeats):
            for count, policy in settings if number % 2 == 0 else settings[::-1]:
                job = {
                    "gguf": gguf,
                    "n_ctx": N_CTX,
                    "n_threads": count,
                    "chat_format": model.chat_format,
                }
                job["calls"] = [{"messages": messages, "options": options}]
                env = {} if policy == "default" else {"OMP_WAIT_POLICY": policy}
                runs[count, policy].append(_raw_run(job, env)[1])
        reference = runs[settings[0]][0]["texts"]
        for (count, policy), printed in runs.items():
            calls = [p["calls"][0] for p in printed]
            decode = statistics.median(c["predicted_n"] / c["predicted_ms"] * 1000 for c in calls)
            prefill = statistics.median(c["prompt_n"] / c["prompt_ms"] * 1000 for c in calls)
            load = statistics.median(p["load_s"] for p in printed)
            same = all(p["texts"] == reference for p in printed)
            print(
                f"{name:<20} {count:>7} {policy:>11} {decode:>13.1f} {prefill:>14.1f} {load:>9.2f}  "
                f"{'same' if same else 'DIFFERS'}"
            )
        print(_uptime())


def main() -> None:
    """Run the whole-process comparison, or the decode table with ``--decode``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--prompt", default="Why is the sky blue?")
    parser.add_argument("--decode", action="store_true", help="decode tok/s per model and threads")
    parser.add_argument("--prefix-reuse", action="store_true", help="texts and time with prefix reuse")
    parser.add_argument("--threads", default="1,2", help="thread counts for --decode")
    parser.add_argument(
        "--omp-wait", default="default,passive", help="OMP_WAIT_POLICY values for --decode"
    )
    parser.add_argument("--models", help="packaged models for --decode (default: all)")
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per --decode row")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # rows show as they come, also into a file
    if args.decode:
        from moa_lab.local import MODELS

        models = args.models.split(",") if args.models else list(MODELS)
        threads = [int(t) for t in args.threads.split(",")]
        bench_decode(models, threads, args.omp_wait.split(","), args.repeats)
    elif args.prefix_reuse:
        bench_prefix_reuse(args.prompt, args.rounds)
    else:
        bench_run(args.prompt, args.rounds)


if __name__ == "__main__":
    main()
