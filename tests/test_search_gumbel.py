"""Gumbel search (shared/SPEC_GUMBEL.md): the visit table, hand-computed golden trees, GumbelCTree
against GumbelReferenceTree on random trees, thread-count independence, pool reuse, the driver
and misuse errors."""
import math

import numpy as np
import pytest

from ezero_async.search import (
    GumbelCTree, GumbelReferenceTree, SearchConfig, batched_gumbel_search, gumbel_noise,
)
from ezero_async.search.halving import considered_actions, visit_table

from test_search_ctree import PathNet

TREES = [GumbelCTree, GumbelReferenceTree]


def f32(*values):
    return np.array(values, dtype=np.float32)


def gumbel_config(num_simulations, **overrides):
    return SearchConfig(num_simulations=num_simulations, mode="gumbel", discount=1.0, lstm_horizon=5, **overrides)


# ------------------------------------------------------------------ the visit table

def test_visit_table_matches_the_spec_examples():
    # (m = 4, S = 16): 4 actions x 2 visits, then 2 x 4.
    assert visit_table(4, 16).tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    # (m = 8, S = 16): 8 x 1, 4 x 1, 2 x 2.
    assert visit_table(8, 16).tolist() == [0] * 8 + [1] * 4 + [2, 2, 3, 3]
    assert visit_table(1, 5).tolist() == [0, 1, 2, 3, 4]
    assert visit_table(2, 8).tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert visit_table(4, 3).tolist() == [0, 0, 0]  # fewer simulations than considered actions
    assert visit_table(4, 16).dtype == np.int32
    with pytest.raises(ValueError, match="m >= 1 and S >= 1"):
        visit_table(0, 4)


def test_considered_actions_follows_the_v2_rule():
    assert [considered_actions(a, 0) for a in (2, 3, 4, 15, 16, 18)] == [2, 2, 4, 4, 8, 8]
    assert considered_actions(6, 3) == 3
    assert considered_actions(2, 8) == 2  # never more than A


# ------------------------------------------------------------------ golden trees

@pytest.mark.parametrize("tree_cls", TREES)
def test_golden_two_actions_improved_policy_value_and_action(tree_cls):
    tree = tree_cls(1, 2, gumbel_config(2))
    tree.prepare(f32([0.0, 0.0]), f32(1.0))
    np.testing.assert_array_equal(tree.root_values(), f32(1.0))  # v-hat before any simulation
    # Simulation 0: both actions need N = 0 and score alike (zero Gumbel, equal logits, sigma
    # from v_mix = v-hat for both): the lowest index.
    parents, actions, reset = tree.select()
    assert (parents[0], actions[0], reset[0]) == (0, 0, True)
    tree.backup(f32(1.0), f32(2.0), f32([0.0, 0.0]))  # Q(root, 0) = 1 + 2 = 3
    parents, actions, _ = tree.select()  # simulation 1: only action 1 has N = 0
    assert (parents[0], actions[0]) == (0, 1)
    tree.backup(f32(0.0), f32(0.0), f32([0.0, 0.0]))  # Q(root, 1) = 0
    # Min-max [0, 3]: q-hat = [1, 0]; sigma = ((50 + 1) * 0.1) * q-hat; pi' = softmax([5.1, 0]).
    sigma = (50.0 + 1) * 0.1
    top = 1.0 / (1.0 + math.exp(-sigma))
    np.testing.assert_array_equal(tree.improved_policy(), f32([top, 1.0 - top]))
    # W / N over v-hat and both returns: (1 + 3 + 0) / 3.
    np.testing.assert_array_equal(tree.root_values(), f32(4.0 / 3.0))
    np.testing.assert_array_equal(tree.visit_counts(), [[1, 1]])
    assert tree.actions().tolist() == [0]  # equal visits: the larger sigma


@pytest.mark.parametrize("tree_cls", TREES)
@pytest.mark.parametrize("deep_value, expected", [(4.0, (2, 2)), (-1.0, (1, 0))])
def test_golden_interior_rule_with_v_mix(tree_cls, deep_value, expected):
    """m = 1: every simulation takes the root's top action and descends by the interior rule."""
    tree = tree_cls(1, 3, gumbel_config(3, gumbel_max_considered=1))
    tree.prepare(f32([2.0, 0.0, 0.0]), f32(0.0))
    assert tree.select()[1][0] == 0
    tree.backup(f32(1.0), f32(2.0), f32([0.0, 1.0, 0.0]))  # node 1: v0 = 2, Q(root, 0) = 3
    parents, actions, _ = tree.select()
    # Node 1 is unvisited below: v_mix = v0 for every action, pi' follows its logits: action 1.
    assert (parents[0], actions[0]) == (1, 1)
    tree.backup(f32(1.5), f32(deep_value), f32([0.0, 0.0, 3.0]))  # node 2: r = 0.5 from node 1
    parents, actions, _ = tree.select()
    # At node 1 (n_sum = 1): v_mix = (2 + Q(1, 1)) / 2 and Q(1, 1) = 0.5 + deep_value.
    # deep 4.0: Q = 4.5 is the top of the range [3, 4.5]; pi'(1) = 0.99 - 1/2 still wins, and
    #   node 2 (unvisited below) picks its largest logit, action 2.
    # deep -1.0: Q = -0.5 is the bottom of [-0.5, 3], v_mix = 0.75 completes actions 0 and 2
    #   alike: pi' = softmax([1.82, 1, 1.82]), score(1) = 0.18 - 1/2 loses, 0 beats 2 on the tie.
    assert (parents[0], actions[0]) == expected


