"""Moving TrainingBatch objects to the device: pinned staging and a side copy stream on CUDA.

On CUDA each batch goes host numpy -> pinned host buffer (a CPU memcpy) -> device buffer
(non-blocking copy on a side stream), into one of `slots` preallocated buffer sets, so the
copy of batch s+1 overlaps the training of batch s. Arrays that are pinned already (the
observation windows reanalysis gathers into `pinned_array`s, `learner.zero_copy`) skip the
memcpy: the device copy reads them in place, and the mover holds the batch until that copy has
finished. On CPU the arrays are wrapped zero-copy and the stream calls are skipped: the same
code path without streams.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from ezero_async.replay.batch import TrainingBatch

_TENSOR_FIELDS = ("obs", "actions", "target_value", "target_value_prefix", "target_policy", "mask",
                  "value_mask", "weights")


class DeviceBatch(NamedTuple):
    """A TrainingBatch on the learner's device. B, K, S, A, F as in TrainingBatch."""

    obs: torch.Tensor
    """uint8[B, S + K, H, W, C] images or float32[B, S + K, D] vectors."""
    actions: torch.Tensor
    """int64[B, K]."""
    target_value: torch.Tensor
    """float32[B, K + 1]."""
    target_value_prefix: torch.Tensor
    """float32[B, K]."""
    target_policy: torch.Tensor
    """float32[B, K + 1, A]."""
    mask: torch.Tensor
    """float32[B, K + 1]."""
    value_mask: torch.Tensor
    """float32[B, K + 1]."""
    weights: torch.Tensor
    """float32[B]."""
    indices: np.ndarray
    """int64[B] host copy of the replay indices (for the priority callback)."""
    step: int
    """Training step this batch is for."""
    slot: int
    """Staging slot holding the tensors (-1 on CPU: they view the host arrays)."""


def check_batch(batch: TrainingBatch, frame_stack: int, unroll_steps: int, num_actions: int) -> None:
    """Raise ValueError naming the field if a batch does not match the learner's shapes/dtypes."""
    b = batch.weights.shape[0] if batch.weights.ndim == 1 else -1
    k = unroll_steps
    expect = {
        "actions": ((b, k), np.int64),
        "target_value": ((b, k + 1), np.float32),
        "target_value_prefix": ((b, k), np.float32),
        "target_policy": ((b, k + 1, num_actions), np.float32),
        "mask": ((b, k + 1), np.float32),
        "value_mask": ((b, k + 1), np.float32),
        "weights": ((b,), np.float32),
        "indices": ((b,), np.int64),
    }
    for name, (shape, dtype) in expect.items():
        arr = getattr(batch, name)
        if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
            got = (arr.dtype, arr.shape) if isinstance(arr, np.ndarray) else type(arr).__name__
            raise ValueError(f"TrainingBatch.{name}: expected {np.dtype(dtype).name}{list(shape)}, got {got}")
    obs = batch.obs
    if not isinstance(obs, np.ndarray) or obs.ndim not in (3, 5) or obs.shape[:2] != (b, frame_stack + k):
        raise ValueError(f"TrainingBatch.obs: expected [B={b}, S+K={frame_stack + k}, *F], "
                         f"got {getattr(obs, 'shape', type(obs).__name__)}")
    want = np.uint8 if obs.ndim == 5 else np.float32
    if obs.dtype != want:
        raise ValueError(f"TrainingBatch.obs: frames of rank {obs.ndim - 2} must be {np.dtype(want).name}, "
                         f"got {obs.dtype}")


def pinned_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """An uninitialised host array in pinned (page-locked) memory; the array keeps its torch
    tensor, and so the memory, alive (torch's caching host allocator reuses it once freed)."""
    torch_dtype = torch.from_numpy(np.empty(0, dtype)).dtype
    return torch.empty(shape, dtype=torch_dtype, pin_memory=True).numpy()


def is_pinned(arr: np.ndarray) -> bool:
    """Whether a writeable C-contiguous array lives in pinned memory (a CUDA pointer query: call
    it where CUDA is in use)."""
    return arr.flags.c_contiguous and arr.flags.writeable and torch.from_numpy(arr).is_pinned()


