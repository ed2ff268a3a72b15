"""The experiment runner: every config on every item, then scores, as one table.

Runs go through the call cache and each (config, item) writes its trace to the run directory as its
calls finish. Invariant: a run interrupted at any point loses nothing it finished — a re-run loads
the complete traces, takes finished calls from the cache and sends only the calls that are missing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm.auto import tqdm

from moa_lab._backend import Backend
from moa_lab._cache import CallCache, canonical_json, open_cache
from moa_lab._calls import check_ready
from moa_lab._config import Agent, MoAConfig, RunSettings
from moa_lab._errors import ConfigError, RunError, TraceError
from moa_lab._run import arun
from moa_lab._sync import blocking
from moa_lab._text import safe_file_name
from moa_lab._trace import Totals, Trace
from moa_lab.experiments._configs import Candidate, as_candidates
from moa_lab.experiments._datasets import Dataset, Item, load_dataset
from moa_lab.experiments._results import ExperimentResult
from moa_lab.experiments._scoring import judge_messages, parse_verdict

__all__ = ["EXPERIMENT_DIR_ENV", "REFERENCE", "aexperiment", "experiment"]

EXPERIMENT_DIR_ENV = "MOA_LAB_EXPERIMENT_DIR"
_JUDGMENT_COLUMNS = ["config", "item", "order", "verdict", "status", "score", "error", "trace"]
#: The baseline name that stands for the dataset's reference outputs (AlpacaEval's ``output``).
REFERENCE = "reference"

ConfigsArg = Candidate | RunSettings | str | Iterable[Candidate | RunSettings | str] | Mapping[str, Any]


def _messages(item: Item, system: str | None, template: str | None = None) -> list[dict[str, Any]]:
    # Filled by replacement, never str.format: an item may hold braces.
    prompt = template.replace("{input}", item.prompt) if template else item.prompt
    user = [{"role": "user", "content": prompt}]
    return [{"role": "system", "content": system}, *user] if system else user


def _reusable(path: Path, config: dict[str, Any], messages: list[dict[str, Any]]) -> Trace | None:
    """A finished trace at ``path`` of exactly this config and these messages, else None."""
    if not path.is_file():
        return None
    try:
        trace = Trace.load(path)
    except TraceError:
        return None
    same = canonical_json(trace.config) == canonical_json(config)
    sent = canonical_json(trace.messages) == canonical_json(messages)
    return trace if trace.status == "complete" and same and sent else None


def _critical_latency(trace: Trace) -> float | None:
    """Seconds along the critical path: the slowest call of each layer, summed (cached calls count)."""
    slowest: dict[int, float] = {}
    for call in trace.records():
        if call.latency is not None:
            slowest[call.layer] = max(slowest.get(call.layer, 0.0), call.latency)
    return sum(slowest.values()) if slowest else None


def _row(
    dataset: Dataset, candidate: Candidate, item: Item, trace: Trace | None, error: str | None
) -> dict[str, Any]:
    totals = Totals.of(trace.records() if trace is not None else [])
    output = trace.final if trace is not None and error is None else None
    return {
        "config": candidate.name,
        "item": item.id,
        "layers": candidate.layers,
        "proposers": candidate.proposers,
        "status": "failed" if error else "complete",
        "error": error,
        "output": output,
        "answer": item.answer,
        # None: nothing to score (the run failed, or its answer states no number to check).
        "correct": dataset.score(item, output),
        "length": len(output) if output is not None else None,
        "calls": totals.calls,
        "cache_hits": totals.cache_hits,
        # Every call of the answer, cached or not: what the system costs, whatever the cache held.
        "prompt_tokens": totals.prompt_tokens,
        "completion_tokens": totals.completion_tokens,
        "tokens": totals.tokens,
        "cost": totals.cost if totals.calls else None,
        "latency": _critical_latency(trace) if trace is not None else None,
        "trace": str(trace.path) if trace is not None and trace.path else None,
    }


def _default_run_dir(dataset: Dataset, candidates: list[Candidate], system: str | None) -> Path:
    identity = canonical_json(
        {
            "configs": [c.to_dict() for c in candidates],
            "items": [[i.id, i.prompt] for i in dataset.items],
            "system": system,
        }
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    return (
        Path(os.environ.get(EXPERIMENT_DIR_ENV, "experiments"))
        / f"{safe_file_name(dataset.name)}-{digest}"
    )


async def _gather_all(coroutines: list[Any]) -> list[Any]:
    """Run coroutines concurrently; on any failure or cancellation, cancel the rest and wait for them."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


