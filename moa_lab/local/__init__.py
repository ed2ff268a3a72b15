"""The embedded local models: GGUFs run by llama.cpp behind loopback OpenAI-compatible servers.

- ``_models``: the packaged models by name (PyPI part packages), assembled once and checked by SHA-256.
- ``_llama``: loading a GGUF with llama-cpp-python.
- ``_worker``: one long-lived thread per model that loads it and runs all its llama.cpp calls.
- ``_server``: serving a model on 127.0.0.1, so local calls go through the ``openai`` client like
  remote ones (``resolve`` starts a server on first use); each reply tells how it was served.
- ``_preset``: the ``local`` and ``local-mix`` presets.

Invariant: nothing here runs at import time; the core reaches this package only when an agent's
base_url is ``local`` (or ``local:<name or path>``) or the ``local`` preset is asked for.
"""

from __future__ import annotations

from moa_lab.local._llama import LLAMA_ENV, N_CTX, load_llama, n_threads
from moa_lab.local._models import (
    DEFAULT_MODEL,
    GGUF_ENV,
    MODEL_DIR_ENV,
    MODELS,
    PackagedModel,
    Part,
    gguf_path,
    model_dir,
    model_name,
    named_model,
)
from moa_lab.local._preset import (
    BRIEF_AGGREGATOR_TEMPLATE,
    MIX_PROPOSERS,
    local_mix_preset,
    local_preset,
)
from moa_lab.local._server import SERVED_AT_HEADER, LocalServer, resolve, sampling_options

__all__ = [
    "BRIEF_AGGREGATOR_TEMPLATE",
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "LLAMA_ENV",
    "MIX_PROPOSERS",
    "MODELS",
    "MODEL_DIR_ENV",
    "N_CTX",
    "SERVED_AT_HEADER",
    "LocalServer",
    "PackagedModel",
    "Part",
    "gguf_path",
    "load_llama",
    "local_mix_preset",
    "local_preset",
    "model_dir",
    "model_name",
    "n_threads",
    "named_model",
    "resolve",
    "sampling_options",
]
