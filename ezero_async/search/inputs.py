"""Checks at the boundary of a search tree: every array and setting is validated here, in Python,
before any tree state changes or any compiled code runs. Both trees (CTree, ReferenceTree) use
these, so they reject exactly the same misuse with the same ValueError messages.
"""
from __future__ import annotations

import operator

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.errors import ConfigError

UINT64_MOD = 1 << 64


def check_config(config: SearchConfig) -> None:
    """Raise ValueError unless config is a SearchConfig whose values pass its own range checks."""
    if not isinstance(config, SearchConfig):
        raise ValueError(f"config must be a SearchConfig, got {type(config).__name__}")
    try:
        config.check()
    except ConfigError as err:
        raise ValueError(f"invalid SearchConfig: {err}") from err


def check_size(name: str, value: int) -> int:
    """A positive integer size (num_roots, num_actions)."""
    try:
        size = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {type(value).__name__}") from None
    if size < 1:
        raise ValueError(f"{name} must be >= 1, got {size}")
    return size


def check_seed(seed: int) -> int:
    """Any integer; the tree uses it mod 2^64."""
    if isinstance(seed, (bool, np.bool_)):
        raise ValueError("seed must be an integer, got a bool")
    try:
        return operator.index(seed) % UINT64_MOD
    except TypeError:
        raise ValueError(f"seed must be an integer, got {type(seed).__name__}") from None


def check_float32(name: str, array: np.ndarray, shape: tuple[int, ...] | None, ndim: int) -> np.ndarray:
    """Return array as a C-contiguous float32 array after checking type, dtype, shape, finiteness.

    shape None accepts any shape with ndim dimensions, each >= 1 (used by prepare)."""
    if not isinstance(array, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(array).__name__}")
    if array.dtype != np.float32:
        raise ValueError(f"{name} must have dtype float32, got {array.dtype}")
    if shape is None:
        if array.ndim != ndim or min(array.shape, default=0) < 1:
            raise ValueError(f"{name} must be {ndim}-D with every dimension >= 1, got shape {array.shape}")
    elif array.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got {array.shape}")
    # One float64 sum: NaN or inf anywhere makes it non-finite, and float32 values cannot
    # overflow it (cheaper than isfinite().all(), which this runs for every simulation).
    if not np.isfinite(array.sum(dtype=np.float64)):
        raise ValueError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(array)


def check_prepare(root_logits: np.ndarray, noise: np.ndarray | None, seed: int):
    """Validate prepare() inputs: root_logits float32[B, A], noise float32[B, A] or None.

    Returns (root_logits, noise, seed) as contiguous arrays and seed mod 2^64."""
    root_logits = check_float32("root_logits", root_logits, None, 2)
    if noise is not None:
        noise = check_float32("noise", noise, root_logits.shape, 2)
    return root_logits, noise, check_seed(seed)


def check_gumbel_prepare(root_logits: np.ndarray, root_values: np.ndarray, gumbel: np.ndarray | None, seed: int):
    """Validate a Gumbel prepare(): root_logits float32[B, A], root_values float32[B], gumbel
    float32[B, A] or None (zeros). Returns contiguous arrays (gumbel never None) and seed mod 2^64."""
    root_logits = check_float32("root_logits", root_logits, None, 2)
    root_values = check_float32("root_values", root_values, root_logits.shape[:1], 1)
    if gumbel is None:
        gumbel = np.zeros_like(root_logits)
    else:
        gumbel = check_float32("gumbel", gumbel, root_logits.shape, 2)
    return root_logits, root_values, gumbel, check_seed(seed)


def check_backup(value_prefix: np.ndarray, value: np.ndarray, logits: np.ndarray, num_roots: int,
                 num_actions: int):
    """Validate backup() inputs: value_prefix, value float32[B]; logits float32[B, A]."""
    return (check_float32("value_prefix", value_prefix, (num_roots,), 1),
            check_float32("value", value, (num_roots,), 1),
            check_float32("logits", logits, (num_roots, num_actions), 2))


class SearchPhase:
    """Call-order guard shared by both trees: prepare -> (select -> backup) x S -> outputs.

    Checked before any work, so a misuse leaves the tree exactly as it was."""

    def __init__(self, num_simulations: int) -> None:
        self.num_simulations = num_simulations
        self.prepared = False
        self.pending = False   # a select() awaits its backup()
        self.done = 0          # simulations backed up in the current search

    def start(self) -> None:
        self.prepared, self.pending, self.done = True, False, 0

    def before_select(self) -> None:
        if not self.prepared:
            raise ValueError("select() called before prepare()")
        if self.pending:
            raise ValueError("select() called twice without backup(): back up the pending leaves first")
        if self.done >= self.num_simulations:
            raise ValueError(f"select() past the tree's capacity: all num_simulations={self.num_simulations} "
                             "simulations of this search are done (prepare() starts a new one)")

    def after_select(self) -> None:
        self.pending = True

    def before_backup(self) -> None:
        if not self.pending:
            raise ValueError("backup() called without a pending select()")

    def after_backup(self) -> None:
        self.pending, self.done = False, self.done + 1

    def before_output(self, what: str) -> None:
        if not self.prepared:
            raise ValueError(f"{what}() called before prepare()")
