"""Tree-of-Thoughts breadth-first search (Yao et al. 2023, arXiv 2305.10601, Section 3 and
princeton-nlp/tree-of-thought-llm ``src/tot/methods/bfs.py``), one call at a time through the seam.

Each step generates candidate states from every kept state (``propose``: one call whose lines are
the next steps; ``sample``: n calls), evaluates them (``value``: n samples per state, the value
prompts cached as the paper's code caches them, a duplicate candidate worth 0; ``vote``: n votes
over all candidates), and keeps the best ``breadth`` (greedy, or sampled by value).

Invariant: node ids say what a call is: ``G<step>.<i>`` generates from kept state i (``.k``: its
k-th sample), ``V<step>.<j>.<k>`` is the k-th value sample of the step's j-th distinct value prompt
(``V<step>.<k>``: the k-th vote). A value prompt asked once serves every state that shares it: the
reuse is an edge from each state's generator to that one evaluator, and its annotations list them.
"""

from __future__ import annotations

import asyncio
import random
import re
from typing import TYPE_CHECKING, Any

from moa_lab._errors import RunError

if TYPE_CHECKING:
    from moa_lab._engine import RunState
    from moa_lab._tot.config import ToTConfig

__all__ = ["puzzle_of", "tree_search"]


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def puzzle_of(messages: list[dict[str, Any]], task: str) -> str:
    """The search's input ``x``: the user's question (for Game of 24, its four numbers)."""
    question = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if task == "game24":
        numbers = re.findall(r"\d+", question)
        if len(numbers) == 4:
            return " ".join(numbers)
        raise RunError(f"a Game of 24 puzzle is four numbers (such as '4 5 6 10'), got {question!r:.60}")
    return question.strip()


async def tree_search(run: RunState) -> str | None:
    """Search for the answer of ``run.config`` (a ``ToTConfig``); return the best final state.

    The final states are recorded as the trace's ``outputs`` (best first). Raises ``RunError`` when
    a step has no candidate left (every generation failed).
    """
    config: ToTConfig = run.config
    task = config.task_object()
    x = puzzle_of(run.messages, config.task)
    ys = [""]
    made_by: dict[str, list[str]] = {"": []}  # state -> the generation call(s) that produced it
    parent: dict[str, str] = {}
    value_cache: dict[str, tuple[float, list[str]]] = {}  # value prompt -> (value, its calls)
    for step in range(1, task.steps + 1):
        new_ys = await _generate(run, config, task, x, ys, step, made_by, parent)
        if not new_ys:
            raise RunError(f"step {step} of the search produced no candidate state")
        values = await _evaluate(run, config, task, x, new_ys, step, made_by, value_cache)
        ids = list(range(len(new_ys)))
        if config.selection == "greedy":
            chosen = sorted(ids, key=lambda i: values[i], reverse=True)[: config.breadth]
        else:
            total = sum(values)
            weights = [v / total for v in values] if total > 0 else None
            chosen = random.Random(f"{config.seed}:{step}").choices(ids, weights, k=config.breadth)
        _annotate_step(run, new_ys, values, set(chosen), made_by, step)
        ys = [new_ys[i] for i in chosen]
    _mark_chosen_path(run, ys[0] if ys else None, made_by, parent)
    run.trace.graph.graph["outputs"] = ys
    return ys[0] if ys else None


async def _generate(
    run: RunState,
    config: ToTConfig,
    task: Any,
    x: str,
    ys: list[str],
    step: int,
    made_by: dict[str, list[str]],
    parent: dict[str, str],
) -> list[str]:
    """Candidate states from every kept state, in the paper's order (state by state)."""
    jobs = []
    for i, y in enumerate(ys):
        if config.generation == "propose":
            prompt = task.propose_prompt(x, y, step=step)
            jobs.append([(f"G{step}.{i}", prompt, config.agent, i)])
        else:
            prompt = (task.cot_prompt if config.prompt_sample == "cot" else task.standard_prompt)(x, y)
            stop = task.stops[step - 1]
            agent = (
                config.agent.model_copy(update={"extra": {**config.agent.extra, "stop": [stop]}})
                if stop
                else config.agent
            )
            jobs.append(
                [
                    (f"G{step}.{i}.{k}", prompt, agent, i * config.n_generate_sample + k)
                    for k in range(config.n_generate_sample)
                ]
            )
    flat = [job for group in jobs for job in group]
    calls = await asyncio.gather(
        *[
            run.call(
                agent,
                role="thought",
                layer=step,
                index=index,
                references=made_by[ys[int(name.split(".")[1])]],
                messages=_user(prompt),
                id=name,
            )
            for name, prompt, agent, index in flat
        ]
    )
    new_ys: list[str] = []
    for (name, _, _, _), call in zip(flat, calls, strict=True):
        if call.error is not None:
            continue
        y = ys[int(name.split(".")[1])]
        if config.generation == "propose":
            # The paper keeps every line of the reply, blank ones included, each as a next step.
            lines = (call.response or "").split("\n")
            if config.max_proposals is not None:
                lines = lines[: config.max_proposals]
            found = [y + line + "\n" for line in lines]
        else:
            found = [y + (call.response or "")]
        for state in found:
            made_by.setdefault(state, [])
            if name not in made_by[state]:
                made_by[state].append(name)
            parent.setdefault(state, y)
        new_ys.extend(found)
    return new_ys


