"""The configurations an experiment compares: mixtures, and single models taken out of a mixture.

A ``Candidate`` is a named ``MoAConfig``; with ``alone=i`` it stands for the i-th first-layer proposer
of that config answering by itself (the single-model baseline), with the config's limits and prices.
Invariant: a single-model candidate sends exactly the call its proposer sends in layer 1 of the
mixture, so both share one cache entry and the baseline of an already-run mixture costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from moa_lab._config import Agent, MoAConfig, RunSettings
from moa_lab._debate import DebateConfig
from moa_lab._errors import ConfigError
from moa_lab._presets import preset
from moa_lab._prompts import RANKER_TEMPLATE

__all__ = ["Candidate", "as_candidates", "paper_variants", "singles", "sweep"]


@dataclass(frozen=True)
class Candidate:
    """One named system of an experiment: a run of any strategy, or one MoA proposer alone."""

    name: str
    config: RunSettings
    """A ``MoAConfig``, ``DebateConfig``, ``ToTConfig`` or ``StrategyConfig``."""
    alone: int | None = None
    """Index of the first-layer proposer of a mixture that answers alone; None runs the config."""
    prompt_template: str | None = None
    """How this candidate is asked each item: ``{input}`` stands for the item's prompt (None: the
    prompt as it is). Lets an experiment compare prompting styles, such as IO against CoT."""

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name or self.name.startswith("."):
            raise ConfigError(f"candidate name {self.name!r}: give a non-empty name without '/'")
        if self.alone is not None and not isinstance(self.config, MoAConfig):
            raise ConfigError(f"{self.name}: alone= picks a proposer of a mixture (a MoAConfig)")
        mixture = isinstance(self.config, MoAConfig)
        first = self.config.proposers[0] if mixture and self.config.proposers else []
        if self.alone is not None and not 0 <= self.alone < len(first):
            raise ConfigError(
                f"{self.name}: alone={self.alone} but the first layer has {len(first)} proposers"
            )

    @property
    def agent(self) -> Agent | None:
        """The single model, for a single-model candidate (or a one-layer config)."""
        if self.alone is not None:
            return self.config.proposers[0][self.alone]
        single = isinstance(self.config, MoAConfig) and self.config.layers == 1
        return self.config.aggregator if single else None

    @property
    def run_config(self) -> RunSettings:
        """The config that is run: the mixture, or its proposer alone as a one-layer run."""
        if self.agent is None or self.config.layers == 1:
            return self.config
        limits = self.config.model_dump(
            include={"max_concurrency", "timeout", "max_retries", "backoff", "backoff_max", "prices"}
        )
        return MoAConfig.single(self.agent, **limits)

    @property
    def layers(self) -> int:
        """Layers of calls: 1 for a single model."""
        return 1 if self.agent is not None else self.config.layers

    @property
    def proposers(self) -> int:
        """Proposers in the first layer: 1 for a single model."""
        if self.agent is not None:
            return 1
        if isinstance(self.config, MoAConfig):
            return len(self.config.proposers[0])
        return len(self.config.agents())

    def to_dict(self) -> dict[str, Any]:
        """Plain data: name, config, which proposer answers alone, and the prompt template."""
        data = {"name": self.name, "config": self.config.to_dict(), "alone": self.alone}
        return data | ({"prompt_template": self.prompt_template} if self.prompt_template else {})

    @classmethod
    def single(cls, agent: Agent | str, name: str | None = None, **limits: Any) -> Candidate:
        """A model by itself (``limits`` are MoAConfig call limits such as ``timeout``)."""
        agent = agent if isinstance(agent, Agent) else Agent(model=agent)
        config = MoAConfig(proposers=[agent], aggregator=agent, layers=2, **limits)
        return cls(name or _short(agent.model), config, alone=0)


def _short(model: str) -> str:
    return model.rsplit("/", 1)[-1]


def singles(config: MoAConfig, *, prefix: str = "") -> list[Candidate]:
    """Each distinct first-layer proposer of ``config`` alone, named after its model.

    Identical agents (Self-MoA samples one model n times) give one baseline; a model that appears
    with different settings gets a ``#i`` suffix.
    """
    found: list[Candidate] = []
    seen: list[Agent] = []
    for index, agent in enumerate(config.proposers[0]):
        if agent in seen:
            continue
        seen.append(agent)
        name = prefix + _short(agent.model)
        if any(c.name == name for c in found):
            name = f"{name}#{index}"
        found.append(Candidate(name, config, alone=index))
    return found


def paper_variants(base: MoAConfig, *, prefix: str = "") -> list[Candidate]:
    """The paper's comparison built from ``base``'s agents: MoA, MoA-Lite, Self-MoA, LLM-ranker, debate.

    MoA is 3 layers of ``base``'s first-layer proposers; MoA-Lite is 2; Self-MoA samples the first
    proposer as many times as there are proposers and lets it aggregate; the LLM-ranker is MoA-Lite
    whose aggregator only picks a reference; debate (Du et al. 2023) is 3 rounds of up to 3 of the
    proposers, the first of them aggregating answers too long to vote on.
    """
    agents = list(base.proposers[0])
    first = agents[0]
    lite = base.model_copy(update={"proposers": [agents]})
    variants = {
        "moa": base.model_copy(update={"proposers": [agents, agents]}),
        "moa-lite": lite,
        "self-moa": base.model_copy(update={"proposers": [[first] * len(agents)], "aggregator": first}),
        "llm-ranker": lite.model_copy(
            update={"aggregator_template": RANKER_TEMPLATE, "aggregation": "rank"}
        ),
        "debate": DebateConfig(
            agents=agents[:3],
            rounds=3,
            **base.model_dump(include=set(RunSettings.model_fields)),
        ),
    }
    return [Candidate(prefix + name, config) for name, config in variants.items()]


def sweep(
    base: MoAConfig, *, layers: Iterable[int] = (2, 3), proposers: Iterable[int] | None = None
) -> list[Candidate]:
    """Mixtures of ``base``'s agents over a grid: ``L{layers}-P{proposers}`` (the first n proposers)."""
    agents = list(base.proposers[0])
    counts = list(proposers) if proposers is not None else list(range(1, len(agents) + 1))
    if any(n < 1 or n > len(agents) for n in counts):
        raise ConfigError(f"sweep: proposer counts must be between 1 and {len(agents)}, got {counts}")
    found = []
    for layer_count in layers:
        if layer_count < 2:
            raise ConfigError(f"sweep: layers must be >= 2, got {layer_count}")
        for count in counts:
            config = base.model_copy(update={"proposers": [agents[:count]] * (layer_count - 1)})
            found.append(Candidate(f"L{layer_count}-P{count}", MoAConfig.from_dict(config.to_dict())))
    return found


def as_candidates(
    configs: Candidate | RunSettings | str | Iterable[Candidate | RunSettings | str] | Mapping[str, Any],
) -> list[Candidate]:
    """Normalize what a user passes: candidates, configs, preset names, or a ``{name: config}`` dict."""
    if isinstance(configs, (Candidate, RunSettings, str)):
        configs = [configs]
    if isinstance(configs, Mapping):
        pairs = list(configs.items())
    else:
        pairs = [(None, c) for c in configs]
    found: list[Candidate] = []
    for position, (name, value) in enumerate(pairs, start=1):
        if isinstance(value, Candidate):
            renamed = (
                Candidate(name, value.config, value.alone, value.prompt_template) if name else value
            )
            found.append(renamed)
        elif isinstance(value, RunSettings):
            found.append(Candidate(name or f"config-{position}", value))
        elif isinstance(value, str):
            found.append(Candidate(name or value, preset(value)))
        else:
            raise ConfigError(
                f"configs: item {position} is a {type(value).__name__}; give a MoAConfig, a preset "
                "name or a Candidate"
            )
    names = [c.name for c in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(f"configs: the names {repeated} are used twice; give each config its own name")
    if not found:
        raise ConfigError("configs: nothing to compare; give at least one config")
    return found
