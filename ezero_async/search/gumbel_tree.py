"""GumbelCTree: the compiled Gumbel search tree (ext/gumbel.pyx) behind a checked Python surface.

Same shape as CTree (prepare -> (select -> backup) x S -> outputs), with the root values and
Gumbel draws as prepare() inputs and the search's action and improved policy pi' as outputs
(shared/SPEC_GUMBEL.md). Every input is validated here first (ezero_async.search.inputs).
"""
from __future__ import annotations

import numpy as np

from ezero_async._ext.gumbel import GumbelCore
from ezero_async.config.sections import SearchConfig
from ezero_async.search.halving import considered_actions, visit_table
from ezero_async.search.inputs import check_gumbel_prepare
from ezero_async.search.tree import CompiledTree


class GumbelCTree(CompiledTree):
    """B roots searched together in Gumbel mode. The node pool is sized at construction, grows in
    prepare() only past the largest B x A seen, and is reused by every later search.
    root_values() is W / N at the root over the network value and the backed-up returns."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        super().__init__(num_roots, num_actions, config)
        cfg = self.config
        self._core = GumbelCore(self.num_roots, self.num_actions, cfg.num_simulations, cfg.discount, cfg.value_delta_max,
                                cfg.lstm_horizon, cfg.gumbel_c_visit, cfg.gumbel_c_scale, cfg.num_threads)

    def prepare(self, root_logits: np.ndarray, root_values: np.ndarray, gumbel: np.ndarray | None = None,
                seed: int = 0) -> None:
        """root_logits: float32[B, A]; root_values: float32[B] (the network's values); gumbel:
        float32[B, A] or None (zeros: evaluation); seed: unused (no draws inside), kept for symmetry."""
        root_logits, root_values, gumbel, _ = check_gumbel_prepare(root_logits, root_values, gumbel, seed)
        num_actions = root_logits.shape[1]
        table = visit_table(considered_actions(num_actions, self.config.gumbel_max_considered),
                            self.config.num_simulations)
        self._core.prepare(root_logits, root_values, gumbel, table)
        self.num_roots, self.num_actions = root_logits.shape
        self.phase.start()

    def actions(self) -> np.ndarray:
        """int32[B]: the search's action per root (most visited, then best g + logits + sigma)."""
        self.phase.before_output("actions")
        out = np.empty(self.num_roots, dtype=np.int32)
        self._core.actions(out)
        return out

    def improved_policy(self) -> np.ndarray:
        """float32[B, A]: pi' at each root, the policy target."""
        self.phase.before_output("improved_policy")
        out = np.empty((self.num_roots, self.num_actions), dtype=np.float32)
        self._core.improved_policy(out)
        return out
