"""Shared-memory leak checks that hold on a shared machine (CI beside other runs)."""
from __future__ import annotations

import os
from pathlib import Path

from ezero_async.replay.shm import owned_by_live_process


def shm_segments() -> set[str]:
    return set(os.listdir("/dev/shm")) if Path("/dev/shm").is_dir() else set()


def leaked_segments(before: set[str]) -> set[str]:
    """Entries of /dev/shm new since `before`, less the segments of other live processes (another
    run or suite on the machine): this process's own, or any whose owner is gone."""
    return {name for name in shm_segments() - before if not owned_by_live_process(name, but=os.getpid())}
