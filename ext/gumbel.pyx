# Batched Gumbel search tree (shared/SPEC_GUMBEL.md): implementation.
#
# Arithmetic follows the spec literally (doubles, libm exp, its evaluation order; built with
# -ffp-contract=off), so results are bit-identical to GumbelReferenceTree
# (ezero_async/search/gumbel_reference.py). The expansion and backup are CTree's (ctree.pyx);
# only the root's initial statistics, the selection rules and the outputs live here. Input
# checking is the Python wrapper's job (ezero_async/search/gumbel_tree.py).
from cython.parallel cimport prange
from libc.math cimport INFINITY, exp
from libc.stdint cimport int32_t
from libc.stdlib cimport free

from ezero_async._ext.ctree cimport (
    Edge, Node, SearchPool, backup_root, expand, grow_block, release_pool, reserve_pool, root_normaliser,
    value_score,
)

# GumbelCore.phase values (as SearchCore's).
cdef enum:
    UNPREPARED = 0
    READY = 1
    SELECTED = 2
    BUSY = 3


cdef int32_t completed_sigma(const GumbelPool* pool, Py_ssize_t b, int32_t node, double* sigma) noexcept nogil:
    """sigma[a] = ((c_visit + max N) * c_scale) * clip(normalize(completed q(a)), 0, 1); returns
    n_sum = the node's children's visits."""
    cdef const SearchPool* tree = &pool.tree
    cdef Py_ssize_t A = tree.num_actions
    cdef Py_ssize_t g = b * tree.stride + node
    cdef const Edge* edges = tree.edges + g * A
    cdef double v0 = pool.v0[g]
    cdef double lo, scale, v_mix, p, t, coef, q
    cdef bint normalise
    cdef int32_t n, n_sum = 0, max_n = 0
    cdef Py_ssize_t a
    p = 0.0
    t = 0.0
    for a in range(A):  # one pass: n_sum, max N, and P, T over the visited children in action order
        n = edges[a].visits
        if n > 0:
            n_sum = n_sum + n
            if n > max_n:
                max_n = n
            p = p + edges[a].prior
            t = t + edges[a].prior * edges[a].q
    v_mix = v0
    if n_sum > 0 and not p < 1e-12:
        v_mix = (v0 + ((<double>n_sum * t) / p)) / <double>(1 + n_sum)
    root_normaliser(tree.roots + b, tree.value_delta_max, &lo, &scale, &normalise)
    coef = (pool.c_visit + <double>max_n) * pool.c_scale
    for a in range(A):
        q = edges[a].q if edges[a].visits > 0 else v_mix
        sigma[a] = coef * value_score(q, lo, scale, normalise)
    return n_sum


cdef int32_t improved_into(const GumbelPool* pool, Py_ssize_t b, int32_t node, double* sigma,
                           double* out) noexcept nogil:
    """out = pi'(node) = softmax(logits + sigma) in double (sigma is filled as a by-product);
    returns n_sum = the node's children's visits."""
    cdef Py_ssize_t A = pool.tree.num_actions
    cdef const float* logits = pool.logits + (b * pool.tree.stride + node) * A
    cdef double top, total
    cdef Py_ssize_t a
    cdef int32_t n_sum = completed_sigma(pool, b, node, sigma)
    for a in range(A):
        out[a] = <double>logits[a] + sigma[a]
    top = out[0]
    for a in range(1, A):
        if out[a] > top:
            top = out[a]
    total = 0.0
    for a in range(A):
        out[a] = exp(out[a] - top)
        total = total + out[a]
    for a in range(A):
        out[a] = out[a] / total
    return n_sum


cdef Py_ssize_t best_root_action(const GumbelPool* pool, Py_ssize_t b, int32_t need, double* sigma) noexcept nogil:
    """argmax of (g + logits) + sigma over the root's actions with N == need (need < 0: the most
    visited ones); the lowest index on exact ties; 0 if none qualifies (the table prevents it)."""
    cdef const SearchPool* tree = &pool.tree
    cdef Py_ssize_t A = tree.num_actions
    cdef Py_ssize_t g = b * tree.stride
    cdef const Edge* edges = tree.edges + g * A
    cdef const float* logits = pool.logits + g * A
    cdef const double* gumbel = pool.gumbel + b * A
    cdef Py_ssize_t a, chosen = -1
    cdef double best = -INFINITY, score
    if need < 0:
        for a in range(A):
            if edges[a].visits > need:
                need = edges[a].visits
    completed_sigma(pool, b, 0, sigma)
    for a in range(A):
        if edges[a].visits == need:
            score = (gumbel[a] + <double>logits[a]) + sigma[a]
            if chosen < 0 or score > best:
                best = score
                chosen = a
    return chosen if chosen >= 0 else 0


