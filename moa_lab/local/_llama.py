"""Loading a GGUF with llama-cpp-python: the one place that imports ``llama_cpp``.

How many threads llama.cpp runs and how they wait was measured, not guessed (docs/benchmarks.md,
``benchmarks/bench_local.py --decode``): every core the process may use, for decoding and for
prompts alike, with OpenMP's passive wait policy. llama.cpp's OpenMP threads otherwise spin while
they wait, and on a 2-core machine busy with other work decoding on 2 threads fell to 1.6-3.8
tokens/s (14.9-15.7 with passive waits, 11-17 on 1 thread; 2 threads prefill up to 1.6x faster than
1). Neither setting changes the tokens.

Invariant: ``llama_cpp`` is imported only when a model is loaded, so the rest of moa_lab works
without the local extra, and its absence is one line saying how to install it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
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
def _serving_llama() -> type:
    for name, value in LLAMA_ENV.items():
        os.environ.setdefault(name, value)
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ConfigError(_MISSING) from None

    import numpy as np
    from llama_cpp import llama_get_logits_ith, llama_vocab_is_eog

    class ServingLlama(Llama):
        """A Llama that reports every token it generates to ``on_token`` (for progress bars and
        streaming), and starts every call as if from an empty context.

        ``on_token(piece)`` gets, for each token, the answer's text that became certain with it
        (often the token's text, or '' while a character is split across tokens or the text may be
        the start of a stop sequence); the pieces so far are always a prefix of the answer the call
        returns, which the caller completes from that answer.

        A prompt different from the last one is prefilled from an empty context. A prompt equal to
        the last one prefilled (a Self-MoA proposer after another) is not prefilled again: its
        cache entries are the ones that prefill wrote and nothing since has changed them, and its
        first token is sampled from that prefill's saved logits, so the call computes what a call
        from an empty context computes (``prompt_cached`` says how many prompt tokens it reused).
        """

        on_token: Callable[[str], None] | None = None
        #: Prompt tokens the last call took from the cache instead of prefilling them.
        prompt_cached = 0
        _prefilled: list[int] | None = None
        _prefill_logits: Any = None
        _stops: tuple[str, ...] = ()

        def _last_logits(self) -> Any:
            """The logits llama.cpp will sample the next token from (a view of its own buffer)."""
            return np.ctypeslib.as_array(llama_get_logits_ith(self.ctx, -1), shape=(self.n_vocab(),))

        def generate(self, tokens: Any, *args: Any, **kwargs: Any) -> Any:
            tokens = list(tokens)
            reuse = tokens == self._prefilled and self._prefill_logits is not None
            if reuse:
                # Keep cache cells 0..N-1 (the prompt's prefill); llama-cpp-python then drops the
                # cells after them and samples at once from the logits put back here.
                self.n_tokens = len(tokens)
                self._requires_eval = False
                self._last_logits()[:] = self._prefill_logits
            else:
                self.reset()
            self.prompt_cached = len(tokens) if reuse else 0
            text = _AnswerText(self._stops)
            for number, token in enumerate(super().generate(tokens, *args, **kwargs)):
                if number == 0 and not reuse:
                    self._prefilled, self._prefill_logits = tokens, self._last_logits().copy()
                if self.on_token is not None:
                    # The end-of-generation token is no text, as llama-cpp-python counts it.
                    eog = llama_vocab_is_eog(self._model.vocab, token)
                    self.on_token("" if eog else text.add(self.detokenize([token])))
                yield token

        def create_completion(self, *args: Any, **kwargs: Any) -> Any:
            # The chat handlers pass the chat format's stop strings here; the text streamed holds
            # back what may be the start of one, as the answer will end before it.
            stop = kwargs.get("stop") or []
            self._stops = (stop,) if isinstance(stop, str) else tuple(stop)
            return super().create_completion(*args, **kwargs)

        def reset(self) -> None:
            """Forget the context, the saved prefill included."""
            super().reset()
            self._prefilled, self._prefill_logits = None, None

    return ServingLlama


class _AnswerText:
    """The text of an answer as its tokens' bytes arrive: what is certain so far, piece by piece.

    llama-cpp-python decodes the whole answer's bytes (ignoring invalid UTF-8) and cuts it before
    the first stop string. So a piece leaves out bytes of a character not yet complete, and text
    that could be the start of a stop string, until the next tokens settle them; once a stop string
    appears nothing more is certain (the answer ends before it).
    """

    def __init__(self, stops: tuple[str, ...]):
        self._stops = [stop for stop in stops if stop]
        self._bytes = b""
        self._given = 0
        self._stopped = False

    def add(self, data: bytes) -> str:
        """Take a token's bytes; return the text they made certain ('' if none)."""
        self._bytes += data
        if self._stopped:
            return ""
        text = self._bytes.decode("utf-8", errors="ignore")  # an incomplete last character drops
        if any(stop in text for stop in self._stops):
            self._stopped = True
            return ""
        held = max(
            (n for stop in self._stops for n in range(1, len(stop)) if text.endswith(stop[:n])),
            default=0,
        )
        piece = text[self._given : len(text) - held]
        self._given += len(piece)
        return piece


def n_threads() -> int:
    """The cores this process may run on (llama-cpp-python's default, half of them, decodes slower)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


#: One load at a time in the process: to keep llama.cpp quiet, llama-cpp-python points stdout and
#: stderr (the file descriptors and ``sys.stdout``/``sys.stderr``) at /dev/null while it loads and
#: puts back what it found; two loads on two models' threads at once (``local-mix``) put back each
#: other's /dev/null, and the process printed nothing more.
_LOADING = threading.Lock()


def load_llama(path: Path, *, chat_format: str | None = None) -> Any:
    """Load a GGUF with llama-cpp-python on every available core (``chat_format`` for a GGUF that
    carries no chat template); loads in other threads wait their turn."""
    with _LOADING:
        try:
            return _serving_llama()(
                model_path=str(path),
                n_ctx=N_CTX,
                n_threads=n_threads(),
                n_threads_batch=n_threads(),
                chat_format=chat_format,
                verbose=False,
            )
        except ValueError as exc:
            raise ConfigError(f"{path}: llama.cpp cannot load it as a GGUF model ({exc})") from None
