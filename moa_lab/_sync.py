"""The one way sync code waits for moa_lab's coroutines, in a script or inside Jupyter's loop.

Invariant: every blocking wrapper (``run``, ``replay``, ``plan``, ``experiment``) goes through
``blocking``, so they all behave the same inside a running event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

__all__ = ["blocking"]

_T = TypeVar("_T")


def blocking(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Wait for a coroutine from sync code; inside a running event loop (Jupyter) it runs on a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coroutine)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coroutine).result()
