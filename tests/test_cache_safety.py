"""A cache folder shared with others reaches nothing outside itself; a broken one costs no answer.

Rows are planted with sqlite3 straight into ``cache.db``, as anyone who can write the folder could.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import re
import sqlite3
import time
import warnings
from pathlib import Path

import diskcache
import pytest

import moa_lab
from moa_lab import CacheError, CallCache
from moa_lab.testing import fake_config

MODE_RAW, MODE_TEXT, MODE_PICKLE = (
    diskcache.core.MODE_RAW,
    diskcache.core.MODE_TEXT,
    diskcache.core.MODE_PICKLE,
)


def _run(fake, cache):
    config = fake_config(fake.url)
    return moa_lab.run("Why is the sky blue?", config, cache=cache, trace_path=False, progress=False)


def _call_keys(fake) -> dict[str, str]:
    """The cache key of every call of the next run, read from an uncached run's trace."""
    trace = _run(fake, cache=False)
    return {node: trace[node].cache_key for node in trace.calls()}


def _plant(directory: Path, key: str, *, mode: int, value=None, filename=None, expire_time=None):
    """Insert one row into the folder's ``cache.db`` behind diskcache's back."""
    CallCache(directory).close()  # the schema, as moa_lab creates it
    now = time.time()
    with contextlib.closing(sqlite3.connect(directory / "cache.db")) as db, db:
        db.execute(
            "INSERT INTO Cache (key, raw, store_time, expire_time, access_time, access_count,"
            " tag, size, mode, filename, value) VALUES (?, 1, ?, ?, ?, 0, NULL, 0, ?, ?, ?)",
            (key, now, expire_time, now, mode, filename, value),
        )


def _victim(tmp_path: Path) -> Path:
    victim = tmp_path / "victim" / "deep" / "notes.json"
    victim.parent.mkdir(parents=True)
    victim.write_text('{"text": "PLANTED ANSWER"}')
    return victim


@pytest.mark.parametrize("how", ["absolute", "relative"])
def test_an_expired_planted_row_never_deletes_the_file_it_names(fake, tmp_path, how):
    shared, victim = tmp_path / "shared", _victim(tmp_path)
    filename = str(victim) if how == "absolute" else "../victim/deep/notes.json"
    past = time.time() - 3600
    _plant(shared, "moa_lab.call.v1:planted", mode=MODE_TEXT, filename=filename, expire_time=past)
    trace = _run(fake, cache=shared)  # every write culls expired rows
    assert trace.status == "complete"
    assert victim.read_text() == '{"text": "PLANTED ANSWER"}'


def test_a_planted_row_naming_a_file_outside_is_never_an_answer(fake, tmp_path):
    keys = _call_keys(fake)
    sent = len(fake.chat_requests())
    shared, victim = tmp_path / "shared", _victim(tmp_path)
    _plant(shared, keys["L1.0"], mode=MODE_TEXT, filename=str(victim))
    named = re.escape(repr(str(victim)))
    refused = rf"ignoring the cache entry {keys['L1.0']} .*\(it names the file {named}\)"
    with pytest.warns(UserWarning, match=refused):
        trace = _run(fake, cache=shared)
    assert len(fake.chat_requests()) - sent == len(keys)
    assert not trace["L1.0"].cache_hit and "PLANTED" not in trace["L1.0"].response
    assert victim.read_text() == '{"text": "PLANTED ANSWER"}'  # the overwrite deleted nothing
    cache = CallCache(shared)
    assert cache.get(keys["L1.0"])["text"] == trace["L1.0"].response  # the real answer replaced it
    cache.close()


