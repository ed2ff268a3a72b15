"""``TraceBrowser``: the traces of a folder in a notebook, to open one in the explorer or compare two.

Each trace file is listed with its date, what the run was (strategy and shape, status, a replay's
parent, an import's source), its prompt and its answer. A file that is not a trace moa_lab can read
(corrupt, crafted, too big, unreadable) is listed with a one-line reason, never a traceback.

Invariant: a file is read only through ``Trace.load`` (which validates every field); trace strings
are escaped in the table and reach the drop-down list only as option text (never parsed as HTML);
the root carries ``ROOT_CLASS``, so JupyterLab's MathJax leaves a ``$`` alone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from moa_lab._errors import MoaLabError
from moa_lab._text import clip
from moa_lab._trace import Trace
from moa_lab.views._compare_view import CompareView
from moa_lab.views._html import wrap
from moa_lab.views._style import esc
from moa_lab.views._text import run_lines
from moa_lab.views._widgets import TraceExplorer

__all__ = ["MAX_BYTES", "Listed", "TraceBrowser", "list_traces", "read_listing", "read_trace"]

#: A file bigger than this is listed, not read (a browser must stay quick; open it with Trace.load).
MAX_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class Listed:
    """One file of the folder: what the run was, or why it cannot be read (``problem``)."""

    path: Path
    created: float | None = None
    run: tuple[str, ...] = ()
    """``run_lines``: strategy and shape with status, a replay's parent, an import's source."""
    prompt: str = ""
    answer: str | None = None
    problem: str | None = None

    @property
    def date(self) -> str:
        """When the run started, local time, to the minute."""
        if self.created is None:
            return "–"
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


def _one_line(text: str) -> str:
    return clip(" ".join(text.split()), 200)


def read_trace(path: Path) -> tuple[Trace | None, str | None]:
    """The trace in ``path``, or None and why not in one line; never raises."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            return None, f"too big to list here ({size / 2**20:,.0f} MB); open it with Trace.load"
        return Trace.load(path), None
    except MoaLabError as exc:  # one line by design; drop the path, the table names the file
        return None, _one_line(str(exc).replace(f"{path}: ", ""))
    except OSError as exc:
        return None, _one_line(f"cannot read it: {exc.strerror or exc}")
    except Exception as exc:  # a crafted file may break the reader anywhere: list it, do not fail
        return None, f"not a trace moa_lab can read ({type(exc).__name__})"


def read_listing(path: Path) -> Listed:
    """What the browser lists for one file; never raises."""
    trace, problem = read_trace(path)
    if trace is None:
        return Listed(path, problem=problem)
    return Listed(
        path,
        created=trace.graph.graph.get("created_at"),
        run=tuple(run_lines(trace)),
        prompt=trace.prompt,
        answer=trace.final,
    )


def list_traces(folder: str | Path) -> list[Listed]:
    """The ``*.json`` files of ``folder`` (not its subfolders): traces newest first, then the files
    that are not readable traces, by name."""
    found = [read_listing(p) for p in sorted(Path(folder).expanduser().glob("*.json")) if p.is_file()]
    good = sorted((f for f in found if f.problem is None), key=lambda f: -(f.created or 0.0))
    return good + [f for f in found if f.problem is not None]


def _table(listed: list[Listed]) -> str:
    rows = []
    for number, item in enumerate(listed, start=1):
        if item.problem is not None:
            rows.append(
                f"<tr><td>{number}</td><td>–</td><td colspan=3>"
                f'<span class="moa-badge moa-err">not a trace</span> {esc(item.problem)}</td>'
                f'<td class="moa-muted">{esc(item.path.name)}</td></tr>'
            )
            continue
        run = f"<b>{esc(item.run[0])}</b>" + "".join(
            f'<div class="moa-muted">{esc(clip(line, 140))}</div>' for line in item.run[1:]
        )
        answer = (
            esc(clip(item.answer, 160))
            if item.answer is not None
            else '<span class="moa-muted">(none: the run did not finish)</span>'
        )
        rows.append(
            f"<tr><td>{number}</td><td style='white-space:nowrap'>{esc(item.date)}</td>"
            f"<td>{run}</td><td>{esc(clip(item.prompt, 140))}</td><td>{answer}</td>"
            f'<td class="moa-muted">{esc(item.path.name)}</td></tr>'
        )
    return (
        "<table class='moa-layers'><tr><th>#</th><th>date</th><th>run</th><th>prompt</th>"
        f"<th>answer</th><th>file</th></tr>{''.join(rows)}</table>"
    )


