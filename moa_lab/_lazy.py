"""Public names that load their module on first use, so importing a package stays cheap.

Invariant: one mechanism serves every package that re-exports lazily (``moa_lab``, ``moa_lab.views``):
``moa-lab --help`` imports neither ``openai`` nor ``plotly``, and a name resolves to exactly the object
its home module defines.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module ``__getattr__`` and ``__dir__`` for ``package`` whose names live in ``homes``.

    ``homes`` maps each public name to the module (relative to ``package``) that defines it; the
    value is cached in the package on first use. An unknown name raises ``AttributeError``.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(f"{package}.{home}"), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted(homes)

    return __getattr__, __dir__