class _Experiment:
    """The state of one experiment run: where things go, the cache, the shared backend and the limit."""

    def __init__(
        self,
        dataset: Dataset,
        run_dir: Path,
        cache: CallCache | None,
        concurrency: int,
        width: int,
        progress: bool,
    ):
        self.dataset = dataset
        self.run_dir = run_dir
        self.cache = cache
        self.limit = asyncio.Semaphore(concurrency)
        self.progress = progress
        # One backend for every run and call: shared HTTP clients, and a cap on calls in flight that
        # lets ``concurrency`` runs of the widest layer go at once.
        self.backend = Backend(max_concurrency=concurrency * width)

    async def close(self) -> None:
        """Close the HTTP clients this experiment opened."""
        await self.backend.aclose()

    async def run_one(
        self, candidate: Candidate, item: Item, system: str | None, bar: tqdm
    ) -> dict[str, Any]:
        """Run one config on one item (or load its finished trace) and return its row."""
        messages = _messages(item, system, candidate.prompt_template)
        path = (
            self.run_dir / "traces" / safe_file_name(candidate.name) / f"{safe_file_name(item.id)}.json"
        )
        config = candidate.run_config
        async with self.limit:
            trace = _reusable(path, config.to_dict(), messages)
            error = None
            if trace is None:
                try:
                    trace = await arun(
                        messages,
                        config,
                        cache=self.cache if self.cache is not None else False,
                        trace_path=path,
                        progress=False,
                        backend=self.backend,
                    )
                except RunError as exc:
                    trace, error = exc.trace if isinstance(exc.trace, Trace) else None, str(exc)
        bar.update(1)
        bar.set_postfix_str(candidate.name, refresh=False)
        return _row(self.dataset, candidate, item, trace, error)

    async def judge_one(
        self, judge: Agent, item: Item, name: str, output: str, baseline_output: str, bar: tqdm
    ) -> list[dict[str, Any]]:
        """Both orders of one (candidate, baseline) pair; each judgment row scores the candidate."""
        rows = []
        for order, (a, b) in (
            ("candidate-first", (output, baseline_output)),
            ("baseline-first", (baseline_output, output)),
        ):
            messages = judge_messages(item.prompt, a, b)
            path = (
                self.run_dir / "judge" / safe_file_name(name) / f"{safe_file_name(item.id)}.{order}.json"
            )
            config = MoAConfig.single(judge)
            async with self.limit:
                trace = _reusable(path, config.to_dict(), messages)
                if trace is None:
                    try:
                        trace = await arun(
                            messages,
                            config,
                            cache=self.cache if self.cache is not None else False,
                            trace_path=path,
                            progress=False,
                            backend=self.backend,
                        )
                    except RunError as exc:
                        trace = exc.trace
            error = trace.records()[0].error
            verdict = None if error else parse_verdict(trace.final)
            candidate_letter = "A" if order == "candidate-first" else "B"
            if verdict is None:
                score = math.nan  # counted apart, never as a tie
            else:
                score = 0.5 if verdict == "tie" else float(verdict == candidate_letter)
            rows.append(
                {
                    "config": name,
                    "item": item.id,
                    "order": order,
                    "verdict": verdict,
                    "status": "failed" if error else "unreadable" if verdict is None else "judged",
                    "score": score,
                    "error": error,
                    "trace": str(trace.path),
                }
            )
            bar.update(1)
        return rows


def _judge_agent(judge: Agent | MoAConfig | str) -> Agent:
    if isinstance(judge, MoAConfig):
        return judge.aggregator
    return judge if isinstance(judge, Agent) else Agent(model=judge)


