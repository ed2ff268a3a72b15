"""The call cache on disk: large answers, values it refuses, a folder it cannot open, and sharing."""

from __future__ import annotations

import contextlib
import sqlite3

import diskcache
import pytest

from moa_lab import CacheError, CallCache
from moa_lab._cache import open_cache


def test_a_large_answer_round_trips(tmp_path):
    cache = CallCache(tmp_path)
    value = {"text": "long answer " * 10_000, "usage": None}  # stored in a file of its own
    cache.set("k", value)
    assert cache.get("k") == value
    cache.close()
    again = CallCache(tmp_path)
    assert again.get("k") == value and len(again) == 1
    again.clear()
    assert len(again) == 0 and again.get("k") is None
    again.close()


def test_values_moa_lab_never_writes_are_a_miss_with_what_to_do(tmp_path):
    planted = diskcache.Cache(str(tmp_path))
    planted.set("pickled", {"not": "json text"})
    planted.set("number", 5)
    planted.set("text", "not json", read=False)
    planted.set("list", "[1, 2]")
    planted.close()
    cache = CallCache(tmp_path)
    refused = {
        "pickled": "it holds a pickled value",
        "number": "it holds a value of mode 1, not JSON text",
        "text": "its text is not JSON",
        "list": "its JSON is not an object",
    }
    for key, why in refused.items():
        with pytest.warns(UserWarning) as caught:
            assert cache.get(key) is None
        assert [str(w.message) for w in caught] == [
            f"ignoring the cache entry {key} in {tmp_path}: moa_lab did not write it ({why}), so the "
            "call is sent instead; delete the folder if you do not trust everyone who can write to it"
        ]
    cache.close()


def test_a_folder_that_cannot_be_a_cache_is_one_line(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    for folder in (tmp_path / "file", tmp_path / "file" / "cache"):
        with pytest.raises(CacheError) as caught:
            CallCache(folder)
        assert str(caught.value) == (
            f"the cache folder {folder} is not a folder (it, or a folder above it, is a file); "
            "choose another folder with --cache-dir or $MOA_LAB_CACHE_DIR"
        )


def test_a_cache_argument_names_a_cache_and_who_closes_it(tmp_path):
    assert open_cache(False) == (None, False) and open_cache(None) == (None, False)
    shared = CallCache(tmp_path / "shared")
    assert open_cache(shared) == (shared, False)
    by_path, owned = open_cache(tmp_path / "mine")
    assert owned and by_path.directory == tmp_path / "mine"
    default, owned = open_cache(True)
    assert owned and default.directory == tmp_path / "cache"  # $MOA_LAB_CACHE_DIR (conftest)
    for cache in (shared, by_path, default):
        cache.close()


def test_a_folder_that_cannot_be_written_is_a_cache_that_misses_and_says_why(tmp_path, monkeypatch):
    # What diskcache raises in a read-only folder (the tests run as root, which chmod cannot stop).
    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(diskcache.Cache, "__init__", read_only)
    with pytest.warns(UserWarning) as caught:
        cache = CallCache(tmp_path)
    assert [str(w.message) for w in caught] == [
        f"cannot use the cache at {tmp_path} (attempt to write a readonly database); calls are sent "
        "and not cached: make the folder writable or choose another folder with --cache-dir or "
        "$MOA_LAB_CACHE_DIR"
    ]
    assert cache.get("k") is None and len(cache) == 0
    with pytest.warns(UserWarning, match=r"^cannot write to the cache at .*not cached"):
        cache.set("k", {"text": "hi"})
    assert cache.write_errors == 1 and cache.last_write_error == "attempt to write a readonly database"
    cache.clear()
    cache.close()


def test_a_cache_that_breaks_after_opening_names_what_failed_in_the_os_words(tmp_path, monkeypatch):
    cache = CallCache(tmp_path)
    cache.set("k", {"text": "hi"})

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(diskcache.Cache, "set", full)
    with pytest.warns(
        UserWarning, match=r"^cannot write to the cache at .* \(No space left on device\)"
    ):
        cache.set("k2", {"text": "hi"})
    assert cache.last_write_error == "No space left on device"
    for action, method in (("clear", "clear"), ("count the entries of", "__len__")):
        monkeypatch.setattr(diskcache.Cache, method, full)
        with pytest.raises(CacheError) as caught:
            cache.clear() if method == "clear" else len(cache)
        assert str(caught.value) == (
            f"cannot {action} the cache at {tmp_path} (No space left on device); delete the folder "
            "or choose another folder with --cache-dir or $MOA_LAB_CACHE_DIR"
        )
    monkeypatch.undo()
    cache.close()


def test_a_corrupt_cache_database_is_one_line_saying_what_to_do(tmp_path):
    (tmp_path / "cache.db").write_text("not a database " * 100)
    with pytest.raises(CacheError) as caught:
        CallCache(tmp_path)
    assert str(caught.value) == (
        f"the cache database {tmp_path / 'cache.db'} is corrupt (file is not a database); delete "
        f"the folder {tmp_path} or choose another folder with --cache-dir or $MOA_LAB_CACHE_DIR"
    )


def test_a_cache_that_cannot_be_read_is_a_miss_in_the_databases_words(tmp_path):
    cache = CallCache(tmp_path)
    cache.set("k", {"text": "hi"})
    with contextlib.closing(sqlite3.connect(tmp_path / "cache.db")) as db, db:
        db.execute("DROP TABLE Cache")
    with pytest.warns(UserWarning) as caught:
        assert cache.get("k") is None
    assert [str(w.message) for w in caught] == [
        f"cannot read the cache at {tmp_path} (no such table: Cache), so the call is sent instead; "
        "if this persists, delete the folder or choose another folder with --cache-dir or "
        "$MOA_LAB_CACHE_DIR"
    ]
    cache.close()
