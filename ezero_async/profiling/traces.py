"""Optional traces a profiling run exports beside its table: a py-spy flame graph of every
thread and env worker, and a torch profiler trace (chrome://tracing, Perfetto) of the
network work on all threads.

Both follow the probe's life cycle on the event loop thread: `start()` when the measurement
window opens, `tick()` at every snapshot, `stop()` when the run closes. Both slow the run a
little (py-spy samples 50 times a second without pausing it; the torch profiler records every
operator), so compare throughput figures only between runs profiled the same way.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from ezero_async.errors import UserError

PY_SPY_RATE_HZ = 50


class PySpyTrace:
    """py-spy record on this process and its children, written as an SVG flame graph."""

    def __init__(self, path: Path) -> None:
        beside = Path(sys.executable).with_name("py-spy")  # a venv's bin/, whether or not it is on PATH
        self.executable = str(beside) if beside.is_file() else shutil.which("py-spy")
        if self.executable is None:
            raise UserError("--py-spy needs the py-spy executable: pip install py-spy")
        self.path = path
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        self._process = subprocess.Popen(
            [self.executable, "record", "--pid", str(os.getpid()), "--subprocesses", "--threads", "--nonblocking",
             "--rate", str(PY_SPY_RATE_HZ), "--format", "flamegraph", "--output", str(self.path)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def tick(self) -> None:
        if self._process is not None and self._process.poll() is not None:
            out = self._process.stdout.read() if self._process.stdout else ""
            raise RuntimeError(f"py-spy ended early (exit {self._process.returncode}): {out.strip()[-400:]}")

    def stop(self) -> None:
        if self._process is None:
            return
        process, self._process = self._process, None
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        out, _ = process.communicate(timeout=60)
        if not self.path.exists():
            raise RuntimeError(f"py-spy wrote no flame graph (exit {process.returncode}): {out.strip()[-400:]}")


class TorchTrace:
    """torch.profiler over all threads (inference threads, learner thread) for `seconds`."""

    def __init__(self, path: Path, seconds: float) -> None:
        try:
            self._config = torch._C._profiler._ExperimentalConfig(profile_all_threads=True)
        except (AttributeError, TypeError) as exc:
            raise UserError(f"--torch-trace needs a torch whose profiler records all threads "
                            f"(torch {torch.__version__} cannot: {exc})") from exc
        self.path = path
        self.seconds = seconds
        self._profiler: torch.profiler.profile | None = None
        self._started = 0.0

    def start(self) -> None:
        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        self._profiler = torch.profiler.profile(activities=activities, experimental_config=self._config)
        self._profiler.start()
        self._started = time.monotonic()

    def tick(self) -> None:
        if self._profiler is not None and time.monotonic() - self._started >= self.seconds:
            self.stop()

    def stop(self) -> None:
        if self._profiler is None:
            return
        profiler, self._profiler = self._profiler, None
        profiler.stop()
        partial = self.path.with_name(self.path.name + ".partial")
        profiler.export_chrome_trace(str(partial))
        os.replace(partial, self.path)
