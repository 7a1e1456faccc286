"""The asyncio runtime end to end: smoke runs finish and write their outputs; a failure anywhere
ends the run quickly with the original exception and releases shared memory; stalls are named."""
import json
import signal
import subprocess
import sys
import time

import pytest

from ezero_async.config import build_config
from ezero_async.main import main
from ezero_async.runtime.pacer import Pacer
from ezero_async.runtime.trainer import StallError, train
from segments import leaked_segments, shm_segments


def leaf_exceptions(error):
    """The exceptions inside (possibly nested) exception groups, or [error]."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in leaf_exceptions(inner)]
    return [error]


def smoke(game="CartPole", **overrides):
    return build_config("smoke", game, {"tracking.aim": False, **overrides})


@pytest.mark.parametrize("game", ["CartPole", "Breakout"])
def test_smoke_run_writes_summary_and_replay_store(tmp_path, game, capsys):
    if game == "Breakout":
        overrides = ["--set", "runtime.env_steps=200", "--set", "runtime.tail_train_steps=10"]
    else:
        overrides = []
    before = shm_segments()
    code = main(["--game", game, "--preset", "smoke", "--run-dir", str(tmp_path / "run"), "--no-aim", *overrides])
    assert code == 0, capsys.readouterr().err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    config = build_config("smoke", game)
    env_steps = 200 if game == "Breakout" else config.runtime.env_steps
    tail = 10 if game == "Breakout" else config.runtime.tail_train_steps
    assert summary["env_steps"] == env_steps
    assert summary["training_steps"] == env_steps + tail  # start + (E - start) * 1 + tail
    assert summary["final_eval"]["episodes"] == config.runtime.final_eval_episodes
    assert 1 <= summary["final_eval"]["distinct_episodes"] <= config.runtime.final_eval_episodes
    assert all(1 <= row["distinct_episodes"] <= row["episodes"] for row in summary["evaluations"])
    assert (tmp_path / "run" / "replay" / "zarr.json").exists()
    assert (tmp_path / "run" / "config.json").exists()
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    shares = [row["policy/prior_mode_share"] for row in rows if "policy/prior_mode_share" in row]
    assert shares and all(0 < share <= 1 for share in shares)  # the learner's policy statistics reach the log
    assert any("value/root" in row and "value/root_target" in row for row in rows)  # and its value statistics
    # Smoke episodes are capped at 200 agent steps, far below the Atari 100k protocol's 27k: a
    # human-normalised score would not be comparable, so there is none.
    assert summary["final_eval"]["human_normalised_score"] is None
    assert not leaked_segments(before)


def test_gumbel_mode_runs_end_to_end_with_the_v2_targets(tmp_path, monkeypatch):
    """EZ-V2 mode on an image game: self-play plays the search's action (never a draw from visit
    counts), every sample is reanalysed, and old samples take search values as value targets."""
    from ezero_async.replay import targets
    from ezero_async.runtime import actors

    def no_sampling(*args, **kwargs):
        raise AssertionError("Gumbel self-play must play the search's action, not sample visit counts")

    monkeypatch.setattr(actors, "select_action", no_sampling)
    mixed_rows = []
    mix_values = targets.mix_values

    def counting_mix_values(td, search_values, rows, use_search, policy_mask):
        mixed_rows.append(int(use_search.sum()))
        return mix_values(td, search_values, rows, use_search, policy_mask)

    monkeypatch.setattr(targets, "mix_values", counting_mix_values)
    config = smoke("Breakout", **{
        "search.mode": "gumbel", "runtime.env_steps": 200, "runtime.tail_train_steps": 10,
        "runtime.reanalyse_fraction": 1.0, "replay.value_target": "mixed", "replay.mixed_start_step": 120,
        "replay.mixed_fresh_transitions": 50, "replay.priority_alpha": 1.0, "replay.priority_beta_start": 1.0,
        "replay.priority_weight_min": 0.1, "learner.consistency_coeff": 5.0, "model.action_embedding": True,
        "model.head_activation": "elu"})
    summary = train(config, tmp_path / "run", "cpu")
    assert summary["env_steps"] == 200 and summary["training_steps"] == 210
    assert summary["final_eval"]["episodes"] == config.runtime.final_eval_episodes
    assert mixed_rows and sum(mixed_rows) > 0  # from step 120 on, old samples used search values


def test_pacer_schedule_matches_the_spec():
    config = build_config("atari100k", "Breakout")
    pacer = Pacer(config.runtime, config.learner)
    assert pacer.total_steps == 120_000
    assert [pacer.transitions_for(s) for s in (0, 1999, 2000, 2001, 99_999, 100_000, 119_999)] == \
        [2000, 2000, 2000, 2001, 99_999, 100_000, 100_000]
    assert pacer.first_batch_seeing(2000) == 2001  # transition 2000 is first sampled by batch 2001
    assert [pacer.self_play_version(n) for n in (2000, 2099, 2100, 50_123)] == [1900, 1900, 2000, 50_000]


def failing(after, message):
    calls = [0]

    def hook(*args, **kwargs):
        calls[0] += 1
        if calls[0] > after:
            raise RuntimeError(message)

    return hook


@pytest.mark.parametrize("where", ["env", "model", "tree", "learner"])
def test_an_injected_error_ends_the_run_with_its_traceback(tmp_path, monkeypatch, where):
    from ezero_async.envs.gym_game import GymGame
    from ezero_async.inference.search_service import SearchService
    from ezero_async.learner.learner import Learner
    from ezero_async.search.tree import CTree

    target = {"env": (GymGame, "_step", 150), "model": (SearchService, "_recurrent", 200),
              "tree": (CTree, "backup", 200), "learner": (Learner, "launch", 20)}[where]
    cls, name, after = target
    original = getattr(cls, name)
    hook = failing(after, f"injected {where} failure")

    raised_at = []

    def wrapped(self, *args, **kwargs):
        try:
            hook()
        except RuntimeError:
            raised_at.append(time.monotonic())
            raise
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cls, name, wrapped)
    before = shm_segments()
    with pytest.raises(BaseException) as info:
        train(smoke(), tmp_path / "run", "cpu")
    stopped_after = time.monotonic() - raised_at[0]
    leaves = leaf_exceptions(info.value)
    assert any(f"injected {where} failure" in str(e) for e in leaves), leaves
    failure = next(e for e in leaves if f"injected {where} failure" in str(e))
    assert failure.__traceback__ is not None
    assert stopped_after < 5.0, f"the run took {stopped_after:.1f} s to stop after the failure (contract: < 5 s)"
    assert not leaked_segments(before)
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_stalled_stage_is_reported_by_name(tmp_path, monkeypatch):
    from ezero_async.learner.learner import Learner

    original = Learner.launch

    def slow(self, batch):
        if self.step >= 5:
            time.sleep(6.0)  # the learner stops making progress
        return original(self, batch)

    monkeypatch.setattr(Learner, "launch", slow)
    with pytest.raises(BaseException) as info:
        train(smoke(**{"runtime.stall_timeout": 2.0}), tmp_path / "run", "cpu")
    leaves = leaf_exceptions(info.value)
    stall = [e for e in leaves if isinstance(e, StallError)]
    assert stall and "stage 'train'" in str(stall[0])


def summary_without_wall_clock(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("wall_time_s", "throughput", "timing_s"):
        summary.pop(key)
    return summary


def test_serial_runs_with_one_seed_are_bit_identical(tmp_path):
    config = smoke(**{"runtime.serial": True, "runtime.num_envs": 3})
    train(config, tmp_path / "a", "cpu")
    train(config, tmp_path / "b", "cpu")
    first, second = summary_without_wall_clock(tmp_path / "a"), summary_without_wall_clock(tmp_path / "b")
    assert first == second
    assert len(first["evaluations"]) >= 3  # step 0, periodic, final
    assert first["machine"]["cores"] >= 1 and first["machine"]["label"]  # beside the wall times
    other = smoke(**{"runtime.serial": True, "runtime.num_envs": 3, "runtime.seed": 1})
    train(other, tmp_path / "c", "cpu")
    assert summary_without_wall_clock(tmp_path / "c")["weights_sha256"] != first["weights_sha256"]
    # The CUDA fast-path switches change nothing on a CPU.
    plain = smoke(**{"runtime.serial": True, "runtime.num_envs": 3, "batcher.cuda_graphs": True,
                     "runtime.tf32": False, "runtime.channels_last": False, "learner.zero_copy": False})
    train(plain, tmp_path / "d", "cpu")
    assert summary_without_wall_clock(tmp_path / "d") == first


def test_pacer_fractional_ratio_schedule():
    config = build_config("smoke", "CartPole", {"runtime.train_steps_per_env_step": 0.25,
                                                "runtime.start_transitions": 100, "runtime.env_steps": 300,
                                                "runtime.tail_train_steps": 7})
    pacer = Pacer(config.runtime, config.learner)
    assert pacer.warmup_steps == 25
    assert pacer.total_steps == 25 + 50 + 7
    # batch s >= 25 sees 4 more transitions per step; transition n is first seen when it exists.
    assert [pacer.transitions_for(s) for s in (0, 24, 25, 26, 74, 75, 81)] == [100, 100, 100, 104, 296, 300, 300]
    for n in range(100, 300):
        s1 = pacer.first_batch_seeing(n)
        assert pacer.transitions_for(s1) > n >= pacer.transitions_for(s1 - 1)


def test_fractional_ratio_run_trains_one_step_per_k_transitions(tmp_path):
    config = smoke(**{"runtime.train_steps_per_env_step": 0.5, "runtime.tail_train_steps": 0})
    summary = train(config, tmp_path / "run", "cpu")
    assert summary["env_steps"] == 300
    assert summary["training_steps"] == 50 + 100  # ceil(100 * 0.5) warm-up + 200 * 0.5


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_run_cleanly(tmp_path, how):
    before = shm_segments()
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "ezero_async.main", "--game", "CartPole", "--preset", "smoke", "--no-aim",
         "--run-dir", str(run_dir), "--env-steps", "100000"],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (run_dir / "metrics.jsonl").exists() or (run_dir / "metrics.jsonl").stat().st_size == 0:
        assert time.monotonic() < deadline and process.poll() is None, "the run did not start"
        time.sleep(0.2)
    sent = time.monotonic()
    process.send_signal(getattr(signal, how))
    _, err = process.communicate(timeout=60)
    stopped_after = time.monotonic() - sent
    assert process.returncode == 128 + getattr(signal, how), err
    assert f"stopped by {how}" in err and "Traceback" not in err, err
    assert stopped_after < 5.0, f"{stopped_after:.1f} s"
    assert (run_dir / "replay" / "zarr.json").exists()
    assert not leaked_segments(before)