async def aexperiment(
    configs: ConfigsArg,
    dataset: Dataset | str | Path,
    *,
    run_dir: str | Path | None = None,
    cache: CallCache | str | Path | bool = True,
    concurrency: int = 8,
    system: str | None = None,
    judge: Agent | MoAConfig | str | None = None,
    baseline: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> ExperimentResult:
    """Run every config on every item of a dataset, score the answers and return the results.

    ``configs``: MoAConfigs, preset names, Candidates (``singles(config)``, ``paper_variants(base)``)
    or a ``{name: config}`` dict. ``concurrency`` caps the (config, item) runs in flight. ``system``
    is sent as a system message before each item. With a ``judge`` (an Agent, or a config whose
    aggregator judges), every config is compared pairwise, in both orders, with ``baseline``
    (default: the first single-model config, else the first config); ``baseline="reference"``
    compares with the dataset's reference outputs instead, as AlpacaEval does.
    """
    candidates = as_candidates(configs)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    data = data.head(limit) if limit is not None else data
    if concurrency < 1:
        raise ConfigError(f"concurrency: must be >= 1, got {concurrency}")
    names = [c.name for c in candidates]
    judge_agent = _judge_agent(judge) if judge is not None else None
    if judge_agent is not None:
        default = next((c.name for c in candidates if c.agent is not None), names[0])
        baseline = baseline or default
    if baseline == REFERENCE and baseline not in names:
        if any(item.reference is None for item in data.items):
            raise ConfigError(
                f"baseline 'reference': {data.name} has items without a reference 'output'; "
                "name a config as the baseline instead"
            )
    elif baseline is not None and baseline not in names:
        raise ConfigError(
            f"baseline {baseline!r} is not one of the configs ({', '.join(names)}) nor 'reference'"
        )
    agents = [a for c in candidates for a in c.run_config.agents()]
    check_ready(agents + ([judge_agent] if judge_agent else []))
    directory = Path(run_dir) if run_dir else _default_run_dir(data, candidates, system)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "experiment.json").write_text(
        json.dumps(
            {
                "dataset": data.name,
                "items": [i.id for i in data.items],
                "system": system,
                "configs": [c.to_dict() for c in candidates],
                "judge": judge_agent.model_dump(mode="json") if judge_agent else None,
                "baseline": baseline,
            },
            indent=1,
        ),
        "utf-8",
    )
    store, owns_cache = open_cache(cache)
    width = max(len(c.run_config.agents()) for c in candidates)
    state = _Experiment(data, directory, store, concurrency, width, progress)
    try:
        bar = tqdm(
            total=len(candidates) * len(data),
            desc=f"experiment {data.name}",
            unit="run",
            file=sys.stderr,
            disable=not progress,
        )
        # Mixtures first: a single model then finds its answer in the cache from layer 1 of a mixture.
        found: dict[tuple[str, str], dict[str, Any]] = {}
        for group in (
            [c for c in candidates if c.agent is None],
            [c for c in candidates if c.agent is not None],
        ):
            for row in await _gather_all(
                [state.run_one(c, item, system, bar) for item in data.items for c in group]
            ):
                found[row["config"], row["item"]] = row
        bar.close()
        frame = pd.DataFrame([found[name, item.id] for name in names for item in data.items])
        judgments = pd.DataFrame(columns=_JUDGMENT_COLUMNS)
        if judge_agent is not None and baseline is not None:
            judgments = await _judge(state, judge_agent, data, frame, baseline, names)
            wins = judgments.groupby(["config", "item"])["score"].mean()
            frame["win"] = [
                wins.get((c, i), math.nan) for c, i in zip(frame["config"], frame["item"], strict=True)
            ]
    finally:
        await state.close()
        if owns_cache and store is not None:
            store.close()
    result = ExperimentResult(data, candidates, frame, judgments, baseline, directory)
    frame.to_json(directory / "results.jsonl", orient="records", lines=True, force_ascii=False)
    result.table().to_csv(directory / "summary.csv")
    return result


async def _judge(
    state: _Experiment,
    judge: Agent,
    data: Dataset,
    frame: pd.DataFrame,
    baseline: str,
    names: list[str],
) -> pd.DataFrame:
    outputs = {
        (c, i): o for c, i, o in zip(frame["config"], frame["item"], frame["output"], strict=True)
    }
    jobs = []
    for item in data.items:
        if baseline == REFERENCE and baseline not in names:
            reference = item.reference
        else:
            reference = outputs.get((baseline, item.id))
        for name in names:
            output = outputs.get((name, item.id))
            if name == baseline or reference is None or output is None:
                continue
            jobs.append((item, name, output, reference))
    bar = tqdm(
        total=2 * len(jobs), desc="judge", unit="call", file=sys.stderr, disable=not state.progress
    )
    found = await _gather_all([state.judge_one(judge, *job, bar) for job in jobs])
    bar.close()
    rows = [row for pair in found for row in pair]
    return pd.DataFrame(rows, columns=_JUDGMENT_COLUMNS)


def experiment(
    configs: ConfigsArg,
    dataset: Dataset | str | Path,
    *,
    run_dir: str | Path | None = None,
    cache: CallCache | str | Path | bool = True,
    concurrency: int = 8,
    system: str | None = None,
    judge: Agent | MoAConfig | str | None = None,
    baseline: str | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> ExperimentResult:
    """Blocking ``aexperiment`` for scripts; also works inside a running event loop (Jupyter).

    Returns the ``ExperimentResult``; raises ``ConfigError`` (bad configs, baseline or keys) before
    anything is sent and ``DatasetError`` for a malformed dataset.
    """
    return blocking(
        aexperiment(
            configs,
            dataset,
            run_dir=run_dir,
            cache=cache,
            concurrency=concurrency,
            system=system,
            judge=judge,
            baseline=baseline,
            limit=limit,
            progress=progress,
        )
    )
