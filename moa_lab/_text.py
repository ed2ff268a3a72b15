"""Small text helpers shared by the CLI, the views and the core.

Invariant: pure functions of strings, no I/O; a name made for a file is valid on Linux, macOS and
Windows alike, never empty, and names made for distinct texts stay distinct where file systems
ignore case (macOS and Windows by default).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["clip", "safe_file_name", "terminal_safe"]

#: Names Windows reserves whatever the extension (``CON.json`` cannot be created there).
_RESERVED = {
    "con",
    "prn",
    "aux",
    "nul",
    *(f"com{i}" for i in range(1, 10)),
    *(f"lpt{i}" for i in range(1, 10)),
}


def clip(text: object, width: int) -> str:
    """One line of at most ``width`` characters (whitespace collapsed, an ellipsis when cut)."""
    flat = " ".join(str(text if text is not None else "").split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def safe_file_name(text: str, *, limit: int = 80) -> str:
    """A file name for ``text`` valid on every OS; distinct texts give names that differ even to a
    file system that ignores case, and no text gives an empty name.

    Characters outside ``A-Za-z0-9._-`` become ``-`` (``llama3:8b-q4`` -> ``llama3-8b-q4-<hash>``);
    whenever the name had to change, or holds an upper-case letter (``GPT-4o`` and ``gpt-4o`` would
    be one file on macOS), 8 hex digits of the text's SHA-256 keep it apart from others; ``""``
    becomes ``item-<hash>``.
    """
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-. ")[:limit].rstrip("-. ")
    plain = slug == text and slug == slug.lower()
    if slug and plain and slug.split(".")[0] not in _RESERVED:
        return slug
    return f"{slug or 'item'}-{hashlib.sha256(text.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"


#: C0 controls but tab and newline, DEL, and the C1 controls (which some terminals also obey).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """Text with every control character a terminal could obey (escape sequences that clear the
    screen or write the clipboard) shown as a visible escape such as ``\\x1b``; tab and newline stay."""
    return _CONTROL.sub(lambda match: f"\\x{ord(match.group()):02x}", text)
