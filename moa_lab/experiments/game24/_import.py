"""The Tree-of-Thoughts paper's GPT-4 searches as moa_lab traces, one per puzzle.

The official ``run.py`` (princeton-nlp/tree-of-thought-llm) logs, per puzzle and step, the states
kept before, every proposed state with its value, and the states kept. That is enough to rebuild the
proposal calls exactly: with ``propose`` generation each kept state ``y`` gets one call whose reply,
split into lines, gives the states ``y + line + "\\n"`` in order, and its prompt follows from ``y``
(the paper's prompts). The value calls are not in the log (only each state's summed value), so an
imported trace holds the proposal calls ``G<step>.<i>``, each with the states it proposed, their
values and whether they were kept, as moa_lab's own search records them; the views draw every state
of the search tree from that.

Invariant: nothing is invented. Tokens, times and the value samples the log does not hold stay
unknown (None); a state kept twice in one step (the paper's code then asks twice and the log merges
both replies) is one call marked ``asked: 2``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab._errors import MoaLabError
from moa_lab._text import safe_file_name
from moa_lab.experiments.game24._check import check
from moa_lab.experiments.game24._logs import LogError, ToTSearch, read_tot_log

__all__ = ["ImportedSearches", "import_tot_log", "tot_traces"]

#: How ``run.py`` names a log: backend, temperature, generation, evaluation and selection settings.
_LOG_NAME = re.compile(
    r"(?P<model>.+?)_(?P<temperature>[0-9.]+)_(?P<generation>propose|sample)(?P<n_generate>\d+)_"
    r"(?P<evaluation>value|vote)(?P<n_evaluate>\d+)_(?P<selection>greedy|sample)(?P<breadth>\d+)"
    r"_start\d+_end\d+\.json"
)
#: Where the searches were run, for the record (and for a replay that asks the same model again).
_OPENAI = "https://api.openai.com/v1"


@dataclass(frozen=True)
class ImportedSearches:
    """What ``import_tot_log`` wrote and how the searches ended, by moa_lab's checker."""

    paths: tuple[Path, ...]
    """One trace file per search, in the log's order."""
    searches: int
    """Searches in the log."""
    best_correct: int
    """Searches whose best-valued final state is a correct answer."""
    any_correct: int
    """Searches with at least one correct final state (the figure the paper's logs give, 0.69)."""
    log_any_correct: int
    """The same count by the log's own judgements (``infos``)."""
    disagreements: int
    """Final states the checker judges differently from the log (0 when the two agree)."""


def _settings(path: Path, searches: Sequence[ToTSearch]) -> dict[str, Any]:
    """The run's settings from the log's file name; a renamed log gives only what its steps show."""
    found = _LOG_NAME.fullmatch(path.name)
    if found is None:
        breadth = max((len(step.kept) for s in searches for step in s.steps), default=1)
        return {"model": "unknown", "temperature": None, "breadth": max(breadth, 1)}
    if found["generation"] != "propose":
        raise LogError(
            f"{path}: a '{found['generation']}' search cannot be rebuilt from its log (its replies "
            "are not kept); only 'propose' searches import"
        )
    return {
        "model": found["model"],
        "temperature": float(found["temperature"]),
        "evaluation": found["evaluation"],
        "n_evaluate_sample": int(found["n_evaluate"]),
        "selection": found["selection"],
        "breadth": int(found["breadth"]),
    }


