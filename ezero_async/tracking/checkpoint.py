"""Checkpoints: RUN_DIR/checkpoints/step-<s>.pt, written atomically, the last k kept.

A checkpoint is one torch.save'd dict (FORMAT_VERSION guards its layout):
  format          FORMAT_VERSION
  config          the run's RunConfig as a plain dict (config_from_dict rebuilds it)
  step            training steps done (the learner's step s)
  learner         Learner.state_dict(): model (online weights after update s), optimizer,
                  scaler, step, generator (augmentation RNG)
  online, target  [{"version": v, "model": state dict}, ...]: every weights version the stores
                  held, oldest first (self-play and reanalysis after a resume ask for these);
                  equal tensors are one object, so torch.save writes each distinct one once
  replay          {"write_count": w, "collected": n, "cursors": the flush's Cursors as a dict}
                  of the replay flush made just before (the store is flushed first, so it is
                  never older than a checkpoint; resuming rebuilds the replay at these cursors
                  even when the store committed later flushes)
  evaluations     summary rows of the evaluations so far
  episodes        {"returns": [...], "lengths": [...]}: finished training games so far
  wall_time_s     training wall time before this checkpoint (resumed runs add theirs)
  aim_run         the Aim run hash (or None), so a resumed run keeps tracking into it
  torch_rng       torch's global CPU RNG state

Writing: through tracking.atomic (temp file, fsync, rename, fsync of the directory). A SIGKILL
at any moment leaves either the previous checkpoints or the new one, never a torn file under a
final name.
"""
from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from ezero_async.errors import UserError
from ezero_async.faults import fault_point
from ezero_async.tracking.atomic import atomic_path

FORMAT_VERSION = 1
FULL_DISK_BYTES = 16 * 2**20
"""A failed write with less free space than this left is a full disk."""
KEYS = ("config", "step", "learner", "target", "replay", "evaluations", "episodes", "wall_time_s")
_NAME = re.compile(r"^step-(\d+)\.pt$")


class CheckpointError(UserError):
    """A missing, unreadable or incompatible checkpoint (the message says where and what to do)."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(step, path) of the run's complete checkpoints, oldest first (temp files are ignored)."""
    directory = checkpoint_dir(run_dir)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save_checkpoint(run_dir: Path, state: dict[str, Any], keep: int) -> Path:
    """Write `state` (the layout above) as step-<state['step']>.pt; drop all but the newest `keep`."""
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks {missing}")
    directory = checkpoint_dir(run_dir)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{int(state['step']):09d}.pt"
    with atomic_path(final) as tmp:
        try:
            torch.save({**state, "format": FORMAT_VERSION}, tmp)
        except RuntimeError as exc:
            # torch's C++ writer reports a full disk as "basic_ios::clear: iostream error" (no
            # errno): name it when the disk has indeed run out of room.
            if shutil.disk_usage(directory).free < FULL_DISK_BYTES:
                raise OSError(errno.ENOSPC, "No space left on device", str(final)) from exc
            raise
        fault_point("checkpoint-before-rename")
    for _, old in list_checkpoints(run_dir)[:-keep]:
        old.unlink(missing_ok=True)
    for stray in directory.glob(".step-*.tmp"):  # left by a run killed while writing
        stray.unlink(missing_ok=True)
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint file, or the newest one of a run directory, validated against FORMAT_VERSION."""
    path = Path(path)
    if path.is_dir():
        found = list_checkpoints(path)
        if not found:
            raise CheckpointError(f"no checkpoint in {checkpoint_dir(path)}: the run stopped before its first "
                                  "checkpoint; start it again instead of resuming")
        path = found[-1][1]
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} not found: pass a run directory or one of its "
                              "checkpoints/step-*.pt files")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise CheckpointError(f"checkpoint {path} is unreadable ({type(exc).__name__}: {str(exc)[:120]}); "
                              "delete it to fall back to the previous one") from exc
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not an ezero_async checkpoint")
    if state["format"] != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint {path} has format {state['format']}, this version reads "
                              f"{FORMAT_VERSION}: evaluate or resume it with the version that wrote it")
    missing = [k for k in KEYS if k not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}; delete it to fall back "
                              "to the previous one")
    state["path"] = str(path)
    return state

