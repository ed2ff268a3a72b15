"""The cache stores JSON only and refuses anything else."""

from __future__ import annotations

import diskcache
import pytest

from moa_lab import CallCache
from moa_lab._cache import call_key


def test_values_round_trip_as_json(tmp_path):
    cache = CallCache(tmp_path)
    cache.set("k", {"text": "hi", "usage": {"prompt_tokens": 1}})
    assert cache.get("k") == {"text": "hi", "usage": {"prompt_tokens": 1}}
    assert cache.get("missing") is None
    cache.close()


def test_a_planted_pickle_is_refused_not_loaded(tmp_path):
    planted = diskcache.Cache(str(tmp_path))
    planted.set("moa_lab.call.v1:evil", {"not": "json text"})  # diskcache pickles a dict
    planted.close()
    cache = CallCache(tmp_path)
    with pytest.warns(UserWarning, match=r"moa_lab\.call\.v1:evil .*pickled"):
        assert cache.get("moa_lab.call.v1:evil") is None
    cache.close()


def test_keys_depend_on_what_determines_the_output_only():
    base = {
        "model": "m",
        "base_url": "http://x/v1",
        "messages": [{"role": "user", "content": "q"}],
        "params": {"temperature": 0.7},
    }
    key = call_key(**base)
    assert key.startswith("moa_lab.call.v1:") and len(key) == len("moa_lab.call.v1:") + 64
    assert call_key(**base) == key
    assert call_key(**base, replicate=1) != key
    assert call_key(**{**base, "params": {"temperature": 0.8}}) != key
    assert call_key(**{**base, "model": "n"}) != key
