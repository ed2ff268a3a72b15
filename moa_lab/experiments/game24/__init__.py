"""Game of 24, the Tree-of-Thoughts benchmark: its puzzles, a solver, the official judge, its logs.

The task and the logs come from Yao et al. 2023, "Tree of Thoughts: Deliberate Problem Solving with
Large Language Models" (arXiv 2305.10601), code release princeton-nlp/tree-of-thought-llm: four
numbers from 1 to 13 are to be combined with + - * / into 24, each used exactly once.

The paper's input-output and chain-of-thought prompts (``STANDARD_PROMPT``, ``COT_PROMPT``, its
``src/tot/prompts/game24.py``) are here for baselines: ``Candidate(..., prompt_template=COT_PROMPT)``.

Invariant: the puzzles are made by exact rational search, not read from the paper's files; ``check``
judges as the paper's code does and never evaluates code.
"""

from __future__ import annotations

from moa_lab._tot.game24 import COT_PROMPT, STANDARD_PROMPT
from moa_lab.experiments.game24._check import check
from moa_lab.experiments.game24._import import ImportedSearches, import_tot_log, tot_traces
from moa_lab.experiments.game24._logs import (
    LogError,
    SampleRun,
    ToTSearch,
    ToTStep,
    Usage,
    read_ranked_puzzles,
    read_sample_log,
    read_tot_log,
)
from moa_lab.experiments.game24._puzzles import puzzles, solve

__all__ = [
    "COT_PROMPT",
    "STANDARD_PROMPT",
    "ImportedSearches",
    "LogError",
    "SampleRun",
    "ToTSearch",
    "ToTStep",
    "Usage",
    "check",
    "import_tot_log",
    "puzzles",
    "read_ranked_puzzles",
    "read_sample_log",
    "read_tot_log",
    "solve",
    "tot_traces",
]
