"""The trace file format: node-link JSON for a finished run, a JSON Lines journal for one in progress.

Invariant: writes are atomic (a temporary file renamed into place); reading checks the schema, the
version and every node (through ``Call.from_dict``), and upgrades what older moa_lab versions wrote,
so any file a user can pass either loads or fails with one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import networkx as nx

from moa_lab._errors import ConfigError, TraceError
from moa_lab._trace.attributes import check_attributes, check_call_place
from moa_lab._trace.call import Call, field_error

__all__ = [
    "SCHEMA",
    "SCHEMA_VERSION",
    "TRACE_DIR_ENV",
    "create_exclusively",
    "default_trace_path",
    "describe_os_error",
    "graph_from_node_link",
    "journal_header",
    "journal_line",
    "new_graph",
    "new_run_id",
    "node_link",
    "prompt_text",
    "read_trace_file",
    "user_messages",
    "write_atomically",
]

SCHEMA = "moa_lab.trace"
SCHEMA_VERSION = 1
TRACE_DIR_ENV = "MOA_LAB_TRACE_DIR"

_GRAPH_FIELDS = ("schema", "schema_version", "run_id", "created_at", "prompt", "config", "final")


def new_run_id() -> str:
    """A fresh run id: 12 hex digits, random, so two runs never share a file name."""
    return uuid.uuid4().hex[:12]


def default_trace_path(prompt: str, run_id: str, *, kind: str = "", when: float | None = None) -> Path:
    """``traces/<date>-<time>-<slug of the prompt>[-<kind>]-<run id>.json`` (``$MOA_LAB_TRACE_DIR``
    moves the folder).

    The slug keeps letters and digits of any script (a Korean and a Japanese prompt get different,
    readable names) and the run id makes the name unique, even for runs started the same second.
    """
    stamp = datetime.fromtimestamp(when or time.time()).strftime("%Y%m%d-%H%M%S")
    # Letters, digits and marks (the vowel signs of Devanagari, Thai, Arabic...) of any script.
    kept = "".join(
        ch if unicodedata.category(ch)[0] in "LMN" else "-"
        for ch in unicodedata.normalize("NFC", prompt[:400]).lower()
    )
    slug = re.sub(r"-+", "-", kept).strip("-")[:40].rstrip("-") or "run"
    parts = [stamp, slug, *([kind] if kind else []), run_id]
    return Path(os.environ.get(TRACE_DIR_ENV, "traces")) / f"{'-'.join(parts)}.json"


def user_messages(prompt: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The user's chat messages: a string becomes one user message."""
    if isinstance(prompt, str):
        if not prompt.strip():
            raise ConfigError("the prompt is empty; give the question to ask the mixture")
        _check_text(prompt, "the prompt")
        return [{"role": "user", "content": prompt}]
    messages = [dict(m) for m in prompt]
    if not messages or any(
        not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str) for m in messages
    ):
        raise ConfigError("messages must be a non-empty list of {'role': str, 'content': str}")
    for number, message in enumerate(messages, start=1):
        _check_text(message["content"], f"message {number}")
    return messages


