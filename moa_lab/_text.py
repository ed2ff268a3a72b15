"""Small text helpers shared by the CLI, the views and the core.

Invariant: pure functions of strings, no I/O.
"""

from __future__ import annotations

__all__ = ["clip"]


def clip(text: object, width: int) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, an ellipsis when cut)."""
    flat = " ".join(str(text if text is not None else "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"
