"""Hand-computed golden trees, the tie-break stream, softmax, noise and acting (shared/SPEC_SEARCH.md).

The golden cases run on both trees: the numbers below are derived by hand in the comments, so
they check the reference against the spec and CTree against the same numbers.
"""
import numpy as np
import pytest

from ezero_async._ext import ctree as ext
from ezero_async.config.sections import SearchConfig as SectionsSearchConfig
from ezero_async.search import (
    CTree,
    ReferenceTree,
    SearchConfig,
    dirichlet_noise,
    greedy_action,
    select_action,
)
from ezero_async.search.reference import GOLD, SplitMix64, softmax, splitmix_mix

TREES = [CTree, ReferenceTree]
# In the derivations below, c at n_sum = 1 and 2 (c_base 19652, c_init 1.25) is
# C1 = log(19654 / 19652) + 1.25 ~ 1.2501018 and C2 = log(19655 / 19652) + 1.25 ~ 1.2501526;
# the golden choices never depend on their last digits.


def f32(*values):
    return np.array(values, dtype=np.float32)


def golden_config(horizon):
    # gamma = 0.5 keeps every backed-up number exact in binary.
    return SearchConfig(num_simulations=3, discount=0.5, lstm_horizon=horizon, root_noise_fraction=0.0)


def test_search_config_is_the_config_section():
    assert SearchConfig is SectionsSearchConfig
    cfg = SearchConfig(num_simulations=50, discount=0.997**4, c_init=1.25, c_base=19652.0, value_delta_max=0.01,
                       lstm_horizon=5, root_noise_fraction=0.25, dirichlet_alpha=0.3)
    assert cfg.num_simulations == 50 and cfg.num_threads == 1


def test_splitmix64_known_values():
    # The first output of SplitMix64 started at 0 is the published test value 0xE220A8397B1DCDAF.
    assert splitmix_mix(GOLD) == 0xE220A8397B1DCDAF
    assert ext.py_splitmix_mix(GOLD) == 0xE220A8397B1DCDAF
    assert splitmix_mix(0) == 0 == ext.py_splitmix_mix(0)
    out, state = ext.py_splitmix_next(0)
    assert (out, state) == (0xE220A8397B1DCDAF, GOLD)
    # Per-root streams: state_b = mix(seed + (b + 1) * GOLD); these draws are used by the golden trees.
    root0_seed0 = SplitMix64(seed=0, root=0)
    assert root0_seed0.state == 0xE220A8397B1DCDAF
    assert [root0_seed0.next() for _ in range(2)] == [0xA706DD2F4D197E6F, 0xB382A305F4414F5E]
    root0_seed1 = SplitMix64(seed=1, root=0)
    assert [root0_seed1.next() for _ in range(3)] == [0x5E41AB087439611E, 0xF18D6CE93D6CF1EE, 0x0B95F66D327E8D78]
    # Seeds are taken mod 2^64 and wrap.
    assert SplitMix64(seed=(1 << 64) - 1, root=0).state == splitmix_mix(GOLD - 1)


def test_splitmix64_matches_between_c_and_python():
    rng = np.random.default_rng(0)
    for z in [int(x) for x in rng.integers(0, 2**63, size=50, dtype=np.uint64)] + [2**64 - 1, 2**63]:
        assert ext.py_splitmix_mix(z) == splitmix_mix(z)
        out, state = ext.py_splitmix_next(z)
        assert state == (z + GOLD) % 2**64 and out == splitmix_mix(state)


def test_softmax_bit_identical_and_stable():
    rng = np.random.default_rng(1)
    cases = [rng.normal(scale=s, size=a).astype(np.float32) for s in (0.1, 3.0, 50.0) for a in (1, 2, 7, 18)]
    cases.append(f32(3.0e38, -3.0e38, 0.0, 3.0e38))
    for logits in cases:
        ref = softmax(logits.tolist())
        assert ext.py_softmax(logits) == ref
        assert all(p >= 0.0 for p in ref) and abs(sum(ref) - 1.0) < 1e-12
    assert softmax([0.0, 0.0]) == [0.5, 0.5]
    assert softmax([3.0e38, -3.0e38]) == [1.0, 0.0]


