"""The data an exported page carries for its script: every call of a big trace, the texts its
search box looks through, and which call proposed each state of a search tree.

Invariant: the data enters the page only as ``inert_json`` (``<``, ``>`` and ``&`` escaped, so it
cannot end its ``<script type="application/json">`` block), and all texts together stay within
``TEXT_BUDGET`` characters (the longest clipped first, saying so).
"""

from __future__ import annotations

import json
from typing import Any

from moa_lab import _analysis
from moa_lab._tot.tree import thought_tree
from moa_lab._trace import Call, Trace
from moa_lab.views._html import call_badges, call_rows, strongest_references
from moa_lab.views._search import call_texts
from moa_lab.views._steps import depth_word
from moa_lab.views._style import model_colors

__all__ = [
    "MESSAGE_CHARS",
    "REFERENCES_SHOWN",
    "TEXT_BUDGET",
    "call_data",
    "inert_json",
    "search_data",
    "tree_calls",
]

#: Beyond the panels budget: a call's panel lists this many of its references (those it carried
#: most from) with what it reused from each.
REFERENCES_SHOWN = 10
#: ... each message it sent up to this many characters (the references it quotes are calls of the
#: page already) ...
MESSAGE_CHARS = 2_000
#: ... and all the texts of the calls together up to this many characters, the longest clipped first.
TEXT_BUDGET = 6_000_000


def _room(lengths: list[int], budget: int) -> int | None:
    """The most characters each text may keep so that they add up to ``budget`` (None: all fit).

    Water-filling: texts shorter than their share keep everything and leave the rest to longer ones.
    """
    if sum(lengths) <= budget:
        return None
    left = budget
    for at, length in enumerate(sorted(lengths)):
        share = left // (len(lengths) - at)
        if length > share:
            return share
        left -= length
    return None


def _clip(
    text: str | None, room: int | None, why: str = "the page ran out of room for text"
) -> str | None:
    if text is None or room is None or len(text) <= room:
        return text
    return (
        f"{text[:room]}\n\n… (the first {room:,} of {len(text):,} characters: {why}; the whole "
        "text is in the trace file)"
    )


def _texts(call: Call) -> list[tuple[str, str]]:
    """A call's searchable texts with its messages clipped to ``MESSAGE_CHARS`` each."""
    return [
        (where, _clip(text, MESSAGE_CHARS, "a message shows no more here") or "")
        if where.startswith("message ")
        else (where, text)
        for where, text in call_texts(call)
    ]


def search_data(trace: Trace) -> list[list[Any]]:
    """What the page's search box looks through: ``[node, role, model, [[where, text], ...]]`` per
    call, in run order (``call_texts``), within ``TEXT_BUDGET``."""
    texts = {call.id: _texts(call) for call in trace.records()}
    room = _room([len(t) for listed in texts.values() for _, t in listed], TEXT_BUDGET)
    return [
        [call.id, call.role, call.model, [[where, _clip(t, room)] for where, t in texts[call.id]]]
        for call in trace.records()
    ]


def call_data(trace: Trace) -> list[list[Any]]:
    """Every call as plain data for the page's script: [node id, what its panel shows]; ``states``
    are the texts of a search the search box looks through beside the response and messages.

    Messages keep ``MESSAGE_CHARS`` each, and all texts together ``TEXT_BUDGET`` characters (the
    longest are clipped first, and say so).
    """
    colors = model_colors(trace)
    records = trace.records()
    start = min((c.started_at for c in records), default=0.0)
    word = depth_word(trace)
    reuse = _analysis.attribution(trace)
    reading = _analysis.references(trace)
    texts = {c.id: _texts(c) for c in records}
    room = _room([len(t) for listed in texts.values() for _, t in listed], TEXT_BUDGET)
    found = []
    for data in records:
        read = reading[data.id]
        references = [
            [position, source]
            + [round(getattr(reuse[source, data.id], name), 3) if (source, data.id) in reuse else 0.0
               for name in _analysis.REUSE_MEASURES]
            for position, source in strongest_references(data.id, read, reuse, REFERENCES_SHOWN)
        ]  # fmt: skip
        mine = texts[data.id]
        sent = [t for where, t in mine if where.startswith("message ")]
        found.append(
            [
                data.id,
                {
                    "role": data.role,
                    "model": data.model,
                    "color": colors.get(data.model, "#999"),
                    "badges": call_badges(data),
                    "rows": [[name, str(value)] for name, value in call_rows(data, start, word=word)],
                    "error": _clip(data.error, room),
                    "response": _clip(data.response, room),
                    "reasoning": _clip(data.reasoning, room),
                    "reasoning_tokens": data.usage.reasoning_tokens if data.usage else None,
                    "warnings": list(data.warnings),
                    "read": len(read),
                    "references": references,
                    "states": [[w, _clip(t, room)] for w, t in mine if w in ("state", "judged state")],
                    "messages": [
                        [str(m.get("role", "?")), _clip(t, room)]
                        for m, t in zip(data.messages or (), sent, strict=True)
                    ],
                },
            ]
        )
    return found


def tree_calls(trace: Trace) -> dict[str, str]:
    """For a search trace, the call that proposed each state of its tree (``thought_tree``)."""
    return {
        node: data["call"]
        for node, data in thought_tree(trace).nodes(data=True)
        if isinstance(data.get("call"), str)
    }


def inert_json(value: object) -> str:
    """JSON that cannot end its ``<script>`` block nor open a comment: ``<``, ``>``, ``&`` escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
