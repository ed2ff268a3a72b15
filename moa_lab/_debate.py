"""Multi-agent debate (Du et al. 2023, "Improving Factuality and Reasoning in Language Models through
Multiagent Debate", arXiv 2305.14325; code: composable-models/llm_multiagent_debate).

n agents answer the question; in each later round every agent sees its own previous answer as its
own (assistant) turn and the other agents' answers of that round in a user turn, and updates. The
final answer is the majority of the agents' last answers where those are short (a number, a choice
"(X)"), else an aggregator's synthesis of them.

Invariant: agent i's conversation in round r is exactly the reference code's ``agent_contexts[i]``
(user question, then alternating own answer and the others' answers); a call's references are every
answer its conversation holds.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import ConfigDict, Field

from moa_lab._answers import short_answer
from moa_lab._config import Agent, RunSettings
from moa_lab._errors import RunError
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE, with_references

if TYPE_CHECKING:
    from moa_lab._engine import RunState

__all__ = [
    "DEBATE_UPDATE",
    "DEBATE_UPDATE_MATH",
    "DEBATE_UPDATE_MMLU",
    "DebateConfig",
    "debate",
    "debate_node",
]

#: The placeholder of an update prompt where the other agents' answers go.
ANSWERS = "{answers}"
#: How each other agent's answer is quoted inside an update prompt (the reference code's format).
ONE_AGENT = "\n\n One agent solution: ```{answer}```"

#: The reference code's update prompt for MMLU (``mmlu/gen_mmlu.py``), verbatim.
DEBATE_UPDATE_MMLU = (
    "These are the solutions to the problem from other agents: "
    + ANSWERS
    + "\n\n Using the reasoning from other agents as additional advice, can you give an updated "
    "answer? Examine your solution and that other agents step by step. Put your answer in the form "
    "(X) at the end of your response."
)
#: The reference code's update prompt for GSM8K math (``gsm/gen_gsm.py``), verbatim; ``{question}``
#: is the original problem.
DEBATE_UPDATE_MATH = (
    "These are the solutions to the problem from other agents: "
    + ANSWERS
    + "\n\n Using the solutions from other agents as additional information, can you provide your "
    "answer to the math problem? \n The original math problem is {question}. Your final answer "
    "should be a single numerical number, in the form \\boxed{{answer}}, at the end of your response."
)
#: The MMLU prompt with its multiple-choice format sentence made general (the default).
DEBATE_UPDATE = DEBATE_UPDATE_MMLU.replace(
    "Put your answer in the form (X) at the end of your response.",
    "Put your final answer at the end of your response.",
)


class DebateConfig(RunSettings):
    """Multi-agent debate: ``agents`` answer, then revise over ``rounds`` rounds (Du et al. 2023)."""

    strategy: ClassVar[str] = "debate"
    agents_: list[Agent] = Field(alias="agents", min_length=1)
    """The debaters (the reference code uses 3)."""
    rounds: int = Field(default=2, ge=1)
    """Rounds of answers, the first included (the reference code uses 2 or 3)."""
    decide: Literal["auto", "majority", "aggregate"] = "auto"
    """``majority`` of the last answers' short answers; ``aggregate`` by the aggregator; ``auto``:
    majority when every last answer states a number or a choice, else the aggregator."""
    aggregator: Agent | None = None
    """Who synthesizes long answers (default: the first debater)."""
    update_template: str = DEBATE_UPDATE
    """The user turn of rounds > 1: ``{answers}`` stands for the others' answers, ``{question}``
    (optional) for the user's question."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, populate_by_name=True
    )

    @property
    def layers(self) -> int:
        """The rounds, and the aggregator's layer when there may be one."""
        return self.rounds + (0 if self.decide == "majority" else 1)

    def agents(self) -> list[Agent]:
        """The debaters, then the aggregator (when it may be called)."""
        judge = [] if self.decide == "majority" else [self.aggregator or self.agents_[0]]
        return [*self.agents_, *judge]

    def expected_calls(self) -> int:
        """One call per debater per round (the aggregator's, if any, on top)."""
        return len(self.agents_) * self.rounds

    def model_dump(self, **options: Any) -> dict[str, Any]:
        """The fields under their public names (``agents``)."""
        return super().model_dump(**{"by_alias": True, **options})


