"""Micro-benchmark of the batched search tree (ezero_async.search) with synthetic network outputs.

Prints, per configuration, the median over repeats of
  tree ms          select() + backup() of one whole search (network outputs precomputed),
  driver ms        the whole batched_search() with a trivial numpy recurrent_fn (a fresh tree
                   per call: includes allocating and first-touching the node pool),
  driver reuse ms  the same with a warm tree passed in (tree=...),
  us/root-sim      time / (B * S),
plus the ReferenceTree on a small case (and the speed-up), the tree time for S = 25/50/100
(cost per root-simulation should stay about flat: linear in S), and the Gumbel tree against
CTree in the same run: tree work per root-simulation at equal S, and a 16-simulation Gumbel
search against a 50-simulation CTree search of the same roots. run() returns the headline
figures that tools/bench.py reports.

    python tools/bench_search.py            # full table
    python tools/bench_search.py --quick    # a few seconds
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from ezero_async.search import (
    CTree, GumbelCTree, ReferenceTree, SearchConfig, batched_search, dirichlet_noise, gumbel_noise,
)


class SyntheticNet:
    """Precomputed leaf outputs: value_prefix, value float32[S, B], logits float32[S, B, A]."""

    def __init__(self, num_roots: int, num_actions: int, num_simulations: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.root_logits = rng.normal(size=(num_roots, num_actions)).astype(np.float32)
        self.value_prefix = rng.uniform(-1, 1, size=(num_simulations, num_roots)).astype(np.float32)
        self.value = rng.uniform(-1, 1, size=(num_simulations, num_roots)).astype(np.float32)
        self.logits = rng.normal(size=(num_simulations, num_roots, num_actions)).astype(np.float32)
        self.noise = dirichlet_noise(num_roots, num_actions, 0.3, rng)
        self.root_values = rng.uniform(-1, 1, size=num_roots).astype(np.float32)
        self.gumbel = gumbel_noise(num_roots, num_actions, rng)
        self.calls = 0

    def recurrent_fn(self, parents, actions, parent_reset):
        """Trivial numpy work standing in for the network: a row lookup per call."""
        s = self.calls % len(self.value)
        self.calls += 1
        return self.value_prefix[s], self.value[s], self.logits[s]


def time_tree(tree, net: SyntheticNet, num_simulations: int) -> float:
    """Seconds for select + backup over one search (prepare excluded)."""
    if isinstance(tree, GumbelCTree):
        tree.prepare(net.root_logits, net.root_values, net.gumbel)
    else:
        tree.prepare(net.root_logits, noise=net.noise, seed=0)
    start = time.perf_counter()
    for s in range(num_simulations):
        tree.select()
        tree.backup(net.value_prefix[s], net.value[s], net.logits[s])
    return time.perf_counter() - start


def time_driver(net: SyntheticNet, config: SearchConfig, tree=None) -> float:
    """Seconds for a whole batched_search (a fresh tree per call unless one is given)."""
    start = time.perf_counter()
    batched_search(net.root_logits, net.recurrent_fn, config, noise=net.noise, seed=0, tree=tree)
    return time.perf_counter() - start


def median_ms(fn, repeats: int) -> float:
    return 1e3 * statistics.median(fn() for _ in range(repeats))


def run(quick: bool = False, repeats: int | None = None) -> list[tuple[str, float, str]]:
    """Print the tables; return headline (measurement, value, unit) figures for tools/bench.py."""
    repeats = repeats or (3 if quick else 9)
    actions, sims = 18, 50
    batches = (64, 256) if quick else (64, 256, 1536)
    # B=256 is in both the quick and the full sweep, so the headline compares across modes.
    headline_roots = 256
    headlines: list[tuple[str, float, str]] = []

    print(f"CTree, A={actions}, S={sims}, median of {repeats}")
    print(f"{'B':>6} {'threads':>7} {'tree ms':>9} {'us/root-sim':>11} {'driver ms':>10} {'us/root-sim':>11} "
          f"{'driver reuse ms':>15}")
    for num_roots in batches:
        net = SyntheticNet(num_roots, actions, sims)
        for threads in (1, 2):
            cfg = SearchConfig(num_simulations=sims, num_threads=threads)
            tree = CTree(num_roots, actions, cfg)
            time_tree(tree, net, sims)  # warm the pool and caches
            tree_ms = median_ms(lambda: time_tree(tree, net, sims), repeats)
            driver_ms = median_ms(lambda: time_driver(net, cfg), repeats)
            reuse_ms = median_ms(lambda: time_driver(net, cfg, tree), repeats)
            per = 1e3 / (num_roots * sims)
            print(f"{num_roots:>6} {threads:>7} {tree_ms:>9.2f} {tree_ms * per:>11.3f} "
                  f"{driver_ms:>10.2f} {driver_ms * per:>11.3f} {reuse_ms:>15.2f}")
            if num_roots == headline_roots and threads == 1:
                # search.num_threads defaults to 1 and the search service keeps one warm tree.
                rate = num_roots * sims * 1e3
                headlines += [(f"CTree batched_search, warm tree, B={num_roots} S={sims} 1 thread",
                               rate / reuse_ms, "root-sims/s"),
                              (f"CTree select+backup only, B={num_roots} S={sims} 1 thread", rate / tree_ms,
                               "root-sims/s")]

    ref_roots = 4 if quick else 16
    net = SyntheticNet(ref_roots, actions, sims)
    cfg = SearchConfig(num_simulations=sims)
    ref_ms = median_ms(lambda: time_tree(ReferenceTree(ref_roots, actions, cfg), net, sims), min(repeats, 3))
    tree = CTree(ref_roots, actions, cfg)
    c_ms = median_ms(lambda: time_tree(tree, net, sims), repeats)
    print(f"\nReferenceTree vs CTree (1 thread), B={ref_roots}, A={actions}, S={sims}")
    print(f"{'tree':>14} {'ms':>9} {'us/root-sim':>11}")
    print(f"{'ReferenceTree':>14} {ref_ms:>9.2f} {ref_ms * 1e3 / (ref_roots * sims):>11.2f}")
    print(f"{'CTree':>14} {c_ms:>9.3f} {c_ms * 1e3 / (ref_roots * sims):>11.3f}")
    print(f"speed-up {ref_ms / c_ms:.0f}x")
    headlines += [(f"ReferenceTree select+backup, B={ref_roots} S={sims}", ref_roots * sims * 1e3 / ref_ms,
                   "root-sims/s"),
                  (f"CTree speed-up over ReferenceTree, B={ref_roots}", ref_ms / c_ms, "x")]

    num_roots = 64 if quick else 256
    print(f"\nScaling in S, CTree 1 thread, B={num_roots}, A={actions}")
    print(f"{'S':>5} {'tree ms':>9} {'us/root-sim':>11}")
    for num_simulations in (25, 50, 100):
        net = SyntheticNet(num_roots, actions, num_simulations)
        tree = CTree(num_roots, actions, SearchConfig(num_simulations=num_simulations))
        time_tree(tree, net, num_simulations)
        ms = median_ms(lambda: time_tree(tree, net, num_simulations), repeats)
        print(f"{num_simulations:>5} {ms:>9.2f} {ms * 1e3 / (num_roots * num_simulations):>11.3f}")

    headlines += gumbel_against_ctree(256 if quick else 1536, actions, repeats)
    return headlines


def gumbel_against_ctree(num_roots: int, num_actions: int, repeats: int) -> list[tuple[str, float, str]]:
    """Gumbel tree work against CTree's on the same roots, 1 thread, medians of interleaved repeats."""
    print(f"\nGumbelCTree vs CTree (1 thread), B={num_roots}, A={num_actions}")
    cases = {
        "CTree S=16": (CTree, 16), "GumbelCTree S=16": (GumbelCTree, 16), "CTree S=50": (CTree, 50),
    }
    nets = {sims: SyntheticNet(num_roots, num_actions, sims) for sims in (16, 50)}
    trees = {}
    for name, (tree_cls, sims) in cases.items():
        cfg = SearchConfig(num_simulations=sims, mode="gumbel" if tree_cls is GumbelCTree else "pucb")
        trees[name] = tree_cls(num_roots, num_actions, cfg)
        time_tree(trees[name], nets[sims], sims)  # warm
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):  # interleaved, so machine noise hits every case alike
        for name, (_, sims) in cases.items():
            samples[name].append(time_tree(trees[name], nets[sims], sims))
    ms = {name: 1e3 * statistics.median(values) for name, values in samples.items()}
    print(f"{'tree':>18} {'ms':>9} {'us/root-sim':>11}")
    for name, (_, sims) in cases.items():
        print(f"{name:>18} {ms[name]:>9.2f} {ms[name] * 1e3 / (num_roots * sims):>11.3f}")
    per_sim = ms["GumbelCTree S=16"] / ms["CTree S=16"]
    whole = ms["GumbelCTree S=16"] / ms["CTree S=50"]
    print(f"Gumbel / CTree per root-simulation (S=16 both): {per_sim:.2f}x")
    print(f"Gumbel S=16 / CTree S=50, whole search of the same roots: {whole:.2f}x")
    return [(f"GumbelCTree / CTree tree work per root-sim, B={num_roots} S=16", per_sim, "x"),
            (f"GumbelCTree S=16 / CTree S=50 search, B={num_roots}", whole, "x")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats (a few seconds)")
    parser.add_argument("--repeats", type=int, default=None, help="repeats per measurement (median reported)")
    args = parser.parse_args()
    run(args.quick, args.repeats)


if __name__ == "__main__":
    main()