@pytest.mark.parametrize("tree_cls", TREES)
def test_sequential_halving_visits_top_actions_by_gumbel_plus_logits(tree_cls):
    """(m = 4, S = 16) over 6 actions: the 4 best g + logits get 2 visits each, then the 2
    survivors 4 more each (visit counts 0 for the rest)."""
    logits = f32([0.0, 3.0, 1.0, 2.0, -1.0, 0.5])
    gumbel = f32([0.0, 0.0, 0.0, 0.0, 4.5, 0.0])  # lifts action 4 into the top 4
    tree = tree_cls(1, 6, gumbel_config(16, gumbel_max_considered=4))
    tree.prepare(logits, f32(0.0), gumbel)
    first = []
    for s in range(16):
        parents, actions, _ = tree.select()
        if s < 4:
            first.append(int(actions[0]))
        tree.backup(f32(0.0), f32(0.0), np.zeros((1, 6), np.float32))  # flat values: sigma stays constant
    assert first == [4, 1, 3, 2]  # g + logits = 3.5, 3, 2, 1 (sigma is the same for all)
    np.testing.assert_array_equal(tree.visit_counts(), [[0, 6, 2, 2, 6, 0]])
    assert tree.actions().tolist() == [4]  # most visited, then the larger g + logits


# ------------------------------------------------------------------ against the reference

def run_search(tree, root_logits, root_values, gumbel, net, num_simulations):
    """Step a tree through one search; returns the select outputs and every output."""
    net.reset(root_logits.shape[0])
    tree.prepare(root_logits, root_values, gumbel)
    picks = []
    for s in range(num_simulations):
        parents, actions, reset = tree.select()
        assert ((parents >= 0) & (parents <= s)).all()
        picks.append((parents.copy(), actions.copy(), reset.copy()))
        tree.backup(*net(parents, actions, reset))
        np.testing.assert_array_equal(tree.visit_counts().sum(axis=1), s + 1)
    return picks, tree.visit_counts(), tree.actions(), tree.improved_policy(), tree.root_values()


def random_case(rng, case):
    num_roots = int(rng.integers(1, 4))
    num_actions = int(rng.integers(2, 19))
    cfg = SearchConfig(num_simulations=int(rng.integers(1, 65)), mode="gumbel",
                       lstm_horizon=int(rng.integers(1, 7)),
                       gumbel_max_considered=int(rng.integers(0, num_actions + 1)),  # 0: the V2 rule
                       discount=float(rng.choice([1.0, 0.997**4, 0.5])),
                       value_delta_max=float(rng.choice([0.01, 0.5])))
    root_logits = rng.normal(scale=2.0, size=(num_roots, num_actions)).astype(np.float32)
    if case % 5 == 0:
        root_logits[:] = 0.0  # flat priors: ties everywhere the Gumbel draw does not break them
    root_values = rng.normal(scale=2.0, size=num_roots).astype(np.float32)
    gumbel = gumbel_noise(num_roots, num_actions, rng) if case % 2 else None
    return cfg, root_logits, root_values, gumbel, PathNet(case, num_actions, coarse=case % 3 == 0)


def assert_same_search(a, b):
    picks_a, *outputs_a = a
    picks_b, *outputs_b = b
    for (pa, aa, ra), (pb, ab, rb) in zip(picks_a, picks_b, strict=True):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(aa, ab)
        np.testing.assert_array_equal(ra, rb)
    for x, y in zip(outputs_a, outputs_b, strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)  # bit-identical float32 pi' and root values


@pytest.mark.parametrize("block", range(6))
def test_gumbel_ctree_matches_reference_on_random_trees(block):
    """300 random cases: A 2..18, S 1..64, m 1..A, H 1..6, Gumbel zero and random."""
    rng = np.random.default_rng([7, block])
    for case in range(block * 50, block * 50 + 50):
        cfg, root_logits, root_values, gumbel, net = random_case(rng, case)
        b, a = root_logits.shape
        fast = run_search(GumbelCTree(b, a, cfg), root_logits, root_values, gumbel, net, cfg.num_simulations)
        slow = run_search(GumbelReferenceTree(b, a, cfg), root_logits, root_values, gumbel, net,
                          cfg.num_simulations)
        assert_same_search(fast, slow)