def run_steps(tree, root_logits, steps, seed):
    """steps: list of (value_prefix, value, leaf_logits) per simulation; returns the select outputs."""
    tree.prepare(root_logits, seed=seed)
    picks = []
    for vp, v, logits in steps:
        parents, actions, reset = tree.select()
        picks.append((int(parents[0]), int(actions[0]), bool(reset[0])))
        tree.backup(f32(vp), f32(v), logits[None, :])
    return picks


@pytest.mark.parametrize("tree_cls", TREES)
@pytest.mark.parametrize("horizon", [1, 5])
def test_golden_value_prefix_reset_and_minmax(tree_cls, horizon):
    """A = 2, S = 3, gamma = 0.5, root logits [0, 0] -> P = [0.5, 0.5], seed 0.

    Root 0's tie-break draws with seed 0: u1 = 0xA706DD2F4D197E6F (odd), u2 = 0xB382A305F4414F5E (even).
    sim 0: root N = 1, n_sum = 0 -> prior terms 0; no children -> mean_q = (0 + 0) / 1 = 0, min-max
           empty -> value scores clip(0) = 0: scores [0, 0] tie -> tied[u1 % 2] = action 1.
           select -> (parent 0, action 1, reset True: depth 0). Leaf 1 = child 1, vp 0.25, v 0.5.
           backup: leaf W = 0.5, N = 1; q = r + g*W/N = 0.25 + 0.5*0.5 = 0.5 (root is a reset node,
           r = vp); min-max [0.5, 0.5]; G = 0.25 + 0.5*0.5 = 0.5; root W = 0.5, N = 2.
    sim 1: root n_sum = 1, k = 1, T = 0.5, mean_q = 0.5; max - min = 0 -> normalize(q) = q.
           child 1: (0.5*C1*1)/2 + 0.5 = 0.8125..; child 0 (unvisited): 0.5*C1 + 0.5 = 1.125.. -> action 0.
           -> (0, 0, True). Leaf 2 = child 0, vp 1.0, v 1.0: q = 1.0 + 0.5*1.0 = 1.5; min-max [0.5, 1.5];
           G = 1.5; root W = 2.0, N = 3.
    sim 2: root n_sum = 2, both children N = 1 with equal priors (0.5*C2*sqrt 2)/2; normalised values
           (1.5 - 0.5)/max(1.0, 0.01) = 1 for child 0 and 0 for child 1 -> descend to node 2 (child 0).
           node 2: N = 1, n_sum = 0, k = 0 -> mean_q = (1.0 + 0)/1 = 1.0 (parent's mean (0.5+1.5)/2),
           both value scores (1.0 - 0.5)/1.0 = 0.5 -> tie -> tied[u2 % 2] = action 0.
           -> (2, 0, reset = depth 1 % H == 0: True iff H = 1). Leaf 3 = child 0 of node 2, vp 1.5, v 2.0.
    backup of sim 2, H = 5: r = 1.5 - 1.0 = 0.5 (node 2 is not a reset node); leaf G = 0.5 + 0.5*2 = 1.5;
           node 2 W = 1.0 + 1.5 = 2.5; G = 1.0 + 0.5*1.5 = 1.75; root W = 2.0 + 1.75 = 3.75 -> value 3.75/3 = 1.25.
    backup of sim 2, H = 1: r = 1.5 (node 2 is a reset node); G = 1.5 + 0.5*2 = 2.5; node 2 W = 3.5;
           G = 1.0 + 0.5*2.5 = 2.25; root W = 4.25 -> value 4.25/3.
    """
    tree = tree_cls(num_roots=1, num_actions=2, config=golden_config(horizon))
    zeros = f32(0.0, 0.0)
    steps = [(0.25, 0.5, zeros), (1.0, 1.0, zeros), (1.5, 2.0, zeros)]
    picks = run_steps(tree, zeros[None, :], steps, seed=0)
    assert picks == [(0, 1, True), (0, 0, True), (2, 0, horizon == 1)]
    np.testing.assert_array_equal(tree.visit_counts(), [[2, 1]])
    expected = 1.25 if horizon == 5 else 4.25 / 3
    assert tree.root_values().tolist() == [np.float32(expected)]
    assert tree.visit_counts().dtype == np.int32 and tree.root_values().dtype == np.float32


