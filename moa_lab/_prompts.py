"""The prompts a mixture sends: the paper's aggregator template and how references are injected.

Invariant: building the messages of a call never mutates the user's messages, and the model text put
into a template is never interpreted (no ``str.format`` on it), so braces in responses are safe.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = [
    "AGGREGATE_AND_SYNTHESIZE",
    "DEBATE_TEMPLATE",
    "RANKER_TEMPLATE",
    "REFERENCES",
    "format_references",
    "order_references",
    "with_references",
]

REFERENCES = "{references}"

#: The "Aggregate-and-Synthesize" prompt of Wang et al. 2024, "Mixture-of-Agents Enhances Large
#: Language Model Capabilities" (arXiv 2406.04692), Table 1, verbatim as the reference implementation
#: sends it: the references follow, one per line, numbered from 1.
AGGREGATE_AND_SYNTHESIZE = (
    "You have been provided with a set of responses from various open-source models to the latest "
    "user query. Your task is to synthesize these responses into a single, high-quality response. "
    "It is crucial to critically evaluate the information provided in these responses, recognizing "
    "that some of it may be biased or incorrect. Your response should not simply replicate the given "
    "answers but should offer a refined, accurate, and comprehensive reply to the instruction. Ensure "
    "your response is well-structured, coherent, and adheres to the highest standards of accuracy and "
    "reliability.\n\nResponses from models:\n" + REFERENCES
)

#: The LLM-ranker ablation of the paper (Section 3.3): the aggregator only picks one reference.
RANKER_TEMPLATE = (
    "You have been provided with a set of responses from various models to the latest user query. "
    "Your task is to select the single best response. Do not write a new answer: reply with the "
    "number of the best response only.\n\nResponses from models:\n" + REFERENCES
)

#: Multi-agent debate (Du et al. 2023, "Improving Factuality and Reasoning in Language Models through
#: Multiagent Debate"): each agent reads the others' answers and updates its own.
DEBATE_TEMPLATE = (
    "These are the recent answers to the user's question from other agents:\n" + REFERENCES + "\n\n"
    "Using the reasoning from the other agents as additional advice, give an updated answer. "
    "Examine your own answer and the others step by step, and put your final answer at the end."
)


def format_references(responses: Sequence[str]) -> str:
    """Number the responses from 1, one per line, as the paper's reference implementation does.

    The responses arrive stripped of surrounding whitespace (``moa_lab._responses``), as the
    reference implementation (togethercomputer/MoA, ``utils.generate_together``) strips every output.
    """
    return "\n".join(f"{position}. {text}" for position, text in enumerate(responses, start=1))


def order_references(node_ids: Sequence[str], *, shuffle: bool, seed: int, salt: str) -> list[str]:
    """Return the references in the order a call will see them; shuffled reproducibly by seed."""
    ordered = list(node_ids)
    if shuffle:
        random.Random(f"{seed}:{salt}").shuffle(ordered)
    return ordered


def with_references(messages: Sequence[dict], template: str, responses: Sequence[str]) -> list[dict]:
    """Return new messages whose system prompt carries the template filled with the references.

    A system message the user gave is kept and the filled template is appended to it.
    """
    system = template.replace(REFERENCES, format_references(responses))
    out = [dict(message) for message in messages]
    if out and out[0].get("role") == "system":
        out[0]["content"] = f"{out[0]['content']}\n\n{system}"
    else:
        out.insert(0, {"role": "system", "content": system})
    return out
