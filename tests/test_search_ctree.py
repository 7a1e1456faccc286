"""CTree against the ReferenceTree on random trees, thread-count independence, pool reuse, the
batched_search driver and every misuse error (shared/SPEC_SEARCH.md)."""
import numpy as np
import pytest

from ezero_async.search import CTree, ReferenceTree, SearchConfig, SearchOutput, batched_search, dirichlet_noise

TREES = [CTree, ReferenceTree]


class PathNet:
    """Deterministic fake network: a leaf's outputs are a function of (case, root, action path) only,
    so two trees that select the same paths see the same numbers. coarse=True rounds values to
    quarters and often returns flat logits, which produces exact ties deep in the tree too."""

    def __init__(self, case_seed: int, num_actions: int, coarse: bool) -> None:
        self.case_seed, self.num_actions, self.coarse = case_seed, num_actions, coarse
        self.paths: list[list[tuple[int, ...]]] = []

    def reset(self, num_roots: int) -> None:
        self.paths = [[()] for _ in range(num_roots)]  # node id -> action path, root = ()

    def __call__(self, parents, actions, parent_reset):
        num_roots = len(parents)
        vp = np.empty(num_roots, np.float32)
        v = np.empty(num_roots, np.float32)
        logits = np.empty((num_roots, self.num_actions), np.float32)
        for b in range(num_roots):
            path = self.paths[b][parents[b]] + (int(actions[b]),)
            self.paths[b].append(path)  # the leaf of simulation s gets node id s + 1
            rng = np.random.default_rng([self.case_seed, b, *path])
            if self.coarse:
                vp[b], v[b] = np.round(rng.uniform(-2, 2, size=2) * 4) / 4
                logits[b] = 0.0 if rng.random() < 0.5 else np.round(rng.normal(size=self.num_actions))
            else:
                vp[b], v[b] = rng.normal(scale=2.0, size=2)
                logits[b] = rng.normal(scale=1.5, size=self.num_actions)
        return vp, v, logits


def run_search(tree, root_logits, noise, seed, net, num_simulations):
    """Step a tree through one search; returns the select outputs and the final outputs."""
    num_roots = root_logits.shape[0]
    net.reset(num_roots)
    tree.prepare(root_logits, noise=noise, seed=seed)
    picks = []
    for s in range(num_simulations):
        parents, actions, reset = tree.select()
        assert parents.dtype == np.int32 and actions.dtype == np.int32 and reset.dtype == np.bool_
        assert ((parents >= 0) & (parents <= s)).all()  # parents are nodes created before simulation s
        picks.append((parents.copy(), actions.copy(), reset.copy()))
        tree.backup(*net(parents, actions, reset))
        # One simulation expands exactly one node per root.
        np.testing.assert_array_equal(tree.visit_counts().sum(axis=1), s + 1)
    return picks, tree.visit_counts(), tree.root_values()


def random_case(rng, case):
    num_roots = int(rng.integers(1, 4))
    num_actions = int(rng.integers(2, 19))
    num_simulations = int(rng.integers(1, 101))
    cfg = SearchConfig(num_simulations=num_simulations, lstm_horizon=int(rng.integers(1, 7)),
                       discount=float(rng.choice([1.0, 0.997**4, 0.5])),
                       value_delta_max=float(rng.choice([0.01, 0.5])),
                       root_noise_fraction=float(rng.choice([0.0, 0.25])))
    root_logits = rng.normal(scale=2.0, size=(num_roots, num_actions)).astype(np.float32)
    if case % 5 == 0:
        root_logits[:] = 0.0  # flat priors: every root selection starts as a wide tie
    noise = dirichlet_noise(num_roots, num_actions, 0.3, rng) if case % 2 else None
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    return cfg, root_logits, noise, seed, PathNet(case, num_actions, coarse=case % 3 == 0)


