"""The on-disk call cache: what a call returned, keyed by everything that determines it.

Invariant: keys are tagged SHA-256 hashes of canonical JSON of model, base_url, messages, sampling
parameters and replicate index (never the API key, timeouts or retry settings); values are JSON
objects kept as text inside their database row, never in a file. So a row that names a file, holds
a pickle or anything but a JSON object was not written by moa_lab: it is a miss with a warning,
and the file it names is never read nor deleted. A cache folder shared with others reaches
nothing outside itself. A cache that cannot be written costs a warning, never an answer.
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
# What a cache that cannot be read or written raises: sqlite (full, read-only, locked, broken), the
# OS (no space, no permission) or diskcache (locked too long).
_STORE_ERRORS = (sqlite3.Error, OSError, diskcache.Timeout)


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


class _Store(diskcache.Cache):
    """A diskcache Cache that runs no sqlite pragma but those moa_lab sets."""

    def reset(self, key, value=diskcache.ENOVAL, update=True):
        # diskcache runs "PRAGMA <name> = <value>" for every sqlite_ setting in the database, on
        # each connection; a planted one such as temp_store_directory would have sqlite write its
        # temporary files in any folder.
        if key.startswith("sqlite_") and key not in _SETTINGS:
            return value
        return super().reset(key, value, update)


class _ForeignRow(Exception):
    """A row that moa_lab did not write; read as a miss."""


# diskcache uses a row's filename in Disk.fetch (reads it), Disk.remove (deletes it and its empty
# parents) and Cache.check (never called here); only Disk.store makes one, through Disk.filename.
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


class _Unusable:
    """Stands in for a store that could not be opened: every lookup misses, every write fails."""

    def __init__(self, reason: str):
        self.reason = reason

    def get(self, key: str) -> None:
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        raise OSError(self.reason)

    def __len__(self) -> int:
        return 0

    def clear(self) -> None:
        return None

    def close(self) -> None:
        return None


def _reason(exc: BaseException) -> str:
    """Why a store operation failed, in the words of the OS or sqlite."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _open_store(directory: Path) -> _Store | _Unusable:
    """The diskcache store in a folder: a CacheError if misplaced or corrupt, a warning if unwritable.

    A folder that cannot be written (read-only, full, locked) still lets a run make its calls, which
    are simply not cached; a file or a corrupt database in its place must be fixed first.
    """
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
        return _Store(str(directory), disk=_JSONOnlyDisk, **_SETTINGS)
    except NotADirectoryError:
        raise not_a_folder from None
    except (OSError, sqlite3.OperationalError, diskcache.Timeout) as exc:
        warnings.warn(
            f"cannot use the cache at {directory} ({_reason(exc)}); calls are sent and not cached: "
            f"make the folder writable or {_CHOOSE_ANOTHER}",
            stacklevel=3,
        )
        return _Unusable(_reason(exc))
    except sqlite3.DatabaseError as exc:
        raise CacheError(
            f"the cache database {database} is corrupt ({exc}); "
            f"delete the folder {directory} or {_CHOOSE_ANOTHER}"
        ) from None


class CallCache:
    """A directory of cached call results, safe to share between runs, processes and people."""

    write_errors: int
    """How many results could not be stored (full disk, read-only folder); each was warned about."""
    last_write_error: str | None
    """Why the last of those writes failed, in the words of the OS or sqlite."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        self.write_errors = 0
        self.last_write_error = None
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
        except _STORE_ERRORS as exc:
            # A miss, not an error: raising mid-run would throw away the answers already paid for.
            warnings.warn(
                f"cannot read the cache at {self.directory} ({_reason(exc)}), so the call is sent "
                f"instead; if this persists, delete the folder or {_CHOOSE_ANOTHER}",
                stacklevel=2,
            )
        return None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store a result; a failed write (full disk, read-only folder) is counted and warned about."""
        try:
            self._store.set(key, value)
        except _STORE_ERRORS as exc:
            self.write_errors += 1
            self.last_write_error = _reason(exc)
            warnings.warn(
                f"cannot write to the cache at {self.directory} ({self.last_write_error}); the "
                f"answer is kept in the trace but not cached: free some space, make the folder "
                f"writable or {_CHOOSE_ANOTHER}",
                stacklevel=2,
            )

    def __len__(self) -> int:
        try:
            return len(self._store)
        except _STORE_ERRORS as exc:
            raise self._broken("count the entries of", exc) from None

    def clear(self) -> None:
        """Remove every entry."""
        try:
            self._store.clear()
        except _STORE_ERRORS as exc:
            raise self._broken("clear", exc) from None

    def close(self) -> None:
        """Release the cache's files."""
        self._store.close()

    def __repr__(self) -> str:
        return f"CallCache({str(self.directory)!r}, entries={len(self)})"

    def _broken(self, action: str, exc: BaseException) -> CacheError:
        """The one-line error for an operation the user asked for that the store could not do."""
        return CacheError(
            f"cannot {action} the cache at {self.directory} ({_reason(exc)}); "
            f"delete the folder or {_CHOOSE_ANOTHER}"
        )


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
