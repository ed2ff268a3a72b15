"""Run configuration: agents, the layer structure, prompt options and call limits.

Configs are validated pydantic models, built in Python, from a preset, or from a YAML/JSON/TOML file.
Invariant: a config holds the *name* of the environment variable with an API key, never a key, so a
config can be written into a trace or a cache key as it is.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from moa_lab._errors import ConfigError
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE, REFERENCES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = [
    "OPENAI_URL",
    "TOGETHER_URL",
    "Agent",
    "MoAConfig",
    "Price",
    "RunSettings",
    "load_config",
    "one_line",
]

OPENAI_URL = "https://api.openai.com/v1"
TOGETHER_URL = "https://api.together.xyz/v1"
LOCAL_URL = "local"

#: Hosts whose key variable is well known, so ``Agent(model=..., base_url=TOGETHER_URL)`` just works.
_KNOWN_KEY_ENVS = {"api.openai.com": "OPENAI_API_KEY", "api.together.xyz": "TOGETHER_API_KEY"}


def _without_secrets(url: str) -> str:
    """A URL with its user info, query and fragment cut off (what may be shown in an error)."""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    port = f":{parsed.port}" if _port(parsed) else ""
    return f"{parsed.scheme}://{host}{port}{parsed.path.split(';')[0]}" if parsed.scheme else "<a URL>"


def _port(parsed: Any) -> int | None:
    try:
        return parsed.port
    except ValueError:
        return None


class Price(BaseModel):
    """Price of a model in US dollars per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    input: float = Field(ge=0)
    """Dollars per million prompt tokens."""
    output: float = Field(ge=0)
    """Dollars per million completion tokens."""


class Agent(BaseModel):
    """One model behind an OpenAI-compatible endpoint, with its sampling parameters."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    model: str = Field(min_length=1)
    """Model name as the endpoint knows it."""
    base_url: str = OPENAI_URL
    """OpenAI-compatible base URL (``.../v1``), or ``local`` for the embedded local model."""
    api_key_env: str | None = None
    """Name of the environment variable that holds the API key (never the key itself)."""
    temperature: float | None = Field(default=0.7, ge=0, le=2)
    """Sampling temperature; None leaves the endpoint's default."""
    max_tokens: int | None = Field(default=512, gt=0)
    """Cap on completion tokens; None leaves the endpoint's default."""
    top_p: float | None = Field(default=None, gt=0, le=1)
    """Nucleus sampling; None leaves the endpoint's default."""
    seed: int | None = None
    """Sampling seed, for endpoints that honour it."""
    extra: dict[str, Any] = Field(default_factory=dict)
    """Further request parameters sent as they are (``{"presence_penalty": 0.5}``)."""

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if value == LOCAL_URL or value.startswith(LOCAL_URL + ":"):
            return value
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            shown = _without_secrets(value) if "@" in value or "?" in value else value
            raise ValueError(
                f"{shown!r} is not an http(s) URL; give one like https://api.openai.com/v1 "
                "or 'local' for the embedded model"
            )
        # ``;key=...`` (path parameters) and a bare ``?`` break the request path as a query does.
        if parsed.username or parsed.password or parsed.params or any(c in value for c in "?#;"):
            # A key in the URL would be written to traces, pages and error lines, and a query
            # string breaks the request path: refuse it before anything is sent or written.
            raise ValueError(
                f"{_without_secrets(value)!r} carries credentials or a query string; give the bare "
                "endpoint and put the key in an environment variable named with --api-key-env "
                "(Agent(api_key_env=...))"
            )
        return value.rstrip("/")

    @field_validator("extra")
    @classmethod
    def _check_extra(cls, value: dict[str, Any]) -> dict[str, Any]:
        reserved = {"model", "messages", "stream", "n"} & set(value)
        if reserved:
            raise ValueError(f"{sorted(reserved)} are set by moa_lab; remove them from extra")
        return value

    @property
    def key_env(self) -> str | None:
        """The variable the key is read from: the one given, else the host's well-known one."""
        if self.api_key_env:
            return self.api_key_env
        return _KNOWN_KEY_ENVS.get(urlparse(self.base_url).hostname or "")

    def params(self) -> dict[str, Any]:
        """Sampling parameters as they are sent (unset ones left out)."""
        chosen = {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
        }
        return {k: v for k, v in chosen.items() if v is not None} | dict(self.extra)

    @property
    def sampling(self) -> str:
        """The settings that tell apart agents of one model, as a call's ``sampling``: ``T0.7 seed 1
        ≤128``; ``""`` if none is set."""
        from moa_lab._trace.call import sampling_text

        return sampling_text(self.params())


