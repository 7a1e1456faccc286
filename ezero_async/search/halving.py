"""Sequential halving at a Gumbel root (shared/SPEC_GUMBEL.md, "Root selection").

How many actions a root considers (m) and the visit table: entry j is the visit count an
action must have for the root to choose it at simulation j. Both trees read the same table, so
its construction is tested on its own against the spec's examples.
"""
from __future__ import annotations

import functools
import math

import numpy as np


def considered_actions(num_actions: int, max_considered: int) -> int:
    """m = min(m_max, A); m_max = 0 means EfficientZero V2's rule: 2 if A < 4, 4 if A < 16, else 8."""
    if max_considered == 0:
        max_considered = 2 if num_actions < 4 else 4 if num_actions < 16 else 8
    return min(max_considered, num_actions)


def _table(num_considered: int, num_simulations: int) -> list[int]:
    if num_considered <= 1:
        return list(range(num_simulations))
    phases = math.ceil(math.log2(num_considered))
    seq: list[int] = []
    visits = [0] * num_considered
    k = num_considered
    while len(seq) < num_simulations:
        extra = max(1, num_simulations // (phases * k))
        for _ in range(extra):
            seq.extend(visits[:k])
            for i in range(k):
                visits[i] += 1
        k = max(2, k // 2)
    return seq[:num_simulations]


@functools.lru_cache(maxsize=64)
def visit_table(num_considered: int, num_simulations: int) -> np.ndarray:
    """int32[S] (read-only, built once per (m, S): every search's prepare() asks for it): the
    visit count an action needs to be chosen at the root in simulation j."""
    if num_considered < 1 or num_simulations < 1:
        raise ValueError(f"visit_table: need m >= 1 and S >= 1, got m={num_considered}, S={num_simulations}")
    table = np.array(_table(num_considered, num_simulations), dtype=np.int32)
    table.setflags(write=False)
    return table
