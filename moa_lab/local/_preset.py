"""The local presets, sized for a 2-core CPU: ``local`` (MoA-Lite as Self-MoA on the embedded model)
and ``local-mix`` (MoA-Lite mixing the three packaged models).

Invariant: a preset names the GGUF in both base_url and model, so caches and traces of different
GGUFs stay apart.
"""

from __future__ import annotations

import os

from moa_lab._config import Agent, MoAConfig, Price
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
from moa_lab.local._models import DEFAULT_MODEL, GGUF_ENV, model_name

__all__ = [
    "AGGREGATOR_MAX_TOKENS",
    "BRIEF_AGGREGATOR_TEMPLATE",
    "MIX_PROPOSERS",
    "PROPOSER_MAX_TOKENS",
    "local_mix_preset",
    "local_preset",
]

#: Completion caps of the ``local`` preset, chosen so a run takes about a minute on 2 cores.
PROPOSER_MAX_TOKENS = 128
AGGREGATOR_MAX_TOKENS = 384
#: The paper's aggregator prompt, asking for a brief answer so the aggregator ends within its cap.
BRIEF_AGGREGATOR_TEMPLATE = AGGREGATE_AND_SYNTHESIZE.replace(
    "\n\nResponses from models:",
    " Keep it brief (about 150 words at most) and state the answer itself early."
    "\n\nResponses from models:",
)


def local_preset() -> MoAConfig:
    """MoA-Lite on the embedded model: three samples of it (Self-MoA) and it again as aggregator.

    ``$MOA_LAB_GGUF`` names another packaged model or a GGUF file to run instead of the default.
    """
    named = os.environ.get(GGUF_ENV)
    # Naming the model in base_url and model keeps caches and traces of different GGUFs apart.
    base_url = f"local:{named}" if named else "local"
    model = model_name(base_url)
    proposers = [
        Agent(
            model=model,
            base_url=base_url,
            temperature=temperature,
            seed=seed,
            max_tokens=PROPOSER_MAX_TOKENS,
        )
        for temperature, seed in ((0.5, 1), (0.8, 2), (1.0, 3))
    ]
    aggregator = Agent(
        model=model, base_url=base_url, temperature=0.3, seed=0, max_tokens=AGGREGATOR_MAX_TOKENS
    )
    return _lite(proposers, aggregator, BRIEF_AGGREGATOR_TEMPLATE)


def _lite(proposers: list[Agent], aggregator: Agent, template: str) -> MoAConfig:
    """MoA-Lite (2 layers) of local agents: free, patient, retried once."""
    return MoAConfig(
        proposers=proposers,
        aggregator=aggregator,
        layers=2,
        aggregator_template=template,
        # Local calls queue behind each other, so a call's HTTP wait includes the calls before it.
        timeout=900.0,
        max_retries=1,
        prices={agent.model: Price(input=0, output=0) for agent in [*proposers, aggregator]},
    )


#: The ``local-mix`` proposers: (packaged model, temperature, seed, max_tokens), strongest first.
#: Measured alone on 8 arithmetic items (benchmarks/tune_local_mix.py --singles, docs/benchmarks.md):
#: each Qwen scored best at the lower temperature tried (0.2; the models, not sampling, make the
#: mixture diverse) and finished within 256 tokens (0 and 1 of 8 cut off); Gemma 3 270M, a base model,
#: never stopped before any cap and never answered, so it is capped short, bounding its time and the
#: noise it puts in the aggregator's prompt.
MIX_PROPOSERS = (
    ("qwen2.5-coder-1.5b", 0.2, 1, 256),
    ("qwen2.5-coder-0.5b", 0.2, 2, 256),
    ("gemma-3-270m", 0.2, 3, 64),
)


def local_mix_preset() -> MoAConfig:
    """MoA-Lite mixing the three packaged models (two families, three sizes), the strongest (the
    default model) aggregating with the paper's prompt; it ignores ``$MOA_LAB_GGUF``."""
    proposers = [
        Agent(
            model=model_name(f"local:{name}"),
            base_url=f"local:{name}",
            temperature=temperature,
            seed=seed,
            max_tokens=max_tokens,
        )
        for name, temperature, seed, max_tokens in MIX_PROPOSERS
    ]
    strongest = f"local:{DEFAULT_MODEL.name}"
    aggregator = Agent(
        model=model_name(strongest),
        base_url=strongest,
        temperature=0.2,
        seed=0,
        max_tokens=AGGREGATOR_MAX_TOKENS,
    )
    return _lite(proposers, aggregator, AGGREGATE_AND_SYNTHESIZE)
