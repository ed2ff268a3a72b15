"""Where each call sits in the layer graph: depth across, one row per agent, evaluators beside.

Invariant: a pure function of the trace. x is a call's depth (its layer, round or step). Every call
that is not an evaluator sits on the row of its index (the aggregator centred on the rows); the
evaluators of a search sit small in a block just right of the calls whose states they judge,
within those calls' rows, so a step with a thousand evaluations is as tall as one with three.
"""

from __future__ import annotations

import math
from collections import defaultdict

from moa_lab._trace import Call, Trace
from moa_lab.views._layout import out_tokens

__all__ = [
    "SATELLITE_ROLES",
    "SATELLITE_SIZE",
    "largest_written",
    "marker_sizes",
    "node_positions",
    "satellite",
]

#: Roles drawn small beside the calls they judge instead of on rows of their own.
SATELLITE_ROLES = frozenset({"evaluator"})
#: Marker size of an evaluator (its tokens are few and its count is large).
SATELLITE_SIZE = 6
#: An evaluator block starts this far right of its column and is at most this wide (in depths).
_BLOCK_START, _BLOCK_WIDTH = 0.24, 0.4
#: Evaluators per column of a block: a row's height holds this many dots.
_PER_COLUMN = 9


def satellite(call: Call) -> bool:
    """True for a call drawn small beside the calls it judges (a search's evaluator)."""
    return call.role in SATELLITE_ROLES


def node_positions(trace: Trace) -> dict[str, tuple[float, float]]:
    """Where each call sits in the layer graph: x is its depth, y its row (the aggregator centred).

    A search's evaluators sit in a compact block right of the calls whose states they judge (the
    middle of their rows), filling columns of ``_PER_COLUMN`` within that row's height.
    """
    records = trace.records()
    main = [c for c in records if not satellite(c)]
    rows = max((c.index + 1 for c in main if c.role != "aggregator"), default=1)
    positions = {
        c.id: (float(c.layer), (rows - 1) / 2 if c.role == "aggregator" else float(c.index))
        for c in main
    }
    blocks: defaultdict[tuple[int, float], list[str]] = defaultdict(list)
    for call in records:
        if satellite(call):
            anchors = [positions[s][1] for s in trace.graph.predecessors(call.id) if s in positions]
            centre = sum(anchors) / len(anchors) if anchors else (rows - 1) / 2
            blocks[call.layer, centre].append(call.id)
    for (layer, centre), members in blocks.items():
        columns = math.ceil(len(members) / _PER_COLUMN)
        step = min(0.06, _BLOCK_WIDTH / columns)
        height = min(len(members), _PER_COLUMN)
        for at, node in enumerate(members):
            column, row = divmod(at, _PER_COLUMN)
            offset = 0.0 if height == 1 else 0.7 * (row / (height - 1) - 0.5)
            positions[node] = (layer + _BLOCK_START + column * step, centre + offset)
    return positions


def marker_sizes(trace: Trace, positions: dict[str, tuple[float, float]]) -> dict[str, float]:
    """Marker sizes: area grows with tokens written (among the calls on rows; evaluators are small),
    and markers shrink when columns or rows get crowded."""
    main = [n for n in positions if not satellite(trace[n])]
    largest = max((out_tokens(trace[n]) for n in main), default=0) or 1
    extent = max((max(positions[n][0], positions[n][1] + 1) for n in main), default=1)
    scale = min(1.0, max(0.35, 8 / extent))
    sizes = {n: scale * (12 + 26 * math.sqrt(out_tokens(trace[n]) / largest)) for n in main}
    return sizes | {n: SATELLITE_SIZE for n in positions if n not in sizes}


def largest_written(trace: Trace) -> int:
    """The most tokens one call (not an evaluator) wrote: what the biggest marker stands for."""
    return max((out_tokens(c) for c in trace.records() if not satellite(c)), default=0)
