"""Who owns a run directory, and what a run directory that never got going holds.

`own_run_dir` takes an advisory lock (flock on RUN_DIR/.lock) for the life of the run: a second
run or resume on the same directory is refused with one line, and the kernel releases the lock
when the owner dies however it dies (no stale lock file to delete). The lock is re-entrant
within a process, so `main` can take it before it decides what to do with the directory and
`train` can take it again for callers that start there.

`unstarted_run` / `clear_unstarted_run`: a directory with a config.json but no checkpoint and no
summary (a run killed or crashed before its first checkpoint) holds nothing to resume; it is
started again in place instead of being a dead end.
"""
from __future__ import annotations

import fcntl
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ezero_async.errors import UserError

LOCK_NAME = ".lock"
RUN_FILES = ("config.json", "metrics.jsonl", "summary.json")
RUN_DIRS = ("replay", "checkpoints")
"""What a run writes into its directory (a user's own files there are left alone)."""

_held: dict[Path, list] = {}  # resolved run dir -> [fd, depth]
_guard = threading.Lock()


class RunDirBusy(UserError):
    """Another live process owns the run directory."""


@contextmanager
def own_run_dir(run_dir: Path) -> Iterator[None]:
    """Hold RUN_DIR's lock for the block (creating the directory); RunDirBusy if another process
    holds it. Re-entrant within this process."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = run_dir.resolve()
    with _guard:
        if key in _held:
            _held[key][1] += 1
        else:
            fd = os.open(key / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                owner = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise RunDirBusy(f"{run_dir} is in use by another run (pid {owner}); wait for it to end, or "
                                 "pass another --run-dir") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _held[key] = [fd, 1]
    try:
        yield
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                os.close(entry[0])  # releases the lock (the file stays: deleting it would race)


@contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """A blocking advisory lock on `path` (created if needed) for the block: serialises one-time
    set-up that several processes may attempt at once (e.g. creating an Aim repository)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def unstarted_run(run_dir: Path) -> bool:
    """RUN_DIR holds a run's config but neither a checkpoint nor a summary."""
    from ezero_async.tracking.checkpoint import list_checkpoints  # torch: only when asked

    run_dir = Path(run_dir)
    return ((run_dir / "config.json").is_file() and not list_checkpoints(run_dir)
            and not (run_dir / "summary.json").exists())


def clear_unstarted_run(run_dir: Path) -> None:
    """Remove what an unstarted run wrote, so that a run can start in RUN_DIR again."""
    run_dir = Path(run_dir)
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        if (run_dir / name).exists():
            shutil.rmtree(run_dir / name)
