# Declarations of the prioritised-replay sum tree (implementation in sumtree.pyx).
#
# Layout: a complete binary tree over `size` leaves (size = capacity rounded up to a power of
# two), stored heap-style in arrays of 2*size doubles; node 1 is the root, the leaves of slot i
# live at size + i. `sums` holds p^alpha (each internal node is recomputed as the exact double
# sum of its two children, so the root never drifts from its leaves); `maxes` holds the raw
# priority p so the maximum currently stored is exact after any update or eviction.
from libc.stdint cimport int64_t


cdef class SumTree:
    cdef readonly int64_t capacity
    cdef readonly int64_t size
    cdef readonly double alpha
    cdef readonly int64_t count
    cdef double[::1] sums
    cdef double[::1] maxes

    cdef void _set(self, int64_t slot, double priority) noexcept nogil
    cdef int64_t _find(self, double mass) noexcept nogil
