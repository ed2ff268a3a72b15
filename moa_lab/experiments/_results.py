"""What an experiment produced: ``ExperimentResult`` and the per-config table ``summarize`` makes.

Invariant: the table is a pure function of the rows (one per config and item), so it can be rebuilt
from ``results.jsonl`` at any time; unknown numbers stay NaN, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from moa_lab._errors import TraceError
from moa_lab._trace import Trace
from moa_lab.experiments._configs import Candidate
from moa_lab.experiments._datasets import Dataset
from moa_lab.experiments._export import alpaca_eval_outputs
from moa_lab.experiments._scoring import bootstrap_ci

__all__ = ["ExperimentResult", "summarize"]


@dataclass
class ExperimentResult:
    """What an experiment produced: one row per (config, item), the judge's verdicts, the table."""

    dataset: Dataset
    candidates: list[Candidate]
    rows: pd.DataFrame
    """One row per (config, item): output, correctness, tokens, cost, latency, trace path, win."""
    judgments: pd.DataFrame
    """One row per judge call (both orders of every pair); empty when nothing was judged."""
    baseline: str | None
    run_dir: Path

    def table(self, *, confidence: float = 0.95) -> pd.DataFrame:
        """Per config: accuracy and win rate with bootstrap intervals, length, tokens, cost, latency."""
        return summarize(
            self.rows,
            self.candidates,
            baseline=self.baseline,
            confidence=confidence,
            judgments=self.judgments,
        )

    def trace(self, config: str, item: str) -> Trace:
        """The trace of one config on one item."""
        match = self.rows[(self.rows["config"] == config) & (self.rows["item"] == str(item))]
        if match.empty or not match["trace"].iloc[0]:
            raise TraceError(f"no trace of config {config!r} on item {item!r} in this experiment")
        return Trace.load(match["trace"].iloc[0])

    def alpaca_eval_outputs(self, config: str) -> list[dict[str, str]]:
        """One config's answers in AlpacaEval's model-outputs format (instruction, output, generator)."""
        return alpaca_eval_outputs(self, config)

    def __repr__(self) -> str:
        return (
            f"<ExperimentResult {self.dataset.name!r}: {len(self.candidates)} configs × "
            f"{len(self.dataset)} items in {self.run_dir}>\n{self.table().to_string()}"
        )

    def _repr_html_(self) -> str:
        # JupyterLab typesets $...$ in HTML outputs as math ("$0.05 ... $0.10" would vanish);
        # MathJax 3 skips elements of class mathjax_ignore (tex2jax_ignore for MathJax 2).
        table = self.table()._repr_html_()
        return f'<div class="mathjax_ignore tex2jax_ignore">{table}</div>'


def summarize(
    rows: pd.DataFrame,
    candidates: Sequence[Candidate],
    *,
    baseline: str | None = None,
    confidence: float = 0.95,
    judgments: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The per-config table of an experiment's rows (``config`` is the index, in the given order).

    ``accuracy`` counts only the items whose answer could be checked: failed runs (``failed``) and
    answers that state no number (``no_answer``) are counted apart. ``win_rate`` likewise leaves
    out judgments that failed (``judge_failed``) or could not be read (``judge_unreadable``).
    """
    records = []
    for candidate in candidates:
        mine = rows[rows["config"] == candidate.name]
        record: dict[str, Any] = {
            "config": candidate.name,
            "layers": candidate.layers,
            "proposers": candidate.proposers,
            # a single model's name and settings, so configs of one model can be told apart
            "model": candidate.agent.model if candidate.agent is not None else "",
            "sampling": candidate.agent.sampling if candidate.agent is not None else "",
            "items": len(mine),
            "failed": int((mine["status"] == "failed").sum()),
        }
        # Scored: items with answers to match, or a dataset whose checker judged (Game of 24).
        if any(column in mine and mine[column].notna().any() for column in ("answer", "correct")):
            scored = [float(bool(v)) for v in mine["correct"] if v is not None and v == v]
            record["no_answer"] = int(((mine["status"] != "failed") & mine["correct"].isna()).sum())
            record["accuracy"], record["accuracy_low"], record["accuracy_high"] = bootstrap_ci(
                scored, confidence=confidence
            )
        if judgments is not None and len(judgments) and candidate.name != baseline:
            judged = judgments[judgments["config"] == candidate.name]
            if len(judged):
                record["judge_failed"] = int((judged["status"] == "failed").sum())
                record["judge_unreadable"] = int((judged["status"] == "unreadable").sum())
        if "win" in mine and candidate.name != baseline and mine["win"].notna().any():
            record["win_rate"], record["win_low"], record["win_high"] = bootstrap_ci(
                list(mine["win"]), confidence=confidence
            )
        record["mean_length"] = _mean(mine["length"])
        record["tokens"] = _mean(mine["tokens"])
        record["cost"] = _mean(mine["cost"]) if mine["cost"].notna().all() and len(mine) else math.nan
        record["latency"] = _mean(mine["latency"])
        record["calls"] = _mean(mine["calls"])
        records.append(record)
    return pd.DataFrame(records).set_index("config")


def _mean(column: pd.Series) -> float:
    values = pd.to_numeric(column, errors="coerce").dropna()
    return float(values.mean()) if len(values) else math.nan