def test_thread_count_does_not_change_results():
    rng = np.random.default_rng(11)
    num_roots, num_actions = 64, 18
    root_logits = rng.normal(size=(num_roots, num_actions)).astype(np.float32)
    root_values = rng.normal(size=num_roots).astype(np.float32)
    gumbel = gumbel_noise(num_roots, num_actions, rng)
    results = []
    for threads in (1, 2, 4):
        cfg = SearchConfig(num_simulations=16, mode="gumbel", num_threads=threads)
        tree = GumbelCTree(num_roots, num_actions, cfg)
        results.append(run_search(tree, root_logits, root_values, gumbel, PathNet(3, num_actions, False), 16))
    assert_same_search(results[0], results[1])
    assert_same_search(results[0], results[2])


def test_tree_reuse_across_shapes_matches_fresh_trees_without_allocating():
    rng = np.random.default_rng(5)
    cfg = SearchConfig(num_simulations=12, mode="gumbel")
    reused = GumbelCTree(8, 18, cfg)
    warm = reused.pool_allocations
    for case, (b, a) in enumerate([(8, 18), (3, 4), (8, 2), (1, 18), (8, 18)]):
        root_logits = rng.normal(size=(b, a)).astype(np.float32)
        root_values = rng.normal(size=b).astype(np.float32)
        gumbel = gumbel_noise(b, a, rng)
        got = run_search(reused, root_logits, root_values, gumbel, PathNet(case, a, False), 12)
        fresh = run_search(GumbelCTree(b, a, cfg), root_logits, root_values, gumbel, PathNet(case, a, False), 12)
        assert_same_search(got, fresh)
    assert reused.pool_allocations == warm


@pytest.mark.parametrize("tree_cls", TREES)
def test_batched_gumbel_search_driver(tree_cls):
    rng = np.random.default_rng(2)
    cfg = SearchConfig(num_simulations=8, mode="gumbel")
    root_logits = rng.normal(size=(3, 5)).astype(np.float32)
    root_values = rng.normal(size=3).astype(np.float32)
    net = PathNet(1, 5, False)
    net.reset(3)
    out = batched_gumbel_search(root_logits, root_values, net, cfg, gumbel=None, tree_cls=tree_cls)
    assert out.actions.shape == (3,) and out.actions.dtype == np.int32
    np.testing.assert_allclose(out.improved_policy.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(out.visit_counts.sum(axis=1), 8)
    # With zero Gumbel noise the chosen action is among the most visited.
    assert (out.visit_counts[np.arange(3), out.actions] == out.visit_counts.max(axis=1)).all()


def test_gumbel_noise_matches_the_generator():
    got = gumbel_noise(3, 4, np.random.default_rng(9), scale=0.5)
    want = (np.random.default_rng(9).gumbel(size=(3, 4)) * 0.5).astype(np.float32)
    np.testing.assert_array_equal(got, want)
    assert got.dtype == np.float32
    with pytest.raises(ValueError, match="scale"):
        gumbel_noise(3, 4, np.random.default_rng(0), scale=-1.0)


# ------------------------------------------------------------------ misuse

@pytest.mark.parametrize("tree_cls", TREES)
def test_misuse_is_rejected_before_any_state_changes(tree_cls):
    tree = tree_cls(2, 3, gumbel_config(2))
    with pytest.raises(ValueError, match="before prepare"):
        tree.select()
    with pytest.raises(ValueError, match="before prepare"):
        tree.actions()
    logits = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="root_values must have shape"):
        tree.prepare(logits, f32(0.0))
    with pytest.raises(ValueError, match="gumbel must have shape"):
        tree.prepare(logits, f32(0.0, 0.0), np.zeros((2, 2), np.float32))
    with pytest.raises(ValueError, match="gumbel contains NaN"):
        tree.prepare(logits, f32(0.0, 0.0), np.full((2, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match="root_values must have dtype float32"):
        tree.prepare(logits, np.zeros(2))
    tree.prepare(logits, f32(0.0, 0.0))
    with pytest.raises(ValueError, match=r"backup\(\) called without a pending select"):
        tree.backup(f32(0, 0), f32(0, 0), logits)
    tree.select()
    with pytest.raises(ValueError, match=r"select\(\) called twice"):
        tree.select()
    tree.backup(f32(0, 0), f32(0, 0), logits)
    tree.select()
    tree.backup(f32(0, 0), f32(0, 0), logits)
    with pytest.raises(ValueError, match="past the tree's capacity"):
        tree.select()