cdef void select_gumbel(GumbelPool* pool, Py_ssize_t b, int32_t* out_parent, int32_t* out_action,
                        unsigned char* out_reset) noexcept nogil:
    cdef SearchPool* tree = &pool.tree
    cdef Py_ssize_t A = tree.num_actions
    cdef Node* nodes = tree.nodes + b * tree.stride
    cdef double* sigma = pool.scratch + b * 2 * A
    cdef double* pi = sigma + A
    cdef const Edge* edges = tree.edges + b * tree.stride * A
    cdef Py_ssize_t a, chosen
    cdef int32_t node = 0, n_sum
    cdef double best, score
    chosen = best_root_action(pool, b, pool.table[tree.sims_done], sigma)
    while edges[chosen].visits > 0:
        node = edges[chosen].child
        edges = tree.edges + (b * tree.stride + node) * A
        n_sum = improved_into(pool, b, node, sigma, pi)
        chosen = 0
        best = pi[0] - <double>edges[0].visits / <double>(1 + n_sum)
        for a in range(1, A):
            score = pi[a] - <double>edges[a].visits / <double>(1 + n_sum)
            if score > best:
                best = score
                chosen = a
    out_parent[b] = node
    out_action[b] = <int32_t>chosen
    out_reset[b] = nodes[node].depth % tree.horizon == 0
    tree.roots[b].pending_parent = node
    tree.roots[b].pending_action = <int32_t>chosen


cdef void backup_gumbel(GumbelPool* pool, Py_ssize_t b, double value_prefix, double value,
                        const float* logits) noexcept nogil:
    """CTree's backup, then the new leaf's v0 and raw logits."""
    cdef Py_ssize_t A = pool.tree.num_actions
    cdef Py_ssize_t g = b * pool.tree.stride + pool.tree.sims_done + 1  # the leaf's slot
    cdef Py_ssize_t a
    backup_root(&pool.tree, b, value_prefix, value, logits)
    pool.v0[g] = value
    for a in range(A):
        pool.logits[g * A + a] = logits[a]


cdef void prepare_gumbel(GumbelPool* pool, Py_ssize_t b, const float* logits, double value,
                         const float* gumbel) noexcept nogil:
    cdef SearchPool* tree = &pool.tree
    cdef Py_ssize_t A = tree.num_actions
    cdef Py_ssize_t g = b * tree.stride
    cdef Node* root = tree.nodes + g
    cdef Edge* edges = tree.edges + g * A
    cdef Py_ssize_t a
    expand(root, edges, A, logits)
    for a in range(A):
        pool.logits[g * A + a] = logits[a]
        pool.gumbel[b * A + a] = gumbel[a]
    root.visits = 1        # FIX vs SPEC_SEARCH.md: N = 1 and W = v-hat at the root
    root.value_sum = value
    root.value_prefix = 0.0
    root.depth = 0
    root.parent = -1
    root.action = -1
    pool.v0[g] = value
    tree.roots[b].minmax_min = INFINITY
    tree.roots[b].minmax_max = -INFINITY
    tree.roots[b].rng_state = 0  # no random draws in this mode


cdef int reserve_gumbel(GumbelPool* pool, Py_ssize_t num_roots, Py_ssize_t num_actions) except -1 nogil:
    """The arena's reserve, then the Gumbel blocks: allocates only past the largest size seen."""
    cdef Py_ssize_t slots = num_roots * pool.tree.stride
    reserve_pool(&pool.tree, num_roots, num_actions)
    if slots > pool.slot_capacity:
        pool.slot_capacity = 0  # stays 0 if the allocation fails
        grow_block(<void**>&pool.v0, slots, sizeof(double))
        pool.slot_capacity = slots
        pool.tree.allocations += 1
    if slots * num_actions > pool.logit_capacity:
        pool.logit_capacity = 0
        grow_block(<void**>&pool.logits, slots * num_actions, sizeof(float))
        pool.logit_capacity = slots * num_actions
        pool.tree.allocations += 1
    if num_roots * num_actions > pool.row_capacity:
        pool.row_capacity = 0
        grow_block(<void**>&pool.gumbel, num_roots * num_actions, sizeof(double))
        grow_block(<void**>&pool.scratch, 2 * num_roots * num_actions, sizeof(double))
        pool.row_capacity = num_roots * num_actions
        pool.tree.allocations += 1
    return 0


