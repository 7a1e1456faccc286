"""Step-counter schedules of the learner: learning rate and target-weight version.

Both are pure functions of the training step s (0-based), never of wall-clock time.
"""
from __future__ import annotations

from ezero_async.config.sections import LearnerConfig


def learning_rate(step: int, cfg: LearnerConfig) -> float:
    """lr(s) = lr_init * s / W for s < W (linear warm-up from 0), else
    lr_init * rate ^ floor((s - W) / decay_steps). Atari: 0.2 * s/1000, then x0.1 per 100k."""
    if step < 0:
        raise ValueError(f"training step must be >= 0, got {step}")
    warmup = cfg.lr_warmup_steps
    if step < warmup:
        return cfg.lr_init * step / warmup
    return cfg.lr_init * cfg.lr_decay_rate ** ((step - warmup) // cfg.lr_decay_steps)


def target_version(step: int, interval: int) -> int:
    """The online-weight version (a training step) that serves as target weights at step s:
    max(0, I * (floor(s / I) - 1)) — a lag of I to 2I - 1 steps."""
    if step < 0 or interval < 1:
        raise ValueError(f"need step >= 0 and interval >= 1, got step={step}, interval={interval}")
    return max(0, interval * (step // interval - 1))
