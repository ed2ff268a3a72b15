"""``PromptLab``: edit a run's prompts (a mixture's aggregator template, a debate's update prompt, a
search's propose and value prompts) or any call's messages, run, and see what changed.

Each run replays the source trace with what the boxes hold (only the calls the edits reach are sent),
shows the new final answer beside the old one with a word diff and the layer graph with the recomputed
calls highlighted, and adds the attempt, saved as a trace file, to the session's history. The plan
line (calls, tokens and cost) is refreshed from a dry run whenever a box changes, before anything is
sent.

Invariant: every attempt is a replay of the one source trace (never of another attempt), so attempts
compare like for like; a bad edit is shown as one line and sends nothing. Tests build and drive the
lab without a kernel (``run``, ``show``, or ``run_button.click()``) and read what it shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets
import plotly.graph_objects as go

from moa_lab._cache import CallCache
from moa_lab._config import MoAConfig, RunSettings
from moa_lab._errors import MoaLabError
from moa_lab._replay import (
    AggregatorTemplate,
    Edit,
    NodeMessage,
    ProposerTemplate,
    SetConfig,
    plan,
    replay,
)
from moa_lab._strategies import config_from_dict
from moa_lab._text import safe_file_name
from moa_lab._trace import Call, Trace
from moa_lab._trace.attributes import describe_replay
from moa_lab.views._compare_view import finals_html
from moa_lab.views._graph import layer_graph
from moa_lab.views._style import ERROR_COLOR, clip, esc

__all__ = ["Attempt", "PromptLab"]

_BOX = widgets.Layout(width="100%", height="150px")


@dataclass(frozen=True)
class Attempt:
    """One run of the lab: its number in the session, the edits tried and the trace it made."""

    number: int
    edits: tuple[Edit, ...]
    trace: Trace

    @property
    def recomputed(self) -> list[str]:
        """The calls that got a new answer (edited or recomputed)."""
        return [c.id for c in self.trace.records() if not c.reused]

    @property
    def summary(self) -> str:
        """What the attempt is: ``replay of <run>: <edit>`` with template texts quoted (clipped)."""
        return describe_replay(self.trace.graph.graph) or "no edits"


def _node_texts(trace: Trace, config: RunSettings, node: str) -> dict[str, str]:
    """What a call's system and user boxes start with: its own edits, else what the run used."""
    own = trace.node_messages.get(node, {})
    if not isinstance(config, MoAConfig):  # any other strategy: the messages the call sent
        return {**_sent_texts(trace[node]), **own}
    messages = trace.messages
    given = messages[0]["content"] if messages[0]["role"] == "system" else ""
    layer = trace[node].layer
    if layer > 1:
        template = config.template_for(layer)
        system = f"{given}\n\n{template}" if given else template
    else:
        system = given
    users = [m["content"] for m in messages if m["role"] == "user"]
    return {"system": own.get("system", system), "user": own.get("user", users[-1] if users else "")}


def _sent_texts(call: Call) -> dict[str, str]:
    systems = [m["content"] for m in call.messages if m.get("role") == "system"]
    users = [m["content"] for m in call.messages if m.get("role") == "user"]
    return {"system": systems[0] if systems else "", "user": users[-1] if users else ""}


def prompt_fields(config: RunSettings) -> dict[str, tuple[str, str]]:
    """The prompts of a run's config a lab can edit: label -> (config field, the text in use).

    MoA: the aggregator template (and the proposers' of layers > 1); debate: the update prompt of
    rounds > 1 (Du et al. 2023); Tree of Thoughts: the task's propose, value, last-step value and
    chain-of-thought prompts (Yao et al. 2023); a strategy of your own: none (edit calls instead).
    """
    if isinstance(config, MoAConfig):
        fields = {"aggregator template": ("aggregator_template", config.aggregator_template)}
        if config.layers > 2:
            fields["proposer template (layers > 1)"] = ("proposer_template", config.template_for(2))
        return fields
    if config.strategy == "debate":
        return {"update prompt (rounds > 1)": ("update_template", config.update_template)}
    if config.strategy == "tot":
        task = config.task_object()
        found = {
            "propose prompt": ("propose_prompt", "propose"),
            "value prompt": ("value_prompt", "value"),
            "last-step value prompt": ("value_last_step_prompt", "value_last"),
            "chain-of-thought prompt": ("cot_prompt", "cot"),
            "vote prompt": ("vote_prompt", "vote"),
        }
        return {
            label: (field, getattr(config, field) or getattr(task, attribute))
            for label, (field, attribute) in found.items()
            if isinstance(getattr(task, attribute, None), str)
        }
    return {}


