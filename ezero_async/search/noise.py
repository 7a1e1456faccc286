"""Root exploration noise: one Dirichlet draw per root, made by the caller of prepare()."""
from __future__ import annotations

import numpy as np

from ezero_async.search.inputs import check_size


def dirichlet_noise(num_roots: int, num_actions: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """float32[B, A]: rng.dirichlet([alpha] * A, size=B) cast to float32 (each row sums to ~1)."""
    num_roots = check_size("num_roots", num_roots)
    num_actions = check_size("num_actions", num_actions)
    if not alpha > 0.0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    return rng.dirichlet([alpha] * num_actions, size=num_roots).astype(np.float32)