@pytest.mark.parametrize("tree_cls", TREES)
def test_golden_parent_mean_rule(tree_cls):
    """A = 2, S = 3, H = 5, gamma = 0.5, root logits [0, -30] -> P = [1 - p, p], p = e^-30/(1 + e^-30) ~ 9e-14.

    Root 0's draws with seed 1 are all even: u1 = 0x5E41AB087439611E, u2 = 0xF18D6CE93D6CF1EE,
    u3 = 0x0B95F66D327E8D78.
    sim 0: full tie at the root -> tied[u1 % 2] = action 0 -> (0, 0, True). Leaf 1: vp 0, v 1.0:
           q = 0 + 0.5*1 = 0.5; min-max [0.5, 0.5]; G = 0.5; root W = 0.5, N = 2.
    sim 1: root: k = 1, mean_q = 0.5, min-max range 0 -> values unnormalised: child 0 (P0*C1)/2 + 0.5 ~ 1.125
           beats child 1 P1*C1 + 0.5 ~ 0.5 -> node 1 (N = 1): k = 0, mean_q = (0.5 + 0)/1 -> both 0.5 -> tie
           -> tied[u2 % 2] = 0 -> (1, 0, False: depth 1). Leaf 2: vp 0.5, v 3.0: r = 0.5 - 0 = 0.5,
           q = 0.5 + 0.5*3 = 2.0; G = 2.0; node 1 W = 3.0, N = 2, q = 0 + 0.5*(3/2) = 0.75;
           min-max [0.5, 2.0]; G = 0 + 0.5*2 = 1.0; root W = 1.5, N = 3.
    sim 2: root: k = 1, T = 0.75, mean_q = 0.75; scale = max(1.5, 0.01): child 0 (P0*C2*sqrt 2)/3
           + (0.75 - 0.5)/1.5 ~ 0.589 + 0.167 beats child 1 ~ 0 + 0.167 -> node 1 (N = 2, n_sum = 1):
           k = 1, T = 2.0, mean_q = (parent_mean_q + T)/(k + 1) = (0.75 + 2.0)/2 = 1.375.
           visited child 0: (0.5*C1*1)/2 + (2.0 - 0.5)/1.5 = 0.3125.. + 1 = 1.3125..
           unvisited child 1: 0.5*C1 + (1.375 - 0.5)/1.5 = 0.625.. + 0.5833.. = 1.2084..
           -> child 0 (with the plain mean T/k = 2.0 the unvisited child would score 1.625 and win).
           node 2 (N = 1): k = 0, mean_q = (1.375 + 0)/1 -> tie -> tied[u3 % 2] = 0 -> (2, 0, False).
           Leaf 3: vp 1.0, v 0.0, depth 3: r = 1.0 - 0.5 = 0.5; G = 0.5 + 0 = 0.5; node 2 W = 3.5,
           G = 0.5 + 0.5*0.5 = 0.75; node 1 W = 3.75, G = 0 + 0.5*0.75 = 0.375; root W = 1.875, N = 4
           -> root value 1.875/3 = 0.625; visits [3, 0].
    """
    tree = tree_cls(num_roots=1, num_actions=2, config=golden_config(5))
    zeros = f32(0.0, 0.0)
    steps = [(0.0, 1.0, zeros), (0.5, 3.0, zeros), (1.0, 0.0, zeros)]
    picks = run_steps(tree, f32(0.0, -30.0)[None, :], steps, seed=1)
    assert picks == [(0, 0, True), (1, 0, False), (2, 0, False)]
    np.testing.assert_array_equal(tree.visit_counts(), [[3, 0]])
    assert tree.root_values().tolist() == [0.625]


