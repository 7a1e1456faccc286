"""ProgressLine: a live line on a terminal, plain periodic lines without one, a frozen run names
what it waits on, the ETA survives a pause; Pacer.waiting_on names the stage."""
import io

import pytest

from ezero_async.config import build_config
from ezero_async.runtime import monitor
from ezero_async.runtime.monitor import ProgressLine
from ezero_async.runtime.pacer import Pacer


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_without_a_terminal_plain_lines_go_to_stdout_at_the_interval(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(monitor.time, "monotonic", lambda: clock[0])
    err, out = io.StringIO(), io.StringIO()
    line = ProgressLine(1000, 500, plain_interval_s=60.0, stream=err, plain_stream=out)
    for t, steps in ((0, 0), (30, 10), (61, 20), (90, 30), (125, 40)):
        clock[0] = t
        line.emit(steps * 2, steps, {"throughput/training_steps_per_s": 0.3})
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "train 0/500" in lines[0] and "train 20/500" in lines[1] and "train 40/500" in lines[2]
    assert err.getvalue() == ""
    line.emit(80, 40, {"eval/return_mean": 3.5, "eval/return_std": 0.5, "eval/episodes": 8.0})
    assert err.getvalue() == "eval @ training step 40 (80 env steps): return 3.50 +- 0.50 (8 episodes)\n"


def test_on_a_terminal_the_line_is_rewritten_and_notes_get_their_own_line(monkeypatch):
    monkeypatch.setattr(monitor.time, "monotonic", lambda: 0.0)
    err, out = Terminal(), io.StringIO()
    line = ProgressLine(1000, 500, stream=err, plain_stream=out)
    line.emit(10, 5, {})
    line.note("stopping: writing the exit checkpoint")
    line.emit(12, 6, {})
    line.close()
    assert out.getvalue() == ""
    assert err.getvalue() == ("\r\x1b[2Kenv 10/1000 | train 5/500" "\r\x1b[2Kstopping: writing the exit checkpoint\n"
                              "\r\x1b[2Kenv 12/1000 | train 6/500" "\n")


def test_off_prints_evaluations_only():
    err, out = Terminal(), io.StringIO()
    line = ProgressLine(1000, 500, mode="off", stream=err, plain_stream=out)
    line.emit(10, 5, {})
    assert err.getvalue() == "" and out.getvalue() == ""


def test_a_frozen_run_says_what_it_waits_on_and_keeps_its_eta(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(monitor.time, "monotonic", lambda: clock[0])
    line = ProgressLine(1000, 100, stream=io.StringIO(), plain_stream=io.StringIO(), waiting_on=lambda: "the learner")
    clock[0] = 0.0
    assert "eta" not in line.line(0, 0, {}, 0.0)
    text = line.line(100, 10, {}, 10.0)  # 1 update/s over the window: 90 s left
    assert "eta 1m30s" in text and "waiting" not in text
    frozen = line.line(100, 10, {}, 20.0)  # nothing moved: the rate over the window still gives an ETA
    assert "waiting on the learner" in frozen and "eta 3m00s" in frozen
    later = line.line(100, 10, {}, 10.0 + monitor.ETA_WINDOW_S + 5.0)  # the window holds no progress
    assert "eta" not in later and "waiting on the learner" in later


def test_pacer_names_the_stage_the_next_update_waits_on():
    config = build_config("smoke", "CartPole")
    pacer = Pacer(config.runtime, config.learner)
    assert pacer.waiting_on().startswith("self-play (0 of the 100 transitions")
    pacer.collected = 100
    assert pacer.waiting_on() == "replay sampling and reanalysis (building batch 0)"
    pacer.built = 1
    assert pacer.waiting_on() == f"the learner (update 1 of {pacer.total_steps})"
    pacer.trained = pacer.built = pacer.total_steps
    assert pacer.waiting_on() == "the final evaluation"


@pytest.mark.parametrize("value", ["on", "sometimes"])
def test_progress_modes_are_checked(value):
    from ezero_async.errors import ConfigError

    with pytest.raises(ConfigError, match="tracking.progress"):
        build_config("smoke", "CartPole", {"tracking.progress": value})
