"""The config of a Tree-of-Thoughts search: its model, task, shape and prompts.

Defaults are the paper's Game of 24 setting (Yao et al. 2023, Table 2: propose one step at a time,
three value samples per state, keep the best five, four steps; temperature 0.7).

Invariant: every prompt the search sends can be overridden here (None keeps the task's own), so a
replay can change one (``SetConfig(value_prompt=...)``) and recompute exactly what depends on it.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from moa_lab._config import Agent, RunSettings

__all__ = ["ToTConfig"]


class ToTConfig(RunSettings):
    """Tree of Thoughts, breadth-first (Yao et al. 2023): generate, evaluate, keep the best few."""

    strategy: ClassVar[str] = "tot"
    agent: Agent
    """The model that proposes thoughts (and evaluates them unless ``evaluator`` is given)."""
    evaluator: Agent | None = None
    """The model that values or votes on thoughts (default: ``agent``)."""
    task: Literal["game24", "generic"] = "game24"
    """``game24`` (the paper's prompts and checker) or ``generic`` (any question)."""
    steps: int | None = Field(default=None, ge=1)
    """Steps of the search (default: the task's own, 4 for Game of 24, 3 for a generic question)."""
    generation: Literal["propose", "sample"] = "propose"
    """``propose``: one call lists next steps; ``sample``: ``n_generate_sample`` calls each."""
    n_generate_sample: int = Field(default=1, ge=1)
    """Samples per state when ``generation`` is ``sample``."""
    prompt_sample: Literal["standard", "cot"] = "cot"
    """The prompt of ``sample`` generation."""
    evaluation: Literal["value", "vote"] = "value"
    """``value``: each state scored alone; ``vote``: samples vote for the best of all states."""
    n_evaluate_sample: int = Field(default=3, ge=1)
    """Value samples per state (or votes per step)."""
    breadth: int = Field(default=5, ge=1)
    """States kept after each step (the paper's b, ``n_select_sample``)."""
    selection: Literal["greedy", "sample"] = "greedy"
    """Keep the best ``breadth`` (greedy) or sample them by value."""
    seed: int = 0
    """Seed of ``sample`` selection."""
    max_proposals: int | None = Field(default=None, ge=1)
    """Keep at most this many lines of a proposal (None: every line, as the paper does)."""
    value_map: dict[str, float] = Field(
        default_factory=lambda: {"impossible": 0.001, "likely": 1.0, "sure": 20.0}
    )
    """A value sample's last line -> its worth (the paper's map)."""
    propose_prompt: str | None = None
    value_prompt: str | None = None
    value_last_step_prompt: str | None = None
    cot_prompt: str | None = None
    standard_prompt: str | None = None
    vote_prompt: str | None = None
    """Prompts replacing the task's own (None keeps them); ``{input}`` stands for the puzzle or
    question (the Game of 24 last-step value prompt also has ``{answer}``)."""

    @property
    def judge(self) -> Agent:
        """The evaluating model."""
        return self.evaluator or self.agent

    @property
    def layers(self) -> int:
        """The steps of the search."""
        return self.task_object().steps

    def agents(self) -> list[Agent]:
        """The proposing model, and the evaluating one when it differs."""
        return [self.agent] if self.evaluator is None else [self.agent, self.evaluator]

    def task_object(self) -> Any:
        """The task with this config's prompts: ``Game24`` or ``Generic``."""
        from moa_lab._tot.game24 import Game24
        from moa_lab._tot.generic import Generic

        prompts = {
            name: getattr(self, name)
            for name in (
                "propose_prompt",
                "value_prompt",
                "value_last_step_prompt",
                "cot_prompt",
                "standard_prompt",
                "vote_prompt",
            )
        }
        if self.task == "game24":
            task = Game24(prompts)
            if self.steps is not None:
                task.steps = self.steps
            return task
        return Generic(self.steps or 3, prompts)
