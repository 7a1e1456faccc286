# Batched Gumbel search tree (shared/SPEC_GUMBEL.md): declarations.
#
# The tree is CTree's node arena (ctree.pxd: SearchPool, its Node/Edge/RootState layout, backup
# and min-max) plus what Gumbel selection reads besides: each node's raw logits and expansion
# value v0, each root's Gumbel draw, and the root's visit table. Slot g = b * stride + i of
# node i of root b indexes v0 and (times A) the logits, as it indexes the arena's nodes.
from libc.stdint cimport int32_t

from ezero_async._ext.ctree cimport SearchPool


ctypedef struct GumbelPool:
    SearchPool tree             # nodes, edges, per-root min-max and pending leaf
    double c_visit              # sigma = ((c_visit + max N) * c_scale) * q-hat
    double c_scale
    float* logits               # [node slots * A]: each node's raw logits (promoted to double where used)
    double* v0                  # [node slots]: network value at the node's expansion
    double* gumbel              # [B * A]: the roots' Gumbel draws
    double* scratch             # [B * 2A]: sigma and pi' of one node visit, per root (thread-safe)
    int32_t* table              # [S]: visits an action needs to be chosen at root simulation j
    Py_ssize_t slot_capacity    # node slots the v0 block holds
    Py_ssize_t logit_capacity   # entries the logits block holds
    Py_ssize_t row_capacity     # B * A the gumbel block holds (scratch holds twice that)


cdef int32_t improved_into(const GumbelPool* pool, Py_ssize_t b, int32_t node, double* sigma,
                           double* out) noexcept nogil


cdef class GumbelCore:
    cdef GumbelPool pool
    cdef int num_threads
    cdef readonly int phase         # 0 not prepared, 1 ready to select, 2 selected, 3 inside a nogil call