def debate_node(round_number: int, agent: int) -> str:
    """The node id of an agent's answer in a round: ``D2.0`` is agent 0's answer in round 2."""
    return f"D{round_number}.{agent}"


def _update(config: DebateConfig, question: str, answers: list[str]) -> str:
    quoted = "".join(ONE_AGENT.replace("{answer}", a) for a in answers)
    # Filled by replacement, never str.format: model text may hold braces.
    return config.update_template.replace(ANSWERS, quoted).replace("{question}", question)


def _question(messages: list[dict[str, Any]]) -> str:
    users = [m["content"] for m in messages if m["role"] == "user"]
    return users[-1] if users else ""


async def debate(run: RunState) -> str | None:
    """Run the debate of ``run.config`` and return the decided answer.

    Raises ``RunError`` when every debater of a round fails. An agent whose answer fails drops out
    of the later rounds (as a failed proposer is dropped in MoA).
    """
    config: DebateConfig = run.config
    question = _question(run.messages)
    # Per agent: its conversation so far and the node ids of every answer it holds.
    history: list[list[dict[str, Any]]] = [list(run.messages) for _ in config.agents_]
    read: list[list[str]] = [[] for _ in config.agents_]
    alive = list(range(len(config.agents_)))
    last: dict[int, str] = {}
    for round_number in range(1, config.rounds + 1):
        calls = await asyncio.gather(
            *[
                run.call(
                    config.agents_[i],
                    role="debater",
                    layer=round_number,
                    index=i,
                    references=read[i],
                    messages=history[i],
                    id=debate_node(round_number, i),
                )
                for i in alive
            ]
        )
        answered = {i: c for i, c in zip(alive, calls, strict=True) if c.error is None}
        if not answered:
            raise RunError(
                f"every debater of round {round_number} failed; first error: {calls[0].error}"
            )
        alive = list(answered)
        last = {i: c.id for i, c in answered.items()}
        if round_number == config.rounds:
            break
        for i in alive:
            others = [run.reference_text(answered[j]) for j in alive if j != i]
            history[i] = [
                *history[i],
                {"role": "assistant", "content": run.reference_text(answered[i])},
                {"role": "user", "content": _update(config, question, others)},
            ]
            read[i] = [*read[i], *(answered[j].id for j in alive)]
    return await _decide(run, config, [run.trace.call(last[i]) for i in alive])


async def _decide(run: RunState, config: DebateConfig, finals: list[Any]) -> str | None:
    shorts = [short_answer(c.response) for c in finals]
    majority = config.decide == "majority" or (
        config.decide == "auto" and all(s is not None for s in shorts)
    )
    if majority:
        votes = Counter(s for s in shorts if s is not None)
        if votes:
            # Ties go to the answer the earliest agent gave, as the reference's most_frequent does.
            top = max(votes.values())
            winner = next(s for s in shorts if s is not None and votes[s] == top)
            chosen = finals[shorts.index(winner)]
            run.trace.graph.graph["decision"] = {
                "method": "majority",
                "answer": winner,
                "votes": dict(votes),
                "chosen": chosen.id,
            }
            return chosen.response
        if config.decide == "majority":
            raise RunError("no debater stated a short answer to vote on; use decide='aggregate'")
    judge = config.aggregator or config.agents_[0]
    messages = with_references(
        run.messages, AGGREGATE_AND_SYNTHESIZE, [run.reference_text(c) for c in finals]
    )
    synthesis = await run.call(
        judge,
        role="aggregator",
        layer=config.rounds + 1,
        index=0,
        references=[c.id for c in finals],
        messages=messages,
        id=f"A{config.rounds + 1}.0",
    )
    if synthesis.error is not None:
        raise RunError(f"the aggregator failed: {synthesis.error}")
    run.trace.graph.graph["decision"] = {"method": "aggregator", "chosen": synthesis.id}
    return synthesis.response
