"""batched_search / batched_gumbel_search: one whole search over B roots, as S rounds of
select -> network -> backup.

The runtime interleaves several batches itself using the tree primitives (select/backup); this
driver is the simple synchronous form used by tests, tools and evaluation.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.search.gumbel_tree import GumbelCTree
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


class GumbelSearchOutput(NamedTuple):
    """Result of one batched Gumbel search."""

    actions: np.ndarray
    """int32[B]: the search's action per root."""
    improved_policy: np.ndarray
    """float32[B, A]: pi' at each root (the policy target)."""
    root_values: np.ndarray
    """float32[B]: W / N at the root over the network value and the backed-up returns."""
    visit_counts: np.ndarray
    """int32[B, A]: every row sums to num_simulations."""


def _start(tree, tree_cls: type, root_logits: np.ndarray, config: SearchConfig):
    """A tree for root_logits [B, A]: `tree` itself (checked) or a new tree_cls."""
    if not isinstance(root_logits, np.ndarray) or root_logits.ndim != 2:
        raise ValueError(f"root_logits must be a 2-D numpy array [B, A], got {getattr(root_logits, 'shape', root_logits)!r}")
    if tree is None:
        num_roots, num_actions = root_logits.shape
        return tree_cls(num_roots=num_roots, num_actions=num_actions, config=config)
    if tree.config.num_simulations != config.num_simulations:
        raise ValueError(f"tree was built for num_simulations={tree.config.num_simulations}, "
                         f"config asks for {config.num_simulations}")
    return tree


def _simulate(tree, recurrent_fn: RecurrentFn, num_simulations: int) -> None:
    for _ in range(num_simulations):
        parents, actions, parent_reset = tree.select()
        tree.backup(*recurrent_fn(parents, actions, parent_reset))


def batched_search(root_logits: np.ndarray, recurrent_fn: RecurrentFn, config: SearchConfig,
                   noise: np.ndarray | None = None, seed: int = 0, tree_cls: type = CTree,
                   tree=None) -> SearchOutput:
    """Search B roots with config.num_simulations simulations each.

    root_logits: float32[B, A]; noise: float32[B, A] or None (see dirichlet_noise); seed: the
    tie-break seed; tree_cls: CTree or ReferenceTree (same methods). tree: optionally an existing
    tree object to reuse (its pool stays warm across calls; its own config then applies and
    must have num_simulations == config.num_simulations)."""
    tree = _start(tree, tree_cls, root_logits, config)
    tree.prepare(root_logits, noise=noise, seed=seed)
    _simulate(tree, recurrent_fn, config.num_simulations)
    return SearchOutput(visit_counts=tree.visit_counts(), root_values=tree.root_values())


def batched_gumbel_search(root_logits: np.ndarray, root_values: np.ndarray, recurrent_fn: RecurrentFn,
                          config: SearchConfig, gumbel: np.ndarray | None = None, tree_cls: type = GumbelCTree,
                          tree=None) -> GumbelSearchOutput:
    """Gumbel-search B roots with config.num_simulations simulations each (shared/SPEC_GUMBEL.md).

    root_logits: float32[B, A]; root_values: float32[B] (the network's values at the roots);
    gumbel: float32[B, A] (see gumbel_noise) or None for zeros (evaluation); tree_cls:
    GumbelCTree or GumbelReferenceTree; tree: an existing tree object to reuse, as batched_search."""
    tree = _start(tree, tree_cls, root_logits, config)
    tree.prepare(root_logits, root_values, gumbel)
    _simulate(tree, recurrent_fn, config.num_simulations)
    return GumbelSearchOutput(actions=tree.actions(), improved_policy=tree.improved_policy(),
                              root_values=tree.root_values(), visit_counts=tree.visit_counts())
