# Max-pool of two frames + area resize, and stacks of frames gathered into channel planes; both
# release the GIL (see frames.pxd).
#
# Resize:
# Pass 1 reduces rows: tmp[i, x, c] = sum_k row_w[i, k] * max(a, b)[row_start[i] + k, x, c].
# Pass 2 reduces columns: out[i, j, c] = round(sum_k col_w[j, k] * tmp[i, col_start[j] + k, c]).
# Each output cell touches at most ceil(scale) + 1 inputs per axis, so both passes are short
# dense loops over contiguous memory.
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import numpy as np


cdef int max_pool_resize(const unsigned char[:, :, ::1] a, const unsigned char[:, :, ::1] b,
                         const int[::1] row_start, const int[::1] row_count, const float[:, ::1] row_w,
                         const int[::1] col_start, const int[::1] col_count, const float[:, ::1] col_w,
                         float[:, :, ::1] tmp, unsigned char[:, :, ::1] out) except -1 nogil:
    cdef Py_ssize_t out_h = out.shape[0], out_w = out.shape[1], ch = out.shape[2]
    cdef Py_ssize_t line = a.shape[1] * ch  # one input row, flattened (contiguous)
    cdef Py_ssize_t i, j, k, x, c, base
    cdef float w, acc
    cdef unsigned char pa, pb
    cdef const unsigned char* ra
    cdef const unsigned char* rb
    cdef float* t
    cdef unsigned char* o
    for i in range(out_h):
        t = &tmp[i, 0, 0]
        for x in range(line):
            t[x] = 0.0
        for k in range(row_count[i]):
            ra = &a[row_start[i] + k, 0, 0]
            rb = &b[row_start[i] + k, 0, 0]
            w = row_w[i, k]
            for x in range(line):  # contiguous: the compiler vectorises this loop
                pa = ra[x]
                pb = rb[x]
                t[x] += w * (pa if pa > pb else pb)
        o = &out[i, 0, 0]
        for j in range(out_w):
            for c in range(ch):
                acc = 0.5  # round half up; every value is >= 0
                base = col_start[j] * ch + c
                for k in range(col_count[j]):
                    acc += col_w[j, k] * t[base + k * ch]
                o[j * ch + c] = <unsigned char>(255.0 if acc >= 255.0 else acc)
    return 0


def _taps(weights):
    """Dense [n_out, n_in] weights -> (start int32[n_out], count int32[n_out], w float32[n_out, max])."""
    n_out = weights.shape[0]
    starts = np.zeros(n_out, dtype=np.int32)
    counts = np.zeros(n_out, dtype=np.int32)
    nonzero = [np.flatnonzero(row) for row in weights]
    width = max(len(nz) for nz in nonzero)
    taps = np.zeros((n_out, width), dtype=np.float32)
    for i, nz in enumerate(nonzero):
        starts[i] = nz[0]
        counts[i] = len(nz)
        taps[i, : len(nz)] = weights[i, nz[0] : nz[0] + len(nz)]
    return starts, counts, taps


class MaxPoolResize:
    """out = area_resize(max(a, b)) for uint8[H, W, C] frames, with weights from dense matrices
    rows float32[out_h, H] and cols float32[out_w, W]. The call releases the GIL."""

    def __init__(self, rows, cols, int channels):
        self.row_start, self.row_count, self.row_w = _taps(rows)
        self.col_start, self.col_count, self.col_w = _taps(cols)
        self.shape_in = (rows.shape[1], cols.shape[1], channels)
        self.tmp = np.zeros((rows.shape[0], cols.shape[1], channels), dtype=np.float32)

    def __call__(self, a, b, out):
        if a.shape != self.shape_in or b.shape != self.shape_in:
            raise ValueError(f"frames must have shape {self.shape_in}, got {a.shape} and {b.shape}")
        if out.shape != (self.row_w.shape[0], self.col_w.shape[0], self.shape_in[2]):
            raise ValueError(f"out has shape {out.shape}, expected "
                             f"{(self.row_w.shape[0], self.col_w.shape[0], self.shape_in[2])}")
        cdef const unsigned char[:, :, ::1] av = a
        cdef const unsigned char[:, :, ::1] bv = b
        cdef unsigned char[:, :, ::1] ov = out
        cdef const int[::1] rs = self.row_start, rc = self.row_count, cs = self.col_start, cc = self.col_count
        cdef const float[:, ::1] rw = self.row_w, cw = self.col_w
        cdef float[:, :, ::1] tv = self.tmp
        with nogil:
            max_pool_resize(av, bv, rs, rc, rw, cs, cc, cw, tv, ov)
        return out


