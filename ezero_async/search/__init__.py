"""Batched EfficientZero tree search (shared/SPEC_SEARCH.md).

CTree is the compiled tree (ext/ctree.pyx), ReferenceTree the pure-Python executable spec with
the same methods; batched_search drives either over a recurrent function; dirichlet_noise makes
the root noise; select_action / greedy_action turn visit counts into actions.
"""
from ezero_async.config.sections import SearchConfig
from ezero_async.search.acting import greedy_action, select_action
from ezero_async.search.driver import RecurrentFn, SearchOutput, batched_search
from ezero_async.search.noise import dirichlet_noise
from ezero_async.search.reference import ReferenceTree
from ezero_async.search.tree import CTree

__all__ = [
    "CTree", "RecurrentFn", "ReferenceTree", "SearchConfig", "SearchOutput", "batched_search",
    "dirichlet_noise", "greedy_action", "select_action",
]
