"""ReferenceTree: the search specification (shared/SPEC_SEARCH.md) as plain, slow Python.

This is the executable spec and the test oracle for CTree: every formula is written as in the
spec, evaluated in the spec's order with Python floats (IEEE doubles) and the `math` module
(C libm), never numpy ufuncs. Numpy appears only at the boundary (inputs and outputs).
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.search.inputs import SearchPhase, check_backup, check_config, check_prepare, check_size

MASK64 = (1 << 64) - 1
GOLD = 0x9E3779B97F4A7C15
TIE_TOLERANCE = 1e-6


def splitmix_mix(z: int) -> int:
    """SplitMix64 finaliser, all arithmetic mod 2^64."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """The tie-break stream of one root."""

    def __init__(self, seed: int, root: int) -> None:
        self.state = splitmix_mix((seed + (root + 1) * GOLD) & MASK64)

    def next(self) -> int:
        self.state = (self.state + GOLD) & MASK64
        return splitmix_mix(self.state)


def softmax(logits: list[float]) -> list[float]:
    """exp(l - max l) / sum, the sum taken in increasing action order."""
    top = max(logits)
    exps = [math.exp(x - top) for x in logits]
    total = 0.0
    for e in exps:  # an explicit loop: built-in sum() of floats is compensated on Python >= 3.12
        total = total + e
    return [e / total for e in exps]


class Node:
    """One node; a child exists only once it has been backed up (so N > 0)."""

    __slots__ = ("node_id", "depth", "value_prefix", "prior", "children", "visits", "value_sum", "parent")

    def __init__(self, node_id: int, depth: int, value_prefix: float, prior: list[float],
                 parent: Node | None) -> None:
        self.node_id = node_id
        self.depth = depth
        self.value_prefix = value_prefix
        self.prior = prior
        self.children: dict[int, Node] = {}
        self.visits = 0
        self.value_sum = 0.0
        self.parent = parent

    def value(self) -> float:
        return self.value_sum / self.visits if self.visits > 0 else 0.0


class RootSearch:
    """The tree of one root: its nodes (index = node id), min-max stats and tie-break stream."""

    def __init__(self, config: SearchConfig, prior: list[float], seed: int, root_index: int) -> None:
        self.config = config
        root = Node(node_id=0, depth=0, value_prefix=0.0, prior=prior, parent=None)
        root.visits = 1  # the expansion counts as one visit
        self.nodes = [root]
        self.minimum = math.inf
        self.maximum = -math.inf
        self.rng = SplitMix64(seed, root_index)
        self.pending: tuple[Node, int] | None = None

    def is_reset(self, node: Node) -> bool:
        return node.depth % self.config.lstm_horizon == 0

    def reward(self, parent: Node, child: Node) -> float:
        if self.is_reset(parent):
            return child.value_prefix
        return child.value_prefix - parent.value_prefix

    def q(self, parent: Node, child: Node) -> float:
        return self.reward(parent, child) + self.config.discount * child.value()

    def normalize(self, q: float) -> float:
        d = self.maximum - self.minimum
        if d > 0:
            return (q - self.minimum) / max(d, self.config.value_delta_max)
        return q

    def break_tie(self, scores: list[float]) -> int:
        best = -math.inf
        tied: list[int] = []
        for a, score in enumerate(scores):
            if score > best:
                best = score
                tied = [a]
            elif score >= best - TIE_TOLERANCE:
                tied.append(a)
        if len(tied) == 1:
            return tied[0]
        return tied[self.rng.next() % len(tied)]

    def select(self) -> tuple[int, int, bool]:
        cfg = self.config
        node = self.nodes[0]
        parent_mean_q = 0.0
        while True:
            k = 0
            total = 0.0
            for a in sorted(node.children):
                k += 1
                total = total + self.q(node, node.children[a])
            if node is self.nodes[0] and k > 0:
                mean_q = total / k
            else:
                mean_q = (parent_mean_q + total) / (k + 1)
            parent_mean_q = mean_q
            n_sum = node.visits - 1
            c = math.log(((n_sum + cfg.c_base) + 1) / cfg.c_base) + cfg.c_init
            scores = []
            for a in range(len(node.prior)):
                child = node.children.get(a)
                q = self.q(node, child) if child is not None else mean_q
                value_score = min(max(self.normalize(q), 0.0), 1.0)
                child_visits = child.visits if child is not None else 0
                prior_score = ((node.prior[a] * c) * math.sqrt(n_sum)) / (child_visits + 1)
                scores.append(prior_score + value_score)
            action = self.break_tie(scores)
            if action in node.children:
                node = node.children[action]
                continue
            self.pending = (node, action)
            return node.node_id, action, self.is_reset(node)

    def backup(self, value_prefix: float, value: float, logits: list[float]) -> None:
        parent, action = self.pending
        self.pending = None
        # Node ids: root 0, the node created in simulation s is s + 1 (= len(nodes) here).
        leaf = Node(node_id=len(self.nodes), depth=parent.depth + 1, value_prefix=value_prefix,
                    prior=softmax(logits), parent=parent)
        parent.children[action] = leaf
        self.nodes.append(leaf)
        ret = value
        node = leaf
        while True:
            node.value_sum = node.value_sum + ret
            node.visits += 1
            if node.parent is None:
                break
            # The spec's "r + γ·W(j)/N(j)" is Q(parent, j) = r + γ·V(j) with V = W/N: γ times the mean.
            q = self.q(node.parent, node)
            self.minimum = min(self.minimum, q)
            self.maximum = max(self.maximum, q)
            ret = self.reward(node.parent, node) + self.config.discount * ret
            node = node.parent


class ReferenceTree:
    """Pure-Python twin of CTree with the same methods, arguments and checks."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        check_config(config)
        self.num_roots = check_size("num_roots", num_roots)
        self.num_actions = check_size("num_actions", num_actions)
        self.config = dataclasses.replace(config)  # a private copy: later edits do not leak in
        self.phase = SearchPhase(self.config.num_simulations)
        self.roots: list[RootSearch] = []

    @property
    def simulations_done(self) -> int:
        """Simulations backed up in the current search (the next leaf gets node id this + 1)."""
        return self.phase.done

    def prepare(self, root_logits: np.ndarray, noise: np.ndarray | None = None, seed: int = 0) -> None:
        """root_logits: float32[B, A]; noise: float32[B, A] or None; starts a new search."""
        root_logits, noise, seed = check_prepare(root_logits, noise, seed)
        self.num_roots, self.num_actions = root_logits.shape
        eps = self.config.root_noise_fraction
        self.roots = []
        for b in range(self.num_roots):
            prior = softmax(root_logits[b].tolist())  # float32 -> Python float is exact
            if noise is not None:
                prior = [(1 - eps) * p + eps * n for p, n in zip(prior, noise[b].tolist())]
            self.roots.append(RootSearch(self.config, prior, seed, b))
        self.phase.start()

    def select(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns parents int32[B], actions int32[B], parent_reset bool[B] of the new leaves."""
        self.phase.before_select()
        picks = [root.select() for root in self.roots]
        self.phase.after_select()
        parents, actions, resets = zip(*picks)
        return (np.array(parents, dtype=np.int32), np.array(actions, dtype=np.int32),
                np.array(resets, dtype=bool))

    def backup(self, value_prefix: np.ndarray, value: np.ndarray, logits: np.ndarray) -> None:
        """value_prefix, value: float32[B]; logits: float32[B, A] of the leaves just selected."""
        self.phase.before_backup()
        value_prefix, value, logits = check_backup(value_prefix, value, logits, self.num_roots, self.num_actions)
        for root, vp, v, row in zip(self.roots, value_prefix.tolist(), value.tolist(), logits.tolist()):
            root.backup(vp, v, row)
        self.phase.after_backup()

    def visit_counts(self) -> np.ndarray:
        """int32[B, A]: visits of each root's children."""
        self.phase.before_output("visit_counts")
        counts = np.zeros((self.num_roots, self.num_actions), dtype=np.int32)
        for b, root in enumerate(self.roots):
            for a, child in root.nodes[0].children.items():
                counts[b, a] = child.visits
        return counts

    def root_values(self) -> np.ndarray:
        """float32[B]: W(root) / (N(root) - 1), 0 before any simulation."""
        self.phase.before_output("root_values")
        values = []
        for root in self.roots:
            node = root.nodes[0]
            n = node.visits - 1
            values.append(node.value_sum / n if n > 0 else 0.0)
        return np.array(values, dtype=np.float32)
