"""The mutation score of the core, per module, from ``mutmut results --all true`` on stdin.

Usage: ``.venv/bin/mutmut results --all true | .venv/bin/python tests/core_mutation_score.py``,
with the name of a file of mutant names (one a line, as core_mutation_sample.py writes) to count
only those. Mutants listed in core_mutation_equivalents.txt (each with why it cannot be told apart)
are left out of the denominator; a timeout counts as killed; "not checked" mutants are reported apart.
"""

from __future__ import annotations

import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

EQUIVALENTS = Path(__file__).with_name("core_mutation_equivalents.txt")


def module(name: str) -> str:
    path = re.match(r"(moa_lab\.[\w.]+?)\.x", name).group(1)
    for package in ("_trace", "_replay"):
        if path.startswith(f"moa_lab.{package}"):
            return f"moa_lab/{package}/"
    return path.replace(".", "/") + ".py"


def main() -> None:
    equivalent = {line.split("#")[0].strip() for line in EQUIVALENTS.read_text().splitlines()}
    only = set(Path(sys.argv[1]).read_text().split()) if len(sys.argv) > 1 else None
    counts: defaultdict[str, Counter] = defaultdict(Counter)
    for line in sys.stdin:
        name, _, status = line.strip().rpartition(": ")
        if name.startswith("moa_lab") and (only is None or name in only):
            counts[module(name)]["equivalent" if name in equivalent else status] += 1
    total: Counter = Counter()
    for found in counts.values():
        total.update(found)
    print(f"{'module':22}{'mutants':>8}{'killed':>8}{'timeout':>8}{'survived':>9}{'equivalent':>11}"
          f"{'unchecked':>10}{'score':>8}")  # fmt: skip
    for name, found in [*sorted(counts.items()), ("all", total)]:
        killed = found["killed"] + found["timeout"]
        judged = killed + found["survived"] + found["no tests"] + found["suspicious"]
        score = f"{100 * killed / judged:.1f}%" if judged else "-"
        print(f"{name:22}{sum(found.values()):8}{found['killed']:8}{found['timeout']:8}"
              f"{found['survived'] + found['no tests']:9}{found['equivalent']:11}"
              f"{found['not checked']:10}{score:>8}")  # fmt: skip


if __name__ == "__main__":
    main()
