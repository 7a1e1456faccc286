"""tools/bench_learner.py --ab: the two configs differ in the named setting only, their updates
alternate on the same batches, and each median is its own config's."""
import argparse
import subprocess
import sys

import pytest

from tool_module import TOOLS, load_tool

bench = load_tool("bench_learner")


def test_ab_alternates_the_two_settings_and_reports_each_ones_median(monkeypatch):
    calls, now = [], [0.0]

    def timed_step(self, batch):  # the clock moves only inside an update: 1 s per_position, 3 s joint
        calls.append((self.cfg.prediction_heads, self.cfg.amp, batch.step))
        now[0] += 1.0 if self.cfg.prediction_heads == "per_position" else 3.0

    monkeypatch.setattr(bench.Learner, "train_step", timed_step)
    monkeypatch.setattr(bench.time, "perf_counter", lambda: now[0])
    args = argparse.Namespace(preset="cartpole", frame=(4,), actions=2, batch=8, warmup=1, steps=3,
                              overrides={"learner.amp": "bf16"})
    a, b = bench.run_ab(args, bench.torch.device("cpu"), "learner.prediction_heads", ("per_position", "joint"))
    assert (a, b) == (1.0, 3.0)
    assert [c[0] for c in calls] == ["per_position", "joint"] * 4
    assert {c[1] for c in calls} == {"bf16"}  # --set reaches both
    assert [c[2] for c in calls] == [0, 0, 1, 1, 2, 2, 3, 3]  # the same batch for A and B


@pytest.mark.parametrize("ab, message", [
    ("learner.prediction_heads=joint", "must name one setting and two values"),
    ("learner.prediction_heads=joint,sideways", "must be per_position or joint"),
    ("learner.nope=1,2", "unknown config key"),
])
def test_bad_ab_values_are_one_error_line_and_exit_code_2(ab, message):
    done = subprocess.run([sys.executable, str(TOOLS / "bench_learner.py"), "--preset", "cartpole", "--ab", ab],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr.splitlines()[-1]