cdef class GumbelCore:
    """Node pool and batched select/backup of one Gumbel tree object. Use
    ezero_async.search.GumbelCTree, which validates every input before calling in here."""

    def __cinit__(self, Py_ssize_t num_roots, Py_ssize_t num_actions, int num_simulations,
                  double discount, double value_delta_max, int horizon, double c_visit, double c_scale,
                  int num_threads):
        if num_roots < 1 or num_actions < 1 or num_simulations < 1 or horizon < 1 or num_threads < 1:
            raise ValueError("GumbelCore: num_roots, num_actions, num_simulations, horizon and "
                             "num_threads must be >= 1")
        self.pool.tree.num_simulations = num_simulations
        self.pool.tree.stride = num_simulations + 1
        self.pool.tree.horizon = horizon
        self.pool.tree.discount = discount
        self.pool.tree.value_delta_max = value_delta_max
        self.pool.c_visit = c_visit
        self.pool.c_scale = c_scale
        self.num_threads = num_threads
        grow_block(<void**>&self.pool.table, num_simulations, sizeof(int32_t))
        reserve_gumbel(&self.pool, num_roots, num_actions)

    def __dealloc__(self):
        release_pool(&self.pool.tree)
        free(self.pool.logits)
        free(self.pool.v0)
        free(self.pool.gumbel)
        free(self.pool.scratch)
        free(self.pool.table)

    @property
    def allocations(self):
        """How many times the pool has (re)allocated memory since construction."""
        return self.pool.tree.allocations

    def _ready_for_output(self, str what):
        if self.phase == UNPREPARED or self.phase == BUSY:
            raise ValueError(f"GumbelCore.{what}: call prepare() first (and not during another call)")

    def prepare(self, const float[:, ::1] logits, const float[::1] values, const float[:, ::1] gumbel,
                const int32_t[::1] table):
        """logits, gumbel: float32[B, A]; values: float32[B]; table: int32[S] (the visit table)."""
        cdef GumbelPool* pool = &self.pool
        cdef Py_ssize_t B = logits.shape[0]
        cdef Py_ssize_t A = logits.shape[1]
        cdef Py_ssize_t b, j
        if B < 1 or A < 1:
            raise ValueError(f"GumbelCore.prepare: need B >= 1 and A >= 1, got ({B}, {A})")
        if values.shape[0] != B or gumbel.shape[0] != B or gumbel.shape[1] != A:
            raise ValueError("GumbelCore.prepare: values must be [B] and gumbel [B, A]")
        if table.shape[0] != pool.tree.num_simulations:
            raise ValueError(f"GumbelCore.prepare: table must have {pool.tree.num_simulations} entries")
        if self.phase == BUSY:
            raise ValueError("GumbelCore.prepare: the tree is inside select()/backup() in another thread")
        self.phase = UNPREPARED  # also keeps other threads out while the pool may move
        reserve_gumbel(pool, B, A)
        pool.tree.num_roots = B
        pool.tree.num_actions = A
        pool.tree.sims_done = 0
        for j in range(table.shape[0]):
            pool.table[j] = table[j]
        with nogil:
            for b in range(B):
                prepare_gumbel(pool, b, &logits[b, 0], values[b], &gumbel[b, 0])
        self.phase = READY

    def select(self, int32_t[::1] parents, int32_t[::1] actions, unsigned char[::1] parent_reset):
        """Fills parents, actions: int32[B] and parent_reset: uint8[B] (one leaf per root)."""
        cdef GumbelPool* pool = &self.pool
        cdef Py_ssize_t B = pool.tree.num_roots
        cdef Py_ssize_t b
        cdef int threads = self.num_threads
        if self.phase != READY:
            raise ValueError("GumbelCore.select: not ready (call prepare(), or backup() after select(); "
                             "a tree is not shared between threads)")
        if pool.tree.sims_done >= pool.tree.num_simulations:
            raise ValueError(f"GumbelCore.select: all {pool.tree.num_simulations} simulations done")
        if parents.shape[0] != B or actions.shape[0] != B or parent_reset.shape[0] != B:
            raise ValueError(f"GumbelCore.select: output arrays must have length {B}")
        self.phase = BUSY
        with nogil:
            if threads == 1 or B == 1:
                for b in range(B):
                    select_gumbel(pool, b, &parents[0], &actions[0], &parent_reset[0])
            else:
                for b in prange(B, schedule="static", num_threads=threads):
                    select_gumbel(pool, b, &parents[0], &actions[0], &parent_reset[0])
        self.phase = SELECTED

    def backup(self, const float[::1] value_prefix, const float[::1] value, const float[:, ::1] logits):
        """value_prefix, value: float32[B]; logits: float32[B, A] of the new leaves."""
        cdef GumbelPool* pool = &self.pool
        cdef Py_ssize_t B = pool.tree.num_roots
        cdef Py_ssize_t b
        cdef int threads = self.num_threads
        if self.phase != SELECTED:
            raise ValueError("GumbelCore.backup: no pending select() (a tree is not shared between threads)")
        if (value_prefix.shape[0] != B or value.shape[0] != B or logits.shape[0] != B
                or logits.shape[1] != pool.tree.num_actions):
            raise ValueError(f"GumbelCore.backup: expected [{B}], [{B}], [{B}, {pool.tree.num_actions}]")
        self.phase = BUSY
        with nogil:
            if threads == 1 or B == 1:
                for b in range(B):
                    backup_gumbel(pool, b, value_prefix[b], value[b], &logits[b, 0])
            else:
                for b in prange(B, schedule="static", num_threads=threads):
                    backup_gumbel(pool, b, value_prefix[b], value[b], &logits[b, 0])
        pool.tree.sims_done += 1
        self.phase = READY

    def visit_counts(self, int32_t[:, ::1] out):
        """Fills out: int32[B, A] with N(child a of root b)."""
        cdef SearchPool* tree = &self.pool.tree
        cdef Py_ssize_t b, a
        self._ready_for_output("visit_counts")
        if out.shape[0] != tree.num_roots or out.shape[1] != tree.num_actions:
            raise ValueError(f"GumbelCore.visit_counts: out must be [{tree.num_roots}, {tree.num_actions}]")
        with nogil:
            for b in range(tree.num_roots):
                for a in range(tree.num_actions):
                    out[b, a] = tree.edges[b * tree.stride * tree.num_actions + a].visits

    def actions(self, int32_t[::1] out):
        """Fills out: int32[B] with each root's action: the most visited, then the best g + logits + sigma."""
        cdef GumbelPool* pool = &self.pool
        cdef Py_ssize_t b
        self._ready_for_output("actions")
        if out.shape[0] != pool.tree.num_roots:
            raise ValueError(f"GumbelCore.actions: out must be [{pool.tree.num_roots}]")
        with nogil:
            for b in range(pool.tree.num_roots):
                out[b] = <int32_t>best_root_action(pool, b, -1, pool.scratch + b * 2 * pool.tree.num_actions)

    def improved_policy(self, float[:, ::1] out):
        """Fills out: float32[B, A] with pi' at each root."""
        cdef GumbelPool* pool = &self.pool
        cdef Py_ssize_t A = pool.tree.num_actions
        cdef Py_ssize_t b, a
        cdef double* sigma
        self._ready_for_output("improved_policy")
        if out.shape[0] != pool.tree.num_roots or out.shape[1] != A:
            raise ValueError(f"GumbelCore.improved_policy: out must be [{pool.tree.num_roots}, {A}]")
        with nogil:
            for b in range(pool.tree.num_roots):
                sigma = pool.scratch + b * 2 * A
                improved_into(pool, b, 0, sigma, sigma + A)
                for a in range(A):
                    out[b, a] = <float>sigma[A + a]

    def root_values(self, float[::1] out):
        """Fills out: float32[B] with W / N at the root (v-hat and the backed-up returns)."""
        cdef SearchPool* tree = &self.pool.tree
        cdef Py_ssize_t b, g
        self._ready_for_output("root_values")
        if out.shape[0] != tree.num_roots:
            raise ValueError(f"GumbelCore.root_values: out must be [{tree.num_roots}]")
        with nogil:
            for b in range(tree.num_roots):
                g = b * tree.stride
                out[b] = <float>(tree.nodes[g].value_sum / <double>tree.nodes[g].visits)
