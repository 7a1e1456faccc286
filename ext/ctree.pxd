# Batched EfficientZero search tree (shared/SPEC_SEARCH.md): declarations.
#
# One SearchPool holds every node of every root of one tree object in flat arrays of compact
# structs, so a select() or backup() over the batch touches only C memory and runs without the
# GIL. Per root b, node id i (root 0, node created in simulation s is s + 1) lives at slot
# g = b * stride + i with stride = num_simulations + 1; its A edges live at g * A .. g * A + A - 1.
from libc.stdint cimport int32_t, uint64_t


ctypedef struct Node:
    double value_sum            # W
    double value_prefix         # vp
    int32_t visits              # N
    int32_t depth               # root 0
    int32_t parent              # parent node id (-1 at the root)
    int32_t action              # action taken from the parent (-1 at the root)


ctypedef struct Edge:
    # Edge a of a node; visits and q mirror the child's statistics in the parent so that a
    # node visit in select() reads one contiguous block of A edges and never the children.
    double prior                # P[a]
    double q                    # Q(node, child a), valid where visits > 0
    int32_t visits              # N(child a), 0 while the child does not exist
    int32_t child               # child node id, valid where visits > 0


ctypedef struct RootState:
    double minmax_min           # tree-wide min-max stats of this root (+inf / -inf when empty)
    double minmax_max
    uint64_t rng_state          # SplitMix64 state of the tie-break stream
    int32_t pending_parent      # leaf chosen by the last select(): its parent's node id ...
    int32_t pending_action      # ... and the action from it


ctypedef struct SearchPool:
    # Shape of the current search (set by prepare) and fixed configuration.
    Py_ssize_t num_roots        # B
    Py_ssize_t num_actions      # A
    Py_ssize_t stride           # nodes per root = num_simulations + 1
    int num_simulations         # S: capacity of a search in simulations
    int horizon                 # H: LSTM reset every H depths
    int sims_done               # simulations fully backed up in the current search
    double discount             # gamma
    double value_delta_max      # floor of the min-max range
    double noise_fraction       # epsilon of the root noise mix
    Node* nodes                 # [num_roots * stride]
    Edge* edges                 # [num_roots * stride * num_actions]
    RootState* roots            # [num_roots]
    int32_t* tied               # [num_roots * num_actions] scratch: tied actions of one node visit
    # Exact per-visit constants indexed by n_sum = N(node) - 1 in 0..S (see select).
    double* c_of_n              # log(((n + c_base) + 1) / c_base) + c_init
    double* sqrt_of_n           # sqrt(n)
    # Allocated slots; the pool only grows past the largest search seen (see reserve_pool).
    Py_ssize_t node_capacity
    Py_ssize_t edge_capacity
    Py_ssize_t root_capacity
    Py_ssize_t tied_capacity
    Py_ssize_t allocations      # (re)allocations since construction, for tests of reuse


cdef inline double value_score(double q, double lo, double scale, bint normalise) noexcept nogil:
    """clip(normalize(q), 0, 1) with a root's min-max stats (scale = max(max - min, delta)).
    Defined here so that both trees (ctree.pyx, gumbel.pyx) compile the same function."""
    if normalise:
        q = (q - lo) / scale
    if q < 0.0:
        return 0.0
    if q > 1.0:
        return 1.0
    return q


cdef inline void root_normaliser(const RootState* state, double delta, double* lo, double* scale,
                                 bint* normalise) noexcept nogil:
    """A root's min-max normaliser for value_score: lo = min, scale = max(max - min, delta);
    off while the range is empty or zero. Both trees derive it once per traversal (the stats
    cannot change during one)."""
    cdef double spread = state.minmax_max - state.minmax_min
    lo[0] = state.minmax_min
    normalise[0] = spread > 0.0
    scale[0] = spread if spread > delta else delta


cdef uint64_t splitmix_mix(uint64_t z) noexcept nogil
cdef uint64_t splitmix_next(uint64_t* state) noexcept nogil
cdef void softmax_into(const float* logits, Edge* out, Py_ssize_t num_actions) noexcept nogil


cdef inline void expand(Node* node, Edge* edges, Py_ssize_t num_actions, const float* logits) noexcept nogil:
    """A node's fresh statistics: no visits yet, no children, prior = softmax(logits)."""
    cdef Py_ssize_t a
    node.visits = 0
    node.value_sum = 0.0
    softmax_into(logits, edges, num_actions)
    for a in range(num_actions):
        edges[a].visits = 0
        edges[a].child = -1
        edges[a].q = 0.0  # select() sums q over all edges: a missing child must add exactly +0.0


cdef void prepare_root(SearchPool* pool, Py_ssize_t b, const float* logits, const float* noise,
                       uint64_t seed) noexcept nogil
cdef void select_root(SearchPool* pool, Py_ssize_t b, int32_t* out_parent, int32_t* out_action,
                      unsigned char* out_reset) noexcept nogil
cdef void backup_root(SearchPool* pool, Py_ssize_t b, double value_prefix, double value,
                      const float* logits) noexcept nogil
cdef int grow_block(void** slot, Py_ssize_t count, size_t item) except -1 nogil
cdef int reserve_pool(SearchPool* pool, Py_ssize_t num_roots, Py_ssize_t num_actions) except -1 nogil
cdef void release_pool(SearchPool* pool) noexcept nogil


cdef class SearchCore:
    cdef SearchPool pool
    cdef int num_threads
    cdef readonly int phase         # 0 not prepared, 1 ready to select, 2 selected, 3 inside a nogil call
