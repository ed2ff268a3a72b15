"""The embedded local model: a GGUF run by llama.cpp behind a loopback OpenAI-compatible server.

- ``_models``: the packaged models (PyPI part packages), assembled once and checked by SHA-256.
- ``_llama``: loading a GGUF with llama-cpp-python.
- ``_server``: serving a loaded model on 127.0.0.1, so local calls go through the ``openai`` client
  like remote ones (``resolve`` starts a server on first use).
- ``_preset``: the ``local`` preset.

Invariant: nothing here runs at import time; the core reaches this package only when an agent's
base_url is ``local`` or the ``local`` preset is asked for.
"""

from __future__ import annotations

from moa_lab.local._llama import N_CTX, load_llama, n_threads
from moa_lab.local._models import (
    DEFAULT_MODEL,
    GGUF_ENV,
    MODEL_DIR_ENV,
    PackagedModel,
    gguf_path,
    model_dir,
)
from moa_lab.local._preset import BRIEF_AGGREGATOR_TEMPLATE, local_preset
from moa_lab.local._server import LocalServer, resolve, sampling_options

__all__ = [
    "BRIEF_AGGREGATOR_TEMPLATE",
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "MODEL_DIR_ENV",
    "N_CTX",
    "LocalServer",
    "PackagedModel",
    "gguf_path",
    "load_llama",
    "local_preset",
    "model_dir",
    "n_threads",
    "resolve",
    "sampling_options",
]
