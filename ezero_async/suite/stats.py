"""Aggregate statistics of a suite's normalised scores, with stratified-bootstrap intervals.

The definitions are rliable's (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical
Precipice"), on a score matrix [runs, games] (one row per seed, one column per game):
  mean              the mean of the per-game means;
  median            the median of the per-game means;
  IQM               the mean of the middle 50 % of all runs x games scores (floor(n / 4) cut
                    at each end: scipy.stats.trim_mean(scores, 0.25, axis=None));
  optimality gap    gamma - the mean of min(score, gamma), gamma = 1 (human level).
Intervals: resample the runs of each game with replacement, independently per game
(stratified), recompute the statistic; the 2.5th and 97.5th percentiles of `reps` resamples.
Games may have different numbers of runs (a partial suite): each column is a list.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import numpy as np

Scores = Sequence[Sequence[float]]
"""Per game, the normalised scores of its runs (at least one each)."""


def per_game_means(scores: Scores) -> np.ndarray:
    return np.array([float(np.mean(game)) for game in scores])


def mean(scores: Scores) -> float:
    return float(per_game_means(scores).mean())


def median(scores: Scores) -> float:
    return float(np.median(per_game_means(scores)))


def iqm(scores: Scores) -> float:
    """Interquartile mean of all scores: floor(n / 4) cut from each end of the sorted scores,
    the rest averaged (scipy.stats.trim_mean(x, 0.25) on the flattened matrix, as rliable)."""
    flat = np.sort(np.concatenate([np.asarray(game, np.float64) for game in scores]))
    cut = len(flat) // 4
    return float(flat[cut:len(flat) - cut].mean())


def optimality_gap(scores: Scores, gamma: float = 1.0) -> float:
    return float(gamma - np.mean([np.mean(np.minimum(np.asarray(game, np.float64), gamma)) for game in scores]))


STATISTICS: dict[str, Callable[[Scores], float]] = {
    "mean": mean, "median": median, "iqm": iqm, "optimality_gap": optimality_gap}


class Interval(NamedTuple):
    point: float
    low: float
    high: float


def stratified_bootstrap(scores: Scores, statistic: Callable[[Scores], float], reps: int = 2000,
                         seed: int = 0, confidence: float = 0.95) -> Interval:
    """The statistic with its percentile interval over `reps` stratified resamples."""
    if not scores or any(len(game) == 0 for game in scores):
        raise ValueError("stratified_bootstrap: every game needs at least one score")
    rng = np.random.default_rng(seed)
    columns = [np.asarray(game, np.float64) for game in scores]
    draws = np.empty(reps)
    for r in range(reps):
        draws[r] = statistic([game[rng.integers(0, len(game), len(game))] for game in columns])
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(statistic(columns), float(low), float(high))


def aggregates(scores: Scores, reps: int = 2000, seed: int = 0) -> dict[str, Interval]:
    """Every statistic of STATISTICS with its 95 % stratified-bootstrap interval."""
    return {name: stratified_bootstrap(scores, fn, reps=reps, seed=seed) for name, fn in STATISTICS.items()}


def performance_profile(scores: Scores, taus: np.ndarray) -> np.ndarray:
    """Fraction of all runs x games scores above each tau (rliable's score distribution)."""
    flat = np.concatenate([np.asarray(game, np.float64) for game in scores])
    return (flat[None, :] > np.asarray(taus, np.float64)[:, None]).mean(axis=1)
