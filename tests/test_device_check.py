"""tools/device/check.sh, the one-call GPU check of issue 18, run here on CPU as a GPU session
would run it there: every step passes and leaves its files, and bad arguments stop it at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "device" / "check.sh"


def check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.slow
def test_the_device_check_passes_on_cpu_and_leaves_its_results(tmp_path):
    done = check(tmp_path, "--device", "cpu", "--quick")
    out = tmp_path / "out"
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    log = (out / "check.log").read_text()
    for name in ("facts", "tests", "profile-smoke", "bench", "fastpath"):
        assert f"check: {name}: ok in" in log
    assert "done: every step passed" in log
    assert "torch" in (out / "facts.txt").read_text()
    profile = json.loads((out / "profile-smoke.json").read_text())
    assert profile["metrics"]["profile/training_steps_per_s"] > 0
    assert "projected wall clock for this run:" in (out / "profile-smoke.log").read_text()
    assert "steps/s" in (out / "bench.log").read_text()
    fastpath = (out / "fastpath.log").read_text()
    assert "gumbel 16 sims" in fastpath and "bf16, tf32 on, channels-last" in fastpath


def test_bad_arguments_stop_the_check_before_any_step(tmp_path):
    done = check(tmp_path, "--device", "tpu")
    assert done.returncode == 2 and "--device must be cuda or cpu, got 'tpu'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_failing_step_is_reported_and_the_others_still_run(tmp_path):
    env = dict(os.environ, OUT=str(tmp_path / "out"), PYTHON="false")  # every python step fails at once
    done = subprocess.run(["bash", str(SCRIPT), "--device", "cpu", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    log = (tmp_path / "out" / "check.log").read_text()
    assert done.returncode == 1
    for name in ("build", "facts", "tests", "profile-smoke", "bench", "fastpath"):
        assert f"check: {name}: FAILED (exit 1" in log
    last = log.strip().splitlines()[-1]  # (a wheels step fails too where a .whl/ folder exists)
    assert "step(s) failed:" in last and all(name in last for name in ("build", "facts", "tests", "bench"))