class PromptLab(widgets.VBox):
    """Try aggregator templates (and per-call messages) on a recorded run, one cheap replay each."""

    def __init__(
        self,
        trace: Trace | str | Path,
        *,
        cache: CallCache | str | Path | bool = True,
        trace_dir: str | Path | None = None,
        allow_hosts: Iterable[str] = (),
    ):
        self.source = trace if isinstance(trace, Trace) else Trace.load(trace)
        self.config = config_from_dict(self.source.config, source=f"trace {self.source.run_id}")
        self.fields = prompt_fields(self.config)
        self.prompt_edits: dict[str, str] = {}  # config field -> the text the lab will run with
        self.cache = cache
        self.trace_dir = Path(trace_dir) if trace_dir else None
        self.allow_hosts = tuple(allow_hosts)
        self.attempts: list[Attempt] = []
        self.node_edits: dict[str, dict[str, str]] = {}
        self._loading = False

        choices = list(self.fields)
        self.prompt = widgets.Dropdown(
            options=choices, value=choices[0] if choices else None, description="prompt"
        )
        self.template = widgets.Textarea(
            value=self.fields[choices[0]][1] if choices else "",
            description="text",
            layout=_BOX,
            continuous_update=False,
            # A one-call run reads no references: edit its messages below instead.
            disabled=not choices or (isinstance(self.config, MoAConfig) and self.config.layers == 1),
        )
        self.for_proposers = widgets.Checkbox(
            value=False,
            description="also for the proposers of layers > 1",
            disabled=not isinstance(self.config, MoAConfig) or self.config.layers <= 2,
            indent=False,
        )
        self.node = widgets.Dropdown(options=self.source.calls(), value=None, description="call")
        self.system = widgets.Textarea(description="system", layout=_BOX, continuous_update=False)
        self.user = widgets.Textarea(description="user", layout=_BOX, continuous_update=False)
        self.plan_panel = widgets.HTML()
        self.status = widgets.HTML()
        self.run_button = widgets.Button(description="Run", button_style="primary", icon="play")
        self.answers = widgets.HTML(finals_html(self.source, self.source))
        self.graph_box = widgets.Box([go.FigureWidget(layer_graph(self.source, title="The source run"))])
        self.history = widgets.HTML()
        self.picker = widgets.Dropdown(options=[], description="attempt")

        self.template.observe(lambda _: self._note_prompt_edit(), names="value")
        self.for_proposers.observe(lambda _: self.refresh_plan(), names="value")
        self.prompt.observe(lambda change: self._load_prompt(change["new"]), names="value")
        self.node.observe(lambda change: self._load_node(change["new"]), names="value")
        for box in (self.system, self.user):
            box.observe(lambda _: self._note_node_edit(), names="value")
        self.run_button.on_click(lambda _: self.run())
        self.picker.observe(lambda change: change["new"] and self.show(change["new"]), names="value")

        node_box = widgets.VBox(
            [
                widgets.HTML("<b>One call's messages</b> (edits apply to that call only)"),
                self.node,
                self.system,
                self.user,
            ]
        )
        super().__init__(
            [
                widgets.HTML(
                    f"<b>Prompt lab</b> on run {esc(self.source.run_id)}: "
                    f"{esc(clip(self.source.prompt, 100))}"
                    + (
                        f"<br><i>{esc(describe_replay(self.source.graph.graph))}</i>"
                        if describe_replay(self.source.graph.graph)
                        else ""
                    )
                ),
                self.prompt,
                self.template,
                self.for_proposers,
                widgets.Accordion([node_box], titles=["a call's messages"]),
                widgets.HBox([self.run_button, self.plan_panel]),
                self.status,
                self.answers,
                self.graph_box,
                self.picker,
                self.history,
            ]
        )
        self.refresh_plan()

    @property
    def graph(self) -> go.FigureWidget:
        """The layer graph on show (the latest attempt's, recomputed calls highlighted)."""
        return self.graph_box.children[0]

    def edits(self) -> list[Edit]:
        """The edits the boxes hold (nothing for a box left as the source run had it)."""
        edits: list[Edit] = []
        changed = dict(self.prompt_edits)
        if isinstance(self.config, MoAConfig):
            text = changed.pop("aggregator_template", None)
            if text is not None:
                edits.append(AggregatorTemplate(text))
                if self.for_proposers.value and self.config.layers > 2:
                    changed.setdefault("proposer_template", text)
            text = changed.pop("proposer_template", None)
            if text is not None and text != self.config.template_for(2):
                edits.append(ProposerTemplate(text))
        elif changed:
            edits.append(SetConfig(changed))
        for node, roles in self.node_edits.items():
            edits += [NodeMessage(node, role, content) for role, content in roles.items()]  # type: ignore[arg-type]
        return edits

    def _load_prompt(self, label: str | None) -> None:
        if label is None:
            return
        field, text = self.fields[label]
        self._loading = True
        try:
            self.template.value = self.prompt_edits.get(field, text)
        finally:
            self._loading = False

    def _note_prompt_edit(self) -> None:
        if self._loading or self.prompt.value is None:
            return
        field, original = self.fields[self.prompt.value]
        if self.template.value != original:
            self.prompt_edits[field] = self.template.value
        else:
            self.prompt_edits.pop(field, None)
        self.refresh_plan()

    def _load_node(self, node: str | None) -> None:
        self._loading = True
        try:
            texts = _node_texts(self.source, self.config, node) if node else {"system": "", "user": ""}
            texts |= self.node_edits.get(node or "", {})
            self.system.value, self.user.value = texts["system"], texts["user"]
        finally:
            self._loading = False

    def _note_node_edit(self) -> None:
        node = self.node.value
        if self._loading or node is None:
            return
        original = _node_texts(self.source, self.config, node)
        changed = {
            role: box.value
            for role, box in (("system", self.system), ("user", self.user))
            if box.value != original[role]
        }
        if changed:
            self.node_edits[node] = changed
        else:
            self.node_edits.pop(node, None)
        self.refresh_plan()

    def _error(self, exc: Exception) -> None:
        self.status.value = f'<span style="color:{ERROR_COLOR}">{esc(exc)}</span>'

    def refresh_plan(self) -> None:
        """Show what a run would send now (a dry run: nothing is sent)."""
        try:
            planned = plan(self.source, self.edits(), cache=self.cache)
        except MoaLabError as exc:
            self.plan_panel.value = ""
            self._error(exc)
            return
        self.status.value = ""
        self._planned = planned.calls
        cost = "unknown" if planned.cost is None else f"${planned.cost:.6f}"
        recomputed = ", ".join(planned.recomputed) or "nothing"
        self.plan_panel.value = (
            f"Run will send <b>{planned.calls}</b> call{'s' if planned.calls != 1 else ''} "
            f"(recomputes {esc(recomputed)}; about {planned.prompt_tokens + planned.completion_tokens} "
            f"tokens, {cost})"
        )

    def run(self) -> Attempt | None:
        """Replay the source with the boxes' edits, show the result and add it to the history."""
        edits = self.edits()
        number = len(self.attempts) + 1
        path: Path | bool = True
        if self.trace_dir is not None:
            # A name derived from trace content stays inside the folder, whatever the trace says.
            path = self.trace_dir / f"{safe_file_name(self.source.run_id)}-attempt-{number}.json"
        expected = getattr(self, "_planned", None)
        sent: list[str] = []
        self.status.value = f"<i>running… 0 of {expected} calls to send</i>"

        def on_call(trace: Trace, node: str) -> None:
            # The kernel sends widget updates at once, even while this cell's callback runs.
            if node not in trace:
                return  # started, or streaming: counted when it finishes
            if not trace[node].reused:
                sent.append(node)
            done = len(sent)
            self.status.value = (
                f"<i>running… {done} of {max(expected or 0, done)} calls to send done "
                f"(last: {esc(node)})</i>"
            )

        try:
            trace = replay(
                self.source,
                edits,
                cache=self.cache,
                trace_path=path,
                progress=False,
                on_call=on_call,
                allow_hosts=self.allow_hosts,
            )
        except MoaLabError as exc:
            self._error(exc)
            return None
        self.status.value = ""
        attempt = Attempt(number, tuple(edits), trace)
        self.attempts.append(attempt)
        self._render_history()
        self.picker.options = [(f"#{a.number}: {clip(a.summary, 60)}", a.number) for a in self.attempts]
        self.picker.value = number
        return attempt

    def show(self, number: int) -> None:
        """Show one attempt: its answer beside the source's, and its graph with recomputed calls lit."""
        attempt = self.attempts[number - 1]
        self.answers.value = finals_html(self.source, attempt.trace)
        recomputed = attempt.recomputed
        title = f"Attempt {number}: recomputed {', '.join(recomputed) or 'nothing'} (the rest reused)"
        self.graph_box.children = [
            go.FigureWidget(layer_graph(attempt.trace, highlight=recomputed, title=esc(title)))
        ]

    def _render_history(self) -> None:
        rows = []
        for attempt in self.attempts:
            totals = attempt.trace.totals()
            spent = "unknown" if totals.spent is None else f"${totals.spent:.6f}"
            rows.append(
                f"<tr><td>{attempt.number}</td><td>{esc(attempt.summary)}</td><td>{totals.sent}</td>"
                f"<td>{spent}</td><td>{esc(clip(attempt.trace.final, 80))}</td>"
                f"<td><code>{esc(attempt.trace.path)}</code></td></tr>"
            )
        self.history.value = (
            '<table style="border-collapse:collapse" cellpadding="3"><tr><th>#</th><th>edits</th>'
            "<th>calls sent</th><th>spent</th><th>final answer</th><th>saved as</th></tr>"
            + "".join(rows)
            + "</table>"
        )