def tot_traces(path: str | Path) -> list[Any]:
    """One ``Trace`` per search of a Tree-of-Thoughts Game of 24 log, in the log's order.

    ``path``: a ``propose`` log of the official ``run.py`` (such as
    ``gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json``). Each trace's config is the
    ``tot-game24`` search with the log's settings; its graph attribute ``imported`` says where it
    came from (file, entry, the puzzle's rank, the log's judgements, the tokens and dollars the
    search spent). Raises ``LogError`` (one line) when the file is missing or malformed.
    """
    from moa_lab._config import Agent
    from moa_lab._tot import ToTConfig

    path = Path(path)
    try:
        searches = read_tot_log(path)
    except OSError as exc:
        reason = exc.strerror or exc
        raise LogError(f"{path}: cannot read it ({reason}); pass a ToT run.py log") from None
    except LogError as exc:
        if "missing 'steps'" not in str(exc):
            raise
        raise LogError(
            f"{exc} (an IO or chain-of-thought sample log has no search to import; pass a ToT "
            "log such as gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json)"
        ) from None
    for entry, search in enumerate(searches):
        if not re.fullmatch(r"[0-9]+( [0-9]+){3}", search.puzzle) or search.index < 0:
            raise LogError(
                f"{path}: entry {entry}: not a Game of 24 search (its 'x' must be four numbers "
                f"such as '4 5 6 10' and its 'idx' >= 0, got {search.puzzle!r:.40} and {search.index})"
            )
    settings = _settings(path, searches)
    model, temperature = settings.pop("model"), settings.pop("temperature")
    # The paper's gpt(): max_tokens 1000, the run's temperature, OPENAI_API_KEY.
    agent = Agent(
        model=model,
        base_url=_OPENAI,
        api_key_env="OPENAI_API_KEY",
        temperature=temperature,
        max_tokens=1000,
    )
    config = ToTConfig(agent=agent, task="game24", generation="propose", **settings)
    traces = []
    before = None
    for entry, search in enumerate(searches):
        spent = _spent(search, before)
        before = search.usage
        try:
            traces.append(_trace(search, config, path=path, entry=entry, spent=spent))
        except LogError as exc:
            raise LogError(f"{path}: entry {entry}: {exc}") from None
    return traces


def _spent(search: ToTSearch, before: Any) -> dict[str, float]:
    """This search's own tokens and dollars (the log's ``usage_so_far`` counts from the run's start)."""
    now = search.usage
    if before is None:
        return {"prompt_tokens": now.prompt_tokens, "completion_tokens": now.completion_tokens,
                "cost": now.cost}  # fmt: skip
    return {
        "prompt_tokens": now.prompt_tokens - before.prompt_tokens,
        "completion_tokens": now.completion_tokens - before.completion_tokens,
        "cost": round(now.cost - before.cost, 6),
    }


def _trace(search: ToTSearch, config: Any, *, path: Path, entry: int, spent: dict[str, float]) -> Any:
    from moa_lab import __version__
    from moa_lab._calls import new_call
    from moa_lab._trace import Trace
    from moa_lab._trace.files import new_graph

    x = search.puzzle
    task = config.task_object()
    messages = [{"role": "user", "content": x}]
    graph = new_graph(messages, config.to_dict(), version=__version__)
    trace = Trace(graph)
    made_by: dict[str, str] = {}  # state -> the call that proposed it
    parent: dict[str, str] = {}
    for step in search.steps:
        number = step.step + 1
        kept_before = list(step.kept_before) or [""]
        states = [state for state, _ in step.proposals]
        segments = _segments(kept_before, states)
        names: dict[str, str] = {}
        for i, (y, proposed) in enumerate(segments):
            if y in names:
                continue  # kept twice: the first call holds both replies (asked: 2)
            name = names[y] = f"G{number}.{i}"
            call = new_call(
                config.agent,
                [{"role": "user", "content": task.propose_prompt(x, y, step=number)}],
                0,
                id=name,
                role="thought",
                layer=number,
                index=i,
            )
            reply = "\n".join(state[len(y) : -1] for state in proposed)
            trace.add_call(
                _imported(call, reply, asked=kept_before.count(y)),
                [made_by[y]] if y in made_by else [],
            )
            for state in proposed:
                made_by.setdefault(state, name)
                parent.setdefault(state, y)
        kept = set(step.kept)
        by_call: dict[str, list[dict[str, Any]]] = {}
        for rank, (state, value) in enumerate(step.proposals):
            record = {"state": state, "value": value, "kept": state in kept, "rank": rank}
            by_call.setdefault(made_by[state], []).append(record)
        for name, records in by_call.items():
            data = dict(trace.call(name).annotations or {})
            trace.update_call(name, annotations={**data, "step": number, "states": records})
    outputs = list(search.outputs)
    state = outputs[0] if outputs else None
    while state:
        name = made_by.get(state)
        if name is None:
            break
        trace.update_call(name, annotations={**dict(trace.call(name).annotations or {}), "chosen": True})
        state = parent.get(state, "")
    ours = [check(x, output) for output in outputs]
    graph.graph.update(
        status="complete",
        finished_at=graph.graph["created_at"],
        final=outputs[0] if outputs else None,
        outputs=outputs,
        imported={
            "source": "princeton-nlp/tree-of-thought-llm run.py log",
            "file": path.name,
            "entry": entry,
            "rank": search.index,
            "log_correct": list(search.judged_correct),
            "correct": ours,
            "spent": spent,
        },
    )
    return trace


