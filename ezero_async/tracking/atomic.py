"""Atomic file writes: a file under its final name is either the old one or the whole new one.

Checkpoints, summary.json, config.json and evaluation outputs are written to a temp file in the
same directory, fsynced, renamed over the final name, and the directory is fsynced, so a crash
or SIGKILL at any moment never leaves a torn file where a reader looks.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


def _read_umask() -> int:
    mask = os.umask(0o022)  # reading the umask means setting it: set it straight back
    os.umask(mask)
    return mask


UMASK = _read_umask()
"""The process umask, read once at import (os.umask is process-wide: no thread reads it later)."""


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """`with atomic_path(final) as tmp:` write tmp; on success it replaces `final`, on failure
    it is removed. Temp names are `.<final name>.<random>.tmp`."""
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    tmp = Path(name)
    try:
        # mkstemp creates 0600; a run's files get the mode any new file gets (0644 under the
        # usual umask 022), so colleagues on a shared machine can read a run.
        os.fchmod(fd, 0o666 & ~UMASK)
    finally:
        os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    directory = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