def assert_same_search(a, b):
    picks_a, counts_a, values_a = a
    picks_b, counts_b, values_b = b
    assert len(picks_a) == len(picks_b)
    for (pa, aa, ra), (pb, ab, rb) in zip(picks_a, picks_b):
        np.testing.assert_array_equal(pa, pb)
        np.testing.assert_array_equal(aa, ab)
        np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(counts_a, counts_b)
    np.testing.assert_array_equal(values_a, values_b)  # bit-identical float32


@pytest.mark.parametrize("block", range(5))
def test_ctree_matches_reference_on_random_trees(block):
    rng = np.random.default_rng(1000 + block)
    for case in range(block * 60, block * 60 + 60):
        cfg, root_logits, noise, seed, net = random_case(rng, case)
        num_roots, num_actions = root_logits.shape
        ref = run_search(ReferenceTree(num_roots, num_actions, cfg), root_logits, noise, seed, net,
                         cfg.num_simulations)
        fast = run_search(CTree(num_roots, num_actions, cfg), root_logits, noise, seed, net, cfg.num_simulations)
        assert_same_search(fast, ref)
        assert (ref[1].sum(axis=1) == cfg.num_simulations).all()


def test_thread_count_does_not_change_results():
    # Few, short searches: OpenMP regions get slow when the test machine is oversubscribed.
    rng = np.random.default_rng(5)
    for case in range(3):
        cfg, _, _, seed, net = random_case(rng, case)
        cfg.num_simulations = min(cfg.num_simulations, 30)
        num_roots, num_actions = 37, 9
        root_logits = rng.normal(size=(num_roots, num_actions)).astype(np.float32)
        noise = dirichlet_noise(num_roots, num_actions, 0.3, rng)
        net.num_actions = num_actions
        runs = []
        for threads in (1, 2, 3):
            cfg.num_threads = threads
            runs.append(run_search(CTree(num_roots, num_actions, cfg), root_logits, noise, seed, net,
                                   cfg.num_simulations))
        assert_same_search(runs[0], runs[1])
        assert_same_search(runs[0], runs[2])


def test_tree_reuse_across_shapes_matches_fresh_trees_without_allocating():
    cfg = SearchConfig(num_simulations=30)
    rng = np.random.default_rng(9)
    shapes = [(8, 18), (3, 18), (8, 9), (1, 2), (8, 18), (16, 9), (5, 5)]
    tree = CTree(num_roots=8, num_actions=18, config=cfg)
    warm = tree.pool_allocations
    for i, (num_roots, num_actions) in enumerate(shapes):
        root_logits = rng.normal(size=(num_roots, num_actions)).astype(np.float32)
        noise = dirichlet_noise(num_roots, num_actions, 0.3, rng)
        reused = run_search(tree, root_logits, noise, i, PathNet(i, num_actions, False), 30)
        fresh = run_search(CTree(num_roots, num_actions, cfg), root_logits, noise, i,
                           PathNet(i, num_actions, False), 30)
        assert_same_search(reused, fresh)
        if (num_roots, num_actions) != (16, 9):
            # Within the largest B and B x A seen so far: no allocation.
            assert tree.pool_allocations == warm, (num_roots, num_actions)
        else:
            # 16 roots exceed the 8 seen before: the node and root slots grow (edges 16*9 = 8*18 do not).
            assert tree.pool_allocations > warm
            warm = tree.pool_allocations


@pytest.mark.parametrize("tree_cls", TREES)
def test_batched_search_driver(tree_cls):
    cfg = SearchConfig(num_simulations=12, lstm_horizon=3)
    rng = np.random.default_rng(2)
    root_logits = rng.normal(size=(4, 6)).astype(np.float32)
    noise = dirichlet_noise(4, 6, cfg.dirichlet_alpha, rng)
    net = PathNet(3, 6, False)
    net.reset(4)
    out = batched_search(root_logits, net, config=cfg, noise=noise, seed=11, tree_cls=tree_cls)
    assert isinstance(out, SearchOutput)
    assert out.visit_counts.dtype == np.int32 and out.visit_counts.shape == (4, 6)
    assert out.root_values.dtype == np.float32 and out.root_values.shape == (4,)
    np.testing.assert_array_equal(out.visit_counts.sum(axis=1), 12)
    # The driver gives the same result as stepping the tree by hand.
    _, counts, values = run_search(tree_cls(4, 6, cfg), root_logits, noise, 11, PathNet(3, 6, False), 12)
    np.testing.assert_array_equal(out.visit_counts, counts)
    np.testing.assert_array_equal(out.root_values, values)


