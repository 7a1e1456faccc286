"""Fault injection for the durability tests: SIGKILL this process (or its whole process group)
the n-th time execution passes a named point.

Set EZERO_FAULT=<point>:<n>[:group] in a run's environment, e.g.
`EZERO_FAULT=checkpoint-flushed:2:group`. Unset (always, outside tests) every fault_point() is
a dictionary lookup and nothing else. Points:
  checkpoint-flushed         the replay flush of a checkpoint is durable, its file not written
  checkpoint-before-rename   the checkpoint's temp file is written, not yet renamed
"""
from __future__ import annotations

import os
import signal
import threading

POINTS = ("checkpoint-flushed", "checkpoint-before-rename")


def _parse(spec: str | None) -> tuple[str, int, bool] | None:
    if not spec:
        return None
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[0] not in POINTS or not parts[1].isdigit() or \
            (len(parts) == 3 and parts[2] != "group"):
        raise ValueError(f"EZERO_FAULT={spec!r}: expected <point>:<n>[:group] with point one of {', '.join(POINTS)}")
    return parts[0], int(parts[1]), len(parts) == 3


_FAULT = _parse(os.environ.get("EZERO_FAULT"))
_counts: dict[str, int] = {}
_lock = threading.Lock()


def fault_point(name: str) -> None:
    """SIGKILL here if EZERO_FAULT names this point and this is its n-th pass."""
    if _FAULT is None or _FAULT[0] != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        if _counts[name] != _FAULT[1]:
            return
    if _FAULT[2]:
        os.killpg(os.getpgid(0), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
