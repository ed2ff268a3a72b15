"""What the calls of a run add up to: ``Totals``, with "sent" kept apart from "would have cost".

Invariant: a sum is None (unknown) as soon as one thing it adds up is unknown; it is never a 0 that
hides a missing count or price.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from typing import Any

from moa_lab._trace.call import Call

__all__ = ["Totals", "sum_known"]


def sum_known(values: Iterable[float | None]) -> float | None:
    """The sum of numbers that are all known; None (unknown) as soon as one of them is None."""
    total = 0.0
    for value in values:
        if value is None:
            return None
        total += value
    return total


@dataclass(frozen=True)
class Totals:
    """What a run's calls add up to: calls, tokens and dollars, sent apart from not sent.

    "Sent" means this run sent the call over the network; a cache hit or an answer a replay reused
    was not sent. Token and dollar sums are None (unknown) when any call they add up did not say.
    """

    calls: int
    """Calls in the trace."""
    sent: int
    """Calls this run sent over the network."""
    cache_hits: int
    """Calls answered from the call cache (replay reuse not included)."""
    reused: int
    """Calls a replay took from its source trace."""
    errors: int
    """Calls that failed for good."""
    prompt_tokens: int | None
    """Prompt tokens of every call of the run, sent or not (what the answer took)."""
    completion_tokens: int | None
    """Completion tokens of every call of the run, sent or not."""
    sent_prompt_tokens: int | None
    """Prompt tokens of the calls this run sent."""
    sent_completion_tokens: int | None
    """Completion tokens of the calls this run sent."""
    cost: float | None
    """US dollars every answered call cost when it was made (what the answer would cost anew)."""
    spent: float | None
    """US dollars of the calls this run sent."""
    wall_time: float
    """Seconds from the first call's start to the last call's end."""
    latency: float
    """Seconds of latency summed over every call (a measure of work, not of wall time)."""

    @property
    def saved(self) -> float | None:
        """US dollars the cache and replay reuse saved (``cost - spent``)."""
        return None if self.cost is None or self.spent is None else self.cost - self.spent

    @property
    def tokens(self) -> int | None:
        """Prompt plus completion tokens of every call."""
        return _add(self.prompt_tokens, self.completion_tokens)

    @property
    def sent_tokens(self) -> int | None:
        """Prompt plus completion tokens of the calls sent."""
        return _add(self.sent_prompt_tokens, self.sent_completion_tokens)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, the derived sums included."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return data | {"saved": self.saved, "tokens": self.tokens, "sent_tokens": self.sent_tokens}

    @classmethod
    def of(cls, calls: Sequence[Call]) -> Totals:
        """The totals of some calls (a whole trace, a layer, one config's runs...)."""
        answered = [c for c in calls if c.error is None]
        sent = [c for c in calls if c.sent]

        def tokens(chosen: Iterable[Call], kind: str) -> int | None:
            total = sum_known(getattr(c, kind) for c in chosen if c.usage is not None or c.ok)
            return None if total is None else int(total)

        ended = [c.ended_at for c in calls if c.ended_at is not None]
        return cls(
            calls=len(calls),
            sent=len(sent),
            cache_hits=sum(1 for c in calls if c.cache_hit and not c.reused),
            reused=sum(1 for c in calls if c.reused),
            errors=sum(1 for c in calls if c.error is not None),
            prompt_tokens=tokens(calls, "prompt_tokens"),
            completion_tokens=tokens(calls, "completion_tokens"),
            sent_prompt_tokens=tokens(sent, "prompt_tokens"),
            sent_completion_tokens=tokens(sent, "completion_tokens"),
            cost=sum_known(c.cost for c in answered),
            spent=sum_known(c.cost for c in answered if c.sent),
            wall_time=(max(ended) - min(c.started_at for c in calls)) if ended else 0.0,
            latency=sum(c.latency or 0.0 for c in calls),
        )


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b
