"""moa_lab: see and change how a Mixture-of-Agents reaches its answer.

Run a mixture with ``run`` / ``arun``; every proposer and aggregator call becomes a node of a
``networkx`` graph (the ``Trace``), saved as JSON under ``traces/`` and cached on disk.
"""

from __future__ import annotations

__version__ = "0.1.0"

# Registers the "local" base_url resolver and the "local" preset; llama_cpp loads on first use.
from moa_lab import _local as _local
from moa_lab._cache import CallCache
from moa_lab._compare import compare
from moa_lab._config import Agent, MoAConfig, Price, build_config, load_config, preset
from moa_lab._engine import arun, run
from moa_lab._errors import CacheError, CallError, ConfigError, MoaLabError, RunError, TraceError
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
from moa_lab._replay import (
    AddProposer,
    AggregatorTemplate,
    NodeMessage,
    NodeParams,
    ProposerTemplate,
    RemoveProposer,
    UserPrompt,
    aplan,
    areplay,
    lineage,
    plan,
    replay,
)
from moa_lab._trace import Trace

__all__ = [
    "AGGREGATE_AND_SYNTHESIZE",
    "AddProposer",
    "Agent",
    "AggregatorTemplate",
    "CacheError",
    "CallCache",
    "CallError",
    "ConfigError",
    "MoAConfig",
    "MoaLabError",
    "NodeMessage",
    "NodeParams",
    "Price",
    "ProposerTemplate",
    "RemoveProposer",
    "RunError",
    "Trace",
    "TraceError",
    "UserPrompt",
    "__version__",
    "aplan",
    "areplay",
    "arun",
    "build_config",
    "compare",
    "lineage",
    "load_config",
    "plan",
    "preset",
    "replay",
    "run",
]
