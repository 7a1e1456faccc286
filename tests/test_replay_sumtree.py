"""Sum tree and prioritised sampler: proportional frequencies, exact totals, max tracking, IS weights."""
import math

import numpy as np
import pytest
from scipy import stats

from ezero_async._ext.sumtree import SumTree
from ezero_async.config.sections import ReplayConfig
from ezero_async.replay.sampler import PrioritySampler, beta_at, td_depth


def test_sampled_frequencies_follow_p_alpha():
    rng = np.random.default_rng(1)
    n, alpha = 50, 0.6
    p = rng.uniform(0.05, 3.0, n)
    p[[3, 17]] = 0.0  # not sampleable
    tree = SumTree(n, alpha)
    tree.update(np.arange(n, dtype=np.int64), p)
    draws, batch = 400, 256
    counts = np.zeros(n)
    slots, mass = np.empty(batch, np.int64), np.empty(batch)
    for _ in range(draws):
        tree.sample(rng.random(batch), slots, mass)
        counts += np.bincount(slots, minlength=n)
    assert counts[3] == 0 and counts[17] == 0
    expected = p**alpha / (p**alpha).sum() * draws * batch
    keep = p > 0
    _, pvalue = stats.chisquare(counts[keep], expected[keep])
    assert pvalue > 1e-4


def test_total_is_exact_after_many_updates_and_max_tracks_current():
    rng = np.random.default_rng(2)
    n = 1000
    tree = SumTree(n, 0.6)
    p = np.zeros(n)
    for _ in range(200):
        idx = rng.integers(0, n, 64).astype(np.int64)
        val = rng.exponential(1.0, 64)
        val[::7] = 0.0
        tree.update(idx, val)
        for i, v in zip(idx, val):
            p[i] = v
    fresh = SumTree(n, 0.6)
    fresh.update(np.arange(n, dtype=np.int64), p)
    assert tree.total == fresh.total  # internal sums are recomputed from children: no drift
    assert math.isclose(tree.total, math.fsum(np.where(p > 0, p, 0) ** 0.6 * (p > 0)), rel_tol=1e-12)
    assert tree.max_priority == p.max()
    assert tree.count == int((p > 0).sum())
    top = int(np.argmax(p))
    tree.update(np.array([top], np.int64), np.array([0.0]))
    p[top] = 0.0
    assert tree.max_priority == p.max()  # the max is the current one, not a running max


def test_never_draws_zero_priority_at_stratum_edges():
    tree = SumTree(8, 1.0)
    tree.update(np.arange(8, dtype=np.int64), np.array([1.0, 0, 0, 2.0, 0, 0, 0, 0]))
    slots, mass = np.empty(4, np.int64), np.empty(4)
    tree.sample(np.array([0.0, 0.999999999999, 1 - 1e-16, 0.5]), slots, mass)
    assert set(slots.tolist()) <= {0, 3}


def test_is_weights_match_formula_and_beta_anneals():
    cfg = ReplayConfig(capacity=64)
    sampler = PrioritySampler(64, cfg, seed=3)
    p = np.linspace(0.1, 2.0, 40)
    sampler.apply_events(np.arange(40, dtype=np.int64), np.ones(40, bool))
    sampler.update(np.arange(40, dtype=np.int64), p)
    step = 30_000
    s = sampler.sample(32, step)
    beta = 0.4 + 0.6 * min(step / 120_000, 1)
    assert s.beta == pytest.approx(beta)
    probs = p[s.slots] ** 0.6 / (p**0.6).sum()
    np.testing.assert_allclose(s.probs, probs, rtol=1e-12)
    w = (40 * probs) ** -beta
    np.testing.assert_allclose(s.weights, w / w.max(), rtol=1e-6)
    assert beta_at(0, cfg) == pytest.approx(0.4) and beta_at(10**6, cfg) == pytest.approx(1.0)


def test_new_slots_get_current_max_priority_and_updates_skip_invalid():
    sampler = PrioritySampler(16, ReplayConfig(capacity=16), seed=0)
    sampler.apply_events(np.array([0, 1], np.int64), np.array([True, True]))
    assert sampler.tree.max_priority == 1.0  # 1.0 when none stored
    sampler.update(np.array([0, 1], np.int64), np.array([3.0, 0.5]))
    sampler.apply_events(np.array([2, 1], np.int64), np.array([True, False]))
    out = np.empty(3)
    sampler.tree.get(np.arange(3, dtype=np.int64), out)
    assert out.tolist() == [3.0, 0.0, 3.0]
    sampler.update(np.array([1], np.int64), np.array([9.0]))  # invalidated: stays unsampleable
    sampler.tree.get(np.arange(3, dtype=np.int64), out)
    assert out[1] == 0.0


def test_td_depth_from_age():
    cfg = ReplayConfig(capacity=64, td_steps=5, td_age_unit=100)
    idx = np.array([999, 900, 899, 601, 600, 0])
    # ages 1, 100, 101, 399, 400, 1000 -> 5-0, 5-1, 5-1, 5-3, 5-4, clip(5-10) = 1
    assert td_depth(idx, 1000, cfg).tolist() == [5, 4, 4, 2, 1, 1]


def test_td_depth_is_full_for_the_mixed_value_target():
    cfg = ReplayConfig(capacity=64, td_steps=5, td_age_unit=100, value_target="mixed")
    assert td_depth(np.array([999, 600, 0]), 1000, cfg).tolist() == [5, 5, 5]


def test_is_weights_are_clipped_to_the_floor_after_max_normalisation():
    # EZ-V2: alpha = beta = 1, weights clipped to [0.1, 1].
    cfg = ReplayConfig(capacity=64, priority_alpha=1.0, priority_beta_start=1.0, priority_weight_min=0.1)
    sampler = PrioritySampler(64, cfg, seed=4)
    p = np.array([0.25] * 20 + [5.0] * 20)  # raw weight ratio 0.05: below the floor
    sampler.apply_events(np.arange(40, dtype=np.int64), np.ones(40, bool))
    sampler.update(np.arange(40, dtype=np.int64), p)
    s = sampler.sample(256, 0)
    w = 1.0 / (40 * p[s.slots] / p.sum())
    want = np.maximum(w / w.max(), 0.1)
    np.testing.assert_allclose(s.weights, want, rtol=1e-6)
    assert s.weights.min() == pytest.approx(0.1) and s.weights.max() == pytest.approx(1.0)