# ---- misuse ---------------------------------------------------------------------------------

def prepared(tree_cls, num_simulations=2, num_roots=2, num_actions=3):
    tree = tree_cls(num_roots, num_actions, SearchConfig(num_simulations=num_simulations))
    tree.prepare(np.zeros((num_roots, num_actions), np.float32), seed=0)
    return tree


def leaf_outputs(num_roots=2, num_actions=3):
    return (np.zeros(num_roots, np.float32), np.zeros(num_roots, np.float32),
            np.zeros((num_roots, num_actions), np.float32))


@pytest.mark.parametrize("tree_cls", TREES)
def test_misuse_call_order(tree_cls):
    tree = tree_cls(2, 3, SearchConfig(num_simulations=2))
    with pytest.raises(ValueError, match="before prepare"):
        tree.select()
    with pytest.raises(ValueError, match="without a pending select"):
        tree.backup(*leaf_outputs())
    with pytest.raises(ValueError, match="before prepare"):
        tree.visit_counts()
    with pytest.raises(ValueError, match="before prepare"):
        tree.root_values()
    tree = prepared(tree_cls)
    with pytest.raises(ValueError, match="without a pending select"):
        tree.backup(*leaf_outputs())
    tree.select()
    with pytest.raises(ValueError, match="twice without backup"):
        tree.select()
    tree.backup(*leaf_outputs())
    tree.select()
    tree.backup(*leaf_outputs())
    with pytest.raises(ValueError, match="capacity"):
        tree.select()
    np.testing.assert_array_equal(tree.visit_counts().sum(axis=1), 2)
    tree.prepare(np.zeros((2, 3), np.float32))  # a new search starts from scratch
    tree.select()


@pytest.mark.parametrize("tree_cls", TREES)
def test_misuse_shapes_dtypes_and_values(tree_cls):
    tree = prepared(tree_cls)
    good = np.zeros((2, 3), np.float32)
    bad_prepare = [
        dict(root_logits=np.zeros((2, 3), np.float64)),
        dict(root_logits=np.zeros(3, np.float32)),
        dict(root_logits=np.zeros((2, 3, 1), np.float32)),
        dict(root_logits=np.zeros((0, 3), np.float32)),
        dict(root_logits=np.zeros((2, 0), np.float32)),
        dict(root_logits=[[0.0, 0.0]]),
        dict(root_logits=np.array([[0.0, np.nan]], np.float32)),
        dict(root_logits=np.array([[0.0, np.inf]], np.float32)),
        dict(root_logits=good, noise=np.zeros((2, 4), np.float32)),
        dict(root_logits=good, noise=np.zeros((2, 3), np.float64)),
        dict(root_logits=good, noise=np.full((2, 3), -np.inf, np.float32)),
        dict(root_logits=good, seed=1.5),
        dict(root_logits=good, seed="0"),
    ]
    for kwargs in bad_prepare:
        with pytest.raises(ValueError):
            tree.prepare(**kwargs)
    # A rejected prepare leaves the previous search intact.
    tree.select()
    vp, v, logits = leaf_outputs()
    bad_backup = [
        (vp.astype(np.float64), v, logits),
        (vp, v[:1], logits),
        (vp, v, logits[:, :2]),
        (vp, v, logits.reshape(-1)),
        (np.array([0.0, np.nan], np.float32), v, logits),
        (vp, np.array([np.inf, 0.0], np.float32), logits),
        (vp, v, np.full((2, 3), np.nan, np.float32)),
        (vp, v, list(logits)),
    ]
    for args in bad_backup:
        with pytest.raises(ValueError):
            tree.backup(*args)
    tree.backup(vp, v, logits)  # still pending after the rejected calls
    np.testing.assert_array_equal(tree.visit_counts().sum(axis=1), 1)


