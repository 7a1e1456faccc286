"""Errors a user can fix. The CLI prints their message as one line and exits with code 2."""
from __future__ import annotations

import errno
from pathlib import Path


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""


class ConfigError(UserError):
    """A configuration key, type or value is invalid."""


class UnknownGameError(UserError):
    """A game name that no supported family knows."""


DISK_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
               errno.EROFS: "the file system is read-only"}


def disk_error(exc: BaseException | None) -> OSError | None:
    """The OSError with a disk errno (ENOSPC, EDQUOT, EROFS) anywhere in exc's causes, contexts or
    exception groups, or None."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in DISK_ERRNOS:
            return e
        stack.extend([e.__cause__, e.__context__, *getattr(e, "exceptions", ())])
    return None


def disk_full_message(error: OSError, run_dir: Path, checkpoint_bytes: int | None) -> str:
    """One line: which file, why, what a checkpoint needs, and that the newest one is intact."""
    where = f"cannot write {error.filename}" if error.filename else "cannot write to the run's disk"
    need = f"; a checkpoint of this run takes about {_size(checkpoint_bytes)} plus the replay's growth" \
        if checkpoint_bytes else ""
    return (f"{where}: {DISK_ERRNOS[error.errno]}{need}; the newest checkpoint in {run_dir / 'checkpoints'} is "
            f"intact: free space, then continue with --resume {run_dir}")


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n} bytes"
