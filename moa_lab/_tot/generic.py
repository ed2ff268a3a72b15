"""A Tree-of-Thoughts task for any question: propose a next step, judge a partial solution.

The search is the paper's (Yao et al. 2023, arXiv 2305.10601); these prompts are moa_lab's, written
in the shape of the paper's Game of 24 prompts (a step per line, a sure/likely/impossible verdict on
the last line, the same value map). The vote prompt is the paper's own, from its creative-writing
task (princeton-nlp/tree-of-thought-llm, ``src/tot/prompts/text.py``; MIT, Copyright (c) 2023
Shunyu Yao).

Invariant: a state is the trajectory so far, one step per line; the last step's line starts with
``Answer:``.
"""

from __future__ import annotations

import re

__all__ = ["VOTE_PROMPT", "Generic", "vote_prompt", "votes_of"]

PROPOSE_PROMPT = (
    "Question: {input}\n"
    "Steps so far:\n{steps}\n"
    "Propose a few different possible next steps towards the answer, one short step per line. "
    "Write only the steps.\n"
    "Possible next steps:\n"
)
ANSWER_PROMPT = (
    "Question: {input}\n"
    "Steps:\n{steps}\n"
    'Using these steps, write the final answer on one line that starts with "Answer:".\n'
)
VALUE_PROMPT = (
    "Question: {input}\n"
    "Partial solution:\n{steps}\n"
    "Evaluate if this partial solution is correct so far and can reach the right answer "
    "(sure/likely/impossible). Reason briefly, then write sure, likely or impossible on the last "
    "line.\n"
)
#: The paper's vote prompt (text task).
VOTE_PROMPT = (
    "Given an instruction and several choices, decide which choice is most promising. Analyze each "
    'choice in detail, then conclude in the last line "The best choice is {s}", where s the '
    "integer id of the choice.\n"
)
_BEST = re.compile(r".*best choice is .*(\d+).*", re.DOTALL)


def vote_prompt(template: str, x: str, ys: list[str]) -> str:
    """A vote prompt over candidate states, numbered from 1 as the paper's code numbers them."""
    prompt = _fill(template, input=x) + f"\nInstruction: {x}\n"
    for number, y in enumerate(ys, start=1):
        prompt += f"Choice {number}:\n{y}\n"
    return prompt


def votes_of(outputs: list[str], count: int) -> list[float]:
    """How many vote samples chose each candidate ("The best choice is N", the paper's parse)."""
    votes = [0.0] * count
    for output in outputs:
        match = _BEST.match(output)
        if match and 0 <= int(match.group(1)) - 1 < count:
            votes[int(match.group(1)) - 1] += 1
    return votes


def _fill(template: str, **slots: str) -> str:
    for name, value in slots.items():  # replacement, never str.format: states may hold braces
        template = template.replace("{" + name + "}", value)
    return template


class Generic:
    """Any question: ``steps - 1`` reasoning steps, then an answer line."""

    name = "generic"

    def __init__(self, steps: int = 3, prompts: dict[str, str | None] | None = None):
        given = {k: v for k, v in (prompts or {}).items() if v is not None}
        self.steps = steps
        self.stops = [None] * steps
        self.propose = given.get("propose_prompt", PROPOSE_PROMPT)
        self.answer = given.get("cot_prompt", ANSWER_PROMPT)
        self.value = given.get("value_prompt", VALUE_PROMPT)
        self.vote = given.get("vote_prompt", VOTE_PROMPT)

    def _steps(self, y: str) -> str:
        return y.strip() or "(none yet)"

    def propose_prompt(self, x: str, y: str = "", *, step: int = 1) -> str:
        """Next steps from the trajectory so far; on the last step, the answer line."""
        template = self.answer if step >= self.steps else self.propose
        return _fill(template, input=x, steps=self._steps(y))

    def cot_prompt(self, x: str, y: str = "") -> str:
        """The answer prompt (sampling generation)."""
        return _fill(self.answer, input=x, steps=self._steps(y))

    standard_prompt = cot_prompt

    def value_prompt(self, x: str, y: str) -> str:
        """The verdict prompt of a partial solution."""
        return _fill(self.value, input=x, steps=self._steps(y))

    def value_of(self, x: str, y: str, outputs: list[str], value_map: dict[str, float]) -> float:
        """The mapped verdicts of the samples' last lines, summed."""
        names = [output.strip().split("\n")[-1].strip().lower().strip(".") for output in outputs]
        return sum(value * names.count(name) for name, value in value_map.items())

    def vote_prompt(self, x: str, ys: list[str]) -> str:
        """The paper's vote prompt over the candidate states."""
        return vote_prompt(self.vote, x, ys)

    votes_of = staticmethod(lambda outputs, count: votes_of(outputs, count))

    def judge(self, x: str, y: str) -> bool | None:
        """No checker for an open question."""
        return None
