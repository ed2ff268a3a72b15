"""Strategies: how a run turns a question into calls. MoA, debate and Tree of Thoughts are built in;
a user can write their own in a notebook cell.

A strategy is an async function ``strategy(run) -> final answer`` (inspect_ai's solvers are the
model): it reads ``run.config`` and ``run.messages`` and makes calls with ``run.call(...)``, naming
each call's depth (``layer``), its place (``index``), the calls whose answers its prompt contains
(``references``) and, when it builds its own prompt, the ``messages``. Everything else (the trace,
the cache, retries, replay, the views) comes with the seam.

Invariant: a config names its strategy (``config["strategy"]`` in the trace; MoA's is implied), so a
trace opens with the right config class and replays through the same strategy.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from moa_lab._config import Agent, MoAConfig, RunSettings
from moa_lab._errors import ConfigError

if TYPE_CHECKING:
    from moa_lab._engine import RunState

__all__ = ["Strategy", "StrategyConfig", "config_from_dict", "strategy_for"]

#: ``await strategy(run)`` makes a run's calls through ``run.call`` and returns its final answer.
Strategy = Callable[["RunState"], Awaitable[str | None]]


class StrategyConfig(RunSettings):
    """The config of a strategy you write yourself: its agents and any options it reads."""

    strategy: ClassVar[str] = "custom"
    name: str = Field(min_length=1)
    """What the trace calls the strategy (``best-of-n``, ...)."""
    members: list[Agent] = Field(min_length=1)
    """The agents the strategy may call (``run.config.members``)."""
    depth: int = Field(default=1, ge=1)
    """How many levels deep its calls go (the views' axis; ``layers`` in the trace)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Anything else the strategy reads, as JSON data."""

    @property
    def layers(self) -> int:
        """The depth of the run."""
        return self.depth

    def agents(self) -> list[Agent]:
        """The members."""
        return list(self.members)


def _classes() -> dict[str, type[RunSettings]]:
    from moa_lab._debate import DebateConfig
    from moa_lab._tot import ToTConfig

    return {"moa": MoAConfig, "debate": DebateConfig, "tot": ToTConfig, "custom": StrategyConfig}


def config_from_dict(data: Any, *, source: str = "config") -> RunSettings:
    """The config a trace (or file) holds, as its strategy's config class; one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a config is a mapping of fields")
    name = data.get("strategy") or "moa"
    kind = _classes().get(name)
    if kind is None:
        raise ConfigError(
            f"{source}: strategy: unknown strategy {name!r}; choose one of {', '.join(_classes())}"
        )
    return kind.from_dict(data, source=source)


def strategy_for(config: RunSettings, strategy: Strategy | None = None) -> Strategy:
    """The strategy that runs ``config``: the one given, else the built-in one of its kind."""
    if strategy is not None:
        return strategy
    if isinstance(config, MoAConfig):
        from moa_lab._moa import layered_mixture

        return layered_mixture
    if config.strategy == "debate":
        from moa_lab._debate import debate

        return debate
    if config.strategy == "tot":
        from moa_lab._tot import tree_search

        return tree_search
    raise ConfigError(
        f"this config is for a strategy you write ({getattr(config, 'name', '?')}): pass it, e.g. "
        "moa_lab.run(prompt, config, strategy=my_strategy)"
    )
