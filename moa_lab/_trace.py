"""The trace: a run as a ``networkx.DiGraph``, one node per model call.

An edge u -> v means v's prompt contained u's response (edge attribute ``position`` is the 1-based
number u had among v's references). Graph attributes hold the user prompt, the config, the final
answer, the schema version, the run id and times.

Invariant: a finished trace is JSON in networkx node-link form, written atomically, and loading
checks the schema so a malformed or foreign file fails with one line. While a run is in progress its
file is a journal instead (JSON Lines: the graph attributes, then one line per finished call, each
appended as the call finishes), so a run that is killed keeps every call it finished at a cost per
call that does not grow with the run; ``Trace.load`` reads both.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import networkx as nx

from moa_lab._errors import TraceError

__all__ = [
    "NODE_FIELDS",
    "SCHEMA",
    "SCHEMA_VERSION",
    "TRACE_DIR_ENV",
    "Trace",
    "default_trace_path",
]

SCHEMA = "moa_lab.trace"
SCHEMA_VERSION = 1
TRACE_DIR_ENV = "MOA_LAB_TRACE_DIR"

#: Attributes every call node carries.
NODE_FIELDS = (
    "role",
    "layer",
    "index",
    "model",
    "base_url",
    "params",
    "messages",
    "response",
    "finish_reason",
    "usage",
    "cost",
    "started_at",
    "ended_at",
    "cache_hit",
    "error",
)
_GRAPH_FIELDS = ("schema", "schema_version", "run_id", "created_at", "prompt", "config", "final")


def node_id(layer: int, index: int) -> str:
    """The id of the call at (layer, index): ``L2.0`` is the first agent of layer 2."""
    return f"L{layer}.{index}"


def default_trace_path(prompt: str, when: float | None = None) -> Path:
    """``traces/<date>-<time>-<slug of the prompt>.json`` (``$MOA_LAB_TRACE_DIR`` moves the folder)."""
    stamp = datetime.fromtimestamp(when or time.time()).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", prompt.lower()).strip("-")[:48].rstrip("-") or "run"
    return Path(os.environ.get(TRACE_DIR_ENV, "traces")) / f"{stamp}-{slug}.json"


class Trace:
    """A recorded Mixture-of-Agents run; ``trace.graph`` is the ``networkx.DiGraph`` itself."""

    def __init__(self, graph: nx.DiGraph, path: Path | None = None):
        self.graph = graph
        self.path = path

    # -- reading -----------------------------------------------------------------------------
    @property
    def run_id(self) -> str:
        """Unique id of this run."""
        return self.graph.graph["run_id"]

    @property
    def prompt(self) -> str:
        """The user's prompt (the last user message)."""
        return self.graph.graph["prompt"]

    @property
    def final(self) -> str | None:
        """The final answer, or None when the run did not finish."""
        return self.graph.graph.get("final")

    @property
    def config(self) -> dict[str, Any]:
        """The run's config as plain data."""
        return self.graph.graph["config"]

    @property
    def status(self) -> str:
        """``complete``, ``failed``, or ``running`` (a run that was interrupted)."""
        return self.graph.graph.get("status", "running")

    def calls(self, layer: int | None = None) -> list[str]:
        """Node ids in run order (by layer, then index), optionally of one layer."""
        nodes = sorted(self.graph.nodes, key=lambda n: self._order(n))
        return [n for n in nodes if layer is None or self.graph.nodes[n]["layer"] == layer]

    def _order(self, node: str) -> tuple[int, int]:
        data = self.graph.nodes[node]
        return data["layer"], data["index"]

    def __getitem__(self, node: str) -> dict[str, Any]:
        return self.graph.nodes[node]

    def __iter__(self) -> Iterator[str]:
        return iter(self.calls())

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    @property
    def layers(self) -> int:
        """Number of layers L of the config (the aggregator's included)."""
        return int(self.config["layers"])

    def aggregator(self) -> str | None:
        """Id of the aggregator node, if it ran."""
        found = [n for n in self.graph if self.graph.nodes[n]["role"] == "aggregator"]
        return found[0] if found else None

    def references(self, node: str) -> list[str]:
        """The nodes whose responses this call saw, in the order it saw them."""
        parents = self.graph.in_edges(node, data="position")
        return [u for u, _, _ in sorted(parents, key=lambda edge: edge[2])]

    def totals(self) -> dict[str, Any]:
        """Calls, tokens, cost spent and saved by the cache, errors, wall time."""
        nodes = [self.graph.nodes[n] for n in self.graph]

        def cost(hit: bool) -> float | None:
            costs = [d["cost"] for d in nodes if d["cache_hit"] == hit and not d["error"]]
            return None if any(c is None for c in costs) else sum(costs)

        tokens = [d["usage"] or {} for d in nodes if not d["cache_hit"]]
        ended = [d["ended_at"] for d in nodes]
        started = [d["started_at"] for d in nodes]
        return {
            "calls": len(nodes),
            "cache_hits": sum(1 for d in nodes if d["cache_hit"]),
            "errors": sum(1 for d in nodes if d["error"]),
            "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in tokens),
            "completion_tokens": sum(u.get("completion_tokens", 0) for u in tokens),
            "cost": cost(False),
            "saved_cost": cost(True),
            "wall_time": (max(ended) - min(started)) if nodes else 0.0,
        }

    def to_pandas(self):
        """One row per call, in run order (``pandas.DataFrame``)."""
        import pandas as pd

        rows = []
        for node in self.calls():
            data = self.graph.nodes[node]
            usage = data["usage"] or {}
            rows.append(
                {
                    "node": node,
                    **{k: data[k] for k in ("role", "layer", "index", "model", "base_url")},
                    "prompt_tokens": usage.get("prompt_tokens"),
                    "completion_tokens": usage.get("completion_tokens"),
                    "latency": data.get("latency"),
                    "cost": data["cost"],
                    "cache_hit": data["cache_hit"],
                    "finish_reason": data["finish_reason"],
                    "error": data["error"],
                    "references": self.references(node),
                    "response": data["response"],
                    "started_at": data["started_at"],
                    "ended_at": data["ended_at"],
                }
            )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        totals = self.totals()
        answer = (self.final or "").strip().replace("\n", " ")
        answer = answer if len(answer) <= 60 else answer[:59] + "…"
        return (
            f"<Trace {self.run_id} {self.status}: {self.layers} layers, {totals['calls']} calls, "
            f"{totals['cache_hits']} cached, {totals['errors']} errors; final={answer!r}>"
        )

    def _repr_html_(self) -> str:
        """Notebook display: a compact summary card (built by ``moa_lab.views``, imported lazily)."""
        from moa_lab.views import summary_html

        return summary_html(self)

    # -- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The trace as JSON-ready node-link data."""
        return nx.node_link_data(self.graph, edges="edges")

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "trace") -> Trace:
        """Validate node-link data and build a trace; one-line TraceError on anything off."""
        if not isinstance(data, dict) or not isinstance(data.get("graph"), dict):
            raise TraceError(f"{source}: not a moa_lab trace (no graph attributes)")
        attrs = data["graph"]
        if attrs.get("schema") != SCHEMA:
            raise TraceError(f"{source}: not a moa_lab trace (schema is {attrs.get('schema')!r})")
        version = attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TraceError(
                f"{source}: trace schema version {version!r} is not supported "
                f"(this moa_lab reads version {SCHEMA_VERSION}); upgrade moa_lab"
            )
        missing = [f for f in _GRAPH_FIELDS if f not in attrs]
        if missing:
            raise TraceError(f"{source}: the trace lacks graph fields {missing}")
        if not isinstance(data.get("nodes"), list) or not isinstance(data.get("edges"), list):
            raise TraceError(f"{source}: the trace needs 'nodes' and 'edges' lists")
        for node in data["nodes"]:
            lacking = [f for f in ("id", *NODE_FIELDS) if not isinstance(node, dict) or f not in node]
            if lacking:
                name = node.get("id", "?") if isinstance(node, dict) else "?"
                raise TraceError(f"{source}: node {name} lacks fields {lacking}")
        try:
            graph = nx.node_link_graph(data, directed=True, multigraph=False, edges="edges")
        except (KeyError, TypeError, nx.NetworkXError) as exc:
            raise TraceError(f"{source}: malformed node-link data ({exc})") from None
        known = {node["id"] for node in data["nodes"]}
        for edge in data["edges"]:
            if edge.get("source") not in known or edge.get("target") not in known:
                raise TraceError(f"{source}: an edge names a node that is not in the trace")
        return cls(graph)

    def save(self, path: str | Path | None = None) -> Path:
        """Write the trace as JSON, atomically; default path under ``traces/``."""
        path = Path(path) if path else (self.path or default_trace_path(self.prompt))
        _write_atomically(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        self.path = path
        return path

    def start_journal(self, path: str | Path) -> None:
        """Begin the file of a run in progress: the graph attributes, then one line per call."""
        self.path = Path(path)
        header = {"journal": SCHEMA, "graph": dict(self.graph.graph)}
        _write_atomically(self.path, json.dumps(header, ensure_ascii=False) + "\n")

    def journal(self, node: str) -> None:
        """Append a finished call (and the edges into it) to the journal begun by ``start_journal``."""
        edges = [
            {"source": u, "target": v, "position": position}
            for u, v, position in self.graph.in_edges(node, data="position")
        ]
        line = {"node": {"id": node, **self.graph.nodes[node]}, "edges": edges}
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(json.dumps(line, ensure_ascii=False) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace file written by ``save``."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"{path}: no such trace file")
        try:
            text = path.read_text("utf-8")
            data = _from_journal(text) if text.startswith('{"journal"') else json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TraceError(f"{path}: not a JSON trace ({exc})") from None
        trace = cls.from_dict(data, source=str(path))
        trace.path = path
        return trace


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(text, "utf-8")
    os.replace(partial, path)


def _from_journal(text: str) -> dict[str, Any]:
    """Node-link data from the journal of a run in progress (a line torn by a kill is skipped)."""
    lines = text.splitlines()
    header = json.loads(lines[0])
    data: dict[str, Any] = {
        "directed": True,
        "multigraph": False,
        "graph": header.get("graph"),
        "nodes": [],
        "edges": [],
    }
    for number, line in enumerate(lines[1:], start=2):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break  # the last line was being written when the run was killed
            raise
        data["nodes"].append(entry["node"])
        data["edges"].extend(entry["edges"])
    return data
