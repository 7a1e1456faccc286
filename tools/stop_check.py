"""Stop check: signal a training run's whole process group at random moments, as a terminal's
Ctrl-C or a scheduler's SIGTERM would, and report how each stop went.

  python tools/stop_check.py --game Breakout --preset atari100k --trials 5 --signal INT --signal TERM
  python tools/stop_check.py --game Breakout --preset smoke --trials 5 --min-delay 2 --max-delay 10 --resume

Each trial starts `python -m ezero_async.main ... --device cpu --no-aim` in its own session
(setsid), waits until the run has written its first metrics line, then a random delay in
[--min-delay, --max-delay] seconds, and sends the signal to the process group. It measures the
stop latency (signal to exit), and checks the clean-stop contract: exit code 128 + signal, an
exit checkpoint, no traceback on stderr, no process of the group left, no shared-memory segment
of the run left in /dev/shm; with --resume, that `--resume` finishes the run. Prints one row per
trial, the median latency per signal, and exits 1 if any trial broke the contract.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ezero_async.replay.shm import owned_by_live_process

SHM = Path("/dev/shm")
SEGMENT_PREFIXES = ("ezr_", "psm_")
"""Names of the segments a run creates: the replay's hot tier and the env pools' frames."""


@dataclass
class Trial:
    signal: str
    delay_s: float
    latency_s: float
    exit_code: int
    checkpoint: bool
    traceback: bool
    group_left: bool
    shm_left: list[str]
    resumed: bool | None = None
    last_lines: list[str] = field(default_factory=list)

    def problems(self, signum: int) -> list[str]:
        found = []
        if self.exit_code != 128 + signum:
            found.append(f"exit code {self.exit_code}, expected {128 + signum}")
        if not self.checkpoint:
            found.append("no exit checkpoint")
        if self.traceback:
            found.append("traceback on stderr")
        if self.group_left:
            found.append("processes of the group outlived the run")
        if self.shm_left:
            found.append(f"shared memory left: {', '.join(self.shm_left)}")
        if self.resumed is False:
            found.append("--resume did not finish the run")
        return found


def segments() -> set[str]:
    return {p.name for p in SHM.iterdir() if p.name.startswith(SEGMENT_PREFIXES)} if SHM.is_dir() else set()


def leaked(before: set[str]) -> list[str]:
    """Segments new since `before` that no running process owns: the stopped run's group is gone
    by now, so a live owner is another run on the machine."""
    return sorted(name for name in segments() - before if not owned_by_live_process(name))


def main_command(run_args: list[str]) -> list[str]:
    return [sys.executable, "-m", "ezero_async.main", "--device", "cpu", "--no-aim", *run_args]


def group_alive(pgid: int, grace_s: float = 5.0) -> bool:
    """Whether any process of the group is still there after `grace_s` (the resource tracker
    exits a moment after its last client)."""
    deadline = time.monotonic() + grace_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        if time.monotonic() > deadline:
            return True
        time.sleep(0.1)


def wait_started(run_dir: Path, proc: subprocess.Popen, timeout: float) -> None:
    """Until the run has emitted its first metrics line (start-up done, the pipeline running)."""
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + timeout
    while not (metrics.exists() and metrics.stat().st_size > 0):
        if proc.poll() is not None:
            raise RuntimeError(f"the run exited with code {proc.returncode} before starting")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run wrote no metrics within {timeout:.0f} s")
        time.sleep(0.1)


def run_trial(run_args: list[str], run_dir: Path, signum: int, delay: float, *, resume: bool,
              start_timeout: float, stop_timeout: float, resume_timeout: float) -> Trial:
    before = segments()
    stderr_path = run_dir.with_suffix(".stderr")
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(main_command([*run_args, "--run-dir", str(run_dir)]), stdout=subprocess.DEVNULL,
                                stderr=stderr, start_new_session=True)
        try:
            wait_started(run_dir, proc, start_timeout)
            time.sleep(delay)
            sent = time.monotonic()
            os.killpg(proc.pid, signum)
            proc.wait(timeout=stop_timeout)
            latency = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    group_left = group_alive(proc.pid)  # also lets the resource tracker unlink what it was left
    err = stderr_path.read_text(errors="replace")
    trial = Trial(signal=signal.Signals(signum).name, delay_s=delay, latency_s=latency, exit_code=proc.returncode,
                  checkpoint=any((run_dir / "checkpoints").glob("*.pt")), traceback="Traceback" in err,
                  group_left=group_left, shm_left=leaked(before),
                  last_lines=err.strip().splitlines()[-4:])
    if resume and trial.checkpoint:
        done = subprocess.run(main_command(["--resume", str(run_dir)]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=resume_timeout)
        trial.resumed = done.returncode == 0 and (run_dir / "summary.json").exists()
        if not trial.resumed:
            trial.last_lines += done.stderr.strip().splitlines()[-4:]
    return trial


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--preset", default="smoke")
    parser.add_argument("--env-steps", type=int, default=None, help="runtime.env_steps of each run")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--signal", action="append", choices=["INT", "TERM"], help="default: INT and TERM")
    parser.add_argument("--trials", type=int, default=5, help="trials per signal")
    parser.add_argument("--min-delay", type=float, default=0.0, help="seconds after the first metrics line")
    parser.add_argument("--max-delay", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0, help="seed of the random delays")
    parser.add_argument("--resume", action="store_true", help="check that --resume finishes each stopped run")
    parser.add_argument("--out", type=Path, default=None, help="folder of the trials' run dirs (default: temporary)")
    parser.add_argument("--start-timeout", type=float, default=600.0)
    parser.add_argument("--stop-timeout", type=float, default=120.0)
    parser.add_argument("--resume-timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the trials here")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.min_delay < 0 or args.max_delay < args.min_delay:
        parser.error("need --trials >= 1 and 0 <= --min-delay <= --max-delay")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_args = ["--game", args.game, "--preset", args.preset]
    if args.env_steps is not None:
        run_args += ["--env-steps", str(args.env_steps)]
    for item in args.set:
        run_args += ["--set", item]
    out = args.out or Path(tempfile.mkdtemp(prefix="stop_check-"))
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    trials: list[Trial] = []
    failed = False
    print(f"stop check: {' '.join(run_args)}; run dirs in {out}")
    print(f"{'signal':>7} {'delay s':>8} {'stop s':>7} {'exit':>5} {'ckpt':>5} {'tb':>3} {'shm':>4}  problems")
    for name in args.signal or ["INT", "TERM"]:
        signum = getattr(signal, f"SIG{name}")
        for i in range(args.trials):
            delay = rng.uniform(args.min_delay, args.max_delay)
            try:
                trial = run_trial(run_args, out / f"{name.lower()}-{i}", signum, delay, resume=args.resume,
                                  start_timeout=args.start_timeout, stop_timeout=args.stop_timeout,
                                  resume_timeout=args.resume_timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:  # the trial itself broke: say so, go on
                failed = True
                print(f"{name:>7} trial {i} failed: {exc} (stderr: {out / f'{name.lower()}-{i}.stderr'})")
                continue
            trials.append(trial)
            problems = trial.problems(signum)
            failed |= bool(problems)
            print(f"{trial.signal:>7} {trial.delay_s:8.1f} {trial.latency_s:7.2f} {trial.exit_code:5d} "
                  f"{'yes' if trial.checkpoint else 'no':>5} {'yes' if trial.traceback else 'no':>3} "
                  f"{len(trial.shm_left):4d}  {'; '.join(problems) or 'ok'}", flush=True)
            if problems:
                print("         stderr ends: " + " / ".join(trial.last_lines))
    for name in sorted({t.signal for t in trials}):  # trials that broke have no latency
        latencies = [t.latency_s for t in trials if t.signal == name]
        print(f"{name}: stop latency median {statistics.median(latencies):.2f} s "
              f"(min {min(latencies):.2f}, max {max(latencies):.2f}, {len(latencies)} trials)")
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(t) for t in trials], indent=2))
    print("PASS" if not failed else "FAIL")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
