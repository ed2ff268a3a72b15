"""The Game of 24 task of Tree of Thoughts, with the paper's own prompts and value map.

Prompts, the value map ``{impossible: 0.001, likely: 1, sure: 20}`` and the wrapping rules are those
of the paper's code release (Yao et al. 2023, arXiv 2305.10601; princeton-nlp/tree-of-thought-llm,
``src/tot/prompts/game24.py`` and ``src/tot/tasks/game24.py``), because reproducing its results
depends on them. That code is under the MIT licence: Copyright (c) 2023 Shunyu Yao; permission is
granted to copy it provided this notice is kept (the licence text is in the repository's LICENSE).

Invariant: a state ``y`` is the trajectory so far, one line per step ("4 + 5 = 9 (left: 6 9 10)"),
as in the paper's code, so the imported GPT-4 logs and our own searches read the same way.
"""

from __future__ import annotations

from moa_lab._tot.generic import VOTE_PROMPT, vote_prompt, votes_of

__all__ = [
    "COT_PROMPT",
    "PROPOSE_PROMPT",
    "STANDARD_PROMPT",
    "VALUE_LAST_STEP_PROMPT",
    "VALUE_MAP",
    "VALUE_PROMPT",
    "Game24",
]

#: 5-shot input-output prompt.
STANDARD_PROMPT = """Use numbers and basic arithmetic operations (+ - * /) to obtain 24.
Input: 4 4 6 8
Answer: (4 + 8) * (6 - 4) = 24
Input: 2 9 10 12
Answer: 2 * 12 * (10 - 9) = 24
Input: 4 9 10 13
Answer: (13 - 9) * (10 - 4) = 24
Input: 1 4 8 8
Answer: (8 / 4 + 1) * 8 = 24
Input: 5 5 5 9
Answer: 5 + 5 + 5 + 9 = 24
Input: {input}
"""

#: 5-shot chain-of-thought prompt (also the last step of a search: "Steps:" and the path so far).
COT_PROMPT = (
    (
        "Use numbers and basic arithmetic operations (+ - * /) to obtain 24. Each step, you are only "
        "allowed to choose two of the remaining numbers to obtain a new number.\n"
    )
    + """Input: 4 4 6 8
Steps:
4 + 8 = 12 (left: 4 6 12)
6 - 4 = 2 (left: 2 12)
2 * 12 = 24 (left: 24)
Answer: (6 - 4) * (4 + 8) = 24
Input: 2 9 10 12
Steps:
12 * 2 = 24 (left: 9 10 24)
10 - 9 = 1 (left: 1 24)
24 * 1 = 24 (left: 24)
Answer: (12 * 2) * (10 - 9) = 24
Input: 4 9 10 13
Steps:
13 - 10 = 3 (left: 3 4 9)
9 - 3 = 6 (left: 4 6)
4 * 6 = 24 (left: 24)
Answer: 4 * (9 - (13 - 10)) = 24
Input: 1 4 8 8
Steps:
8 / 4 = 2 (left: 1 2 8)
1 + 2 = 3 (left: 3 8)
3 * 8 = 24 (left: 24)
Answer: (1 + 8 / 4) * 8 = 24
Input: 5 5 5 9
Steps:
5 + 5 = 10 (left: 5 9 10)
10 + 5 = 15 (left: 9 15)
15 + 9 = 24 (left: 24)
Answer: ((5 + 5) + 5) + 9 = 24
Input: {input}
"""
)

#: 1-shot proposal prompt: the possible next steps from the numbers left.
PROPOSE_PROMPT = """Input: 2 8 8 14
Possible next steps:
2 + 8 = 10 (left: 8 10 14)
8 / 2 = 4 (left: 4 8 14)
14 + 2 = 16 (left: 8 8 16)
2 * 8 = 16 (left: 8 14 16)
8 - 2 = 6 (left: 6 8 14)
14 - 8 = 6 (left: 2 6 8)
14 /  2 = 7 (left: 7 8 8)
14 - 2 = 12 (left: 8 8 12)
Input: {input}
Possible next steps:
"""

#: Value prompt: can the numbers left still reach 24 (sure/likely/impossible)?
VALUE_PROMPT = """Evaluate if given numbers can reach 24 (sure/likely/impossible)
10 14
10 + 14 = 24
sure
11 12
11 + 12 = 23
12 - 11 = 1
11 * 12 = 132
11 / 12 = 0.91
impossible
4 4 10
4 + 4 + 10 = 8 + 10 = 18
4 * 10 - 4 = 40 - 4 = 36
(10 - 4) * 4 = 6 * 4 = 24
sure
4 9 11
9 + 11 + 4 = 20 + 4 = 24
sure
5 7 8
5 + 7 + 8 = 12 + 8 = 20
(8 - 5) * 7 = 3 * 7 = 21
I cannot obtain 24 now, but numbers are within a reasonable range
likely
5 6 6
5 + 6 + 6 = 17
(6 - 5) * 6 = 1 * 6 = 6
I cannot obtain 24 now, but numbers are within a reasonable range
likely
10 10 11
10 + 10 + 11 = 31
(11 - 10) * 10 = 10
10 10 10 are all too big
impossible
1 3 3
1 * 3 * 3 = 9
(1 + 3) * 3 = 12
1 3 3 are all too small
impossible
{input}
"""

