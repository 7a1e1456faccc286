"""GumbelReferenceTree: the Gumbel search specification (shared/SPEC_GUMBEL.md) as plain Python.

The executable spec and the test oracle of GumbelCTree. It shares the node, the backup and
the min-max rules with the pUCT ReferenceTree (reference.py), and replaces selection: sequential
halving over the root's top actions by g + logits + sigma, and the deterministic interior rule
argmax [pi'(a) - N(a) / (1 + n_sum)]. Python floats (IEEE doubles) and `math`, in the spec's
evaluation order; numpy only at the boundary.
"""
from __future__ import annotations

import math

import numpy as np

from ezero_async.config.sections import SearchConfig
from ezero_async.search.halving import considered_actions, visit_table
from ezero_async.search.inputs import check_gumbel_prepare
from ezero_async.search.reference import Node, ReferenceTree, RootSearch, softmax


def softmax_double(values: list[float]) -> list[float]:
    """exp(x - max x) / sum over doubles, the sum taken in increasing action order."""
    top = values[0]
    for x in values[1:]:
        if x > top:
            top = x
    exps = [math.exp(x - top) for x in values]
    total = 0.0
    for e in exps:
        total = total + e
    return [e / total for e in exps]


class GumbelRootSearch(RootSearch):
    """The tree of one root in Gumbel mode: RootSearch's nodes, backup and min-max, plus each
    node's raw logits and expansion value v0, the root's Gumbel draw and the visit table."""

    def __init__(self, config: SearchConfig, logits: list[float], value: float, gumbel: list[float],
                 table: list[int], seed: int, root_index: int) -> None:
        super().__init__(config, softmax(logits), seed, root_index)
        root = self.nodes[0]
        root.value_sum = value  # FIX vs SPEC_SEARCH.md: N = 1 and W = v-hat at the root
        self.logits = [logits]   # node id -> raw logits (float32 values as doubles)
        self.v0 = [value]        # node id -> network value at expansion
        self.gumbel = gumbel
        self.table = table

    # -------------------------------------------------------------- per-node quantities

    def visits(self, node: Node) -> list[int]:
        return [node.children[a].visits if a in node.children else 0 for a in range(len(node.prior))]

    def completed_scores(self, node: Node) -> list[float]:
        """sigma(a) = ((c_visit + max N) * c_scale) * clip(normalize(completed q(a)), 0, 1)."""
        cfg = self.config
        counts = self.visits(node)
        n_sum = 0
        for n in counts:
            n_sum += n
        v0 = self.v0[node.node_id]
        if n_sum == 0:
            v_mix = v0
        else:
            p = 0.0
            t = 0.0
            for a in range(len(counts)):
                if counts[a] > 0:
                    p = p + node.prior[a]
                    t = t + node.prior[a] * self.q(node, node.children[a])
            v_mix = v0 if p < 1e-12 else (v0 + ((n_sum * t) / p)) / (1 + n_sum)
        coef = (cfg.gumbel_c_visit + max(counts)) * cfg.gumbel_c_scale
        sigma = []
        for a in range(len(counts)):
            q = self.q(node, node.children[a]) if counts[a] > 0 else v_mix
            sigma.append(coef * min(max(self.normalize(q), 0.0), 1.0))
        return sigma

    def improved_policy(self, node: Node) -> list[float]:
        """pi'(node) = softmax(logits + sigma), in double."""
        sigma = self.completed_scores(node)
        return softmax_double([l + s for l, s in zip(self.logits[node.node_id], sigma)])

    def root_scores(self) -> list[float]:
        """(g + logits) + sigma at the root, with the current statistics."""
        sigma = self.completed_scores(self.nodes[0])
        return [(g + l) + s for g, l, s in zip(self.gumbel, self.logits[0], sigma)]

    # -------------------------------------------------------------- search steps

    def select(self) -> tuple[int, int, bool]:
        root = self.nodes[0]
        need = self.table[root.visits - 1]  # simulation j = N(root) - 1
        counts = self.visits(root)
        scores = self.root_scores()
        action = _argmax(scores, [n == need for n in counts])
        node = root
        while action in node.children:
            node = node.children[action]
            pi = self.improved_policy(node)
            counts = self.visits(node)
            n_sum = 0
            for n in counts:
                n_sum += n
            action = _argmax([pi[a] - counts[a] / (1 + n_sum) for a in range(len(counts))],
                             [True] * len(counts))
        self.pending = (node, action)
        return node.node_id, action, self.is_reset(node)

    def backup(self, value_prefix: float, value: float, logits: list[float]) -> None:
        super().backup(value_prefix, value, logits)
        self.logits.append(logits)
        self.v0.append(value)

    def final_action(self) -> int:
        counts = self.visits(self.nodes[0])
        top = max(counts)
        scores = self.root_scores()
        return _argmax(scores, [n == top for n in counts])


def _argmax(scores: list[float], allowed: list[bool]) -> int:
    """The first allowed index with the strictly largest score (the lowest index on exact ties);
    0 if nothing is allowed (the visit table never lets that happen)."""
    best, chosen = -math.inf, -1
    for a, score in enumerate(scores):
        if allowed[a] and (chosen < 0 or score > best):
            best, chosen = score, a
    return max(chosen, 0)


class GumbelReferenceTree(ReferenceTree):
    """Pure-Python twin of GumbelCTree with the same methods, arguments and checks (select,
    backup and visit counts are ReferenceTree's, over GumbelRootSearch roots)."""

    def prepare(self, root_logits: np.ndarray, root_values: np.ndarray, gumbel: np.ndarray | None = None,
                seed: int = 0) -> None:
        """root_logits: float32[B, A]; root_values: float32[B]; gumbel: float32[B, A] or None (zeros)."""
        root_logits, root_values, gumbel, seed = check_gumbel_prepare(root_logits, root_values, gumbel, seed)
        self.num_roots, self.num_actions = root_logits.shape
        m = considered_actions(self.num_actions, self.config.gumbel_max_considered)
        table = visit_table(m, self.config.num_simulations).tolist()
        self.roots = [
            GumbelRootSearch(self.config, root_logits[b].tolist(), float(root_values[b]), gumbel[b].tolist(),
                             table, seed, b)
            for b in range(self.num_roots)
        ]
        self.phase.start()

    def actions(self) -> np.ndarray:
        """int32[B]: the search's action per root (most visited, then best g + logits + sigma)."""
        self.phase.before_output("actions")
        return np.array([root.final_action() for root in self.roots], dtype=np.int32)

    def improved_policy(self) -> np.ndarray:
        """float32[B, A]: pi' at each root, the policy target."""
        self.phase.before_output("improved_policy")
        return np.array([root.improved_policy(root.nodes[0]) for root in self.roots], dtype=np.float32)

    def root_values(self) -> np.ndarray:
        """float32[B]: W / N at the root over v-hat and the backed-up returns (v-hat before any)."""
        self.phase.before_output("root_values")
        return np.array([root.nodes[0].value_sum / root.nodes[0].visits for root in self.roots], dtype=np.float32)
