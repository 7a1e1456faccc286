# Batched EfficientZero search tree (shared/SPEC_SEARCH.md): implementation.
#
# Every arithmetic step follows the spec's "Numbers" section literally: doubles, libm
# exp/log/sqrt, the written evaluation order (setup.py builds with -ffp-contract=off, no
# fast-math), so results are bit-identical to the pure-Python reference
# (ezero_async/search/reference.py). Input checking is the job of the Python wrapper
# (ezero_async/search/tree.py); this core only guards its own state so that misuse cannot
# touch memory out of bounds.
from cython.parallel cimport prange
from libc.math cimport INFINITY, exp, log, sqrt
from libc.stdint cimport int32_t, uint64_t
from libc.stdlib cimport free, malloc

cdef uint64_t GOLD = 0x9E3779B97F4A7C15ULL
cdef double TIE_TOLERANCE = 1e-6
# SearchCore.phase values.
cdef enum:
    UNPREPARED = 0
    READY = 1
    SELECTED = 2
    BUSY = 3


cdef uint64_t splitmix_mix(uint64_t z) noexcept nogil:
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL
    return z ^ (z >> 31)


cdef uint64_t splitmix_next(uint64_t* state) noexcept nogil:
    state[0] = state[0] + GOLD
    return splitmix_mix(state[0])


cdef void softmax_into(const float* logits, Edge* out, Py_ssize_t num_actions) noexcept nogil:
    """out[a].prior = exp(l[a] - max l) / sum, the sum taken in increasing action order."""
    cdef Py_ssize_t a
    cdef double top = logits[0]
    cdef double total = 0.0
    cdef double e
    for a in range(1, num_actions):
        if logits[a] > top:
            top = logits[a]
    for a in range(num_actions):
        e = exp(<double>logits[a] - top)
        out[a].prior = e
        total = total + e
    for a in range(num_actions):
        out[a].prior = out[a].prior / total


cdef void prepare_root(SearchPool* pool, Py_ssize_t b, const float* logits, const float* noise,
                       uint64_t seed) noexcept nogil:
    cdef Py_ssize_t A = pool.num_actions
    cdef Py_ssize_t g = b * pool.stride
    cdef Node* root = pool.nodes + g
    cdef Edge* edges = pool.edges + g * A
    cdef RootState* state = pool.roots + b
    cdef Py_ssize_t a
    cdef double eps = pool.noise_fraction
    expand(root, edges, A, logits)
    root.visits = 1  # the expansion counts as one visit
    root.value_prefix = 0.0
    root.depth = 0
    root.parent = -1
    root.action = -1
    if noise != NULL:
        for a in range(A):
            edges[a].prior = (1.0 - eps) * edges[a].prior + eps * <double>noise[a]
    state.minmax_min = INFINITY
    state.minmax_max = -INFINITY
    state.rng_state = splitmix_mix(seed + <uint64_t>(b + 1) * GOLD)


