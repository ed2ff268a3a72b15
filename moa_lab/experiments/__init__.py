"""Experiments: run mixtures over datasets, score them against baselines, compare cost and quality.

``experiment(configs, dataset)`` runs every config on every item (through the call cache, one trace
per run in a run directory, resumable), scores the answers (exact/numeric match, or a pairwise LLM
judge against a baseline) and returns an ``ExperimentResult`` whose ``table()`` has one row per
config. Invariant: this subpackage is core-side: it imports neither plotly nor ipywidgets (the
figures live in ``moa_lab.views``).
"""

from __future__ import annotations

from moa_lab.experiments._configs import Candidate, as_candidates, paper_variants, singles, sweep
from moa_lab.experiments._datasets import SHIPPED, Dataset, DatasetError, Item, load_dataset
from moa_lab.experiments._export import AlpacaEvalFile, alpaca_eval_outputs, export_alpaca_eval
from moa_lab.experiments._file import load_experiment_file
from moa_lab.experiments._results import ExperimentResult, summarize
from moa_lab.experiments._runner import aexperiment, experiment
from moa_lab.experiments._scoring import (
    bootstrap_ci,
    extract_answer,
    is_correct,
    judge_messages,
    pareto_front,
    parse_verdict,
    score_answer,
)

__all__ = [
    "SHIPPED",
    "AlpacaEvalFile",
    "Candidate",
    "Dataset",
    "DatasetError",
    "ExperimentResult",
    "Item",
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
    "score_answer",
    "singles",
    "summarize",
    "sweep",
]
