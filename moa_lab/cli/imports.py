"""``moa-lab import tot LOG.json --out DIR``: the Tree-of-Thoughts paper's searches as traces."""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_command"]


def add_command(subparsers: Any) -> None:
    """Add ``import tot LOG --out DIR``."""
    command = subparsers.add_parser(
        "import",
        help="turn another tool's run logs into traces (the ToT paper's Game of 24 searches)",
        description="Turn another tool's run logs into moa_lab traces, one per run.",
    )
    kinds = command.add_subparsers(dest="kind", required=True, metavar="KIND")
    tot = kinds.add_parser(
        "tot",
        help="a Tree-of-Thoughts run.py log (princeton-nlp/tree-of-thought-llm, Game of 24)",
        description=(
            "One trace per puzzle of a ToT propose/value log: every proposed state with its value, "
            "kept or pruned, and the final outputs; prints how many searches end correct by "
            "moa_lab's checker. Open a trace with moa-lab view or moa_lab.views.explore."
        ),
    )
    tot.add_argument(
        "log", metavar="LOG", help="e.g. gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"
    )
    tot.add_argument("--out", required=True, metavar="DIR", help="a new folder for the trace files")
    tot.set_defaults(handler=_import_tot)


def _import_tot(args: argparse.Namespace) -> int:
    from moa_lab.experiments.game24._import import import_tot_log

    done = import_tot_log(args.log, args.out)
    print(f"wrote {len(done.paths)} traces to {args.out}", file=sys.stderr)
    n = done.searches
    print(
        f"{done.any_correct} of {n} searches end with a correct output by moa_lab's checker "
        f"(the log's own judgements: {done.log_any_correct}); the best-valued output is correct "
        f"in {done.best_correct}; {done.disagreements} outputs judged differently from the log"
    )
    return 0
