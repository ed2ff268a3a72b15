"""Options and output shared by the subcommands that make calls: cache, progress, the result line.

Invariant: what the options mean reaches the library as values (``CallOptions``), never through
environment variables, so the same run behaves the same from the CLI and from Python.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["CallOptions", "add_call_options", "call_options", "print_result", "text_argument"]


@dataclass(frozen=True)
class CallOptions:
    """The ``cache`` and ``progress`` arguments the library's run functions take."""

    cache: Any
    """True (the default folder), False (``--no-cache``) or the folder of ``--cache-dir``."""
    progress: bool
    """False with ``--quiet``: no progress display at all, the local model's included."""


def add_call_options(parser: argparse.ArgumentParser) -> None:
    """The options every command that makes calls shares: the cache and the progress display."""
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the call cache")
    parser.add_argument("--cache-dir", metavar="DIR", help="call cache directory")
    parser.add_argument("--quiet", action="store_true", help="no progress display")


def call_options(args: argparse.Namespace) -> CallOptions:
    """The values the shared options stand for."""
    return CallOptions(
        cache=False if args.no_cache else (args.cache_dir or True), progress=not args.quiet
    )


def print_result(trace: Any, as_json: bool, *, answer_printed: bool = False) -> int:
    """The answer on stdout (or ``{answer, trace}`` as JSON; nothing when it was already streamed
    out whole); warnings and the trace path on stderr.

    Returns the exit status: 1 when the trace could not be saved whole (the answer is printed
    anyway, then one error line says what was not saved), else 0.
    """
    from moa_lab._text import terminal_safe

    if as_json:
        print(json.dumps({"answer": trace.final, "trace": str(trace.path)}, ensure_ascii=False))
    elif not answer_printed:
        print(terminal_safe(trace.final or "") if sys.stdout.isatty() else trace.final)
    for warning in run_warnings(trace):
        print(f"moa-lab: warning: {terminal_safe(warning)}", file=sys.stderr)
    if trace.unsaved:
        print(f"moa-lab: error: {trace.unsaved}", file=sys.stderr)
        return 1
    print(f"trace: {trace.path}", file=sys.stderr)
    return 0


def run_warnings(trace: Any) -> list[str]:
    """What a user should know about an answer that printed fine: cut-off and dropped calls."""
    warnings = []
    aggregator = trace.aggregator()
    final = trace.call(aggregator) if aggregator else None
    if final is not None and final.truncated:
        cap = final.params.get("max_tokens", "its")
        warnings.append(
            f"the answer was cut off at the token cap ({cap} tokens, finish_reason "
            f"{final.finish_reason}); "
            "raise --max-tokens or the agent's max_tokens"
        )
    proposers = [c for c in trace.records() if c.role == "proposer"]
    cut = [c.id for c in proposers if c.truncated]
    if cut:
        warnings.append(
            f"{len(cut)} of {len(proposers)} proposer answers were cut off at their token cap "
            f"({', '.join(cut)}): the aggregator read unfinished answers"
        )
    dropped = [c for c in proposers if c.error]
    if dropped:
        warnings.append(
            f"{len(dropped)} proposer call(s) failed and were left out "
            f"({', '.join(c.id for c in dropped)}); first error: {dropped[0].error}"
        )
    for call in trace.records():
        warnings += [f"{call.id}: {w}" for w in call.warnings]
    return warnings


def text_argument(option: str, value: str) -> str:
    """An argument that becomes text sent or recorded (a prompt, a model name), refused with one
    line when the shell passed bytes that are not UTF-8 (Python holds them as lone surrogates,
    which no trace, cache or terminal can store)."""
    from moa_lab._errors import ConfigError

    bad = next((i for i, ch in enumerate(value) if "\ud800" <= ch <= "\udfff"), None)
    if bad is not None:
        raise ConfigError(
            f"{option}: the text is not valid UTF-8 at character {bad + 1}; pass it as UTF-8 "
            "(check the terminal's encoding)"
        )
    return value
