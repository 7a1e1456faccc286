# Frame kernels: max over the last two emulator frames fused with a separable area-interpolation
# resize (Atari preprocessing), and frame stacks gathered into channel planes (network input).
# Implemented in frames.pyx.

cdef int max_pool_resize(const unsigned char[:, :, ::1] a, const unsigned char[:, :, ::1] b,
                         const int[::1] row_start, const int[::1] row_count, const float[:, ::1] row_w,
                         const int[::1] col_start, const int[::1] col_count, const float[:, ::1] col_w,
                         float[:, :, ::1] tmp, unsigned char[:, :, ::1] out) except -1 nogil

cdef void to_planes(const unsigned char* src, unsigned char* dst, Py_ssize_t pixels, Py_ssize_t channels) noexcept nogil
