"""The Mixture-of-Agents strategy: layers of proposers, then one aggregator (Wang et al. 2024).

Layer 1 proposers see the user's messages; every later call sees them plus a system prompt made of a
template and the numbered answers of the layer before (Section 2.2, Aggregate-and-Synthesize). The
proposers of a layer run concurrently; a failed proposer is dropped (or fails the run) per
``on_proposer_error``. With ``aggregation="rank"`` the aggregator only picks a reference (the
LLM-ranker ablation, Section 3.3).

Invariant: the requests it sends are exactly the paper's reference implementation's
(togethercomputer/MoA), and a call reads only answers that were finished before it started.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING

from moa_lab._errors import RunError
from moa_lab._prompts import order_references
from moa_lab._trace import node_id

if TYPE_CHECKING:
    from moa_lab._engine import RunState

__all__ = ["layered_mixture"]


def _references_for(run: RunState, layer: int, index: int, previous: list[str]) -> list[str]:
    """The previous layer's answers this call sees, in the order it sees them."""
    config = run.config
    seen = [
        n
        for n in previous
        if config.include_own_previous or layer >= config.layers or run.trace.call(n).index != index
    ]
    return order_references(
        seen, shuffle=config.shuffle_references, seed=config.shuffle_seed, salt=node_id(layer, index)
    )


async def layered_mixture(run: RunState) -> str | None:
    """Run the proposer layers and the aggregator of ``run.config``; return the final answer.

    Raises ``RunError`` when every proposer of a layer fails, when one fails under
    ``on_proposer_error="fail"``, or when the aggregator fails.
    """
    config = run.config
    previous: list[str] = []
    for layer, agents in enumerate(config.proposers, start=1):
        calls = await asyncio.gather(
            *[
                run.call(
                    agent,
                    role="proposer",
                    layer=layer,
                    index=index,
                    references=_references_for(run, layer, index, previous),
                )
                for index, agent in enumerate(agents)
            ]
        )
        names = [c.id for c in calls]
        failed = [n for n in names if run.trace.call(n).error is not None]
        if failed and config.on_proposer_error == "fail":
            raise RunError(f"proposer {failed[0]} failed: {run.trace.call(failed[0]).error}")
        previous = [n for n in names if n not in failed]
        if not previous:
            raise RunError(
                f"every proposer of layer {layer} failed; first error: {run.trace.call(names[0]).error}"
            )
    last = config.layers
    aggregator = await run.call(
        config.aggregator,
        role="aggregator",
        layer=last,
        index=0,
        references=_references_for(run, last, 0, previous),
    )
    name = aggregator.id
    if aggregator.error is not None:
        raise RunError(f"the aggregator failed: {aggregator.error}")
    if config.aggregation != "rank":
        return aggregator.response
    picked = _picked_reference(aggregator.response or "", len(previous))
    if picked is None:
        return aggregator.response
    chosen = run.trace.references(name)[picked]
    run.trace.update_call(name, picked=chosen)
    return run.trace.call(chosen).response


def _picked_reference(text: str, count: int) -> int | None:
    """The 0-based reference a ranker named (the first number 1..count in its reply)."""
    for match in re.finditer(r"\d+", text):
        number = int(match.group())
        if 1 <= number <= count:
            return number - 1
    return None
