"""Root exploration noise, drawn by the caller of prepare(): one Dirichlet draw per root (pUCT mode)
or one Gumbel(0, 1) vector per root (Gumbel mode)."""
from __future__ import annotations

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.search.inputs import check_size


def root_noise(config: SearchConfig, num_roots: int, num_actions: int, rng: np.random.Generator) -> np.ndarray:
    """float32[B, A] root noise of the configured search mode for self-play and reanalysis roots:
    Dirichlet(dirichlet_alpha) rows (pUCT) or gumbel_scale * Gumbel(0, 1) draws (Gumbel)."""
    if config.mode == "gumbel":
        return gumbel_noise(num_roots, num_actions, rng, config.gumbel_scale)
    return dirichlet_noise(num_roots, num_actions, config.dirichlet_alpha, rng)


def dirichlet_noise(num_roots: int, num_actions: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """float32[B, A]: rng.dirichlet([alpha] * A, size=B) cast to float32 (each row sums to ~1)."""
    num_roots = check_size("num_roots", num_roots)
    num_actions = check_size("num_actions", num_actions)
    if not alpha > 0.0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return rng.dirichlet([alpha] * num_actions, size=num_roots).astype(np.float32)


def gumbel_noise(num_roots: int, num_actions: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """float32[B, A]: scale * rng.gumbel(size=(B, A)) cast to float32."""
    num_roots = check_size("num_roots", num_roots)
    num_actions = check_size("num_actions", num_actions)
    if not 0.0 <= scale < float("inf"):
        raise ValueError(f"scale must be finite and >= 0, got {scale}")
    draws = rng.gumbel(size=(num_roots, num_actions))
    return (draws * scale if scale != 1.0 else draws).astype(np.float32)
