"""What a call costs: a small price table in dollars per million tokens, overridable per run.

Invariant: a model missing from the table costs ``None`` (unknown), never 0.
"""

from __future__ import annotations

from collections.abc import Mapping

from moa_lab._config import Price
from moa_lab._trace import Usage

__all__ = ["PRICES", "call_cost"]

#: List prices per million tokens (input, output) as published by the providers in 2024-2025.
#: They change: override them with ``MoAConfig(prices=...)`` or by editing this dict.
PRICES: dict[str, Price] = {
    "gpt-4o": Price(input=2.50, output=10.00),
    "gpt-4o-mini": Price(input=0.15, output=0.60),
    "gpt-4.1": Price(input=2.00, output=8.00),
    "gpt-4.1-mini": Price(input=0.40, output=1.60),
    "Qwen/Qwen1.5-110B-Chat": Price(input=1.80, output=1.80),
    "Qwen/Qwen1.5-72B-Chat": Price(input=0.90, output=0.90),
    "microsoft/WizardLM-2-8x22B": Price(input=1.20, output=1.20),
    "meta-llama/Llama-3-70b-chat-hf": Price(input=0.90, output=0.90),
    "mistralai/Mixtral-8x22B-Instruct-v0.1": Price(input=1.20, output=1.20),
    "databricks/dbrx-instruct": Price(input=1.20, output=1.20),
}


def call_cost(
    model: str, usage: Usage | None, overrides: Mapping[str, Price] | None = None
) -> float | None:
    """US dollars of one call's usage; None when the model's price or a token count is unknown."""
    price = (overrides or {}).get(model) or PRICES.get(model)
    if price is None or usage is None:
        return None
    if usage.prompt_tokens is None or usage.completion_tokens is None:
        return None
    return (usage.prompt_tokens * price.input + usage.completion_tokens * price.output) / 1_000_000
