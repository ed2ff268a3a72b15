"""Game of 24: puzzles, solver, the official judge's verdicts, and the Tree-of-Thoughts log readers.

The paper's files are read from ../shared/data/tot-game24 beside the repository (or from the folder
named by MOA_LAB_TOT_GAME24_DATA, for a checkout that has no shared/ beside it); tests that need
them skip when they are absent. Every expected verdict in EDGE_CASES is the official judge's
(run with sympy 1.12, as the ToT repository pins) except the three marked "sympy says 24", where
check() departs from it on purpose.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from moa_lab.experiments.game24 import (
    LogError,
    SampleRun,
    ToTSearch,
    check,
    puzzles,
    read_ranked_puzzles,
    read_sample_log,
    read_tot_log,
    solve,
)

DATA = Path(
    os.environ.get("MOA_LAB_TOT_GAME24_DATA")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tot-game24"
)
IO_LOG = "gpt-4_0.7_naive_standard_sample_100_start900_end1000.json"
COT_LOG = "gpt-4_0.7_naive_cot_sample_100_start900_end1000.json"
TOT_LOG = "gpt-4_0.7_propose1_value3_greedy5_start900_end1000.json"


@pytest.fixture(scope="module")
def data() -> Path:
    if not (DATA / "24.csv").is_file():
        pytest.skip(f"the ToT paper's Game of 24 files are not at {DATA} (see its README.md)")
    return DATA


@pytest.fixture(scope="module")
def ranked(data: Path) -> list[str]:
    return read_ranked_puzzles(data / "24.csv")


# --- puzzles and solve --------------------------------------------------------------------------


def test_puzzles_are_exactly_the_papers_1362_in_ascending_order(data: Path) -> None:
    with (data / "24.csv").open(newline="") as file:
        table = [tuple(sorted(map(int, row["Puzzles"].split()))) for row in csv.DictReader(file)]
    made = [tuple(map(int, puzzle.split())) for puzzle in puzzles()]
    assert len(made) == len(table) == 1362
    assert sorted(made) == sorted(table)
    assert made == sorted(made)
    assert all(
        " ".join(map(str, numbers)) == text for numbers, text in zip(made, puzzles(), strict=True)
    )


def test_puzzles_are_made_fast_enough() -> None:
    # A fresh interpreter, so that the memo is cold; the import is not timed.
    script = (
        "import time; from moa_lab.experiments.game24 import puzzles; "
        "started = time.perf_counter(); puzzles(); print(time.perf_counter() - started)"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert float(run.stdout) < 2


def test_solve_gives_an_answer_the_judge_accepts_for_every_puzzle() -> None:
    for puzzle in puzzles():
        expression = solve(puzzle)
        assert expression is not None, puzzle
        assert check(puzzle, f"Answer: {expression} = 24"), (puzzle, expression)


def test_solve_says_none_for_unsolvable_numbers_and_rejects_non_puzzles() -> None:
    assert solve("1 1 1 1") is None
    assert solve(" 10 6 4 5 ") is not None  # any order, surrounding blanks
    for bad in ("1 2 3", "1 2 3 4 5", "a b c d", "1.5 2 3 4", ""):
        with pytest.raises(ValueError):
            solve(bad)


# --- check against the logs --------------------------------------------------------------------


def _agreement(
    ranked: list[str], runs: list[SampleRun] | list[ToTSearch]
) -> tuple[int, int, list[float]]:
    """(outputs where check agrees with the log, outputs, per-run mean of check's verdicts)."""
    agree = total = 0
    means = []
    for run in runs:
        puzzle = ranked[run.index]
        verdicts = [check(puzzle, output) for output in run.outputs]
        agree += sum(v == j for v, j in zip(verdicts, run.judged_correct, strict=True))
        total += len(verdicts)
        means.append(sum(verdicts) / len(verdicts))
    return agree, total, means


@pytest.mark.parametrize(("log", "paper_mean"), [(IO_LOG, 0.073), (COT_LOG, 0.040)])
def test_check_agrees_with_every_sample_log_verdict(
    data: Path, ranked: list[str], log: str, paper_mean: float
) -> None:
    runs = read_sample_log(data / log)
    agree, total, means = _agreement(ranked, runs)
    assert (agree, total) == (10_000, 10_000)
    assert round(sum(means) / len(means), 3) == paper_mean


def test_check_agrees_with_every_tot_verdict_and_the_papers_success_rate(
    data: Path, ranked: list[str]
) -> None:
    searches = read_tot_log(data / TOT_LOG)
    agree, total, means = _agreement(ranked, searches)
    assert (agree, total) == (500, 500)
    assert sum(mean > 0 for mean in means) / len(means) == 0.69
    assert all(search.puzzle == ranked[search.index] for search in searches)


# --- check: edge cases -------------------------------------------------------------------------

P = "4 5 6 10"
#: (puzzle, output, the official judge's verdict, what it shows)
EDGE_CASES = [
    (P, "Answer: 4 * 5 + 10 - 6 = 24", True, "the usual form"),
    (P, "(5 * 4) - (6 - 10)", True, "no 'Answer:' and no '='"),
    (P, "Steps:\n4 * 5 = 20 (left: 6 10 20)\nAnswer: (4 * 5) + (10 - 6) = 24\n", True, "last line"),
    (P, "Answer: (4 * 5) + (10 - 6) = 24\nThat is all.", False, "only the last line counts"),
    (P, "ANSWER: 4*5+10-6", True, "lower-cased before 'answer: ' is removed"),
    (P, "Answer:4*5+10-6", False, "'answer:' without the space stays and cannot be read"),
    (P, "answer: answer: 4*5+10-6", True, "every 'answer: ' is removed"),
    (P, "4 * 5 + 10 - 6 = 24 = 4 * 5 + 4", True, "everything from the first '=' is cut"),
    (P, "Answer: 10 * 6 - 4 * 5 - 5 = 24", False, "an extra number"),
    (P, "Answer: (10 - 4) * 4 = 24", False, "a missing number"),
    (P, "Answer: 4 * 6 * (10 - 5) / 5 = 24", False, "wrong numbers"),
    ("4 4 6 6", "Answer: (4 + 4) / (6 - 6) = 24", False, "division by zero"),
    ("1 1 4 6", "4 * 6 + 1 / (1 - 1)", False, "division by zero beside a 24"),
    ("1 1 5 24", "24 + (1 - 1) / 5", True, "zero divided is fine"),
    (P, "Answer: -(-4 * 5) - (6 - 10) = 24", True, "signs"),
    (P, "Answer: --4 * 5 + 10 - 6 = 24", True, "a run of signs"),
    (P, "(4 * 5) + (10 - 6) # checked", True, "a Python comment is ignored"),
    (P, "Answer: '(4 * 5) + (10 - 6)' = 24", True, "sympy reads a quoted expression's content"),
    (P, "Answer: '(4 * 5) + (10 - 6) = 24", False, "an unterminated quote"),
    (P, "'(4 * 5) + (10 - 6)' # a comment", True, "a quoted expression, then a comment"),
    (P, "'(4 * 5) + (10 - 6)' 4", False, "a quoted expression, then more"),
    (P, "Answer: \xa0(4 * 5) + (10 - 6) = 24", True, "outer Unicode blanks are stripped"),
    (P, "Answer: (4 * 5)\xa0+ (10 - 6) = 24", False, "a no-break space inside is not a blank"),
    (P, "Answer: (4 * 5 \r) + (10 - 6) = 24", True, "a line break inside brackets"),
    (P, "Answer: 4 * 5 \r+ (10 - 6) = 24", False, "a line break outside brackets"),
    (P, "Answer: (4 × 5) + (10 − 6) = 24", False, "Unicode times and minus signs"),
    (P, "Answer: 4 * 5 + 10 − 6 = 24", False, "Unicode minus"),
    ("3 3 8 8", "8 / (3 - 8 / 3)", True, "exact fractions"),
    ("3 3 8 8", "8 ÷ (3 - 8 ÷ 3)", False, "Unicode division sign"),
    (P, "Answer: ４ * ５ + １０ - ６ = 24", False, "full-width digits"),
    ("0 5 48", "0.5 * 48", True, "a decimal equal to 24 counts (sympy 1.12)"),
    ("24 0", "24.0", True, "a Float 24.0 equals 24 in sympy 1.12"),
    ("2 4 0 1", "2.4 / 0.1", False, "binary Floats: 23.999999999999996"),
    ("12 5 0 1", "(12 / 5) / 0.1", True, "Rational / Float rounds twice in sympy, and hits 24"),
    ("0 1 0 2 80", "(0.1 + 0.2) * 80", False, "binary Floats: 24.000000000000004"),
    ("24 00", "24.00", True, "trailing zeros"),
    (
        "9007199254740993 1 0 9007199254740968",
        "9007199254740993 * 1.0 - 9007199254740968",
        True,
        "2**53 + 1 as a Float rounds to the even 2**53",
    ),
    ("08 3", "08 * 3", False, "CPython reads '08' as two numbers"),
    ("2 3 3 1", "2 ** 3 * 3 * 1", False, "a power: sympy says 24, the game does not allow it"),
    ("48 2", "48 // 2", False, "floor division: sympy says 24, the game does not allow it"),
    ("1 3 1 1", "(1 + 3)! * 1 * 1", False, "a factorial: sympy says 24, the game does not allow it"),
    (P, "Answer: None", False, "no expression"),
    (P, "", False, "empty output"),
    (P, "   \n  \n", False, "blank output"),
    (P, "Answer: ", False, "nothing after 'Answer: '"),
    (P, "(((4 * 5) + (10 - 6))", False, "unbalanced brackets"),
    (P, "(4 * 5) + (10 - 6))", False, "unbalanced brackets"),
    (P, "4 * 5 + + (10 - 6) *", False, "a trailing operator"),
    (P, "4 5 + 10 6", False, "numbers without operators"),
    (P, "()4 * 5 + 10 - 6", False, "empty brackets"),
    (P, "4 * 5 + 10 - 6.", True, "'6.' is the Float 6.0, and a Float 24.0 counts"),
    ("24", "(" * 199 + "24" + ")" * 199, True, "199 brackets: as deep as CPython's tokenizer goes"),
    ("24", "(" * 200 + "24" + ")" * 200, False, "200 brackets: too deep for CPython"),
    ("24", "-" * 2976 + "24", True, "2,976 signs compile"),
    ("24", "-" * 2978 + "24", False, "2,978 signs are too deep for CPython's compiler"),
]


@pytest.mark.parametrize(
    ("puzzle", "output", "verdict", "why"), EDGE_CASES, ids=[c[3] for c in EDGE_CASES]
)
def test_check_edge_cases(puzzle: str, output: str, verdict: bool, why: str) -> None:
    assert check(puzzle, output) is verdict, why


def test_check_is_linear_on_huge_outputs() -> None:
    n = 100_000
    huge = [
        (P, "Answer: " + " " * n + "(4 * 5) + (10 - 6) = 24", True),
        (P, "Answer: (4 * 5) + (10 - 6) # " + "x" * n, True),
        (P, "x" * n + "\nAnswer: (4 * 5) + (10 - 6) = 24", True),
        (P, "(4 * 5) + (10 - 6) = " * n, True),
        (P, "\r" * n + "4 * 5 + 10 - 6", True),
        (P, "(" + "\r" * n + "4 * 5 + 10 - 6)", True),
        (P, "(" * n + "(4 * 5) + (10 - 6)" + ")" * n, False),
        (P, "-" * (2 * n) + "(4 * 5) + (10 - 6)", False),
        (P, "+ " * n + "4 * 5 + 10 - 6", False),
        (P, "((((((((((" * 10_000, False),
        (P, "4" * n, False),
        ("9" * n, "9" * n, False),  # past CPython's int-string limit, where sympy fails too
        ("1 " * 5_000, " + ".join(["1"] * 5_000), False),
        ("1 " * 5_000, " * ".join(["1"] * 5_000) + " * 24", False),
    ]
    for puzzle, output, verdict in huge:
        started = time.perf_counter()
        assert check(puzzle, output) is verdict, output[:40]
        assert time.perf_counter() - started < 0.5, output[:40]


def test_check_never_raises() -> None:
    rng = random.Random(24)
    alphabet = [*"0123456789()+-*/.=# \t\r\n\x0c'\"\\^!%_exX×÷−\xa0\u2028\ud800", "Answer: ", "**", "//"]
    for _ in range(20_000):
        output = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        # Half the time the puzzle is the output's own numbers, so the text gets evaluated.
        puzzle = " ".join(re.findall(r"\d+", output)) if rng.random() < 0.5 else P
        assert check(puzzle, output) in (True, False)
    for output in ("\x00", "\ud800", "Answer: \U0001f600", "'''", "'", "#", "\r", "(" * 10_000):
        assert check(P, output) is False


# --- the log readers ---------------------------------------------------------------------------


def test_read_tot_log_reads_the_papers_run_losslessly(data: Path) -> None:
    raw = json.loads((data / TOT_LOG).read_text())
    searches = read_tot_log(data / TOT_LOG)
    assert len(searches) == 100
    assert [search.index for search in searches] == list(range(900, 1000))
    first = searches[0]
    assert first.puzzle == "4 5 6 10"
    assert [step.step for step in first.steps] == [0, 1, 2, 3]
    assert first.steps[0].kept_before == ("",)
    assert first.steps[1].proposals[0] == ("4 + 5 = 9 (left: 6 9 10)\n6 + 9 = 15 (left: 10 15)\n", 2.001)
    assert first.judged_correct == (True, True, False, False, False)
    assert first.usage.prompt_tokens == 28451
    assert [search.to_dict() for search in searches] == raw


def test_read_sample_log_reads_io_and_cot_logs(data: Path) -> None:
    io_runs, cot_runs = read_sample_log(data / IO_LOG), read_sample_log(data / COT_LOG)
    for runs in (io_runs, cot_runs):
        assert [run.index for run in runs] == list(range(900, 1000))
        assert all(len(run.outputs) == len(run.judged_correct) == 100 for run in runs)
    # The IO log keeps its verdicts as booleans in "accs", the CoT log as {"r": 0|1} in "infos".
    assert sum(sum(run.judged_correct) for run in io_runs) == 734
    assert sum(sum(run.judged_correct) for run in cot_runs) == 403
    assert [run.to_dict() for run in cot_runs] == json.loads((data / COT_LOG).read_text())


def _tot_entry() -> dict:
    step = {
        "step": 0,
        "x": "4 5 6 10",
        "ys": [""],
        "new_ys": ["a\n", "b\n"],
        "values": [3.0, 0],
        "select_new_ys": ["a\n"],
    }
    usage = {"completion_tokens": 1, "prompt_tokens": 2, "cost": 0.5}
    return {"steps": [step], "idx": 900, "ys": ["a\n"], "infos": [{"r": 0}], "usage_so_far": usage}


def _second_entry_broken(change: Callable[[dict], object]) -> str:
    entry = _tot_entry()
    change(entry)
    return json.dumps([_tot_entry(), entry])


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("{not json", "not a JSON log"),
        (json.dumps({"idx": 1}), "a JSON list of entries"),
        (json.dumps([_tot_entry(), 7]), "entry 1: expected a JSON object"),
        (_second_entry_broken(lambda e: e.pop("steps")), "entry 1: missing 'steps'"),
        (_second_entry_broken(lambda e: e.update(steps=[])), "entry 1: 'steps' is empty"),
        (_second_entry_broken(lambda e: e.update(idx="900")), "entry 1: 'idx' must be int"),
        (_second_entry_broken(lambda e: e.update(infos=[{"r": 2}])), "entry 1: 'infos' must hold"),
        (_second_entry_broken(lambda e: e.update(infos=[])), "entry 1: 'infos' must hold"),
        (
            _second_entry_broken(lambda e: e["steps"][0].update(values=[1.0])),
            "entry 1: step 0: 'values'",
        ),
        (_second_entry_broken(lambda e: e["steps"][0].update(values=[1.0, True])), "step 0: 'values'"),
        (_second_entry_broken(lambda e: e["steps"][0].pop("x")), "entry 1: step 0: missing 'x'"),
        (_second_entry_broken(lambda e: e["steps"][0].update(ys=[3])), "step 0: 'ys' must be a list"),
        (
            _second_entry_broken(lambda e: e["usage_so_far"].pop("cost")),
            "'usage_so_far': missing 'cost'",
        ),
    ],
)
def test_malformed_tot_logs_raise_one_line_log_errors(tmp_path: Path, content: str, says: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(LogError) as raised:
        read_tot_log(path)
    message = str(raised.value)
    assert str(path) in message and says in message and "\n" not in message
    assert isinstance(raised.value, ValueError)


def test_a_small_log_reads_and_a_sample_log_error_names_its_entry(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps([_tot_entry()]))
    (search,) = read_tot_log(good)
    assert search.steps[0].proposals == (("a\n", 3.0), ("b\n", 0.0))
    assert search.to_dict() == _tot_entry()
    bad = tmp_path / "io.json"
    bad.write_text(json.dumps([{"idx": 0, "ys": ["x"], "accs": [True], "usage_so_far": {}}]))
    with pytest.raises(LogError, match=r"io\.json: entry 0: 'usage_so_far': missing"):
        read_sample_log(bad)


def test_read_ranked_puzzles(data: Path, tmp_path: Path) -> None:
    ranked = read_ranked_puzzles(data / "24.csv")
    assert len(ranked) == 1362 and ranked[0] == "1 1 4 6" and ranked[900] == "4 5 6 10"
    bad = tmp_path / "24.csv"
    bad.write_text("Rank,Puzzles\n1,1 1 4\n")
    with pytest.raises(LogError, match="line 2"):
        read_ranked_puzzles(bad)
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    with pytest.raises(LogError, match="no 'Puzzles' column"):
        read_ranked_puzzles(tmp_path / "other.csv")
