"""Tree of Thoughts (Yao et al. 2023): the breadth-first search, its config and its tasks.

- ``config``: ``ToTConfig``;
- ``search``: the search, as a strategy of the engine's seam;
- ``game24``: the Game of 24 task with the paper's prompts; ``generic``: any question.
"""

from __future__ import annotations

from moa_lab._tot.config import ToTConfig
from moa_lab._tot.search import tree_search

__all__ = ["ToTConfig", "tree_search"]
