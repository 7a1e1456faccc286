"""A suite's runs on disk: the manifest that fixes what the suite is, one ordinary run directory
per (game, seed), the command that trains or continues each, and the status of every attempt.

SUITE_DIR/
  suite.json             preset, games, seeds, overrides, device (a later call must agree)
  status.json            per run: state (done | failed | interrupted), attempts, exit code, error
  runs/<slug>-s<seed>/   a normal run directory (python -m ezero_async.main --run-dir ...)
  logs/<slug>-s<seed>.log  the run's stdout and stderr, every attempt appended
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ezero_async.envs.registry import GameId, resolve_game
from ezero_async.errors import UserError
from ezero_async.tracking.atomic import write_text_atomic

EXIT_INTERRUPTED = (130, 143)
"""A run stopped by SIGINT / SIGTERM: its checkpoint is written; it continues on the next call."""


@dataclass(frozen=True)
class Manifest:
    """What a suite is; fixed when SUITE_DIR is created."""

    preset: str
    games: tuple[str, ...]
    """Game labels (`Breakout`, `MinAtar/Breakout`), in report order."""
    seeds: tuple[int, ...]
    overrides: tuple[str, ...]
    """`--set KEY=VALUE` strings passed to every run."""
    device: str

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "games": list(self.games), "seeds": list(self.seeds),
                "overrides": list(self.overrides), "device": self.device}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        return cls(preset=data["preset"], games=tuple(data["games"]), seeds=tuple(int(s) for s in data["seeds"]),
                   overrides=tuple(data["overrides"]), device=data["device"])


def open_suite(suite_dir: Path, wanted: Manifest | None) -> Manifest:
    """The suite in `suite_dir`: created with `wanted` if new; otherwise its manifest, which
    `wanted` (a run call's arguments) must match. `wanted` None: an existing suite only (report)."""
    path = suite_dir / "suite.json"
    if path.is_file():
        try:
            found = Manifest.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{path} is not a suite manifest ({type(exc).__name__}: {exc}); pass another --out") from exc
        if wanted is not None and wanted != found:
            theirs, ours = found.to_dict(), wanted.to_dict()
            diff = ", ".join(f"{k} {theirs[k]} (asked: {ours[k]})" for k in theirs if theirs[k] != ours[k])
            raise UserError(f"{suite_dir} holds another suite: {diff}; run it with its own arguments, or pass "
                            "another --out")
        return found
    if wanted is None:
        raise UserError(f"{suite_dir} holds no suite (no suite.json); pass the --out of a suite run")
    if suite_dir.exists() and any(suite_dir.iterdir()):
        raise UserError(f"{suite_dir} exists and is not a suite directory; pass a new or empty --out")
    suite_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(wanted.to_dict(), indent=2))
    return wanted


@dataclass(frozen=True)
class RunSpec:
    """One (game, seed) of a suite."""

    game: GameId
    seed: int
    suite_dir: Path

    @property
    def name(self) -> str:
        return f"{self.game.slug}-s{self.seed}"

    @property
    def run_dir(self) -> Path:
        return self.suite_dir / "runs" / self.name

    @property
    def log(self) -> Path:
        return self.suite_dir / "logs" / f"{self.name}.log"

    def finished(self) -> bool:
        return (self.run_dir / "summary.json").is_file()

    def command(self, manifest: Manifest) -> list[str]:
        """Train the run, or continue it when its directory already holds one (main then resumes
        from the newest checkpoint, or starts again from the saved config if it has none)."""
        main = [sys.executable, "-m", "ezero_async.main"]
        if (self.run_dir / "config.json").is_file():
            return [*main, "--resume", str(self.run_dir), "--device", manifest.device]
        sets = [arg for override in manifest.overrides for arg in ("--set", override)]
        return [*main, "--game", self.game.label, "--preset", manifest.preset, "--seed", str(self.seed),
                "--run-dir", str(self.run_dir), "--device", manifest.device, *sets]


def run_specs(suite_dir: Path, manifest: Manifest) -> list[RunSpec]:
    """Every run of the suite, game-major (all seeds of the first game first)."""
    return [RunSpec(resolve_game(game), seed, suite_dir) for game in manifest.games for seed in manifest.seeds]


class StatusFile:
    """status.json: the outcome of each run's latest attempt (written by the coordinator only)."""

    def __init__(self, suite_dir: Path) -> None:
        self.path = suite_dir / "status.json"
        self.runs: dict[str, dict[str, Any]] = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def record(self, spec: RunSpec, state: str, exit_code: int | None, error: str | None) -> None:
        entry = self.runs.setdefault(spec.name, {"attempts": 0})
        entry.update(state=state, exit_code=exit_code, error=error, attempts=entry["attempts"] + 1)
        write_text_atomic(self.path, json.dumps(self.runs, indent=2))


def last_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The newest complete record of a run's metrics.jsonl (None before its first one)."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    with path.open("rb") as f:
        size = f.seek(0, 2)
        f.seek(max(0, size - 65_536))
        tail = f.read().split(b"\n")
    for line in reversed(tail[:-1] if tail and tail[-1] else tail):  # a last line without \n is still being written
        if line.strip():
            return json.loads(line)
    return None


def last_error(log: Path) -> str | None:
    """The line that says why a run failed: its last `error:` line, else its last line."""
    if not log.is_file():
        return None
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    chosen = errors[-1] if errors else (lines[-1] if lines else None)
    return None if chosen is None else chosen[:300]
