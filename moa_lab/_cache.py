"""The on-disk call cache: what a call returned, keyed by everything that determines it.

Invariant: keys are tagged SHA-256 hashes of canonical JSON of model, base_url, messages, sampling
parameters and replicate index (never the API key, timeouts or retry settings); values are JSON
objects kept as text inside their database row, never in a file. So a row that names a file, holds
a pickle or anything but a JSON object was not written by moa_lab: it is a miss with a warning,
and the file it names is never read nor deleted. A cache folder shared with others reaches
nothing outside itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import diskcache
import platformdirs

from moa_lab._errors import CacheError

__all__ = [
    "CACHE_ENV",
    "CallCache",
    "call_key",
    "canonical_json",
    "default_cache_dir",
    "open_cache",
    "user_cache_path",
]

CACHE_ENV = "MOA_LAB_CACHE_DIR"
_KEY_TAG = "moa_lab.call.v1"
_CHOOSE_ANOTHER = f"choose another folder with --cache-dir or ${CACHE_ENV}"


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no spaces: equal data gives equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def call_key(
    *, model: str, base_url: str, messages: list[dict], params: dict, replicate: int = 0
) -> str:
    """The cache key of one call: a tagged hash of what determines its output."""
    body = canonical_json(
        {
            "model": model,
            "base_url": base_url,
            "messages": messages,
            "params": params,
            "replicate": replicate,
        }
    )
    return f"{_KEY_TAG}:{hashlib.sha256(body.encode()).hexdigest()}"


def user_cache_path(env: str, name: str) -> Path:
    """``$<env>`` when set, else ``<the user's cache dir>/moa_lab/<name>`` (``~/.cache`` on Linux)."""
    override = os.environ.get(env)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("moa_lab")) / name


def default_cache_dir() -> Path:
    """``$MOA_LAB_CACHE_DIR``, else the user's cache dir (``~/.cache/moa_lab/calls`` on Linux)."""
    return user_cache_path(CACHE_ENV, "calls")


# Settings given here win over those stored in the folder's database, which anyone sharing it can
# rewrite (an unknown eviction policy would make every call fail).
_SETTINGS = dict(diskcache.DEFAULT_SETTINGS)


class _ForeignRow(Exception):
    """A row that moa_lab did not write; read as a miss."""


class _JSONOnlyDisk(diskcache.Disk):
    """A diskcache Disk that keeps JSON objects inline and never opens or deletes a file."""

    def store(self, value, read, key=diskcache.core.UNKNOWN):
        # Inline whatever the size (a call's result is a few kB of JSON): no row moa_lab writes
        # names a file, so any row that does was planted.
        return 0, diskcache.core.MODE_RAW, None, canonical_json(value)

    def fetch(self, mode, filename, value, read):
        if filename is not None:
            raise _ForeignRow(f"it names the file {filename!r}")
        if mode == diskcache.core.MODE_PICKLE:
            raise _ForeignRow("it holds a pickled value")
        if mode != diskcache.core.MODE_RAW or not isinstance(value, str):
            raise _ForeignRow(f"it holds a value of mode {mode}, not JSON text")
        try:
            result = json.loads(value)
        except (ValueError, RecursionError):
            raise _ForeignRow("its text is not JSON") from None
        if not isinstance(result, dict):
            raise _ForeignRow("its JSON is not an object")
        return result

    def remove(self, file_path):
        # diskcache calls this with a row's filename whenever the row goes (expired, culled,
        # overwritten, deleted, cleared). moa_lab's rows name no file, so the name is planted, an
        # absolute or ../ path it must not delete (nor, as diskcache would, its empty parents).
        return None


def _open_store(directory: Path) -> diskcache.Cache:
    """The diskcache store in a folder; a CacheError when the folder or its database is unusable."""
    database = directory / diskcache.core.DBNAME
    not_a_folder = CacheError(
        f"the cache folder {directory} is not a folder (it, or a folder above it, is a file); "
        f"{_CHOOSE_ANOTHER}"
    )
    if directory.exists() and not directory.is_dir():
        raise not_a_folder
    # sqlite opens the file a link points to and writes there (it makes an empty file a database).
    if database.is_symlink():
        raise CacheError(
            f"{database} is a symbolic link, so the cache would write wherever it points; "
            f"delete the link or {_CHOOSE_ANOTHER}"
        )
    try:
        return diskcache.Cache(str(directory), disk=_JSONOnlyDisk, **_SETTINGS)
    except NotADirectoryError:
        raise not_a_folder from None
    except (OSError, sqlite3.OperationalError) as exc:
        raise CacheError(
            f"cannot open the cache at {directory}: {getattr(exc, 'strerror', None) or exc}; "
            f"{_CHOOSE_ANOTHER}"
        ) from None
    except sqlite3.DatabaseError as exc:
        raise CacheError(
            f"the cache database {database} is corrupt ({exc}); "
            f"delete the folder {directory} or {_CHOOSE_ANOTHER}"
        ) from None


class CallCache:
    """A directory of cached call results, safe to share between runs and processes."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self._store = _open_store(self.directory)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result for a key, or None (with a warning when the entry is not moa_lab's)."""
        try:
            return self._store.get(key)
        except _ForeignRow as exc:
            warnings.warn(
                f"ignoring the cache entry {key} in {self.directory}: moa_lab did not write it "
                f"({exc}), so the call is sent instead; delete the folder if you do not trust "
                "everyone who can write to it",
                stacklevel=2,
            )
            return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store a result as JSON text."""
        self._store.set(key, value)

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        """Remove every entry."""
        self._store.clear()

    def close(self) -> None:
        """Release the cache's files."""
        self._store.close()

    def __repr__(self) -> str:
        return f"CallCache({str(self.directory)!r}, entries={len(self)})"


def open_cache(cache: CallCache | str | Path | bool | None) -> tuple[CallCache | None, bool]:
    """The cache a ``cache=`` argument names, and whether this call opened it (so must close it).

    True is the default folder, False or None no cache, a path that folder; an open ``CallCache`` is
    shared and left open.
    """
    if cache is True:
        return CallCache(), True
    if cache is False or cache is None:
        return None, False
    if isinstance(cache, CallCache):
        return cache, False
    return CallCache(cache), True
