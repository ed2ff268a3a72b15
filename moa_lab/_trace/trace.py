"""``Trace``: a recorded run as a ``networkx.DiGraph`` whose nodes carry typed ``Call`` records.

Invariant: the graph is the one source of truth: each node holds its ``Call`` under ``call`` and
edges hold ``position``; the trace adds calls only through ``add_call`` (and ``update_call``), so
readers can trust the records they get.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import networkx as nx

from moa_lab._errors import TraceError
from moa_lab._trace.call import Call
from moa_lab._trace.files import (
    TRACE_DIR_ENV,
    create_exclusively,
    default_trace_path,
    describe_os_error,
    graph_from_node_link,
    journal_header,
    journal_line,
    node_link,
    read_trace_file,
    write_atomically,
)
from moa_lab._trace.totals import Totals

if TYPE_CHECKING:
    from moa_lab._otel import OtelExport

__all__ = ["InFlight", "Trace", "set_html_renderer"]


@dataclass
class InFlight:
    """A call of a run in progress that has not finished: what it sent, and its answer so far."""

    call: Call
    """The request as it was sent (nothing answered yet)."""
    references: list[str]
    """The calls whose answers its prompt contains (its edges once it finishes)."""
    text: str = ""
    """The answer as it has streamed in so far (empty when not streamed)."""
    reasoning: str = ""
    """The model's thinking as it has streamed in so far, kept apart from the answer."""
    restarts: int = 0
    """Attempts that streamed and broke, so the text started over."""
    told: float = field(default=0.0, repr=False)
    """When the run's hook last heard of it (monotonic seconds), to tell it at most 10 times/s."""
    unsaid: bool = field(default=False, repr=False)
    """Whether text arrived that the hook has not been told of yet."""