class TraceBrowser(widgets.VBox):
    """The traces of a folder: pick one and open it in the explorer, or pick two and compare them.

    ``explore(path)`` and ``compare(a, b)`` do what the buttons do; ``refresh()`` reads the folder again.
    """

    def __init__(self, folder: str | Path = "traces"):
        self.folder = Path(folder).expanduser()
        self.listed: list[Listed] = []
        self.table = widgets.HTML()
        self.picker = widgets.SelectMultiple(options=[], rows=8, layout=widgets.Layout(width="100%"))
        self.open_button = widgets.Button(description="Open in the explorer", icon="folder-open")
        self.compare_button = widgets.Button(description="Compare two", icon="columns")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh")
        self.note = widgets.HTML()
        self.view = widgets.VBox()
        self.open_button.on_click(lambda _: self._open_picked())
        self.compare_button.on_click(lambda _: self._compare_picked())
        self.refresh_button.on_click(lambda _: self.refresh())
        buttons = widgets.HBox([self.open_button, self.compare_button, self.refresh_button, self.note])
        super().__init__([self.table, self.picker, buttons, self.view])
        self.refresh()

    def refresh(self) -> None:
        """Read the folder again and list what is in it."""
        if not self.folder.is_dir():
            self.listed = []
            self.table.value = wrap(f"<b>{esc(self.folder)}</b>: no such folder", True)
            self.picker.options = []
            return
        self.listed = list_traces(self.folder)
        good = [item for item in self.listed if item.problem is None]
        broken = len(self.listed) - len(good)
        said = f"{len(good)} trace{'s' if len(good) != 1 else ''}" + (
            f", {broken} file{'s' if broken != 1 else ''} that {'are' if broken != 1 else 'is'} "
            "not a trace"
            if broken
            else ""
        )
        self.table.value = wrap(
            f"<div class='moa-box'><b>{esc(self.folder)}</b> <span class='moa-muted'>{esc(said)}; "
            "pick one below to open it, or two to compare them</span>"
            f"{_table(self.listed)}</div>",
            True,
        )
        self.picker.options = [
            (f"{number}. {item.date} · {clip(item.prompt, 70)} · {item.path.name}", str(item.path))
            for number, item in enumerate(self.listed, start=1)
            if item.problem is None
        ]

    def explore(self, path: str | Path) -> TraceExplorer | None:
        """Open one trace in the explorer, below the list (None, and a note, if it cannot be read)."""
        trace = self._load(path)
        if trace is None:
            return None
        explorer = TraceExplorer(trace)
        self.view.children = [explorer]
        self.note.value = ""
        return explorer

    def compare(self, left: str | Path, right: str | Path) -> CompareView | None:
        """Compare two traces, below the list (None, and a note, if either cannot be compared)."""
        traces = [self._load(left), self._load(right)]
        if None in traces:
            return None
        try:
            shown = CompareView(*traces)
        except MoaLabError as exc:
            self._say(str(exc))
            return None
        self.view.children = [shown]
        self.note.value = ""
        return shown

    def _load(self, path: str | Path) -> Trace | None:
        trace, problem = read_trace(Path(path))
        if trace is None:
            self._say(f"{Path(path).name}: {problem}")
        return trace

    def _say(self, text: str) -> None:
        self.note.value = wrap(f'<span class="moa-badge moa-warn">{esc(clip(text, 200))}</span>', True)

    def _open_picked(self) -> None:
        if len(self.picker.value) != 1:
            self._say("pick one trace to open")
            return
        self.explore(self.picker.value[0])

    def _compare_picked(self) -> None:
        if len(self.picker.value) != 2:
            self._say("pick two traces to compare (ctrl- or shift-click)")
            return
        self.compare(*self.picker.value)
