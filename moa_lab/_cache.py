"""The on-disk call cache: what a call returned, keyed by everything that determines it.

Invariant: keys are tagged SHA-256 hashes of canonical JSON of model, base_url, messages, sampling
parameters and replicate index (never the API key, timeouts or retry settings); values are JSON
text, and a value stored any other way (a pickle planted in a shared directory) is refused, never
loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
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


class _JSONOnlyDisk(diskcache.Disk):
    """A diskcache Disk that stores text and refuses to unpickle anything it finds."""

    def fetch(self, mode, filename, value, read):
        if mode == diskcache.core.MODE_PICKLE:
            raise CacheError(
                "the cache holds a pickled value, which moa_lab never writes; "
                "refusing to load it (delete the cache directory if you do not trust it)"
            )
        return super().fetch(mode, filename, value, read)


class CallCache:
    """A directory of cached call results, safe to share between runs and processes."""

    def __init__(self, directory: str | Path | None = None):
        self.directory = Path(directory) if directory else default_cache_dir()
        try:
            self._store = diskcache.Cache(str(self.directory), disk=_JSONOnlyDisk)
        except OSError as exc:
            raise CacheError(
                f"cannot open the cache at {self.directory}: {exc.strerror or exc}; "
                f"choose another with --cache-dir or ${CACHE_ENV}"
            ) from None

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored result for a key, or None."""
        text = self._store.get(key)
        if text is None:
            return None
        if not isinstance(text, str):
            raise CacheError(f"the cache entry {key} is not JSON text; delete {self.directory}")
        return json.loads(text)

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store a result as JSON text."""
        self._store.set(key, canonical_json(value))

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
