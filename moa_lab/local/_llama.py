"""Loading a GGUF with llama-cpp-python: the one place that imports ``llama_cpp``.

How many threads llama.cpp runs and how they wait was measured, not guessed (docs/benchmarks.md,
``benchmarks/bench_local.py --decode``): every core the process may use, for decoding and for
prompts alike, with OpenMP's passive wait policy. llama.cpp's OpenMP threads otherwise spin while
they wait, and on a 2-core machine busy with other work decoding on 2 threads fell to about 1.6
tokens/s (14.9 with passive waits; 11-13 on 1 thread). Neither setting changes the tokens.

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

__all__ = ["LLAMA_ENV", "N_CTX", "check_llama", "load_llama", "n_threads"]

#: Context window of a loaded model: room for an aggregator prompt with several long references.
N_CTX = 8192
#: Set before llama.cpp loads, unless already set: OpenMP threads sleep instead of spinning while
#: they wait (OpenMP reads it once, when llama.cpp's library is loaded).
LLAMA_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


_MISSING = f"the local model needs llama-cpp-python, which is not installed; {INSTALL_HINT}"


def check_llama() -> None:
    """A one-line error when llama-cpp-python is not installed (without importing it)."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise ConfigError(_MISSING)


@functools.cache
def _counting_llama() -> type:
    for name, value in LLAMA_ENV.items():
        os.environ.setdefault(name, value)
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
    """The cores this process may run on (llama-cpp-python's default, half of them, decodes slower)."""
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
