"""A seeded random sample of the core's mutants, per module, for a mutation run shorter than a full one.

Usage (after ``mutmut run`` generated the mutants, or a run was stopped early)::

    mutmut results --all true | python tests/core_mutation_sample.py 0.1 9 > sample.txt
    mutmut run --max-children 2 $(cat sample.txt)
    mutmut results --all true | python tests/core_mutation_score.py sample.txt

Takes ``fraction`` of each module's mutants (at least ``floor``, or all a module has), chosen with
``random.Random(seed)``, so the same code, fraction and seed give the same sample.
"""

from __future__ import annotations

import random
import sys
from collections import defaultdict

from core_mutation_score import module


def sample(names: list[str], fraction: float, seed: int, floor: int = 20) -> list[str]:
    """``fraction`` of each module's mutant names (at least ``floor``), seeded, in a stable order."""
    by_module: defaultdict[str, list[str]] = defaultdict(list)
    for name in sorted(names):
        by_module[module(name)].append(name)
    chosen = []
    pick = random.Random(seed)
    for found in (by_module[key] for key in sorted(by_module)):
        size = min(len(found), max(floor, round(fraction * len(found))))
        chosen += sorted(pick.sample(found, size))
    return chosen


def main() -> None:
    fraction, seed = float(sys.argv[1]), int(sys.argv[2])
    names = [line.strip().rpartition(": ")[0] for line in sys.stdin]
    print("\n".join(sample([name for name in names if name.startswith("moa_lab")], fraction, seed)))


if __name__ == "__main__":
    main()