cdef void to_planes(const unsigned char* src, unsigned char* dst, Py_ssize_t pixels,
                    Py_ssize_t channels) noexcept nogil:
    """src [pixels, channels] (interleaved) -> dst [channels, pixels] (planes)."""
    cdef Py_ssize_t p, k
    if channels == 1:
        memcpy(dst, src, pixels)
    elif channels == 3:  # RGB Atari frames: a fixed stride the compiler unrolls
        for p in range(pixels):
            dst[p] = src[3 * p]
            dst[pixels + p] = src[3 * p + 1]
            dst[2 * pixels + p] = src[3 * p + 2]
    else:
        for p in range(pixels):
            for k in range(channels):
                dst[k * pixels + p] = src[p * channels + k]


def gather_planes(stacks, out_array):
    """Network input of n roots' frame stacks, in one pass with the GIL released.

    stacks: n roots, each S frames uint8[H, W, C] oldest first (a sequence of C-contiguous
    arrays, or one C-contiguous array [S, H, W, C]); out: uint8[n, S * C, H, W] with
    out[i, j * C + c] = stacks[i][j][:, :, c] (the layout torch's conv takes: frame-major channels).
    Replaces a numpy gather and a transpose copy (three times slower on CPU, and GIL-bound).
    Returns out."""
    cdef unsigned char[:, :, :, ::1] out = out_array
    cdef Py_ssize_t n = out.shape[0], height = out.shape[2], width = out.shape[3]
    cdef Py_ssize_t pixels = height * width
    if len(stacks) != n:
        raise ValueError(f"out holds {n} stacks, got {len(stacks)}")
    if n == 0:
        return out_array
    first = stacks[0]
    cdef Py_ssize_t stack = len(first)
    cdef Py_ssize_t channels = out.shape[1] // stack if stack else 0
    if stack == 0 or channels * stack != out.shape[1]:
        raise ValueError(f"out has {out.shape[1]} channels, not a multiple of the stack of {stack}")
    expected = (height, width, channels)
    cdef const unsigned char** src = <const unsigned char**>malloc(n * stack * sizeof(unsigned char*))
    if src == NULL:
        raise MemoryError()
    cdef const unsigned char[:, :, :, :, ::1] batch
    cdef const unsigned char[:, :, :, ::1] block
    cdef const unsigned char[:, :, ::1] frame
    cdef Py_ssize_t i, j
    cdef unsigned char* dst = &out[0, 0, 0, 0]
    try:
        # Collect the frames' addresses with the GIL (the arrays stay alive: `stacks` holds them).
        if isinstance(stacks, np.ndarray) and stacks.ndim == 5:  # one array [n, S, H, W, C]
            if tuple(stacks.shape[2:]) != expected:
                raise ValueError(f"frames have shape {tuple(stacks.shape[2:])}, expected {expected}")
            batch = stacks
            for i in range(n * stack):
                src[i] = &batch[i // stack, i % stack, 0, 0, 0]
            stacks = ()  # the loop below is for sequences of roots
        for i in range(len(stacks)):
            root = stacks[i]
            if len(root) != stack:
                raise ValueError(f"root {i} has {len(root)} frames, root 0 has {stack}")
            if isinstance(root, np.ndarray):
                block = root
                if tuple(root.shape[1:]) != expected:
                    raise ValueError(f"root {i} frames have shape {tuple(root.shape[1:])}, expected {expected}")
                for j in range(stack):
                    src[i * stack + j] = &block[j, 0, 0, 0]
            else:
                for j in range(stack):
                    frame = root[j]
                    if (frame.shape[0], frame.shape[1], frame.shape[2]) != expected:
                        raise ValueError(f"root {i} frame {j} has shape {tuple(root[j].shape)}, expected {expected}")
                    src[i * stack + j] = &frame[0, 0, 0]
        with nogil:
            for i in range(n * stack):
                to_planes(src[i], dst + i * channels * pixels, pixels, channels)
    finally:
        free(src)
    return out_array
