"""The ``local`` preset: MoA-Lite on the embedded model, sized for a 2-core CPU.

Invariant: the preset names the GGUF in both base_url and model, so caches and traces of different
GGUFs stay apart.
"""

from __future__ import annotations

import os

from moa_lab._config import Agent, MoAConfig, Price
from moa_lab._prompts import AGGREGATE_AND_SYNTHESIZE
from moa_lab.local._models import GGUF_ENV, model_name

__all__ = ["AGGREGATOR_MAX_TOKENS", "BRIEF_AGGREGATOR_TEMPLATE", "PROPOSER_MAX_TOKENS", "local_preset"]

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
    return MoAConfig(
        proposers=proposers,
        aggregator=aggregator,
        layers=2,
        aggregator_template=BRIEF_AGGREGATOR_TEMPLATE,
        # Local calls queue behind each other, so a call's HTTP wait includes the calls before it.
        timeout=900.0,
        max_retries=1,
        prices={model: Price(input=0, output=0)},
    )