cdef void select_root(SearchPool* pool, Py_ssize_t b, int32_t* out_parent, int32_t* out_action,
                      unsigned char* out_reset) noexcept nogil:
    cdef Py_ssize_t A = pool.num_actions
    cdef Node* nodes = pool.nodes + b * pool.stride
    cdef RootState* state = pool.roots + b
    cdef int32_t* tied = pool.tied + b * A
    cdef double lo, scale
    cdef bint normalise
    cdef int32_t node = 0
    cdef double parent_mean_q = 0.0
    cdef double mean_q, total, c, root_n, unvisited_score, best, score
    cdef Py_ssize_t a, ntied, chosen
    cdef int32_t k, n_child, n_sum
    cdef const Edge* edges
    root_normaliser(state, pool.value_delta_max, &lo, &scale, &normalise)
    while True:
        edges = pool.edges + (b * pool.stride + node) * A
        n_sum = nodes[node].visits - 1
        if n_sum == 0:
            # A node visited once has no children yet and sqrt(n_sum) = 0 zeroes every prior term:
            # all A scores equal mean_q's value score, a full tie, so tied = [0..A-1] and the
            # spec's draw picks tied[u % A] = u % A (no draw for a single action). Same result
            # without scoring the actions.
            chosen = <Py_ssize_t>(splitmix_next(&state.rng_state) % <uint64_t>A) if A > 1 else 0
            break
        # T over the children with N > 0 in action order. A missing child's edge keeps q = +0.0
        # (see expand), and adding +0.0 is exact (T is never -0.0: it starts at +0.0 and no
        # backed-up q is -0.0), so the sum runs over every edge without a branch.
        k = 0
        total = 0.0
        for a in range(A):
            k = k + (edges[a].visits > 0)
            total = total + edges[a].q
        if node == 0 and k > 0:
            mean_q = total / <double>k
        else:
            mean_q = (parent_mean_q + total) / <double>(k + 1)
        parent_mean_q = mean_q
        # c and sqrt(n_sum) depend only on n_sum: tabulated once per tree (same values).
        c = pool.c_of_n[n_sum]
        root_n = pool.sqrt_of_n[n_sum]
        unvisited_score = value_score(mean_q, lo, scale, normalise)
        best = -INFINITY
        ntied = 0
        for a in range(A):
            n_child = edges[a].visits
            if n_child > 0:
                score = (((edges[a].prior * c) * root_n) / <double>(n_child + 1)
                         + value_score(edges[a].q, lo, scale, normalise))
            else:
                # Division by N + 1 = 1 is exact, so it is left out.
                score = (edges[a].prior * c) * root_n + unvisited_score
            if score > best:
                best = score
                tied[0] = <int32_t>a
                ntied = 1
            elif score >= best - TIE_TOLERANCE:
                tied[ntied] = <int32_t>a
                ntied = ntied + 1
        if ntied == 1:
            chosen = tied[0]
        else:
            chosen = tied[splitmix_next(&state.rng_state) % <uint64_t>ntied]
        if edges[chosen].visits == 0:
            break
        node = edges[chosen].child
    out_parent[b] = node
    out_action[b] = <int32_t>chosen
    out_reset[b] = nodes[node].depth % pool.horizon == 0
    state.pending_parent = node
    state.pending_action = <int32_t>chosen


cdef void backup_root(SearchPool* pool, Py_ssize_t b, double value_prefix, double value,
                      const float* logits) noexcept nogil:
    cdef Py_ssize_t A = pool.num_actions
    cdef Py_ssize_t base = b * pool.stride
    cdef Node* nodes = pool.nodes + base
    cdef RootState* state = pool.roots + b
    cdef int32_t leaf_id = pool.sims_done + 1
    cdef int32_t parent_id = state.pending_parent
    cdef Node* leaf = nodes + leaf_id
    cdef Node* node
    cdef Node* parent
    cdef Edge* edge
    cdef double lo = state.minmax_min
    cdef double hi = state.minmax_max
    cdef double discount = pool.discount
    cdef double ret = value
    cdef double r, q
    # Expand the leaf and hang it under its parent.
    expand(leaf, pool.edges + (base + leaf_id) * A, A, logits)
    leaf.depth = nodes[parent_id].depth + 1
    leaf.parent = parent_id
    leaf.action = state.pending_action
    leaf.value_prefix = value_prefix
    pool.edges[(base + parent_id) * A + state.pending_action].child = leaf_id
    # Back the value up from the leaf to the root.
    node = leaf
    while True:
        node.value_sum = node.value_sum + ret
        node.visits = node.visits + 1
        if node.parent < 0:
            break
        parent = nodes + node.parent
        if parent.depth % pool.horizon == 0:
            r = node.value_prefix
        else:
            r = node.value_prefix - parent.value_prefix
        q = r + discount * (node.value_sum / <double>node.visits)
        edge = pool.edges + (base + node.parent) * A + node.action
        edge.q = q
        edge.visits = node.visits
        if q < lo:
            lo = q
        if q > hi:
            hi = q
        ret = r + discount * ret
        node = parent
    state.minmax_min = lo
    state.minmax_max = hi


cdef int grow_block(void** slot, Py_ssize_t count, size_t item) except -1 nogil:
    """Replace slot[0] by a fresh block of count items (old contents are not kept)."""
    free(slot[0])
    slot[0] = malloc(<size_t>count * item if count > 0 else item)
    if slot[0] == NULL:
        with gil:
            raise MemoryError(f"search pool: cannot allocate {count} items of {item} bytes")
    return 0


