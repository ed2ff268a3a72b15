"""Named configs (presets) and the way the CLI builds a config from a preset plus its options.

The paper's presets send exactly what the paper's evaluation pipeline sends (temperature 0.7,
max_tokens 2048, the Aggregate-and-Synthesize prompt; togethercomputer/MoA). Invariant: ``preset``
returns a fresh config each time, and the ``local`` preset is built only when asked for, so
nothing here loads the local model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moa_lab._config import TOGETHER_URL, Agent, MoAConfig, load_config
from moa_lab._errors import ConfigError
from moa_lab._prompts import DEBATE_TEMPLATE, RANKER_TEMPLATE

__all__ = [
    "PAPER_MAX_TOKENS",
    "PAPER_TEMPERATURE",
    "PRESETS",
    "build_config",
    "preset",
]


# The paper's open models on Together (Wang et al. 2024, Section 3.1).
_PAPER_PROPOSERS = [
    "Qwen/Qwen1.5-110B-Chat",
    "Qwen/Qwen1.5-72B-Chat",
    "microsoft/WizardLM-2-8x22B",
    "meta-llama/Llama-3-70b-chat-hf",
    "mistralai/Mixtral-8x22B-Instruct-v0.1",
    "databricks/dbrx-instruct",
]


#: What the paper's evaluation pipeline sends with every call, proposers and aggregator alike
#: (togethercomputer/MoA, ``generate_for_alpaca_eval.py`` and ``utils.generate_together``).
PAPER_TEMPERATURE = 0.7
PAPER_MAX_TOKENS = 2048


def _together(model: str, **params: Any) -> Agent:
    settings = {"temperature": PAPER_TEMPERATURE, "max_tokens": PAPER_MAX_TOKENS} | params
    return Agent(model=model, base_url=TOGETHER_URL, **settings)


def _moa() -> MoAConfig:
    return MoAConfig(
        proposers=[_together(m) for m in _PAPER_PROPOSERS],
        aggregator=_together("Qwen/Qwen1.5-110B-Chat"),
        layers=3,
    )


def _moa_lite() -> MoAConfig:
    return MoAConfig(
        proposers=[_together(m) for m in _PAPER_PROPOSERS],
        aggregator=_together("Qwen/Qwen1.5-72B-Chat"),
        layers=2,
    )


def _self_moa() -> MoAConfig:
    # Li et al. 2025, "Rethinking Mixture-of-Agents": one strong model sampled n times.
    model = "Qwen/Qwen1.5-110B-Chat"
    return MoAConfig(
        proposers=[_together(model) for _ in range(6)],
        aggregator=_together(model),
        layers=2,
    )


def _llm_ranker() -> MoAConfig:
    return _moa_lite().model_copy(update={"aggregator_template": RANKER_TEMPLATE, "aggregation": "rank"})


def _debate() -> MoAConfig:
    agents = [_together(m, max_tokens=512) for m in _PAPER_PROPOSERS[:3]]
    return MoAConfig(
        proposers=agents,
        aggregator=_together("Qwen/Qwen1.5-110B-Chat", max_tokens=512),
        layers=4,
        proposer_template=DEBATE_TEMPLATE,
        include_own_previous=True,
    )


def _local() -> MoAConfig:
    from moa_lab.local import local_preset

    return local_preset()


#: Preset name -> factory.
PRESETS: dict[str, Any] = {
    "local": _local,
    "moa": _moa,
    "moa-lite": _moa_lite,
    "self-moa": _self_moa,
    "llm-ranker": _llm_ranker,
    "debate": _debate,
}


def preset(name: str) -> MoAConfig:
    """Return a fresh config of a named preset (``moa``, ``moa-lite``, ``self-moa``, ...)."""
    try:
        factory = PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}"
        ) from None
    return factory()


def build_config(
    *,
    preset_name: str | None = None,
    config_file: str | Path | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    proposers: list[str] | None = None,
    aggregator: str | None = None,
    layers: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    default_preset: str = "moa-lite",
) -> MoAConfig:
    """Build a config the way the CLI does: a preset or file, then the overrides on top of it."""
    if preset_name and config_file:
        raise ConfigError("give either --preset or --config, not both")
    base = load_config(config_file) if config_file else preset(preset_name or default_preset)
    data = base.model_dump()
    agent_update = {
        key: value
        for key, value in {
            "base_url": base_url,
            "api_key_env": api_key_env,
            "temperature": temperature,
            "max_tokens": max_tokens,
        }.items()
        if value is not None
    }
    template_agent = dict(data["proposers"][0][0], **agent_update)
    if proposers:
        row = [dict(template_agent, model=model) for model in proposers]
        data["proposers"] = [row for _ in data["proposers"]]
    if layers is not None:
        if layers < 2:
            raise ConfigError(f"--layers: must be >= 2, got {layers}")
        first = data["proposers"][0]
        data["proposers"] = [first for _ in range(layers - 1)]
    if aggregator:
        data["aggregator"] = dict(data["aggregator"], model=aggregator)
    data["proposers"] = [[dict(a, **agent_update) for a in row] for row in data["proposers"]]
    data["aggregator"] = dict(data["aggregator"], **agent_update)
    return MoAConfig.from_dict(data, source="options")
