"""Versioned weight publication from the learner to inference (self-play, reanalysis).

A WeightStore keeps the last `capacity` published versions as preallocated state-dict copies.
The learner publishes at a batch boundary: it copies into the oldest buffer nobody is reading,
then makes it visible under a lock, so inference never sees a half-written version and never
waits for the learner (double buffering with capacity 2). A version is a training step: the
weights after that many updates.
"""
from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import torch
from torch import nn

StateDict = dict[str, torch.Tensor]


class _Buffer:
    __slots__ = ("version", "state", "readers")

    def __init__(self) -> None:
        self.version: int | None = None
        self.state: StateDict | None = None
        self.readers = 0


class WeightStore:
    """Thread-safe store of recent weight versions.

    capacity: versions kept (>= 2); device: where the copies live (None: the model's device).
    Readers use `read()` / `load_into()` (the buffer is pinned while read) or `latest()`
    (unpinned: copy it before `capacity - 1` further publishes).
    """

    def __init__(self, capacity: int = 2, device: torch.device | str | None = None, name: str = "weights") -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 (one being read, one being written), got {capacity}")
        self.name = name
        self.device = None if device is None else torch.device(device)
        self._buffers = [_Buffer() for _ in range(capacity)]
        self._cond = threading.Condition()
        self._newest: int | None = None

    # ------------------------------------------------------------ writer (learner thread)

    def publish(self, version: int, model: nn.Module) -> None:
        """Copy model's parameters and buffers as `version` (must exceed every earlier one).
        Blocks only while a reader holds the oldest buffer."""
        self.publish_state(version, model.state_dict())

    def publish_state(self, version: int, source: StateDict) -> None:
        """publish() from a state dict (a learner process sends its weights as one)."""
        with self._cond:
            if self._newest is not None and version <= self._newest:
                raise ValueError(f"{self.name}: version {version} is not newer than {self._newest}")
            buf = min(self._buffers, key=lambda x: -1 if x.version is None else x.version)
            while buf.readers:
                self._cond.wait()
            buf.version = None  # invisible while being written
        with torch.no_grad():
            if buf.state is None or buf.state.keys() != source.keys():
                buf.state = {k: v.detach().to(self.device or v.device, copy=True) for k, v in source.items()}
            else:
                for k, v in source.items():
                    buf.state[k].copy_(v, non_blocking=True)
        first = next(iter(source.values()), None)
        if first is not None and first.is_cuda:
            # Sync point (once per publish): readers run on other streams, so the copies must
            # have landed before the version becomes visible.
            torch.cuda.current_stream(first.device).synchronize()
        with self._cond:
            buf.version = version
            self._newest = version
            self._cond.notify_all()

    # ------------------------------------------------------------ readers (any thread)

    @property
    def newest(self) -> int | None:
        """The newest version published so far (None before the first)."""
        with self._cond:
            return self._newest

    def versions(self) -> list[int]:
        """Published versions currently held, oldest first."""
        with self._cond:
            return sorted(b.version for b in self._buffers if b.version is not None)

    def latest(self) -> tuple[int, StateDict]:
        """(version, state dict) of the newest version; raises LookupError before the first
        publish. Not pinned: load it before capacity - 1 further publishes."""
        with self._cond:
            buf = self._find(None)
            return buf.version, buf.state  # type: ignore[return-value]

    @contextlib.contextmanager
    def read(self, version: int | None = None) -> Iterator[tuple[int, StateDict]]:
        """Pin a version (newest if None) while the block runs: `with store.read() as (v, sd):`.
        CUDA readers must finish (synchronize) work that reads the tensors before leaving it."""
        with self._cond:
            buf = self._find(version)
            buf.readers += 1
        try:
            yield buf.version, buf.state  # type: ignore[misc]
        finally:
            with self._cond:
                buf.readers -= 1
                self._cond.notify_all()

    def load_into(self, model: nn.Module, version: int | None = None) -> int:
        """Copy a version (newest if None) into `model`; returns the version loaded."""
        with self.read(version) as (got, state):
            model.load_state_dict(state)
            first = next(iter(state.values()), None)
            if first is not None and first.is_cuda:
                # Sync point (once per load): the copies run async on this thread's stream and
                # must finish before the buffer is unpinned and may be overwritten.
                torch.cuda.current_stream(first.device).synchronize()
        return got

    def wait_for(self, version: int, timeout: float) -> None:
        """Block until `version` is held; TimeoutError after `timeout` s, LookupError if it was
        already evicted (a newer one exists but not it)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                held = {b.version for b in self._buffers}
                if version in held:
                    return
                if self._newest is not None and self._newest > version:
                    raise LookupError(f"{self.name}: version {version} was evicted (held: {sorted(v for v in held if v is not None)})")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.name}: version {version} not published within {timeout} s")
                self._cond.wait(left)

    def _find(self, version: int | None) -> _Buffer:
        held = [b for b in self._buffers if b.version is not None]
        if not held:
            raise LookupError(f"{self.name}: nothing published yet")
        if version is None:
            return max(held, key=lambda b: b.version)  # type: ignore[arg-type, return-value]
        for b in held:
            if b.version == version:
                return b
        raise LookupError(f"{self.name}: version {version} not held (held: {sorted(b.version for b in held)})")