def _segments(kept_before: list[str], states: list[str]) -> list[tuple[str, list[str]]]:
    """Split a step's proposals into the reply of each kept state, in order (each state extends its
    own kept state; the paper's code lists them state by state)."""
    segments: list[tuple[str, list[str]]] = []
    at = 0
    for y in kept_before:
        start = at
        while at < len(states) and states[at].startswith(y) and states[at].endswith("\n"):
            at += 1
        segments.append((y, states[start:at]))
    if at != len(states):
        raise LogError(
            f"proposal {at} does not extend the kept states in order, as run.py lists them: "
            f"{states[at]!r:.80}"
        )
    return segments


def _imported(call: Any, reply: str, *, asked: int) -> Any:
    from dataclasses import replace

    notes: dict[str, Any] = {"imported": True}
    if asked > 1:
        notes["asked"] = asked
    return replace(call, response=reply, attempts=0, ended_at=call.started_at, annotations=notes)


def import_tot_log(path: str | Path, out: str | Path) -> ImportedSearches:
    """Write one trace file per search of a ToT log into the folder ``out``; count correct ends.

    Files are named ``<rank>-<puzzle>.json`` (``0900-4-5-6-10.json``). Nothing is written unless
    every name is free: an existing file raises ``MoaLabError`` naming it (choose a new folder).
    Raises ``LogError`` for a missing or malformed log.
    """
    from moa_lab._trace.files import create_exclusively, describe_os_error

    traces = tot_traces(path)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MoaLabError(f"{out} is a file, not a folder; pass a folder for the traces")
    names = [_file_name(t) for t in traces]
    taken = [out / n for n in names if (out / n).exists() or (out / n).is_symlink()]
    if taken:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise MoaLabError(f"{taken[0]}{more} already exist; import into a new folder")
    paths = []
    for trace, name in zip(traces, names, strict=True):
        target = out / name
        try:
            create_exclusively(target, json.dumps(trace.to_dict(), indent=1, ensure_ascii=False))
        except OSError as exc:
            raise MoaLabError(
                f"cannot write {target}: {describe_os_error(exc, target)} ({len(paths)} written)"
            ) from None
        trace.path = target
        paths.append(target)
    info = [t.graph.graph["imported"] for t in traces]
    return ImportedSearches(
        paths=tuple(paths),
        searches=len(traces),
        best_correct=sum(bool(i["correct"][:1] and i["correct"][0]) for i in info),
        any_correct=sum(any(i["correct"]) for i in info),
        log_any_correct=sum(any(i["log_correct"]) for i in info),
        disagreements=sum(
            a != b for i in info for a, b in zip(i["correct"], i["log_correct"], strict=False)
        ),
    )


def _file_name(trace: Any) -> str:
    rank = trace.graph.graph["imported"]["rank"]
    return safe_file_name(f"{rank:04d}-{'-'.join(trace.prompt.split())}") + ".json"