class _Mkdir:
    """Unpickling this makes a folder: proof that a pickle was loaded."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_planted_pickle_is_never_loaded(fake, tmp_path):
    keys = _call_keys(fake)
    sent = len(fake.chat_requests())
    shared, proof = tmp_path / "shared", tmp_path / "unpickled"
    _plant(shared, keys["L1.0"], mode=MODE_PICKLE, value=pickle.dumps(_Mkdir(proof)))
    refused = rf"ignoring the cache entry {keys['L1.0']} .*\(it holds a pickled value\)"
    with pytest.warns(UserWarning, match=refused):
        trace = _run(fake, cache=shared)
    assert not proof.exists()
    assert len(fake.chat_requests()) - sent == len(keys) and trace.status == "complete"


@pytest.mark.parametrize(
    ("mode", "value"),
    [
        (7, '{"text": "unknown mode"}'),
        (MODE_RAW, "not JSON"),
        (MODE_RAW, b'{"text": "bytes"}'),
        (MODE_RAW, '["not", "an", "object"]'),
        (MODE_RAW, "[" * 100_000),
    ],
    ids=["unknown-mode", "not-json", "bytes", "not-an-object", "too-deep"],
)
def test_a_row_moa_lab_did_not_write_is_a_miss_with_a_warning(fake, tmp_path, mode, value):
    keys = _call_keys(fake)
    sent = len(fake.chat_requests())
    _plant(tmp_path / "shared", keys["L1.0"], mode=mode, value=value)
    with pytest.warns(UserWarning, match=rf"ignoring the cache entry {keys['L1.0']}"):
        trace = _run(fake, cache=tmp_path / "shared")
    assert len(fake.chat_requests()) - sent == len(keys) and trace.status == "complete"


def test_values_stay_inline_even_when_planted_settings_ask_for_files(tmp_path):
    shared = tmp_path / "shared"
    CallCache(shared).close()
    with contextlib.closing(sqlite3.connect(shared / "cache.db")) as db, db:
        db.execute("UPDATE Settings SET value = 0 WHERE key = 'disk_min_file_size'")
        db.execute("UPDATE Settings SET value = 'bogus' WHERE key = 'eviction_policy'")
    cache = CallCache(shared)
    cache.set("k", {"text": "x" * 100_000})  # bigger than diskcache's 32 kB file threshold
    assert cache.get("k") == {"text": "x" * 100_000}
    cache.close()
    assert sorted(p.name for p in shared.iterdir()) == ["cache.db"]


def test_a_planted_sqlite_setting_is_not_run(tmp_path):
    shared, elsewhere = tmp_path / "shared", tmp_path / "temporary-files-go-here"
    CallCache(shared).close()
    with contextlib.closing(sqlite3.connect(shared / "cache.db")) as db, db:
        pragma = ("sqlite_temp_store_directory", f"'{elsewhere}'")
        db.execute("INSERT INTO Settings (key, value) VALUES (?, ?)", pragma)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # run, the pragma fails (no such folder) and spoils the cache
        cache = CallCache(shared)
        cache.set("k", {"text": "hi"})
        assert cache.get("k") == {"text": "hi"}
    cache.close()


def _cli_run(fake, cache_dir):
    options = ["--base-url", fake.url, "--proposers", "a", "--aggregator", "z", "--quiet"]
    return ["run", "Hi", *options, "--cache-dir", str(cache_dir)]


@pytest.mark.parametrize("where", ["file", "inside-a-file"])
def test_a_cache_folder_that_is_a_file_is_one_clear_line(fake, tmp_path, cli_fails, where):
    path = tmp_path / "not-a-folder"
    path.write_text("hello")
    folder = path if where == "file" else path / "calls"
    with pytest.raises(
        CacheError, match=rf"{re.escape(str(folder))} is not a folder.*--cache-dir"
    ) as info:
        _run(fake, cache=folder)
    assert "\n" not in str(info.value)
    cli_fails(r"is not a folder.*--cache-dir", _cli_run(fake, folder))
    assert not fake.chat_requests() and path.read_text() == "hello"


def test_a_corrupt_cache_database_is_one_clear_line(fake, tmp_path, cli_fails):
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "cache.db").write_bytes(b"this is not sqlite " * 512)
    with pytest.raises(
        CacheError, match=rf"{re.escape(str(shared))}.* is corrupt.*delete the folder"
    ) as info:
        _run(fake, cache=shared)
    assert "\n" not in str(info.value)
    cli_fails(rf"{re.escape(str(shared))}.* is corrupt", _cli_run(fake, shared))
    assert not fake.chat_requests()


def test_a_database_that_links_outside_the_folder_is_refused(fake, tmp_path):
    shared, outside = tmp_path / "shared", tmp_path / "someone-elses-file"
    shared.mkdir()
    outside.write_bytes(b"")  # sqlite would happily turn an empty file into a database
    (shared / "cache.db").symlink_to(outside)
    with pytest.raises(CacheError, match="symbolic link"):
        _run(fake, cache=shared)
    assert outside.read_bytes() == b""


@pytest.mark.parametrize(
    "failure",
    [sqlite3.OperationalError("database or disk is full"), OSError(errno.ENOSPC, "No space left")],
    ids=["sqlite-full", "enospc"],
)
def test_a_failing_write_costs_a_warning_not_an_answer(fake, tmp_path, monkeypatch, failure):
    def fail(*args, **kwargs):
        raise failure

    monkeypatch.setattr(diskcache.Cache, "set", fail)
    cache = CallCache(tmp_path / "shared")
    with pytest.warns(UserWarning, match=r"cannot write to the cache .*not cached"):
        trace = _run(fake, cache=cache)
    assert trace.status == "complete" and all(trace[n].response for n in trace.calls())
    assert len(fake.chat_requests()) == len(trace.calls()) == cache.write_errors
    assert str(failure.args[-1]) in cache.last_write_error
    cache.close()


def test_a_cache_folder_that_cannot_be_written_costs_a_warning(fake, tmp_path, monkeypatch):
    # What diskcache raises in a read-only folder (the tests run as root, which chmod cannot stop).
    def read_only(*args, **kwargs):
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(diskcache.Cache, "__init__", read_only)
    with pytest.warns(UserWarning) as caught:
        trace = _run(fake, cache=tmp_path / "read-only")
    assert trace.status == "complete" and all(trace[n].response for n in trace.calls())
    assert len(fake.chat_requests()) == len(trace.calls())
    said = [str(warning.message) for warning in caught]
    assert re.match(r"cannot use the cache at .*\(attempt to write a readonly .*--cache-dir", said[0])
    assert all(message.startswith("cannot write to the cache at") for message in said[1:])


def test_a_database_broken_after_opening_is_a_miss_and_a_counted_write(tmp_path):
    cache = CallCache(tmp_path / "shared")
    cache.set("k", {"text": "hi"})
    with contextlib.closing(sqlite3.connect(tmp_path / "shared" / "cache.db")) as db, db:
        db.execute("DROP TABLE Cache")
        db.execute("DROP TABLE Settings")
    with pytest.warns(UserWarning, match=r"cannot read the cache .*no such table"):
        assert cache.get("k") is None
    with pytest.warns(UserWarning, match=r"cannot write to the cache .*no such table"):
        cache.set("k", {"text": "hi"})
    assert cache.write_errors == 1
    with pytest.raises(CacheError, match=r"cannot clear the cache .*no such table"):
        cache.clear()
    with pytest.raises(CacheError, match=r"cannot count the entries of the cache .*no such table"):
        len(cache)
    cache.close()
