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


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """`with atomic_path(final) as tmp:` write tmp; on success it replaces `final`, on failure
    it is removed. Temp names are `.<final name>.<random>.tmp`."""
    final = Path(final)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
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