def _check_text(text: str, what: str) -> None:
    """Refuse text that holds bytes that are not UTF-8 (a shell passes them as lone surrogates)."""
    bad = next((i for i, ch in enumerate(text) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        code = ord(text[bad])
        byte = f" (byte 0x{code - 0xDC00:02x})" if 0xDC80 <= code <= 0xDCFF else ""
        raise ConfigError(
            f"{what} is not valid UTF-8 text{byte} at character {bad + 1}; pass it as UTF-8 "
            "(check the terminal's or file's encoding)"
        )


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """The text a trace names its run by: the last user message."""
    users = [m["content"] for m in messages if m["role"] == "user"]
    return str(users[-1] if users else messages[-1]["content"])


def new_graph(
    messages: list[dict[str, Any]],
    config: dict[str, Any],
    *,
    sample: int = 0,
    run_id: str | None = None,
    version: str = "",
) -> nx.DiGraph:
    """The empty graph of a run that is starting: every graph attribute a trace carries."""
    return nx.DiGraph(
        schema=SCHEMA,
        schema_version=SCHEMA_VERSION,
        run_id=run_id or new_run_id(),
        created_at=time.time(),
        finished_at=None,
        status="running",
        prompt=prompt_text(messages),
        messages=messages,
        config=config,
        final=None,
        sample=sample,
        moa_lab_version=version,
    )


def node_link(graph: nx.DiGraph, calls: Iterable[Call]) -> dict[str, Any]:
    """JSON-ready node-link data of a trace's graph: nodes in the order given, and the edges into
    each node after it, by position (so equal traces give equal files)."""
    nodes = [call.to_dict() for call in calls]
    edges = [
        {"position": position, "source": u, "target": node["id"]}
        for node in nodes
        for u, _, position in sorted(graph.in_edges(node["id"], data="position"), key=lambda e: e[2])
    ]
    return {
        "directed": True,
        "multigraph": False,
        "graph": dict(graph.graph),
        "nodes": nodes,
        "edges": edges,
    }


def _upgrade_config(config: Any) -> Any:
    """The config of a trace in today's shape (moa_lab 0.1 wrote one-call runs' configs apart)."""
    single = isinstance(config, dict) and config.get("kind") in ("single", "judge")
    if single and "proposers" not in config:
        return {"layers": 1, "proposers": [], "aggregator": config.get("agent")}
    return config


def graph_from_node_link(data: Any, *, source: str = "trace") -> nx.DiGraph:
    """Validate node-link data and build the graph; one-line TraceError on anything off."""
    if not isinstance(data, dict) or not isinstance(data.get("graph"), dict):
        raise TraceError(f"{source}: not a moa_lab trace (no graph attributes)")
    attrs = data["graph"]
    if attrs.get("schema") != SCHEMA:
        raise TraceError(f"{source}: not a moa_lab trace (schema is {attrs.get('schema')!r})")
    version = attrs.get("schema_version")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise TraceError(
            f"{source}: trace schema version {version!r} is not supported "
            f"(this moa_lab reads version {SCHEMA_VERSION}); upgrade moa_lab"
        )
    missing = [f for f in _GRAPH_FIELDS if f not in attrs]
    if missing:
        raise TraceError(f"{source}: the trace lacks graph fields {missing}")
    if not isinstance(data.get("nodes"), list) or not isinstance(data.get("edges"), list):
        raise TraceError(f"{source}: the trace needs 'nodes' and 'edges' lists")
    attrs = attrs | {"config": _upgrade_config(attrs["config"])}
    check_attributes(attrs, source=source)
    graph = nx.DiGraph(**attrs)
    layers = attrs["config"]["layers"]
    for node in data["nodes"]:
        call = Call.from_dict(node, source=source)
        check_call_place(call.layer, call.index, layers, where=f"{source}: node {call.id[:40]}")
        if call.id in graph:
            raise TraceError(f"{source}: node {call.id} appears twice")
        graph.add_node(call.id, call=call)
    for edge in data["edges"]:
        if not isinstance(edge, Mapping) or not _known(graph, edge.get("source"), edge.get("target")):
            raise TraceError(f"{source}: an edge names a node that is not in the trace")
        position = edge.get("position")
        if not isinstance(position, int) or isinstance(position, bool) or position < 1:
            where = f"{source}: edge {edge['source']} -> {edge['target']}"
            raise field_error(where, "position", "a whole number >= 1", position)
        graph.add_edge(edge["source"], edge["target"], position=position)
    return graph


def _known(graph: nx.DiGraph, *nodes: Any) -> bool:
    return all(isinstance(node, str) and node in graph for node in nodes)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all, through a temporary file renamed into place.

    The temporary file has a random name and is created exclusively (``mkstemp``: never a file or a
    symlink someone planted), so two writers of one path cannot clobber each other's half-written
    file. Raises ``OSError``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise


def create_exclusively(path: Path, text: str) -> None:
    """Create ``path`` holding ``text``; ``FileExistsError`` if anything (a file, a symlink) is there.

    A file it created but could not fill (a full disk) is removed again, never left empty; only that
    very file (same device and inode), so nothing someone put there since is touched.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    out = open(path, "x", encoding="utf-8")
    made = os.fstat(out.fileno())
    try:
        with out:
            out.write(text)
    except BaseException:
        with contextlib.suppress(OSError):
            now = os.lstat(path)
            if (now.st_dev, now.st_ino) == (made.st_dev, made.st_ino):
                os.unlink(path)
        raise


def describe_os_error(exc: OSError, path: Path) -> str:
    """What went wrong writing ``path``, in words a user can act on."""
    if isinstance(exc, (NotADirectoryError, FileExistsError)) and not path.parent.is_dir():
        blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        return f"{blocking} is a file, not a folder"
    return exc.strerror or str(exc)


def journal_header(graph: nx.DiGraph) -> str:
    """The first line of a run's journal: its graph attributes."""
    return json.dumps({"journal": SCHEMA, "graph": dict(graph.graph)}, ensure_ascii=False) + "\n"


def journal_line(call: Call, edges: list[dict[str, Any]]) -> str:
    """One line of a journal: a finished call and the edges into it."""
    return json.dumps({"node": call.to_dict(), "edges": edges}, ensure_ascii=False) + "\n"


def read_trace_file(path: Path) -> dict[str, Any]:
    """The node-link data in a trace file (a finished trace, or the journal of a run in progress)."""
    if not path.is_file():
        raise TraceError(f"{path}: no such trace file")
    try:
        text = path.read_text("utf-8")
        data = _from_journal(text) if text.startswith('{"journal"') else json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: not a JSON trace ({exc})") from None
    # A lone surrogate can only come from a ``\ud800`` escape; no terminal, page or file takes it.
    return _without_surrogates(data) if _ESCAPED_SURROGATE.search(text) else data


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def _without_surrogates(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate in its strings (keys too) replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


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
