"""moa_lab: see and change how a Mixture-of-Agents reaches its answer.

Run a mixture with ``run`` / ``arun``; every proposer and aggregator call becomes a typed ``Call``
on a node of a ``networkx`` graph (the ``Trace``), saved as JSON under ``traces/`` and cached on
disk. ``replay`` re-runs a trace with edits, sending only what they reach; ``compare`` sets two
traces side by side; ``trace.to_otel()`` sends one to Arize Phoenix or any OpenTelemetry backend.
Views live in ``moa_lab.views``, experiments in ``moa_lab.experiments``, the embedded model in
``moa_lab.local`` and a deterministic test server in ``moa_lab.testing``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING

from moa_lab._lazy import lazy_exports

if TYPE_CHECKING:
    from moa_lab._backend import Backend, RetryPolicy
    from moa_lab._cache import CallCache
    from moa_lab._compare import CallDiff, Comparison, compare
    from moa_lab._config import Agent, MoAConfig, Price, RunSettings, load_config
    from moa_lab._debate import DebateConfig
    from moa_lab._engine import OnCall, RunState
    from moa_lab._errors import CacheError, CallError, ConfigError, MoaLabError, RunError, TraceError
    from moa_lab._otel import OtelExport
    from moa_lab._presets import build_config, preset
    from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
    from moa_lab._replay import (
        AddProposer,
        AggregatorTemplate,
        Edit,
        NodeMessage,
        NodeParams,
        Plan,
        PlannedCall,
        ProposerTemplate,
        RemoveProposer,
        SetConfig,
        UserPrompt,
        aplan,
        areplay,
        edit_from_dict,
        lineage,
        plan,
        replay,
    )
    from moa_lab._run import arun, run
    from moa_lab._strategies import Strategy, StrategyConfig
    from moa_lab._tot import ToTConfig
    from moa_lab._tot.tree import thought_tree
    from moa_lab._trace import Call, Totals, Trace, Usage

#: Public name -> the module that defines it (loaded on first use: ``moa-lab --help`` stays fast).
_HOMES = {
    "Backend": "_backend",
    "RetryPolicy": "_backend",
    "CallCache": "_cache",
    "CallDiff": "_compare",
    "Comparison": "_compare",
    "compare": "_compare",
    "Agent": "_config",
    "MoAConfig": "_config",
    "Price": "_config",
    "load_config": "_config",
    "RunSettings": "_config",
    "DebateConfig": "_debate",
    "RunState": "_engine",
    "SetConfig": "_replay",
    "Strategy": "_strategies",
    "StrategyConfig": "_strategies",
    "ToTConfig": "_tot",
    "thought_tree": "_tot.tree",
    "OnCall": "_engine",
    "arun": "_run",
    "run": "_run",
    "CacheError": "_errors",
    "CallError": "_errors",
    "ConfigError": "_errors",
    "MoaLabError": "_errors",
    "RunError": "_errors",
    "TraceError": "_errors",
    "OtelExport": "_otel",
    "build_config": "_presets",
    "preset": "_presets",
    "AGGREGATE_AND_SYNTHESIZE": "_prompts",
    "AddProposer": "_replay",
    "AggregatorTemplate": "_replay",
    "Edit": "_replay",
    "NodeMessage": "_replay",
    "NodeParams": "_replay",
    "Plan": "_replay",
    "PlannedCall": "_replay",
    "ProposerTemplate": "_replay",
    "RemoveProposer": "_replay",
    "UserPrompt": "_replay",
    "aplan": "_replay",
    "areplay": "_replay",
    "edit_from_dict": "_replay",
    "lineage": "_replay",
    "plan": "_replay",
    "replay": "_replay",
    "Call": "_trace",
    "Totals": "_trace",
    "Trace": "_trace",
    "Usage": "_trace",
}

__all__ = [
    "AGGREGATE_AND_SYNTHESIZE",
    "AddProposer",
    "Agent",
    "AggregatorTemplate",
    "Backend",
    "CacheError",
    "Call",
    "CallCache",
    "CallDiff",
    "CallError",
    "Comparison",
    "ConfigError",
    "DebateConfig",
    "Edit",
    "MoAConfig",
    "MoaLabError",
    "NodeMessage",
    "NodeParams",
    "OnCall",
    "OtelExport",
    "Plan",
    "PlannedCall",
    "Price",
    "ProposerTemplate",
    "RemoveProposer",
    "RetryPolicy",
    "RunError",
    "RunSettings",
    "RunState",
    "SetConfig",
    "Strategy",
    "StrategyConfig",
    "ToTConfig",
    "Totals",
    "Trace",
    "TraceError",
    "Usage",
    "UserPrompt",
    "__version__",
    "aplan",
    "areplay",
    "arun",
    "build_config",
    "compare",
    "edit_from_dict",
    "lineage",
    "load_config",
    "plan",
    "preset",
    "replay",
    "run",
    "thought_tree",
]

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
