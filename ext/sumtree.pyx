"""Compiled sum tree for proportional prioritised sampling (declarations in sumtree.pxd).

Every batched method converts its arguments once, releases the GIL for the whole batch and
never calls back into Python per element. The tree is not internally locked: a caller that
samples and updates from different threads serialises the calls (replay.sampler does).
"""
from libc.math cimport INFINITY, pow
from libc.stdint cimport int64_t


cdef class SumTree:
    """Sum tree over `capacity` slots: leaf i holds p_i^alpha (sampling mass) and p_i (for the max).

    A priority of 0 marks a slot as not sampleable (empty, evicted, or not yet complete).
    """

    def __cinit__(self, int64_t capacity, double alpha):
        if capacity < 1:
            raise ValueError(f"SumTree capacity must be >= 1, got {capacity}")
        if not (0.0 <= alpha <= 1.0):
            raise ValueError(f"SumTree alpha must be in [0, 1], got {alpha}")
        cdef int64_t size = 1
        while size < capacity:
            size *= 2
        self.capacity = capacity
        self.size = size
        self.alpha = alpha
        self.count = 0
        self.sums = memoryview(bytearray(16 * size)).cast("d")
        self.maxes = memoryview(bytearray(16 * size)).cast("d")

    cdef void _set(self, int64_t slot, double priority) noexcept nogil:
        cdef int64_t node = self.size + slot
        cdef double mass = 0.0
        if priority > 0.0:
            # pow(p, 0) would be 1 for p = 0 too: zero stays zero whatever alpha is.
            mass = pow(priority, self.alpha)
        if self.maxes[node] > 0.0:
            self.count -= 1
        if priority > 0.0:
            self.count += 1
        self.sums[node] = mass
        self.maxes[node] = priority
        node //= 2
        while node >= 1:
            self.sums[node] = self.sums[2 * node] + self.sums[2 * node + 1]
            if self.maxes[2 * node] >= self.maxes[2 * node + 1]:
                self.maxes[node] = self.maxes[2 * node]
            else:
                self.maxes[node] = self.maxes[2 * node + 1]
            node //= 2

    cdef int64_t _find(self, double mass) noexcept nogil:
        # Descend by mass; a subtree of zero mass is never entered, so rounding at a stratum
        # edge (mass == total) can never land on an empty leaf while the total is positive.
        cdef int64_t node = 1
        cdef double left
        while node < self.size:
            left = self.sums[2 * node]
            if self.sums[2 * node + 1] <= 0.0 or (mass < left and left > 0.0):
                node = 2 * node
            else:
                mass -= left
                node = 2 * node + 1
        return node - self.size

    def update(self, const int64_t[::1] slots, const double[::1] priorities):
        """Set raw priorities p (>= 0; 0 = not sampleable) of `slots: int64[N]` from
        `priorities: float64[N]`; later entries win on duplicate slots."""
        cdef Py_ssize_t n = slots.shape[0], i
        if priorities.shape[0] != n:
            raise ValueError(f"update: {n} slots but {priorities.shape[0]} priorities")
        for i in range(n):
            if slots[i] < 0 or slots[i] >= self.capacity:
                raise ValueError(f"update: slot {slots[i]} outside [0, {self.capacity})")
            if not (priorities[i] >= 0.0):
                raise ValueError(f"update: priority {priorities[i]} at slot {slots[i]} is not >= 0")
        with nogil:
            for i in range(n):
                self._set(slots[i], priorities[i])

    def sample(self, const double[::1] uniforms, int64_t[::1] out_slots, double[::1] out_mass):
        """Stratified proportional draw of B = len(uniforms) slots: draw b targets mass
        (b + uniforms[b]) * total / B. Writes `out_slots: int64[B]` and their p^alpha to
        `out_mass: float64[B]`. `uniforms: float64[B]` in [0, 1)."""
        cdef Py_ssize_t n = uniforms.shape[0], b
        cdef double total = self.sums[1]
        cdef int64_t slot
        if out_slots.shape[0] != n or out_mass.shape[0] != n:
            raise ValueError("sample: uniforms, out_slots and out_mass need the same length")
        if total <= 0.0:
            raise ValueError("sample: no sampleable slot (total priority is 0)")
        with nogil:
            for b in range(n):
                slot = self._find((b + uniforms[b]) * total / n)
                out_slots[b] = slot
                out_mass[b] = self.sums[self.size + slot]
        return total

    def update_existing(self, const int64_t[::1] slots, const double[::1] priorities):
        """Learner feedback: set raw priorities (finite, > 0) of `slots: int64[N]` from
        `priorities: float64[N]`, skipping slots whose priority is 0 (evicted or invalidated
        since they were sampled, so they stay unsampleable). Returns how many were set."""
        cdef Py_ssize_t n = slots.shape[0], i, done = 0
        cdef int64_t slot
        if priorities.shape[0] != n:
            raise ValueError(f"update_existing: {n} slots but {priorities.shape[0]} priorities")
        for i in range(n):
            if slots[i] < 0 or slots[i] >= self.capacity:
                raise ValueError(f"update_existing: slot {slots[i]} outside [0, {self.capacity})")
            if not (0.0 < priorities[i] < INFINITY):
                raise ValueError(f"update_existing: priority {priorities[i]} at slot {slots[i]} must be "
                                 "finite and > 0 (add priority_eps)")
        with nogil:
            for i in range(n):
                slot = slots[i]
                if self.maxes[self.size + slot] > 0.0:
                    self._set(slot, priorities[i])
                    done += 1
        return done

    def sample_weighted(self, const double[::1] uniforms, double beta, int64_t[::1] out_slots,
                        double[::1] out_probs, float[::1] out_weights):
        """sample() plus P(i) into `out_probs: float64[B]` and the importance weights
        w = (count * P(i))^-beta / max_b w into `out_weights: float32[B]`. Returns the total."""
        cdef Py_ssize_t n = uniforms.shape[0], b
        cdef double total = self.sample(uniforms, out_slots, out_probs)
        cdef double p_min = INFINITY
        if out_weights.shape[0] != n:
            raise ValueError("sample_weighted: out_weights needs the length of uniforms")
        with nogil:
            for b in range(n):
                out_probs[b] = out_probs[b] / total
                if out_probs[b] < p_min:
                    p_min = out_probs[b]
            # w is decreasing in P (beta >= 0), so max_b w is the weight of the smallest P and
            # w_b / max w = (P_b / P_min)^-beta: one pow per draw.
            for b in range(n):
                out_weights[b] = <float>pow(out_probs[b] / p_min, -beta)
        return total

    def get(self, const int64_t[::1] slots, double[::1] out):
        """Raw priorities of `slots: int64[N]` into `out: float64[N]`."""
        cdef Py_ssize_t i, n = slots.shape[0]
        if out.shape[0] != n:
            raise ValueError("get: slots and out need the same length")
        for i in range(n):
            if slots[i] < 0 or slots[i] >= self.capacity:
                raise ValueError(f"get: slot {slots[i]} outside [0, {self.capacity})")
        with nogil:
            for i in range(n):
                out[i] = self.maxes[self.size + slots[i]]

    def priorities(self, double[::1] out):
        """All raw priorities into `out: float64[capacity]` (for checkpoints)."""
        if out.shape[0] != self.capacity:
            raise ValueError(f"priorities: out needs length {self.capacity}")
        cdef Py_ssize_t i
        with nogil:
            for i in range(self.capacity):
                out[i] = self.maxes[self.size + i]

    @property
    def total(self):
        """Sum of p^alpha over all slots (float64)."""
        return self.sums[1]

    @property
    def max_priority(self):
        """Largest raw priority currently stored (0 when empty)."""
        return self.maxes[1]

    def mass_of(self, int64_t slot):
        """p^alpha stored at one slot."""
        if slot < 0 or slot >= self.capacity:
            raise ValueError(f"mass_of: slot {slot} outside [0, {self.capacity})")
        return self.sums[self.size + slot]
