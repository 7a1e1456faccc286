"""Acting from a search: sample a ~ N_a^(1/T) (self-play) or take the most visited action (evaluation)."""
from __future__ import annotations

import bisect

import numpy as np


def _check_counts(visit_counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(visit_counts)
    if counts.ndim not in (1, 2) or counts.shape[-1] < 1 or counts.size == 0:
        raise ValueError(f"visit_counts must be [A] or [B, A] with A >= 1, got shape {counts.shape}")
    if not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"visit_counts must be integers, got {counts.dtype}")
    if (counts < 0).any() or (counts.sum(axis=-1) == 0).any():
        raise ValueError("visit_counts must be >= 0 with at least one visit per root")
    return counts


def greedy_action(visit_counts: np.ndarray) -> np.ndarray | int:
    """Most visited action, the lowest index on ties. visit_counts: int[A] -> int, int[B, A] -> int64[B]."""
    counts = _check_counts(visit_counts)
    best = np.argmax(counts, axis=-1)  # numpy returns the first maximum
    return int(best) if counts.ndim == 1 else best.astype(np.int64)


def select_action(visit_counts: np.ndarray, temperature: float, rng: np.random.Generator) -> np.ndarray | int:
    """Sample a with probability N_a^(1/T) / sum_b N_b^(1/T); temperature 0 means greedy_action.

    visit_counts: int[A] -> int, or int[B, A] -> int64[B] (one draw per row, in row order)."""
    if not temperature >= 0.0 or not np.isfinite(temperature):
        raise ValueError(f"temperature must be finite and >= 0, got {temperature}")
    if isinstance(visit_counts, np.ndarray) and visit_counts.ndim == 1 and visit_counts.dtype.kind in "iu" \
            and temperature > 0.0:
        # One env's step (the hot path): plain Python over A <= 18 numbers costs a third of the
        # numpy calls' fixed overheads; same draw and checks as the batched path below.
        row = visit_counts.tolist()
        top = max(row) if row else 0
        if not top > 0 or min(row) < 0:
            raise ValueError("visit_counts must be >= 0 with at least one visit per root")
        power = 1.0 / temperature
        cumulative, total = [], 0.0
        for count in row:
            total += (count / top) ** power
            cumulative.append(total)
        chosen = bisect.bisect_right(cumulative, rng.random() * total)
        last_positive = max(a for a, count in enumerate(row) if count > 0)
        return min(chosen, last_positive)
    counts = _check_counts(visit_counts)
    if temperature == 0.0:
        return greedy_action(counts)
    rows = counts.reshape(-1, counts.shape[-1]).astype(np.float64)
    # Dividing by the row maximum first keeps N^(1/T) finite for small temperatures.
    weights = (rows / rows.max(axis=1, keepdims=True)) ** (1.0 / temperature)
    cumulative = np.cumsum(weights, axis=1)
    draws = rng.random(rows.shape[0]) * cumulative[:, -1]
    chosen = (cumulative <= draws[:, None]).sum(axis=1)
    # Rounding can push a draw onto the total: keep it on the last action with positive weight.
    last_positive = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
    chosen = np.minimum(chosen, last_positive).astype(np.int64)
    return int(chosen[0]) if counts.ndim == 1 else chosen
