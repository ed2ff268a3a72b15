"""Named configs (presets) and the way the CLI builds a config from a preset plus its options.

The paper's presets send exactly what the paper's evaluation pipeline sends (temperature 0.7,
max_tokens 2048, the Aggregate-and-Synthesize prompt; togethercomputer/MoA). Invariant: ``preset``
returns a fresh config each time, and the local presets are built only when asked for, so
nothing here loads the local model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from moa_lab._config import OPENAI_URL, TOGETHER_URL, Agent, MoAConfig, RunSettings, load_config
from moa_lab._errors import ConfigError
from moa_lab._prompts import RANKER_TEMPLATE

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


def _debate() -> RunSettings:
    # Du et al. 2023: three agents, two rounds (their gen scripts), the paper's first three models.
    from moa_lab._debate import DebateConfig

    return DebateConfig(agents=[_together(m, max_tokens=512) for m in _PAPER_PROPOSERS[:3]], rounds=2)


def _tot(task: str) -> RunSettings:
    # Yao et al. 2023: GPT-4 at temperature 0.7, propose + value (3 samples), keep 5.
    from moa_lab._tot import ToTConfig

    return ToTConfig(agent=Agent(model="gpt-4", base_url=OPENAI_URL, temperature=0.7), task=task)


def _local() -> MoAConfig:
    from moa_lab.local import local_preset

    return local_preset()


def _local_mix() -> MoAConfig:
    from moa_lab.local import local_mix_preset

    return local_mix_preset()


#: Preset name -> factory.
PRESETS: dict[str, Any] = {
    "local": _local,
    "local-mix": _local_mix,
    "moa": _moa,
    "moa-lite": _moa_lite,
    "self-moa": _self_moa,
    "llm-ranker": _llm_ranker,
    "debate": _debate,
    "tot": lambda: _tot("generic"),
    "tot-game24": lambda: _tot("game24"),
}


def preset(name: str) -> RunSettings:
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
    model: str | None = None,
    layers: int | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    default_preset: str = "moa-lite",
) -> RunSettings:
    """Build a config the way the CLI does: a preset or file, then the overrides on top of it.

    ``base_url``, ``api_key_env``, ``temperature``, ``max_tokens`` and ``model`` apply to every
    agent of any strategy; ``proposers``, ``aggregator`` and ``layers`` reshape a mixture. Raises
    ``ConfigError`` (one line) for a bad combination or value.
    """
    if preset_name and config_file:
        raise ConfigError("give either --preset or --config, not both")
    base = load_config(config_file) if config_file else preset(preset_name or default_preset)
    update = {
        key: value
        for key, value in {
            "base_url": base_url,
            "api_key_env": api_key_env,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "model": model,
        }.items()
        if value is not None
    }
    if not isinstance(base, MoAConfig):
        if proposers or aggregator or layers is not None:
            raise ConfigError(
                f"--proposers, --aggregator and --layers shape a mixture; the {base.strategy} "
                "preset has its own shape (use --model to set every agent's model)"
            )
        data = _with_agents(base.to_dict(), update)
        from moa_lab._strategies import config_from_dict

        return config_from_dict(data, source="options")
    data = base.model_dump()
    template_agent = dict(data["proposers"][0][0], **update) if data["proposers"] else None
    if proposers and template_agent is not None:
        row = [dict(template_agent, model=name) for name in proposers]
        data["proposers"] = [row for _ in data["proposers"]]
    if layers is not None:
        if layers < 2:
            raise ConfigError(f"--layers: must be >= 2, got {layers}")
        first = data["proposers"][0]
        data["proposers"] = [first for _ in range(layers - 1)]
    data["proposers"] = [[dict(a, **update) for a in row] for row in data["proposers"]]
    data["aggregator"] = dict(data["aggregator"], **update)
    if aggregator:
        data["aggregator"] = dict(data["aggregator"], model=aggregator)
    return MoAConfig.from_dict(data, source="options")


def _with_agents(data: Any, update: dict[str, Any]) -> Any:
    """The config data with ``update`` applied to every agent in it (any strategy's shape)."""
    if isinstance(data, list):
        return [_with_agents(item, update) for item in data]
    if not isinstance(data, dict):
        return data
    if "model" in data and "base_url" in data:  # an agent
        return data | update
    return {key: _with_agents(value, update) for key, value in data.items()}