async def _evaluate(
    run: RunState,
    config: ToTConfig,
    task: Any,
    x: str,
    new_ys: list[str],
    step: int,
    made_by: dict[str, list[str]],
    value_cache: dict[str, tuple[float, list[str]]],
) -> list[float]:
    """The value of every candidate (or its votes), asking each distinct value prompt once."""
    n = config.n_evaluate_sample
    if config.evaluation == "vote":
        calls = await asyncio.gather(
            *[
                run.call(
                    config.judge,
                    role="evaluator",
                    layer=step,
                    index=1000 + k,
                    references=sorted({c for y in new_ys for c in made_by[y]}),
                    messages=_user(task.vote_prompt(x, new_ys)),
                    id=f"V{step}.{k}",
                )
                for k in range(n)
            ]
        )
        return task.votes_of([c.response for c in calls if c.error is None], len(new_ys))
    seen: set[str] = set()
    fresh: dict[str, list[str]] = {}  # value prompt -> the candidates asking it, this step
    for y in new_ys:
        if y in seen:
            continue
        seen.add(y)
        prompt = task.value_prompt(x, y)
        if prompt not in value_cache:
            fresh.setdefault(prompt, []).append(y)
    asked = list(fresh)
    batches = await asyncio.gather(
        *[
            asyncio.gather(
                *[
                    run.call(
                        config.judge,
                        role="evaluator",
                        layer=step,
                        index=1000 + j * n + k,
                        references=sorted({c for y in fresh[prompt] for c in made_by[y]}),
                        messages=_user(prompt),
                        id=f"V{step}.{j}.{k}",
                    )
                    for k in range(n)
                ]
            )
            for j, prompt in enumerate(asked)
        ]
    )
    for prompt, calls in zip(asked, batches, strict=True):
        outputs = [c.response for c in calls if c.error is None]
        value = task.value_of(x, fresh[prompt][0], outputs, config.value_map) if outputs else 0.0
        value_cache[prompt] = (value, [c.id for c in calls])
        for call in calls:
            run.trace.update_call(
                call.id,
                annotations={
                    "value": value,
                    "states": fresh[prompt],
                    "step": step,
                    "shared": len(fresh[prompt]) > 1,
                },
            )
    values: list[float] = []
    valued: set[str] = set()
    for y in new_ys:
        if y in valued:
            values.append(0.0)  # the paper's code: a duplicate candidate is worth nothing
            continue
        valued.add(y)
        value, evaluators = value_cache[task.value_prompt(x, y)]
        _link_cached(run, made_by[y], evaluators, y)
        values.append(value)
    return values


def _link_cached(run: RunState, producers: list[str], evaluators: list[str], y: str) -> None:
    """Make a cached evaluation's reuse visible: an edge from the state's generator to it."""
    for evaluator in evaluators:
        for producer in producers:
            if not run.trace.graph.has_edge(producer, evaluator):
                run.trace.add_reference(producer, evaluator)
        data = dict(run.trace.call(evaluator).annotations or {})
        states = list(data.get("states", []))
        if y not in states:
            data["states"] = [*states, y]
            data["shared"] = True
            run.trace.update_call(evaluator, annotations=data)


def _annotate_step(
    run: RunState,
    new_ys: list[str],
    values: list[float],
    kept: set[int],
    made_by: dict[str, list[str]],
    step: int,
) -> None:
    """Record on each generation call the states it proposed, their values and which were kept."""
    by_call: dict[str, list[dict[str, Any]]] = {}
    for i, (y, value) in enumerate(zip(new_ys, values, strict=True)):
        for name in made_by[y]:
            by_call.setdefault(name, []).append(
                {"state": y, "value": value, "kept": i in kept, "rank": i}
            )
    for name, states in by_call.items():
        run.trace.update_call(name, annotations={"step": step, "states": states})


def _mark_chosen_path(
    run: RunState, best: str | None, made_by: dict[str, list[str]], parent: dict[str, str]
) -> None:
    """Flag the generation calls on the path to the best final state."""
    state = best
    while state:
        for name in made_by.get(state, [])[:1]:
            data = dict(run.trace.call(name).annotations or {})
            data["chosen"] = True
            run.trace.update_call(name, annotations=data)
        state = parent.get(state, "")