class RunSettings(BaseModel):
    """What every run has, whatever its strategy: call limits, prices and how references read.

    Each strategy's config (``MoAConfig``, ``DebateConfig``, ``ToTConfig``, ``StrategyConfig``)
    extends it with its agents and shape.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)
    #: The name a trace records for the strategy (``config["strategy"]``); MoA's is left out.
    strategy: ClassVar[str] = ""
    include_reasoning: bool = False
    """Whether later calls read each reference's reasoning (as ``<think>...</think>`` before its
    answer). Off by default: the paper passes answers only; turn it on to study how thinking spreads."""
    stream: bool = True
    """Ask for answers as they are written (server-sent events) and record each call's time to
    first token; an endpoint that refuses is asked for whole answers. Answers, cache entries and
    trace files are the same either way."""
    max_concurrency: int = Field(default=16, gt=0)
    """Cap on calls in flight at once, across the whole run."""
    timeout: float = Field(default=120.0, gt=0)
    """Seconds one attempt may take in all (a deadline, not a limit per socket read) before it is
    abandoned and retried."""
    max_retries: int = Field(default=4, ge=0)
    """Retries of a call after 429, 5xx, connection errors and timeouts."""
    backoff: float = Field(default=0.5, ge=0)
    """First retry delay in seconds; doubled each retry, with jitter, capped by ``backoff_max``."""
    backoff_max: float = Field(default=30.0, ge=0)
    """Longest delay between retries (a server's Retry-After is honoured up to this)."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Per-model prices that override the built-in table."""

    @property
    def layers(self) -> int:
        """How deep the run's calls go (MoA's layers, debate's rounds, a search's steps)."""
        raise NotImplementedError

    def agents(self) -> list[Agent]:
        """Every agent the run may call (each must have its key and endpoint ready)."""
        raise NotImplementedError

    def expected_calls(self) -> int | None:
        """How many calls a run makes, when that is known before it starts (for progress)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (``layers`` included for readers, ``strategy`` naming the kind)."""
        named = {"strategy": self.strategy} if self.strategy else {}
        return {**named, "layers": self.layers, **self.model_dump(mode="json")}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> Any:
        """Validate plain data; any problem raises ConfigError with one line naming the field."""
        # ``strategy`` names the class and ``layers`` is derived, except MoA's, which shapes it.
        derived = ("strategy", "layers") if cls.strategy else ("strategy",)
        data = {k: v for k, v in data.items() if k not in derived}
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(one_line(exc, source, cls.__name__)) from None


class MoAConfig(RunSettings):
    """A Mixture-of-Agents: L-1 layers of proposers, then one aggregator in layer L."""

    proposers: list[list[Agent]]
    """Proposers per layer. A flat list is repeated in every proposer layer (``layers - 1`` times);
    an empty list (``layers: 1``) leaves the aggregator to answer the user alone."""
    aggregator: Agent
    """The final agent that synthesizes (or, with ``aggregation='rank'``, picks) the answer."""
    aggregator_template: str = AGGREGATE_AND_SYNTHESIZE
    """System prompt of the aggregator; ``{references}`` stands for the numbered responses."""
    proposer_template: str | None = None
    """System prompt of proposers in layers > 1; None uses ``aggregator_template``."""
    aggregation: Literal["synthesize", "rank"] = "synthesize"
    """``rank``: the aggregator replies with a reference number and that reference is the answer."""
    shuffle_references: bool = False
    """Shuffle the order of references each call sees (reproducibly, by ``shuffle_seed``)."""
    shuffle_seed: int = 0
    """Seed of the reference shuffle."""
    include_own_previous: bool = True
    """Whether a proposer of layer i > 1 sees its own answer of layer i-1 among the references."""
    on_proposer_error: Literal["drop", "fail"] = "drop"
    """A proposer that fails for good is dropped (the run goes on) or fails the run."""

    @model_validator(mode="before")
    @classmethod
    def _layers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        layers = data.pop("layers", None)
        proposers = data.get("proposers")
        if layers is not None and (
            not isinstance(layers, int) or isinstance(layers, bool) or layers < 1
        ):
            raise ValueError(
                f"layers: must be a whole number >= 2 (L-1 proposer layers and one aggregator), "
                f"got {layers!r}"
            )
        if layers == 1:
            # One layer is the aggregator answering the user alone (a single-model baseline).
            if proposers not in (None, []):
                raise ValueError(
                    "layers: must be a whole number >= 2 (L-1 proposer layers and one aggregator); "
                    "1 layer is the aggregator alone, with no proposers"
                )
            data["proposers"] = []
        elif proposers == []:
            raise ValueError(
                "proposers: every proposer layer needs at least one agent "
                "(give layers: 1 for the aggregator alone)"
            )
        elif isinstance(proposers, list) and proposers and not isinstance(proposers[0], list):
            data["proposers"] = [list(proposers) for _ in range((layers or 2) - 1)]
        elif isinstance(proposers, list) and layers is not None and len(proposers) != layers - 1:
            raise ValueError(
                f"layers: {layers} layers need {layers - 1} proposer layers, "
                f"but proposers lists {len(proposers)}"
            )
        return data

    @field_validator("proposers")
    @classmethod
    def _nonempty(cls, value: list[list[Agent]]) -> list[list[Agent]]:
        if any(not layer for layer in value):
            raise ValueError("every proposer layer needs at least one agent")
        return value

    @field_validator("aggregator_template", "proposer_template")
    @classmethod
    def _has_references(cls, value: str | None) -> str | None:
        if value is not None and REFERENCES not in value:
            raise ValueError(f"the template must contain {REFERENCES} where the responses go")
        return value

    @property
    def layers(self) -> int:
        """Number of layers L, the aggregator's included."""
        return len(self.proposers) + 1

    @classmethod
    def single(cls, agent: Agent, **options: Any) -> MoAConfig:
        """One model answering alone: a one-layer run whose only call is the aggregator's.

        ``options`` are further fields (``timeout``, ``prices``, ...). Its call is the very request a
        first-layer proposer with this agent sends, so both share one cache entry.
        """
        return cls(proposers=[], aggregator=agent, layers=1, **options)

    def agents(self) -> list[Agent]:
        """Every agent of the run, proposers layer by layer, then the aggregator."""
        return [agent for layer in self.proposers for agent in layer] + [self.aggregator]

    def expected_calls(self) -> int:
        """One call per agent."""
        return len(self.agents())

    def template_for(self, layer: int) -> str:
        """The reference template used by calls of this (1-based) layer > 1."""
        if layer >= self.layers:
            return self.aggregator_template
        return self.proposer_template or self.aggregator_template


def one_line(exc: ValidationError, source: str, kind: str = "MoAConfig") -> str:
    """A pydantic validation error as one line: where (the field), what is wrong, how many more."""
    errors = exc.errors()
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = f"unknown field; check its spelling against moa_lab.{kind}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return f"{source}: {where}: {message}{more}"


def load_config(path: str | Path) -> RunSettings:
    """Load a config (any strategy's; ``strategy:`` names it, MoA by default) from a .yaml/.yml,
    .json or .toml file; one-line ``ConfigError`` on anything off."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at {exc.start}); "
            "save it as UTF-8"
        ) from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.safe_load(text)
        elif suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError(f"{path}: unknown config format {suffix!r}; use .yaml, .json or .toml")
    except (yaml.YAMLError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        detail = str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid {suffix[1:].upper()}: {detail}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of config fields")
    if _has_surrogate(data):
        raise ConfigError(
            f"{path}: holds an escape of a lone UTF-16 surrogate (such as \\ud800), which is no "
            "text; remove it"
        )
    from moa_lab._strategies import config_from_dict  # the strategies build on this module

    return config_from_dict(data, source=str(path))


def _has_surrogate(value: Any) -> bool:
    """Whether any string in parsed config data holds a lone surrogate (YAML and JSON escapes
    make them; no trace or cache could store the text)."""
    if isinstance(value, str):
        return any("\ud800" <= ch <= "\udfff" for ch in value)
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False
