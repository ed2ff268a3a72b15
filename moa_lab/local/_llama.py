"""Loading a GGUF with llama-cpp-python: the one place that imports ``llama_cpp``.

Invariant: ``llama_cpp`` is imported only when a model is loaded, so the rest of moa_lab works
without the local extra, and its absence is one line saying how to install it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from moa_lab._errors import ConfigError
from moa_lab.local._models import INSTALL_HINT

__all__ = ["N_CTX", "check_llama", "load_llama", "n_threads"]

#: Context window of a loaded model: room for an aggregator prompt with several long references.
N_CTX = 8192


_MISSING = f"the local model needs llama-cpp-python, which is not installed; {INSTALL_HINT}"


def check_llama() -> None:
    """A one-line error when llama-cpp-python is not installed (without importing it)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(_MISSING)


@functools.cache
def _counting_llama() -> type:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ConfigError(_MISSING) from None

    class CountingLlama(Llama):
        """A Llama that reports every token it generates to ``on_token`` (for progress bars)."""

        on_token: Callable[[], None] | None = None

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            for token in super().generate(tokens, *args, **kwargs):
                if self.on_token is not None:
                    self.on_token()
                yield token

    return CountingLlama


def n_threads() -> int:
    """The cores this process may run on: llama.cpp's default (half of them) is slower here."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def load_llama(path: Path, *, chat_format: str | None = None) -> Any:
    """Load a GGUF with llama-cpp-python on every available core (``chat_format`` for a GGUF that
    carries no chat template)."""
    try:
        return _counting_llama()(
            model_path=str(path),
            n_ctx=N_CTX,
            n_threads=n_threads(),
            n_threads_batch=n_threads(),
            chat_format=chat_format,
            verbose=False,
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: llama.cpp cannot load it as a GGUF model ({exc})") from None