class Trace:
    """A recorded run; ``trace.graph`` is the ``networkx.DiGraph`` itself (``Call`` under ``call``)."""

    def __init__(self, graph: nx.DiGraph, path: Path | None = None):
        self.graph = graph
        self.path = path
        self._order: list[str] | None = None
        #: Calls appended to the journal of a run in progress so far.
        self.journaled = 0
        #: What could not be written to ``path`` (a full disk, ...), or None when it all was.
        self.unsaved: str | None = None
        #: While a run is in progress: its calls that started and have not finished, by node id.
        self.in_flight: dict[str, InFlight] = {}

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
    def messages(self) -> list[dict[str, Any]]:
        """The user's chat messages the run started from."""
        return [
            dict(m)
            for m in self.graph.graph.get("messages") or [{"role": "user", "content": self.prompt}]
        ]

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

    @property
    def sample(self) -> int:
        """Which independent sample of the same run this is (0 for the first)."""
        return int(self.graph.graph.get("sample") or 0)

    @property
    def node_messages(self) -> dict[str, dict[str, str]]:
        """Per node id, the system/user messages a replay edit gave that node."""
        return {k: dict(v) for k, v in (self.graph.graph.get("node_messages") or {}).items()}

    @property
    def edits(self) -> list[dict[str, Any]]:
        """The edits (as plain data) that made this trace from its parent; empty for a plain run."""
        return list(self.graph.graph.get("edits") or [])

    @property
    def parent_run_id(self) -> str | None:
        """The run this trace is a replay of, or None."""
        return self.graph.graph.get("parent_run_id")

    def call(self, node: str) -> Call:
        """The call recorded at node ``node`` (a one-line TraceError if there is none)."""
        try:
            return self.graph.nodes[node]["call"]
        except KeyError:
            known = self.calls()
            listed = ", ".join(known[:8]) + (", …" if len(known) > 8 else "")
            raise TraceError(f"no call {node!r} in this trace; its calls are {listed}") from None

    def __getitem__(self, node: str) -> Call:
        return self.call(node)

    def calls(self, layer: int | None = None) -> list[str]:
        """Node ids in run order (by layer, then index), optionally of one layer."""
        if self._order is None or len(self._order) != self.graph.number_of_nodes():
            records = [
                (data["call"].layer, data["call"].index, n) for n, data in self.graph.nodes(data=True)
            ]
            self._order = [n for _, _, n in sorted(records)]
        if layer is None:
            return list(self._order)
        return [n for n in self._order if self.graph.nodes[n]["call"].layer == layer]

    def records(self, layer: int | None = None) -> list[Call]:
        """The ``Call`` records in run order, optionally of one layer."""
        return [self.graph.nodes[n]["call"] for n in self.calls(layer)]

    def __iter__(self) -> Iterator[str]:
        return iter(self.calls())

    def __len__(self) -> int:
        return self.graph.number_of_nodes()

    def __contains__(self, node: object) -> bool:
        return node in self.graph

    @property
    def layers(self) -> int:
        """Number of layers L of the config (the aggregator's included)."""
        return int(self.config["layers"])

    def aggregator(self) -> str | None:
        """Id of the aggregator node, if it ran."""
        return next((c.id for c in self.records() if c.role == "aggregator"), None)

    def references(self, node: str) -> list[str]:
        """The nodes whose responses this call saw, in the order it saw them."""
        parents = self.graph.in_edges(node, data="position")
        return [u for u, _, _ in sorted(parents, key=lambda edge: edge[2])]

    def totals(self) -> Totals:
        """Calls, tokens and dollars of the run, sent apart from cached or reused."""
        return Totals.of(self.records())

    def to_pandas(self):
        """One row per call, in run order (``pandas.DataFrame``): id, role, place, model and its
        sampling settings, tokens, ``latency`` (service seconds) and ``queued`` (seconds waited
        before service), cost, cache hit or reused, finish reason and truncation, error, references,
        response and Unix start/end times."""
        import pandas as pd

        rows = []
        for call in self.records():
            rows.append(
                {
                    "node": call.id,
                    "role": call.role,
                    "layer": call.layer,
                    "index": call.index,
                    "model": call.model,
                    "base_url": call.base_url,
                    "temperature": call.params.get("temperature"),
                    "seed": call.params.get("seed"),
                    "max_tokens": call.params.get("max_tokens"),
                    "prompt_tokens": call.prompt_tokens,
                    "completion_tokens": call.completion_tokens,
                    "latency": call.latency,
                    "queued": call.queued,
                    "cost": call.cost,
                    "cache_hit": call.cache_hit,
                    "reused": call.reused,
                    "finish_reason": call.finish_reason,
                    "truncated": call.truncated,
                    "error": call.error,
                    "references": self.references(call.id),
                    "response": call.response,
                    "started_at": call.started_at,
                    "ended_at": call.ended_at,
                }
            )
        return pd.DataFrame(rows)

    def to_otel(
        self,
        *,
        endpoint: str | None = None,
        out: str | Path | IO[str] | None = None,
        exporter: Any = None,
        headers: Mapping[str, str] | None = None,
        project: str | None = None,
        timeout: float = 10.0,
    ) -> OtelExport:
        """Send the run as OpenInference spans to Arize Phoenix or any OpenTelemetry backend.

        One span per run (CHAIN), per layer, debate round or search step (CHAIN) and per call (LLM:
        model, sampling settings, messages, answer, tokens, cost, reasoning, annotations), timed by
        the trace, failed calls as error spans, each edge a span link. One destination at most:

        - ``endpoint``: an OTLP/HTTP traces URL, sent with ``headers``. The default is
          ``$OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else ``$PHOENIX_COLLECTOR_ENDPOINT``, else a local
          Phoenix at ``http://127.0.0.1:6006/v1/traces``;
        - ``out``: a JSON-lines file (or an open text stream), one span a line;
        - ``exporter``: any OpenTelemetry ``SpanExporter``.

        ``project`` names the Phoenix project. Returns an ``OtelExport``. Raises ``ConfigError`` for a
        bad destination, ``MoaLabError`` when the ``otel`` extra is missing or not every span was
        accepted within ``timeout`` seconds. Exporting a run again repeats its ids.
        """
        from moa_lab._otel import export

        return export(
            self, endpoint=endpoint, out=out, exporter=exporter, headers=headers, project=project,
            timeout=timeout,
        )  # fmt: skip

    def __repr__(self) -> str:
        totals = self.totals()
        answer = (self.final or "").strip().replace("\n", " ")
        answer = answer if len(answer) <= 60 else answer[:59] + "…"
        return (
            f"<Trace {self.run_id} {self.status}: {self.layers} layers, {totals.calls} calls, "
            f"{totals.cache_hits} cached, {totals.errors} errors; final={answer!r}>"
        )

    def _repr_html_(self) -> str | None:
        """Notebook display: the summary card of whatever renderer the views registered, if any."""
        return None if _html_renderer is None else _html_renderer(self)

    # -- building ----------------------------------------------------------------------------
    def add_call(self, call: Call, references: Sequence[str] = ()) -> None:
        """Record a finished call and the edges from the calls it read (in the order it read them)."""
        self.graph.add_node(call.id, call=call)
        for position, source in enumerate(references, start=1):
            self.graph.add_edge(source, call.id, position=position)

    def add_reference(self, source: str, target: str) -> None:
        """Record that ``target``'s prompt also contained ``source``'s answer (the next position)."""
        position = 1 + max((p for _, _, p in self.graph.in_edges(target, data="position")), default=0)
        self.graph.add_edge(source, target, position=position)

    def update_call(self, node: str, **changes: Any) -> Call:
        """Replace some fields of a recorded call (``picked`` of a ranker, once it is known)."""
        call = replace(self.call(node), **changes)
        self.graph.nodes[node]["call"] = call
        return call

    # -- files -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The trace as JSON-ready node-link data (each node the flat fields of its call)."""
        return node_link(self.graph, self.records())

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "trace") -> Trace:
        """Validate node-link data and build a trace; one-line TraceError on anything off."""
        return cls(graph_from_node_link(data, source=source))

    def save(self, path: str | Path | None = None) -> Path:
        """Write the trace as JSON, atomically; default path under ``traces/``."""
        path = Path(path) if path else (self.path or default_trace_path(self.prompt, self.run_id))
        write_atomically(path, json.dumps(self.to_dict(), indent=1, ensure_ascii=False))
        self.path = path
        return path

    def start_journal(self, path: str | Path, *, exclusive: bool = False) -> None:
        """Begin the file of a run in progress: the graph attributes, then one line per call.

        ``exclusive`` (a name moa_lab chose) creates the file only if nothing is there yet; a path the
        user named is replaced atomically. Raises ``TraceError`` (one line) when it cannot be written.
        """
        path = Path(path)
        try:
            if exclusive:
                create_exclusively(path, journal_header(self.graph))
            else:
                write_atomically(path, journal_header(self.graph))
        except OSError as exc:
            raise TraceError(
                f"cannot write the trace to {path}: {describe_os_error(exc, path)}; choose another "
                f"--trace-out or ${TRACE_DIR_ENV}"
            ) from None
        self.path = path
        self.journaled = 0

    def journal(self, node: str) -> None:
        """Append a finished call (and the edges into it) to the journal begun by ``start_journal``."""
        edges = [
            {"source": u, "target": v, "position": position}
            for u, v, position in self.graph.in_edges(node, data="position")
        ]
        with open(self.path, "a", encoding="utf-8") as journal:
            journal.write(journal_line(self.call(node), edges))
        self.journaled += 1

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace file written by ``save`` (or the journal of a run in progress)."""
        path = Path(path)
        trace = cls.from_dict(read_trace_file(path), source=str(path))
        trace.path = path
        return trace


#: Renders a trace as HTML for notebooks; ``moa_lab.views`` installs one when it is imported.
_html_renderer: Callable[[Trace], str] | None = None


def set_html_renderer(renderer: Callable[[Trace], str] | None) -> None:
    """Install the function a trace's notebook display calls (``trace -> HTML string``)."""
    global _html_renderer
    _html_renderer = renderer
