"""Named POSIX shared-memory blocks holding numpy arrays: create (owner) or attach (reader) by name.

The owner unlinks its segment on close() and, as a safety net, at interpreter exit (atexit runs
after an uncaught exception too), so a failed run leaves nothing in /dev/shm. A process killed
by a signal is covered by multiprocessing's resource tracker, which unlinks segments its owner
never did; when the tracker dies too (SIGKILL to the whole process group) the segment would stay
until reboot, so names carry the owner's pid (`ezr_<pid>_<token>`) and `remove_stale_segments`,
run at the start of every run and by `python -m ezero_async.main --cleanup`, unlinks those whose
owner is gone. Readers never unlink.
"""
from __future__ import annotations

import atexit
import os
import re
import secrets
from multiprocessing import resource_tracker, shared_memory
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np

SEGMENT_PREFIX = "ezr_"
SHM_DIR = Path("/dev/shm")
"""Where Linux lists POSIX shared memory (elsewhere stale segments are not looked for)."""
_OWNED = re.compile(rf"^{SEGMENT_PREFIX}(\d+)_[0-9a-f]+$")


class StaleSegment(NamedTuple):
    name: str
    """Segment name (in SHM_DIR)."""
    pid: int
    """The owner process that no longer exists."""
    size: int
    """Bytes it held."""


def segment_name() -> str:
    """A fresh segment name that records this process as its owner."""
    return f"{SEGMENT_PREFIX}{os.getpid()}_{secrets.token_hex(6)}"


def owner_pid(name: str) -> int | None:
    """The owner pid recorded in one of our segment names (None for any other name)."""
    match = _OWNED.match(name)
    return int(match.group(1)) if match else None


def owned_by_live_process(name: str, but: int | None = None) -> bool:
    """Whether segment `name` is ours and its owner process (other than pid `but`) still runs:
    a leak check on a shared machine skips the segments of other runs this way."""
    pid = owner_pid(name)
    return pid is not None and pid != but and _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def stale_segments(shm_dir: Path = SHM_DIR) -> list[StaleSegment]:
    """Our segments whose owner process is gone (a reused pid keeps its segment: never a live one)."""
    if not shm_dir.is_dir():
        return []
    out = []
    for path in sorted(shm_dir.iterdir()):
        match = _OWNED.match(path.name)
        if match and not _alive(int(match.group(1))):
            try:
                out.append(StaleSegment(path.name, int(match.group(1)), path.stat().st_size))
            except FileNotFoundError:  # removed meanwhile by someone else
                continue
    return out


def remove_stale_segments(shm_dir: Path = SHM_DIR) -> list[StaleSegment]:
    """Unlink every stale segment; returns those removed."""
    removed = []
    for segment in stale_segments(shm_dir):
        try:
            (shm_dir / segment.name).unlink()
        except FileNotFoundError:
            continue
        removed.append(segment)
    return removed

ALIGN = 4096
"""Arrays start on page boundaries (frame rows then never straddle a page needlessly)."""


def layout(specs: Sequence[tuple[str, np.dtype, tuple[int, ...]]]) -> tuple[dict[str, int], int]:
    """Byte offset of each (name, dtype, full shape) in one block, and the block size."""
    offsets: dict[str, int] = {}
    cursor = 0
    for name, dtype, shape in specs:
        offsets[name] = cursor
        nbytes = int(np.dtype(dtype).itemsize * int(np.prod(shape, dtype=np.int64)))
        cursor += (nbytes + ALIGN - 1) // ALIGN * ALIGN
    return offsets, max(cursor, ALIGN)


class SharedArrays:
    """A set of numpy arrays living in one shared-memory segment.

    `specs` lists (name, dtype, full shape); the layout is a pure function of it, so a reader
    that knows the specs and the segment name sees the same arrays.
    """

    def __init__(self, specs: Sequence[tuple[str, np.dtype, tuple[int, ...]]], name: str | None = None,
                 create: bool = True):
        offsets, size = layout(specs)
        if create:
            name = name or segment_name()
            self._shm = shared_memory.SharedMemory(name=name, create=True, size=size)
        else:
            if name is None:
                raise ValueError("attach needs the segment name")
            self._shm = shared_memory.SharedMemory(name=name, create=False)
            # Python < 3.13 registers attached segments with this process's resource tracker,
            # which would unlink the owner's segment when the reader exits: undo that.
            resource_tracker.unregister(self._shm._name, "shared_memory")  # noqa: SLF001
            if self._shm.size < size:
                raise ValueError(f"shared memory {name!r} has {self._shm.size} bytes, layout needs {size}")
        self.owner = create
        self.name = self._shm.name
        self.arrays: dict[str, np.ndarray] = {}
        for spec_name, dtype, shape in specs:
            self.arrays[spec_name] = np.ndarray(shape, dtype=dtype, buffer=self._shm.buf,
                                                offset=offsets[spec_name])
        self._closed = False
        if create:
            atexit.register(self.close)

    def close(self) -> None:
        """Drop the arrays and unmap; the owner also unlinks the name. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.arrays.clear()
        if self.owner:
            atexit.unregister(self.close)
            # Unlink first: the name disappears even if a caller still holds an array view.
            self._shm.unlink()
        try:
            self._shm.close()
        except BufferError:
            # Some caller still holds a numpy view into the block; the mapping is released when
            # that view dies. The name is already unlinked above, so nothing leaks in /dev/shm.
            pass