@pytest.mark.parametrize("tree_cls", TREES)
def test_misuse_construction(tree_cls):
    cfg = SearchConfig(num_simulations=4)
    for num_roots, num_actions in [(0, 3), (2, 0), (-1, 3), (2.5, 3)]:
        with pytest.raises(ValueError):
            tree_cls(num_roots, num_actions, cfg)
    for bad in [SearchConfig(lstm_horizon=0), SearchConfig(num_simulations=0), SearchConfig(discount=0.0),
                SearchConfig(num_threads=0)]:
        with pytest.raises(ValueError):
            tree_cls(2, 3, bad)
    with pytest.raises(ValueError):
        tree_cls(2, 3, {"num_simulations": 4})


def test_non_contiguous_inputs_are_accepted():
    cfg = SearchConfig(num_simulations=5)
    rng = np.random.default_rng(4)
    wide = rng.normal(size=(3, 8)).astype(np.float32)
    a = run_search(CTree(3, 4, cfg), wide[:, ::2], None, 0, PathNet(0, 4, False), 5)
    b = run_search(CTree(3, 4, cfg), np.ascontiguousarray(wide[:, ::2]), None, 0, PathNet(0, 4, False), 5)
    assert_same_search(a, b)


def test_trees_in_concurrent_threads_match_sequential_runs():
    """select()/backup() release the GIL; separate trees share no state, so searches running in
    two Python threads at once give exactly the sequential results."""
    import threading

    cfg = SearchConfig(num_simulations=40, num_threads=1)
    rng = np.random.default_rng(8)
    inputs = [(rng.normal(size=(64, 18)).astype(np.float32), dirichlet_noise(64, 18, 0.3, rng)) for _ in range(2)]

    def search(i):
        root_logits, noise = inputs[i]
        return run_search(CTree(64, 18, cfg), root_logits, noise, i, PathNet(i, 18, False), 40)

    sequential = [search(0), search(1)]
    results = [None, None]
    threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, search(i))) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, sequential):
        assert_same_search(got, want)


@pytest.mark.parametrize("num_actions", [1, 2])
def test_tiny_action_spaces_match_reference(num_actions):
    cfg = SearchConfig(num_simulations=25, lstm_horizon=2)
    rng = np.random.default_rng(num_actions)
    root_logits = rng.normal(size=(3, num_actions)).astype(np.float32)
    runs = [run_search(cls(3, num_actions, cfg), root_logits, None, 4, PathNet(4, num_actions, True), 25)
            for cls in TREES]
    assert_same_search(runs[0], runs[1])
    if num_actions == 1:
        np.testing.assert_array_equal(runs[0][1], 25)  # a chain: every simulation goes one deeper


def test_batched_search_reuses_a_given_tree():
    cfg = SearchConfig(num_simulations=10)
    rng = np.random.default_rng(12)
    tree = CTree(8, 5, cfg)
    warm = tree.pool_allocations
    for i, num_roots in enumerate((8, 3, 8)):
        root_logits = rng.normal(size=(num_roots, 5)).astype(np.float32)
        net = PathNet(i, 5, False)
        net.reset(num_roots)
        reused = batched_search(root_logits, net, cfg, seed=i, tree=tree)
        net.reset(num_roots)
        fresh = batched_search(root_logits, net, cfg, seed=i)
        np.testing.assert_array_equal(reused.visit_counts, fresh.visit_counts)
        np.testing.assert_array_equal(reused.root_values, fresh.root_values)
    assert tree.pool_allocations == warm
    with pytest.raises(ValueError, match="num_simulations"):
        batched_search(root_logits, net, SearchConfig(num_simulations=11), tree=tree)
