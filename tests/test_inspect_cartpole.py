"""tools/inspect_cartpole.py: a checkpoint plays with the search mode it was trained with (as
evaluation does), and every --act plays whole episodes."""
import gymnasium as gym
import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.config.values import config_to_dict
from ezero_async.learner.model import build_model
from ezero_async.search import batched_gumbel_search, batched_search
from ezero_async.tracking.checkpoint import save_checkpoint
from tool_module import load_tool

inspect = load_tool("inspect_cartpole")


def _checkpoint(tmp_path, mode: str):
    cfg = build_config("cartpole", "CartPole", {"search.mode": mode, "search.num_simulations": 8})
    torch.manual_seed(0)
    model = build_model(cfg.model, (4,), 1, 2, cfg.learner.lstm_horizon)
    for p in model.parameters():  # non-zero heads, so priors, values and Q differ between states
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.3)
    state = {"config": config_to_dict(cfg), "step": 0, "learner": {"model": model.state_dict()}, "target": [],
             "replay": {}, "evaluations": [], "episodes": {}, "wall_time_s": 0.0}
    return save_checkpoint(tmp_path / mode, state, keep=1), model.eval()


@pytest.mark.parametrize("mode", ["pucb", "gumbel"])
def test_the_search_is_the_runs_own_mode(tmp_path, monkeypatch, mode):
    path, _ = _checkpoint(tmp_path, mode)
    player = inspect.Player(path)
    name = {"pucb": "batched_search", "gumbel": "batched_gumbel_search"}[mode]
    real = {"pucb": batched_search, "gumbel": batched_gumbel_search}[mode]
    calls = []

    def spy(*args, **kwargs):
        calls.append(real(*args, **kwargs))
        return calls[-1]
    monkeypatch.setattr(inspect, name, spy)
    for state in np.random.default_rng(0).uniform(-0.5, 0.5, (5, 4)).astype(np.float32):
        counts, action = player.search(state)
        out = calls[-1]
        assert counts.tolist() == out.visit_counts[0].tolist() and counts.sum() == 8
        # pUCT plays its most visited action, Gumbel its own chosen action (zero draws)
        expected = int(out.visit_counts[0].argmax()) if mode == "pucb" else int(out.actions[0])
        assert action == expected
    assert len(calls) == 5


@pytest.mark.parametrize("act", ["search", "q", "prior"])
def test_every_act_plays_whole_episodes_and_reports_them(tmp_path, capsys, act):
    path, model = _checkpoint(tmp_path, "gumbel")
    assert inspect.main([str(path), "--episodes", "2", "--act", act, "--depth", "2"]) == 0
    out = capsys.readouterr().out
    lengths = [int(line.split(": ")[1].split(" steps")[0]) for line in out.splitlines() if line.startswith("episode ")]
    assert len(lengths) == 2
    summary = next(line for line in out.splitlines() if line.startswith("played by"))
    assert summary == (f"played by the {act} over 2 episodes: mean length {np.mean(lengths):.1f}, "
                       f"shortest {min(lengths)}")
    if act == "prior":  # the prior's argmax is what was played: replay the first episode
        env = gym.make("CartPole-v1", max_episode_steps=500)
        obs, _ = env.reset(seed=0)
        steps = 0
        while True:
            with torch.no_grad():
                _, _, logits = model.initial_inference_scalar(torch.as_tensor(obs[None], dtype=torch.float32))
            obs, _, terminated, truncated, _ = env.step(int(logits[0].argmax()))
            steps += 1
            if terminated or truncated:
                break
        assert steps == lengths[0]
