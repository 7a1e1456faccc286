"""Stopping a run as a terminal or a scheduler does: SIGINT or SIGTERM to the whole process group
of a setsid run with Atari env workers, at random moments, always gives the clean stop (exit
128 + signal, an exit checkpoint, no traceback, no process or /dev/shm segment left), and
`--resume` finishes a stopped run (tools/stop_check.py is the measuring tool; this is its
contract on the smoke preset)."""
from __future__ import annotations

import random
import signal

import pytest

from tool_module import load_tool


stop_check = load_tool("stop_check")
RUN = ["--game", "Breakout", "--preset", "smoke"]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_to_the_process_group_always_stops_cleanly(tmp_path, signum):
    rng = random.Random(int(signum))
    for trial in range(5):
        run_dir = tmp_path / f"run-{trial}"
        result = stop_check.run_trial([*RUN, "--env-steps", "100000"], run_dir, signum, rng.uniform(0.0, 4.0),
                                      resume=False, start_timeout=120.0, stop_timeout=60.0, resume_timeout=0.0)
        assert result.problems(signum) == [], (trial, result)
        assert "stopping: writing the exit checkpoint" in "\n".join(result.last_lines) or \
            "checkpoint written" in result.last_lines[-1]


def test_a_run_stopped_by_a_group_signal_resumes_to_the_end(tmp_path):
    signum = signal.SIGTERM
    result = stop_check.run_trial([*RUN, "--env-steps", "200"], tmp_path / "run", signum, 0.5, resume=True,
                                  start_timeout=120.0, stop_timeout=60.0, resume_timeout=300.0)
    assert result.problems(signum) == [], result
    assert result.resumed


def test_a_group_signal_stops_a_run_whose_learner_is_a_process(tmp_path):
    """The learner process ignores the group's signal; the run stops it in order, writes the
    exit checkpoint with its last update, leaves no process behind, and resumes to the end."""
    args = ["--game", "CartPole", "--preset", "smoke", "--set", "learner.isolation=process"]
    for signum, at in ((signal.SIGTERM, 3.0), (signal.SIGINT, 5.0)):
        result = stop_check.run_trial([*args, "--env-steps", "1500"], tmp_path / f"run-{signum}", signum, at,
                                      resume=signum == signal.SIGINT, start_timeout=120.0, stop_timeout=60.0,
                                      resume_timeout=300.0)
        assert result.problems(signum) == [], result
