"""Shared-memory leak checks that hold on a shared machine (CI beside other runs)."""
from __future__ import annotations

import os
from pathlib import Path

from ezero_async.replay.shm import owned_by_live_process


def shm_segments() -> set[str]:
    return set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()


def mapped_by_other_process(names: set[str]) -> set[str]:
    """Those of `names` (entries of /dev/shm) that another live process has mapped: a run's
    multiprocessing semaphores (sem.mp-*) carry no pid in their name, but every user maps them."""
    found: set[str] = set()
    for maps in Path("/proc").glob("[0-9]*/maps"):
        if maps.parent.name == str(os.getpid()):
            continue
        try:
            text = maps.read_text()
        except OSError:  # the process ended, or is not ours to read
            continue
        found |= {name for name in names if f"/dev/shm/{name}" in text}
    return found


def leaked_segments(before: set[str]) -> set[str]:
    """Entries of /dev/shm new since `before`, less those of other live processes (another run or
    suite on the machine): this process's own, or any whose owner is gone and nobody maps."""
    new = {name for name in shm_segments() - before if not owned_by_live_process(name, but=os.getpid())}
    return new - mapped_by_other_process(new)