cdef int reserve_pool(SearchPool* p, Py_ssize_t num_roots, Py_ssize_t num_actions) except -1 nogil:
    """Make room for num_roots x num_actions; allocates only past the largest size seen."""
    cdef Py_ssize_t nodes = num_roots * p.stride
    cdef Py_ssize_t edges = nodes * num_actions
    if nodes > p.node_capacity:
        p.node_capacity = 0  # stays 0 if the allocation fails
        grow_block(<void**>&p.nodes, nodes, sizeof(Node))
        p.node_capacity = nodes
        p.allocations += 1
    if edges > p.edge_capacity:
        p.edge_capacity = 0
        grow_block(<void**>&p.edges, edges, sizeof(Edge))
        p.edge_capacity = edges
        p.allocations += 1
    if num_roots > p.root_capacity:
        p.root_capacity = 0
        grow_block(<void**>&p.roots, num_roots, sizeof(RootState))
        p.root_capacity = num_roots
        p.allocations += 1
    if num_roots * num_actions > p.tied_capacity:
        p.tied_capacity = 0
        grow_block(<void**>&p.tied, num_roots * num_actions, sizeof(int32_t))
        p.tied_capacity = num_roots * num_actions
        p.allocations += 1
    return 0


cdef void release_pool(SearchPool* p) noexcept nogil:
    free(p.nodes)
    free(p.edges)
    free(p.roots)
    free(p.tied)
    free(p.c_of_n)
    free(p.sqrt_of_n)


