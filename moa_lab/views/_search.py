"""Finding calls by their text: which texts a call has, and where a query occurs in them.

One definition of a call's searchable text (``call_texts``) serves the explorer, which matches here
in Python, and the HTML export, whose script matches the same texts in the page.

Invariant: a query is matched as literal text (never a pattern a user or a trace could craft), and
results are plain strings that callers escape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from moa_lab._trace import Call, Trace
from moa_lab.views._steps import call_states, evaluation

__all__ = ["SNIPPET", "Match", "call_texts", "search_calls"]

#: Characters of context a match shows before and after the text found.
SNIPPET = 60


def call_texts(call: Call) -> list[tuple[str, str]]:
    """The texts of a call, each with where it is: the response, reasoning and error, the states of
    a search (proposed, or judged by an evaluator), then every message sent."""
    texts = [
        (where, text)
        for where, text in (
            ("response", call.response),
            ("reasoning", call.reasoning),
            ("error", call.error),
        )
        if text
    ]
    texts += [("state", str(s["state"])) for s in call_states(call)]
    judged = evaluation(call)
    if judged:
        texts += [("judged state", state) for state in judged[1]]
    texts += [
        (f"message {number} ({message.get('role', '?')})", str(message.get("content", "")))
        for number, message in enumerate(call.messages or (), start=1)
    ]
    return texts


@dataclass(frozen=True)
class Match:
    """The first place a query occurs in one call: the call, which of its texts, and the text
    around the match (``before``, ``found``, ``after``; ``…`` where it was cut)."""

    node: str
    role: str
    model: str
    where: str
    before: str
    found: str
    after: str


def _flat(text: str) -> str:
    """The text on one line (newlines and runs of spaces shown as one space)."""
    return re.sub(r"\s+", " ", text)


def search_calls(trace: Trace, query: str, *, limit: int = 50) -> tuple[list[Match], int]:
    """The calls whose text contains ``query`` (case-insensitive, literal), in run order: up to
    ``limit`` matches (the first place in each call) and how many calls match in all."""
    needle = query.strip()
    if not needle:
        return [], 0
    pattern = re.compile(re.escape(needle), re.IGNORECASE)
    found: list[Match] = []
    total = 0
    for call in trace.records():
        for where, text in call_texts(call):
            hit = pattern.search(text)
            if hit is None:
                continue
            total += 1
            if len(found) < limit:
                start, end = hit.span()
                before = _flat(text[max(0, start - SNIPPET) : start])
                after = _flat(text[end : end + SNIPPET])
                found.append(
                    Match(
                        node=call.id,
                        role=call.role,
                        model=call.model,
                        where=where,
                        before=("…" if start > SNIPPET else "") + before,
                        found=text[start:end],
                        after=after + ("…" if end + SNIPPET < len(text) else ""),
                    )
                )
            break
    return found, total