#: Value prompt of a finished answer: is it correct (sure/impossible)? Each example's "Judge: " line
#: keeps the paper's trailing space.
VALUE_LAST_STEP_PROMPT = (
    "Use numbers and basic arithmetic operations (+ - * /) to obtain 24. Given an input and an "
    "answer, give a judgement (sure/impossible) if the answer is correct, i.e. it uses each input "
    "exactly once and no other numbers, and reach 24.\n"
    + "".join(
        f"Input: {puzzle}\nAnswer: {answer}\nJudge: \n{verdict}\n"
        for puzzle, answer, verdict in (
            ("4 4 6 8", "(4 + 8) * (6 - 4) = 24", "sure"),
            ("2 9 10 12", "2 * 12 * (10 - 9) = 24", "sure"),
            ("4 9 10 13", "(13 - 9) * (10 - 4) = 24", "sure"),
            ("4 4 6 8", "(4 + 8) * (6 - 4) + 1 = 25", "impossible"),
            ("2 9 10 12", "2 * (12 - 10) = 24", "impossible"),
            ("4 9 10 13", "(13 - 4) * (10 - 9) = 24", "impossible"),
        )
    )
    + "Input: {input}\nAnswer: {answer}\nJudge:"
)

#: The paper's map from a value sample's last line to a number ("TODO: ad hoc" in its code).
VALUE_MAP = {"impossible": 0.001, "likely": 1.0, "sure": 20.0}


def _fill(template: str, **slots: str) -> str:
    # Replacement, never str.format: states written by a model may hold braces.
    for name, value in slots.items():
        template = template.replace("{" + name + "}", value)
    return template


def current_numbers(y: str) -> str:
    """The numbers left after the trajectory ``y`` (the puzzle's own when ``y`` is empty)."""
    last_line = y.strip().split("\n")[-1]
    return last_line.split("left: ")[-1].split(")")[0]


class Game24:
    """Game of 24: four steps (three operations, then the answer), the paper's prompts."""

    name = "game24"
    steps = 4
    stops = ["\n"] * 4

    def __init__(self, prompts: dict[str, str | None] | None = None):
        given = {k: v for k, v in (prompts or {}).items() if v is not None}
        self.standard = given.get("standard_prompt", STANDARD_PROMPT)
        self.cot = given.get("cot_prompt", COT_PROMPT)
        self.propose = given.get("propose_prompt", PROPOSE_PROMPT)
        self.value = given.get("value_prompt", VALUE_PROMPT)
        self.value_last = given.get("value_last_step_prompt", VALUE_LAST_STEP_PROMPT)
        self.vote = given.get("vote_prompt", VOTE_PROMPT)

    def standard_prompt(self, x: str, y: str = "") -> str:
        """The input-output prompt, the trajectory so far appended."""
        return _fill(self.standard, input=x) + y

    def cot_prompt(self, x: str, y: str = "") -> str:
        """The chain-of-thought prompt, the trajectory so far appended."""
        return _fill(self.cot, input=x) + y

    def propose_prompt(self, x: str, y: str = "", *, step: int = 1) -> str:
        """The next steps from the numbers left; once only 24 is left, the chain-of-thought prompt
        with the steps so far, so the model writes the answer line."""
        numbers = current_numbers(y if y else x)
        if numbers == "24":
            return _fill(self.cot, input=x) + "Steps:" + y
        return _fill(self.propose, input=numbers)

    def value_prompt(self, x: str, y: str) -> str:
        """The value prompt of a state: can its numbers reach 24, or is its answer right?"""
        last_line = y.strip().split("\n")[-1]
        if "left: " not in last_line:  # the last step: an answer
            answer = last_line.lower().replace("answer: ", "")
            return _fill(self.value_last, input=x, answer=answer)
        return _fill(self.value, input=current_numbers(y))

    def value_of(self, x: str, y: str, outputs: list[str], value_map: dict[str, float]) -> float:
        """The paper's value of a state from its value samples: the mapped last lines, summed; a
        fourth line that is not an answer is worth nothing."""
        if len(y.strip().split("\n")) == 4 and "answer" not in y.lower():
            return 0.0
        names = [output.split("\n")[-1] for output in outputs]
        return sum(value * names.count(name) for name, value in value_map.items())

    def vote_prompt(self, x: str, ys: list[str]) -> str:
        """The paper's vote prompt over the candidate states (its text task's)."""
        return vote_prompt(self.vote, x, ys)

    votes_of = staticmethod(lambda outputs, count: votes_of(outputs, count))

    def judge(self, x: str, y: str) -> bool:
        """Whether a final state is a correct answer (the paper's checker)."""
        # Imported here: moa_lab.experiments.game24 re-exports this module's IO and CoT prompts.
        from moa_lab.experiments.game24 import check

        return check(x, y)