cdef class SearchCore:
    """Node pool and batched select/backup of one tree object. Use ezero_async.search.CTree,
    which validates every input before calling in here."""

    def __cinit__(self, Py_ssize_t num_roots, Py_ssize_t num_actions, int num_simulations,
                  double discount, double c_init, double c_base, double value_delta_max,
                  int horizon, double noise_fraction, int num_threads):
        cdef int n
        if num_roots < 1 or num_actions < 1 or num_simulations < 1 or horizon < 1 or num_threads < 1:
            raise ValueError("SearchCore: num_roots, num_actions, num_simulations, horizon and "
                             "num_threads must all be >= 1")
        self.pool.num_simulations = num_simulations
        self.pool.stride = num_simulations + 1
        self.pool.horizon = horizon
        self.pool.discount = discount
        self.pool.value_delta_max = value_delta_max
        self.pool.noise_fraction = noise_fraction
        self.num_threads = num_threads
        grow_block(<void**>&self.pool.c_of_n, num_simulations + 1, sizeof(double))
        grow_block(<void**>&self.pool.sqrt_of_n, num_simulations + 1, sizeof(double))
        for n in range(num_simulations + 1):
            self.pool.c_of_n[n] = log((((<double>n) + c_base) + 1.0) / c_base) + c_init
            self.pool.sqrt_of_n[n] = sqrt(<double>n)
        reserve_pool(&self.pool, num_roots, num_actions)

    def __dealloc__(self):
        release_pool(&self.pool)

    @property
    def allocations(self):
        """How many times the pool has (re)allocated memory since construction."""
        return self.pool.allocations

    def prepare(self, const float[:, ::1] logits, const float[:, ::1] noise, uint64_t seed):
        """logits: float32[B, A]; noise: float32[B, A] or None; starts a new search."""
        cdef Py_ssize_t B = logits.shape[0]
        cdef Py_ssize_t A = logits.shape[1]
        cdef Py_ssize_t b
        cdef const float* noise_base = NULL
        if B < 1 or A < 1:
            raise ValueError(f"SearchCore.prepare: need B >= 1 and A >= 1, got ({B}, {A})")
        if noise is not None and (noise.shape[0] != B or noise.shape[1] != A):
            raise ValueError("SearchCore.prepare: noise shape differs from logits shape")
        if self.phase == BUSY:
            raise ValueError("SearchCore.prepare: the tree is inside select()/backup() in another thread")
        if noise is not None:
            noise_base = &noise[0, 0]
        self.phase = UNPREPARED  # also keeps other threads out while the pool may move
        reserve_pool(&self.pool, B, A)
        self.pool.num_roots = B
        self.pool.num_actions = A
        self.pool.sims_done = 0
        with nogil:
            for b in range(B):
                prepare_root(&self.pool, b, &logits[b, 0],
                             noise_base + b * A if noise_base != NULL else NULL, seed)
        self.phase = READY

    def select(self, int32_t[::1] parents, int32_t[::1] actions, unsigned char[::1] parent_reset):
        """Fills parents, actions: int32[B] and parent_reset: uint8[B] (one leaf per root)."""
        cdef SearchPool* pool = &self.pool
        cdef Py_ssize_t B = pool.num_roots
        cdef Py_ssize_t b
        cdef int threads = self.num_threads
        if self.phase != READY:
            raise ValueError("SearchCore.select: not ready (call prepare(), or backup() after select(); "
                             "a tree is not shared between threads)")
        if pool.sims_done >= pool.num_simulations:
            raise ValueError(f"SearchCore.select: all {pool.num_simulations} simulations done")
        if parents.shape[0] != B or actions.shape[0] != B or parent_reset.shape[0] != B:
            raise ValueError(f"SearchCore.select: output arrays must have length {B}")
        self.phase = BUSY  # another thread calling in while the GIL is released gets an error
        with nogil:
            if threads == 1 or B == 1:
                for b in range(B):
                    select_root(pool, b, &parents[0], &actions[0], &parent_reset[0])
            else:
                for b in prange(B, schedule="static", num_threads=threads):
                    select_root(pool, b, &parents[0], &actions[0], &parent_reset[0])
        self.phase = SELECTED

    def backup(self, const float[::1] value_prefix, const float[::1] value, const float[:, ::1] logits):
        """value_prefix, value: float32[B]; logits: float32[B, A] of the new leaves."""
        cdef SearchPool* pool = &self.pool
        cdef Py_ssize_t B = pool.num_roots
        cdef Py_ssize_t b
        cdef int threads = self.num_threads
        if self.phase != SELECTED:
            raise ValueError("SearchCore.backup: no pending select() (a tree is not shared between threads)")
        if (value_prefix.shape[0] != B or value.shape[0] != B or logits.shape[0] != B
                or logits.shape[1] != pool.num_actions):
            raise ValueError(f"SearchCore.backup: expected [{B}], [{B}], [{B}, {pool.num_actions}]")
        self.phase = BUSY
        with nogil:
            if threads == 1 or B == 1:
                for b in range(B):
                    backup_root(pool, b, value_prefix[b], value[b], &logits[b, 0])
            else:
                for b in prange(B, schedule="static", num_threads=threads):
                    backup_root(pool, b, value_prefix[b], value[b], &logits[b, 0])
        pool.sims_done += 1
        self.phase = READY

    def visit_counts(self, int32_t[:, ::1] out):
        """Fills out: int32[B, A] with N(child a of root b)."""
        cdef SearchPool* pool = &self.pool
        cdef Py_ssize_t B = pool.num_roots
        cdef Py_ssize_t A = pool.num_actions
        cdef Py_ssize_t b, a, e
        if self.phase == UNPREPARED or self.phase == BUSY:
            raise ValueError("SearchCore.visit_counts: call prepare() first (and not during another call)")
        if out.shape[0] != B or out.shape[1] != A:
            raise ValueError(f"SearchCore.visit_counts: out must be [{B}, {A}]")
        with nogil:
            for b in range(B):
                e = b * pool.stride * A
                for a in range(A):
                    out[b, a] = pool.edges[e + a].visits

    def root_values(self, float[::1] out):
        """Fills out: float32[B] with W(root) / (N(root) - 1), 0 before any simulation."""
        cdef SearchPool* pool = &self.pool
        cdef Py_ssize_t B = pool.num_roots
        cdef Py_ssize_t b, g
        cdef int32_t n
        if self.phase == UNPREPARED or self.phase == BUSY:
            raise ValueError("SearchCore.root_values: call prepare() first (and not during another call)")
        if out.shape[0] != B:
            raise ValueError(f"SearchCore.root_values: out must be [{B}]")
        with nogil:
            for b in range(B):
                g = b * pool.stride
                n = pool.nodes[g].visits - 1
                out[b] = <float>(pool.nodes[g].value_sum / <double>n) if n > 0 else 0.0


def py_splitmix_mix(uint64_t z):
    """Test shim: SplitMix64 mix(z) (all arithmetic mod 2^64)."""
    return splitmix_mix(z)


def py_splitmix_next(uint64_t state):
    """Test shim: one next() of the stream; returns (output, new_state)."""
    cdef uint64_t s = state
    cdef uint64_t out = splitmix_next(&s)
    return out, s


def py_softmax(const float[::1] logits):
    """Test shim: the tree's softmax as a list of Python floats."""
    cdef Py_ssize_t A = logits.shape[0]
    if A < 1:
        raise ValueError("py_softmax: need at least one logit")
    cdef Edge* out = NULL
    grow_block(<void**>&out, A, sizeof(Edge))
    try:
        softmax_into(&logits[0], out, A)
        return [out[a].prior for a in range(A)]
    finally:
        free(out)
