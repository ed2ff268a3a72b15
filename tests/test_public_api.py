"""The public surface is deliberate: this list changes only on purpose."""

from __future__ import annotations

import ast
from pathlib import Path

import moa_lab


def test_public_names_are_pinned():
    assert sorted(moa_lab.__all__) == sorted(
        [
            "AGGREGATE_AND_SYNTHESIZE",
            "Agent",
            "CacheError",
            "CallCache",
            "CallError",
            "ConfigError",
            "MoAConfig",
            "MoaLabError",
            "Price",
            "RunError",
            "Trace",
            "TraceError",
            "__version__",
            "arun",
            "build_config",
            "load_config",
            "preset",
            "run",
            # replay (issue 5)
            "AddProposer",
            "AggregatorTemplate",
            "NodeMessage",
            "NodeParams",
            "ProposerTemplate",
            "RemoveProposer",
            "UserPrompt",
            "aplan",
            "areplay",
            "lineage",
            "plan",
            "replay",
            "compare",
        ]
    )
    for name in moa_lab.__all__:
        assert hasattr(moa_lab, name)


def test_exactly_one_module_imports_openai():
    importers = []
    for path in Path(moa_lab.__file__).parent.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(name == "openai" or name.startswith("openai.") for name in names):
                importers.append(path.name)
    assert sorted(set(importers)) == ["_backend.py"]


def test_the_core_does_not_import_the_views():
    core = [p for p in Path(moa_lab.__file__).parent.glob("_*.py")]
    for path in core:
        text = path.read_text()
        assert "import plotly" not in text and "ipywidgets" not in text, path.name
