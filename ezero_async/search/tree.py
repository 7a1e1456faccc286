"""CTree: the compiled batched search tree (ext/ctree.pyx) behind a checked Python surface.

Every input is validated here before the compiled core runs (ezero_async.search.inputs), so
misuse raises ValueError and can never reach C with a bad shape, dtype, NaN or call order.
select() and backup() process the whole batch in one compiled call with the GIL released,
optionally spread over config.num_threads OpenMP threads (results do not depend on it).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ezero_async._ext.ctree import SearchCore
from ezero_async.config.sections import SearchConfig
from ezero_async.search.inputs import SearchPhase, check_backup, check_config, check_prepare, check_size


class CompiledTree:
    """The checked surface shared by the compiled trees: call order, select/backup over the whole
    batch, visit counts and root values. Subclasses build `_core` and implement prepare()."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        check_config(config)
        self.num_roots = check_size("num_roots", num_roots)
        self.num_actions = check_size("num_actions", num_actions)
        self.config = dataclasses.replace(config)  # a private copy: later edits do not leak in
        self.phase = SearchPhase(self.config.num_simulations)
        self._core = None  # the subclass's compiled core

    @property
    def pool_allocations(self) -> int:
        """How many times the node pool has (re)allocated since construction (for reuse tests)."""
        return self._core.allocations

    @property
    def simulations_done(self) -> int:
        """Simulations backed up in the current search (the next leaf gets node id this + 1)."""
        return self.phase.done

    def select(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One traversal per root. Returns parents int32[B] (node id of the new leaf's parent),
        actions int32[B] (the action from it) and parent_reset bool[B] (zero the parent's LSTM
        state before the dynamics step)."""
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
        """int32[B, A]: visits of each root's children (sum over a = simulations done)."""
        self.phase.before_output("visit_counts")
        out = np.empty((self.num_roots, self.num_actions), dtype=np.int32)
        self._core.visit_counts(out)
        return out

    def root_values(self) -> np.ndarray:
        """float32[B]: the search value of each root (see the subclass)."""
        self.phase.before_output("root_values")
        out = np.empty(self.num_roots, dtype=np.float32)
        self._core.root_values(out)
        return out


class CTree(CompiledTree):
    """B roots searched together. The node pool holds num_simulations + 1 nodes per root; it is
    sized for (num_roots, num_actions) at construction, grows in prepare() only past the largest
    B x A seen, and is reused by every later search (no allocation per prepare once warm).
    root_values() is W(root) / (N(root) - 1), the mean backed-up value (0 before any simulation)."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        super().__init__(num_roots, num_actions, config)
        cfg = self.config
        self._core = SearchCore(self.num_roots, self.num_actions, cfg.num_simulations, cfg.discount, cfg.c_init,
                                cfg.c_base, cfg.value_delta_max, cfg.lstm_horizon, cfg.root_noise_fraction,
                                cfg.num_threads)

    def prepare(self, root_logits: np.ndarray, noise: np.ndarray | None = None, seed: int = 0) -> None:
        """root_logits: float32[B, A]; noise: float32[B, A] or None; seed: int (used mod 2^64).

        Starts a new search over B roots (B, A may differ from earlier searches)."""
        root_logits, noise, seed = check_prepare(root_logits, noise, seed)
        self._core.prepare(root_logits, noise, seed)
        self.num_roots, self.num_actions = root_logits.shape
        self.phase.start()
