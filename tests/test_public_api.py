"""The public surface is deliberate, and the package keeps its rooms apart.

The import rules are checked by parsing every module (imports inside functions included), so a lazy
``import plotly`` in the core is caught too.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import moa_lab

PACKAGE = Path(moa_lab.__file__).parent


def test_public_names_are_pinned():
    assert sorted(moa_lab.__all__) == sorted(
        [
            "AGGREGATE_AND_SYNTHESIZE",
            "Agent",
            "Backend",
            "CacheError",
            "Call",
            "CallCache",
            "CallDiff",
            "CallError",
            "Comparison",
            "ConfigError",
            "MoAConfig",
            "MoaLabError",
            "OnCall",
            "Price",
            "RetryPolicy",
            "RunError",
            "Totals",
            "Trace",
            "TraceError",
            "Usage",
            "__version__",
            "arun",
            "build_config",
            "load_config",
            "preset",
            "run",
            "compare",
            # export
            "OtelExport",
            # strategies
            "DebateConfig",
            "RunSettings",
            "RunState",
            "Strategy",
            "StrategyConfig",
            "ToTConfig",
            "thought_tree",
            # replay
            "SetConfig",
            "AddProposer",
            "AggregatorTemplate",
            "Edit",
            "NodeMessage",
            "NodeParams",
            "Plan",
            "PlannedCall",
            "ProposerTemplate",
            "RemoveProposer",
            "UserPrompt",
            "aplan",
            "areplay",
            "edit_from_dict",
            "lineage",
            "plan",
            "replay",
        ]
    )
    for name in moa_lab.__all__:
        assert hasattr(moa_lab, name)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, wherever in the file the import is."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules() -> dict[str, set[str]]:
    return {str(path.relative_to(PACKAGE)): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _importers(prefixes: tuple[str, ...]) -> list[str]:
    return sorted(
        name
        for name, imported in _modules().items()
        if any(i == p or i.startswith(p + ".") for i in imported for p in prefixes)
    )


def test_exactly_one_module_imports_openai():
    assert _importers(("openai",)) == ["_backend.py"]


def test_only_the_span_modules_of_the_export_import_opentelemetry_and_openinference():
    assert _importers(("opentelemetry", "openinference")) == ["_otel/_exporters.py", "_otel/_spans.py"]


def test_only_the_cli_imports_argparse():
    assert all(name.startswith("cli/") for name in _importers(("argparse",)))


def test_only_the_cli_and_the_views_reach_the_views_and_plotting():
    heavy = ("moa_lab.views", "plotly", "ipywidgets", "anywidget")
    outside = [n for n in _importers(heavy) if not n.startswith(("cli/", "views/"))]
    assert outside == []


def test_the_import_rules_see_imports_inside_functions(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text(
        "def f():\n    import plotly.graph_objects as go\n    from moa_lab.views import x\n"
    )
    assert {"plotly.graph_objects", "moa_lab.views", "moa_lab.views.x"} <= _imports(probe)


def test_no_module_is_longer_than_about_400_lines():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text("utf-8").splitlines())) > 440
    }
    assert long == {}


def test_the_sync_wrappers_show_the_parameters_of_their_async_twins():
    from moa_lab.experiments import aexperiment, experiment

    for sync, coroutine in (
        (moa_lab.run, moa_lab.arun),
        (moa_lab.replay, moa_lab.areplay),
        (moa_lab.plan, moa_lab.aplan),
        (experiment, aexperiment),
    ):
        assert (
            inspect.signature(sync).parameters.keys() == inspect.signature(coroutine).parameters.keys()
        )


def test_public_functions_say_what_they_return():
    for name in moa_lab.__all__:
        value = getattr(moa_lab, name)
        if inspect.isfunction(value) or inspect.isclass(value):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"


def test_the_command_line_imports_nothing_heavy_until_a_command_needs_it():
    import subprocess
    import sys

    code = (
        "import sys, moa_lab.cli\n"
        "heavy = ('openai', 'networkx', 'pydantic', 'pandas', 'plotly', 'yaml', 'tqdm', 'httpx2')\n"
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_every_public_name_loads_from_its_home():
    for name in moa_lab.__all__:
        assert getattr(moa_lab, name) is not None
    assert sorted(dir(moa_lab)) == sorted(n for n in moa_lab.__all__ if n != "__version__")
