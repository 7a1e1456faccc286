"""GumbelCTree: the compiled Gumbel search tree (ext/gumbel.pyx) behind a checked Python surface.

Same shape as CTree (prepare -> (select -> backup) x S -> outputs), with the root values and
Gumbel draws as prepare() inputs and the search's action and improved policy pi' as outputs
(shared/SPEC_GUMBEL.md). Every input is validated here first (ezero_async.search.inputs).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ezero_async._ext.gumbel import GumbelCore
from ezero_async.config.sections import SearchConfig
from ezero_async.search.halving import considered_actions, visit_table
from ezero_async.search.inputs import SearchPhase, check_backup, check_config, check_gumbel_prepare, check_size


class GumbelCTree:
    """B roots searched together in Gumbel mode. The node pool is sized at construction, grows in
    prepare() only past the largest B x A seen, and is reused by every later search."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        check_config(config)
        num_roots = check_size("num_roots", num_roots)
        num_actions = check_size("num_actions", num_actions)
        self.config = dataclasses.replace(config)
        cfg = self.config
        self.num_roots, self.num_actions = num_roots, num_actions
        self.phase = SearchPhase(cfg.num_simulations)
        self._core = GumbelCore(num_roots, num_actions, cfg.num_simulations, cfg.discount, cfg.value_delta_max,
                                cfg.lstm_horizon, cfg.gumbel_c_visit, cfg.gumbel_c_scale, cfg.num_threads)

    @property
    def pool_allocations(self) -> int:
        """How many times the node pool has (re)allocated since construction (for reuse tests)."""
        return self._core.allocations

    @property
    def simulations_done(self) -> int:
        return self.phase.done

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

    def select(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """parents int32[B], actions int32[B], parent_reset bool[B] of the new leaves."""
        self.phase.before_select()
        parents = np.empty(self.num_roots, dtype=np.int32)
        actions = np.empty(self.num_roots, dtype=np.int32)
        parent_reset = np.empty(self.num_roots, dtype=bool)
        self._core.select(parents, actions, parent_reset.view(np.uint8))
        self.phase.after_select()
        return parents, actions, parent_reset

    def backup(self, value_prefix: np.ndarray, value: np.ndarray, logits: np.ndarray) -> None:
        """value_prefix, value: float32[B]; logits: float32[B, A]: outputs of the new leaves."""
        self.phase.before_backup()
        value_prefix, value, logits = check_backup(value_prefix, value, logits, self.num_roots, self.num_actions)
        self._core.backup(value_prefix, value, logits)
        self.phase.after_backup()

    def visit_counts(self) -> np.ndarray:
        """int32[B, A]: visits of each root's children (rows sum to the simulations done)."""
        self.phase.before_output("visit_counts")
        out = np.empty((self.num_roots, self.num_actions), dtype=np.int32)
        self._core.visit_counts(out)
        return out

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

    def root_values(self) -> np.ndarray:
        """float32[B]: W / N at the root over v-hat and the backed-up returns (v-hat before any)."""
        self.phase.before_output("root_values")
        out = np.empty(self.num_roots, dtype=np.float32)
        self._core.root_values(out)
        return out
