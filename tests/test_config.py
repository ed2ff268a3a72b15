"""Configs: presets, files, CLI-style overrides, and one-line errors naming the field."""

from __future__ import annotations

import pytest

from moa_lab import Agent, ConfigError, MoAConfig, build_config, load_config, preset
from moa_lab._presets import PRESETS


def test_a_flat_proposer_list_fills_every_proposer_layer():
    config = MoAConfig(proposers=["a", "b"], aggregator="c", layers=4)
    assert config.layers == 4
    assert [[agent.model for agent in layer] for layer in config.proposers] == [["a", "b"]] * 3
    assert MoAConfig(proposers=["a"], aggregator="c").layers == 2


def test_nested_proposers_give_each_layer_its_own_agents():
    config = MoAConfig(proposers=[["a", "b"], ["c"]], aggregator="d")
    assert config.layers == 3 and config.proposers[1][0].model == "c"


def test_the_paper_presets_have_the_papers_shape():
    moa, lite, self_moa = preset("moa"), preset("moa-lite"), preset("self-moa")
    assert moa.layers == 3 and all(len(layer) == 6 for layer in moa.proposers)
    assert lite.layers == 2
    assert {a.model for a in self_moa.proposers[0]} == {self_moa.aggregator.model}
    assert preset("llm-ranker").aggregation == "rank"
    debate = preset("debate")
    assert debate.strategy == "debate" and len(debate.agents_) == 3 and debate.rounds == 2
    tot = preset("tot-game24")
    assert tot.strategy == "tot" and tot.task == "game24" and tot.agent.model == "gpt-4"
    assert (tot.breadth, tot.n_evaluate_sample, tot.generation) == (5, 3, "propose")
    assert {"moa", "moa-lite", "self-moa", "llm-ranker", "debate", "tot", "tot-game24"} <= set(PRESETS)


def test_config_round_trips_through_plain_data():
    config = preset("moa")
    assert MoAConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"proposers": ["a"], "aggregator": "b", "layers": 1}, "layers: must be a whole number >= 2"),
        ({"proposers": ["a"], "aggregator": "b", "temprature": 1}, "temprature: unknown field"),
        ({"proposers": [{"temperature": 1}], "aggregator": "b"}, "proposers.0.0.model: Field required"),
        ({"proposers": [], "aggregator": "b"}, "every proposer layer needs at least one agent"),
        (
            {"proposers": [{"model": "a", "base_url": "localhost:8000"}], "aggregator": "b"},
            "proposers.0.0.base_url: 'localhost:8000' is not an http(s) URL",
        ),
        (
            {"proposers": ["a"], "aggregator": "b", "aggregator_template": "no slot"},
            "aggregator_template: the template must contain {references}",
        ),
        (
            {"proposers": [["a"], ["b"]], "aggregator": "c", "layers": 4},
            "4 layers need 3 proposer layers",
        ),
    ],
)
def test_bad_configs_fail_with_one_line_naming_the_field(data, message):
    with pytest.raises(ConfigError) as caught:
        MoAConfig.from_dict(data, source="my.yaml")
    text = str(caught.value)
    assert message in text and text.startswith("my.yaml: ") and "\n" not in text


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("c.yaml", "layers: 3\nproposers: [a, b]\naggregator: {model: c, temperature: 0.2}\n"),
        (
            "c.json",
            '{"layers": 3, "proposers": ["a", "b"], "aggregator": {"model": "c", "temperature": 0.2}}',
        ),
        ("c.toml", 'layers = 3\nproposers = ["a", "b"]\n[aggregator]\nmodel = "c"\ntemperature = 0.2\n'),
    ],
)
def test_configs_load_from_yaml_json_and_toml(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    config = load_config(path)
    assert config.layers == 3 and config.aggregator == Agent(model="c", temperature=0.2)


def test_malformed_config_files_fail_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("proposers: [a\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listing)


def test_cli_overrides_replace_every_layer():
    config = build_config(
        preset_name="moa",
        base_url="http://127.0.0.1:9/v1",
        proposers=["a", "b", "c"],
        aggregator="z",
        layers=3,
        temperature=0.1,
        max_tokens=64,
    )
    assert [[a.model for a in layer] for layer in config.proposers] == [["a", "b", "c"]] * 2
    assert config.aggregator.model == "z"
    assert {a.base_url for a in config.agents()} == {"http://127.0.0.1:9/v1"}
    assert {(a.temperature, a.max_tokens) for a in config.agents()} == {(0.1, 64)}


def test_unknown_presets_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown preset 'moa-max'; choose one of: .*moa-lite"):
        preset("moa-max")


def test_well_known_hosts_get_their_key_variable():
    assert Agent(model="gpt-4o").key_env == "OPENAI_API_KEY"
    assert preset("moa").aggregator.key_env == "TOGETHER_API_KEY"
    assert Agent(model="m", base_url="http://127.0.0.1:1/v1").key_env is None
    assert Agent(model="m", api_key_env="MY_KEY").key_env == "MY_KEY"
