"""Experiments: run mixtures over datasets, score them against baselines, compare cost and quality.

``experiment(configs, dataset)`` runs every config on every item (through the call cache, one trace
per run in a run directory, resumable), scores the answers (exact/numeric match, or a pairwise LLM
judge against a baseline) and returns an ``ExperimentResult`` whose ``table()`` has one row per
config. Invariant: this subpackage is core-side — it imports neither plotly nor ipywidgets (the
figures live in ``moa_lab.views.experiments``) — and its names load on first use, so the CLI can
register ``moa-lab experiment`` without importing pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moa_lab.experiments._cli import add_command, load_experiment_file
    from moa_lab.experiments._configs import Candidate, as_candidates, paper_variants, singles, sweep
    from moa_lab.experiments._datasets import SHIPPED, Dataset, DatasetError, Item, load_dataset
    from moa_lab.experiments._export import alpaca_eval_outputs, export_alpaca_eval
    from moa_lab.experiments._runner import ExperimentResult, aexperiment, experiment, summarize
    from moa_lab.experiments._scoring import (
        bootstrap_ci,
        extract_answer,
        is_correct,
        judge_messages,
        pareto_front,
        parse_verdict,
    )

#: Public name -> the module that defines it.
_HOMES = {
    "add_command": "_cli",
    "load_experiment_file": "_cli",
    "Candidate": "_configs",
    "as_candidates": "_configs",
    "paper_variants": "_configs",
    "singles": "_configs",
    "sweep": "_configs",
    "SHIPPED": "_datasets",
    "Dataset": "_datasets",
    "DatasetError": "_datasets",
    "Item": "_datasets",
    "load_dataset": "_datasets",
    "alpaca_eval_outputs": "_export",
    "export_alpaca_eval": "_export",
    "ExperimentResult": "_runner",
    "aexperiment": "_runner",
    "experiment": "_runner",
    "summarize": "_runner",
    "bootstrap_ci": "_scoring",
    "extract_answer": "_scoring",
    "is_correct": "_scoring",
    "judge_messages": "_scoring",
    "pareto_front": "_scoring",
    "parse_verdict": "_scoring",
}

__all__ = [
    "SHIPPED",
    "Candidate",
    "Dataset",
    "DatasetError",
    "ExperimentResult",
    "Item",
    "add_command",
    "aexperiment",
    "alpaca_eval_outputs",
    "as_candidates",
    "bootstrap_ci",
    "experiment",
    "export_alpaca_eval",
    "extract_answer",
    "is_correct",
    "judge_messages",
    "load_dataset",
    "load_experiment_file",
    "paper_variants",
    "pareto_front",
    "parse_verdict",
    "singles",
    "summarize",
    "sweep",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'moa_lab.experiments' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"moa_lab.experiments.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