class BatchMover:
    """Stages TrainingBatch objects onto `device`, double-buffered (slots buffer sets) on CUDA.

    Protocol per batch: stage() (starts the copy, returns at once on CUDA), ready() before the
    compute stream touches it, done() after the last kernel that reads it is enqueued.
    """

    def __init__(self, device: torch.device, slots: int = 2) -> None:
        if slots < 2:
            raise ValueError(f"slots must be >= 2 (one training, one copying), got {slots}")
        self.device = device
        self.cuda = device.type == "cuda"
        self.slots = slots
        self._next_slot = 0
        self._host: list[dict[str, torch.Tensor]] = []
        self._dev: list[dict[str, torch.Tensor]] = []
        self._copied: list[torch.cuda.Event] = []
        self._consumed: list[torch.cuda.Event] = []
        self._held: list[TrainingBatch | None] = [None] * slots  # read in place by a copy in flight
        self._stream = torch.cuda.Stream(device) if self.cuda else None
        self.direct_copies = 0
        """Fields copied to the device straight from pinned batch memory (no staging memcpy)."""

    def stage(self, batch: TrainingBatch) -> DeviceBatch:
        """Start moving `batch` to the device; the host arrays are no longer needed on return
        (CUDA: copied into pinned memory; CPU: wrapped, so they stay referenced until done())."""
        indices = np.array(batch.indices, dtype=np.int64, copy=True)
        if not self.cuda:
            tensors = {name: _wrap(getattr(batch, name)) for name in _TENSOR_FIELDS}
            return DeviceBatch(**tensors, indices=indices, step=int(batch.step), slot=-1)
        slot = self._next_slot
        self._next_slot = (slot + 1) % self.slots
        if not self._host or self._host[slot]["obs"].shape != batch.obs.shape:
            self._allocate(batch)
        host, dev = self._host[slot], self._dev[slot]
        # Host sync (cheap): the H2D copy that last read this pinned slot was enqueued `slots`
        # batches ago and has finished long since; wait for it before overwriting the buffer.
        self._copied[slot].synchronize()
        self._held[slot] = None  # its in-place copy has finished: the batch may be freed
        sources = {}
        for name in _TENSOR_FIELDS:
            arr = getattr(batch, name)
            if is_pinned(arr):  # read in place: the batch stays held until this slot's next stage()
                sources[name] = torch.from_numpy(arr)
                self._held[slot] = batch
                self.direct_copies += 1
            else:
                np.copyto(host[name].numpy(), arr)  # CPU memcpy, releases the GIL
                sources[name] = host[name]
        with torch.cuda.stream(self._stream):
            # Device-side wait (no host sync): the previous batch in this slot is still being
            # read by the compute stream until its done() event fires.
            self._stream.wait_event(self._consumed[slot])
            for name in _TENSOR_FIELDS:
                dev[name].copy_(sources[name], non_blocking=True)  # async H2D from pinned memory
            self._copied[slot].record(self._stream)
        return DeviceBatch(**dev, indices=indices, step=int(batch.step), slot=slot)

    def ready(self, staged: DeviceBatch) -> None:
        """Make the current (compute) stream wait for the batch's copy: a device-side wait,
        the host does not block."""
        if self.cuda:
            torch.cuda.current_stream(self.device).wait_event(self._copied[staged.slot])

    def done(self, staged: DeviceBatch) -> None:
        """Mark the batch's buffers free once the work enqueued so far on the compute stream
        has run (records an event; no host sync)."""
        if self.cuda:
            self._consumed[staged.slot].record(torch.cuda.current_stream(self.device))

    def _allocate(self, batch: TrainingBatch) -> None:
        # Allocate once (and again only if the batch shapes change): every slot gets pinned host
        # and device buffers. Events start "recorded" so the first waits return at once.
        torch.cuda.synchronize(self.device)  # sync point: old buffers may still be in flight
        self._host, self._dev, self._copied, self._consumed = [], [], [], []
        for _ in range(self.slots):
            host = {name: torch.from_numpy(np.empty_like(getattr(batch, name))).pin_memory()
                    for name in _TENSOR_FIELDS}
            self._host.append(host)
            self._dev.append({name: torch.empty_like(t, device=self.device) for name, t in host.items()})
            copied, consumed = torch.cuda.Event(), torch.cuda.Event()
            copied.record(self._stream)
            consumed.record(torch.cuda.current_stream(self.device))
            self._copied.append(copied)
            self._consumed.append(consumed)


def _wrap(arr: np.ndarray) -> torch.Tensor:
    """Zero-copy tensor view of a host array (a copy only for read-only or non-contiguous arrays,
    which torch cannot share)."""
    if not arr.flags.writeable or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr).copy()
    return torch.from_numpy(arr)


def stage_naive(batch: TrainingBatch, device: torch.device) -> DeviceBatch:
    """The baseline without pinned memory, side stream or prefetch: a synchronous pageable copy
    per field (benchmarks compare against it)."""
    tensors = {name: torch.as_tensor(np.ascontiguousarray(getattr(batch, name))).to(device) for name in _TENSOR_FIELDS}
    return DeviceBatch(**tensors, indices=np.array(batch.indices, dtype=np.int64), step=int(batch.step), slot=-1)
