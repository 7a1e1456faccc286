"""batched_search: one whole search over B roots, as S rounds of select -> network -> backup.

The runtime interleaves several batches itself using the tree primitives (select/backup); this
driver is the simple synchronous form used by tests, tools and evaluation.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.search.tree import CTree

RecurrentFn = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""recurrent_fn(parents int32[B], actions int32[B], parent_reset bool[B]) ->
(value_prefix float32[B], value float32[B], logits float32[B, A]) of the new leaves. The leaf
created in simulation s (0-based call index) has node id s + 1 in every root."""


class SearchOutput(NamedTuple):
    """Result of one batched search."""

    visit_counts: np.ndarray
    """int32[B, A]: visits of each root's children; every row sums to num_simulations."""
    root_values: np.ndarray
    """float32[B]: mean backed-up value of each root over the simulations."""


def batched_search(root_logits: np.ndarray, recurrent_fn: RecurrentFn, config: SearchConfig,
                   noise: np.ndarray | None = None, seed: int = 0, tree_cls: type = CTree,
                   tree=None) -> SearchOutput:
    """Search B roots with config.num_simulations simulations each.

    root_logits: float32[B, A]; noise: float32[B, A] or None (see dirichlet_noise); seed: the
    tie-break seed; tree_cls: CTree or ReferenceTree (same methods). tree: optionally an existing
    tree object to reuse (its pool stays warm across calls; its own config then applies and
    must have num_simulations == config.num_simulations)."""
    if not isinstance(root_logits, np.ndarray) or root_logits.ndim != 2:
        raise ValueError(f"root_logits must be a 2-D numpy array [B, A], got {getattr(root_logits, 'shape', root_logits)!r}")
    if tree is None:
        num_roots, num_actions = root_logits.shape
        tree = tree_cls(num_roots=num_roots, num_actions=num_actions, config=config)
    elif tree.config.num_simulations != config.num_simulations:
        raise ValueError(f"tree was built for num_simulations={tree.config.num_simulations}, "
                         f"config asks for {config.num_simulations}")
    tree.prepare(root_logits, noise=noise, seed=seed)
    for _ in range(config.num_simulations):
        parents, actions, parent_reset = tree.select()
        value_prefix, value, logits = recurrent_fn(parents, actions, parent_reset)
        tree.backup(value_prefix, value, logits)
    return SearchOutput(visit_counts=tree.visit_counts(), root_values=tree.root_values())