@pytest.mark.parametrize("tree_cls", TREES)
def test_golden_noise_mix_and_untouched_tree(tree_cls):
    """prepare only: root value 0 before any simulation, no visits. With noise [1, 0] and eps = 0.5 the
    prior becomes (1 - 0.5)*[0.5, 0.5] + 0.5*[1, 0] = [0.75, 0.25]; after one simulation (a full tie
    at the fresh root, draw u1 of seed 0 is odd -> action 1) the second picks action 0:
    scores child 0: 0.75*C1 + v, child 1: (0.25*C1)/2 + v (same value score v) -> action 0."""
    cfg = SearchConfig(num_simulations=2, discount=0.5, lstm_horizon=5, root_noise_fraction=0.5)
    tree = tree_cls(num_roots=1, num_actions=2, config=cfg)
    tree.prepare(f32(0.0, 0.0)[None, :], noise=f32(1.0, 0.0)[None, :], seed=0)
    assert tree.root_values().tolist() == [0.0]
    np.testing.assert_array_equal(tree.visit_counts(), [[0, 0]])
    parents, actions, reset = tree.select()
    assert (parents.tolist(), actions.tolist(), reset.tolist()) == ([0], [1], [True])
    assert parents.dtype == np.int32 and actions.dtype == np.int32 and reset.dtype == np.bool_
    tree.backup(f32(0.0), f32(0.0), f32(0.0, 0.0)[None, :])
    parents, actions, reset = tree.select()
    assert (parents.tolist(), actions.tolist()) == ([0], [0])


def test_dirichlet_noise_matches_generator():
    noise = dirichlet_noise(5, 7, alpha=0.3, rng=np.random.default_rng(3))
    expected = np.random.default_rng(3).dirichlet([0.3] * 7, size=5).astype(np.float32)
    assert noise.dtype == np.float32 and noise.shape == (5, 7)
    np.testing.assert_array_equal(noise, expected)
    np.testing.assert_allclose(noise.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError):
        dirichlet_noise(0, 7, alpha=0.3, rng=np.random.default_rng(0))
    with pytest.raises(ValueError):
        dirichlet_noise(2, 7, alpha=0.0, rng=np.random.default_rng(0))


def test_greedy_action_lowest_index_on_ties():
    assert greedy_action(np.array([3, 7, 7, 1], dtype=np.int32)) == 1
    assert greedy_action(np.array([5, 5], dtype=np.int32)) == 0
    np.testing.assert_array_equal(greedy_action(np.array([[0, 2, 2], [4, 1, 4]], dtype=np.int32)), [1, 0])
    assert select_action(np.array([0, 9, 9], dtype=np.int32), 0.0, np.random.default_rng(0)) == 1


@pytest.mark.parametrize("temperature", [1.0, 0.5, 0.25, 2.0])
def test_select_action_samples_visit_power(temperature):
    counts = np.array([1, 2, 5, 0, 3], dtype=np.int32)
    rows = np.tile(counts, (40_000, 1))
    draws = select_action(rows, temperature, np.random.default_rng(7))
    assert draws.shape == (40_000,)
    freq = np.bincount(draws, minlength=5) / len(draws)
    weights = counts.astype(np.float64) ** (1.0 / temperature)
    np.testing.assert_allclose(freq, weights / weights.sum(), atol=0.01)
    assert freq[3] == 0.0  # an unvisited action is never taken
    single = select_action(counts, temperature, np.random.default_rng(7))
    assert isinstance(single, int) and counts[single] > 0


def test_select_action_one_row_draws_like_the_batched_path():
    """The 1-D fast path makes the same draw, from the same rng state, as a one-row batch."""
    data = np.random.default_rng(3)
    for trial in range(300):
        counts = data.integers(0, 6, size=data.integers(1, 19)).astype(np.int32)
        counts[data.integers(len(counts))] += 1
        temperature = float(data.choice([0.25, 0.5, 1.0, 2.0]))
        single = select_action(counts, temperature, np.random.default_rng(trial))
        batched = select_action(counts[None], temperature, np.random.default_rng(trial))
        assert single == int(batched[0])


def test_select_action_rejects_bad_input():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        select_action(np.array([0, 0], dtype=np.int32), 1.0, rng)
    with pytest.raises(ValueError):
        select_action(np.array([1, 2], dtype=np.int32), -1.0, rng)
    with pytest.raises(ValueError):
        select_action(np.array([1.0, 2.0]), 1.0, rng)
    with pytest.raises(ValueError):
        select_action(np.array([2, -1], dtype=np.int32), 1.0, rng)
