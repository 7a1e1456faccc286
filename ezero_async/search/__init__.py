"""Batched EfficientZero tree search: pUCT (shared/SPEC_SEARCH.md) and Gumbel (SPEC_GUMBEL.md).

CTree / GumbelCTree are the compiled trees (ext/ctree.pyx, ext/gumbel.pyx), ReferenceTree /
GumbelReferenceTree the pure-Python executable specs with the same methods; batched_search and
batched_gumbel_search drive them over a recurrent function; dirichlet_noise and gumbel_noise
make the root noise (root_noise picks by search mode); select_action / greedy_action turn visit counts into actions (pUCT mode).
"""
from ezero_async.config.sections import SearchConfig
from ezero_async.search.acting import greedy_action, select_action
from ezero_async.search.driver import (
    GumbelSearchOutput, RecurrentFn, SearchOutput, batched_gumbel_search, batched_search,
)
from ezero_async.search.gumbel_reference import GumbelReferenceTree
from ezero_async.search.gumbel_tree import GumbelCTree
from ezero_async.search.noise import dirichlet_noise, gumbel_noise, root_noise
from ezero_async.search.reference import ReferenceTree
from ezero_async.search.tree import CTree

__all__ = [
    "CTree", "GumbelCTree", "GumbelReferenceTree", "GumbelSearchOutput", "RecurrentFn", "ReferenceTree",
    "SearchConfig", "SearchOutput", "batched_gumbel_search", "batched_search", "dirichlet_noise",
    "greedy_action", "gumbel_noise", "root_noise", "select_action",
]
