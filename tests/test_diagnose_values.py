"""tools/diagnose_values.py: the unroll inputs follow each episode's stored actions, the depth
table's modes read the heads as eval mode and the two training schemes do, and the readout line
reads one head both ways."""
import dataclasses

import numpy as np
import torch

from ezero_async.config import build_config
from ezero_async.learner.model import build_model
from tool_module import load_tool

diagnose = load_tool("diagnose_values")


def _table() -> dict[str, np.ndarray]:
    """Two episodes of 6 and 3 steps, interleaved as two envs write them; frame value = 10 *
    episode + position, action = position % 2 in episode 0 and 1 - that in episode 1, reward =
    position + 1; episode 0 terminates, episode 1 is still running."""
    rows = []
    for p in range(6):
        rows.append((0, p))
        if p < 3:
            rows.append((1, p))
    episode = np.array([e for e, _ in rows])
    position = np.array([p for _, p in rows])
    return {"frames": (10 * episode + position).astype(np.float32)[:, None].repeat(4, 1),
            "episode": episode, "position": position, "index": np.arange(len(rows)),
            "action": np.where(episode == 0, position % 2, 1 - position % 2),
            "reward": (position + 1).astype(np.float32),
            "terminal": ((episode == 0) & (position == 5)).astype(np.int8)}


def test_unroll_inputs_follow_each_episodes_actions_and_stack_its_frames():
    frames, actions = diagnose.unroll_inputs(_table(), frame_stack=2, depth=2, samples=100, seed=0)
    # Starts with 2 successors: episode 0 positions 0..3, episode 1 position 0.
    assert len(frames) == 5 and frames.shape[1:] == (2, 4)
    for stack, acts in zip(frames, actions):
        first, last = int(stack[0, 0]), int(stack[1, 0])
        e, p = divmod(last, 10)
        assert first == 10 * e + max(0, p - 1)  # the stack repeats an episode's first frame
        expected = [(p + k) % 2 if e == 0 else 1 - (p + k) % 2 for k in range(2)]
        assert acts.tolist() == expected


def test_sample_inputs_pair_terminated_episodes_stacks_with_their_discounted_returns():
    frames, returns = diagnose.sample_inputs(_table(), frame_stack=3, discount=0.5, samples=100, seed=0)
    assert len(frames) == 6 and frames.shape[1:] == (3, 4)  # episode 0 only: episode 1 has not ended
    for stack, ret in zip(frames, returns):
        p = int(stack[-1, 0])
        assert stack[:, 0].tolist() == [max(0, p - 2), max(0, p - 1), p]
        assert ret == sum((q + 1) * 0.5 ** (q - p) for q in range(p, 6))


def test_depth_values_train_modes_differ_only_in_how_the_heads_batch():
    cfg = build_config("smoke", "CartPole", {})
    torch.manual_seed(0)
    model = build_model(cfg.model, (4,), 1, 2, cfg.learner.lstm_horizon)
    for p in model.parameters():  # non-zero heads, so the values depend on the statistics
        if p.dim() > 1:
            torch.nn.init.normal_(p, std=0.3)
    model.eval()
    bn = next(m for m in model.prediction.modules() if isinstance(m, torch.nn.BatchNorm1d))
    saved = bn.running_mean.clone()
    x = torch.randn(64, 4)
    actions = np.random.default_rng(0).integers(0, 2, size=(64, 3))
    per_depth = diagnose.depth_values(model, x, actions, horizon=5, mode="per depth")
    all_depths = diagnose.depth_values(model, x, actions, horizon=5, mode="all depths")
    evaluated = diagnose.depth_values(model, x, actions, horizon=5, mode="eval")
    assert per_depth.shape == all_depths.shape == evaluated.shape == (4,)
    assert np.isfinite(evaluated).all()
    assert per_depth[0] != all_depths[0]  # the root normalised alone vs with the unrolled latents
    assert not model.training and torch.equal(bn.running_mean, saved)  # the modes ran on copies


def test_readout_values_read_one_head_both_ways_and_the_models_own_readout_is_its_root_value():
    cfg = build_config("smoke", "CartPole", {})
    x = torch.randn(32, 4)
    for readout in ("transformed_mean", "value_mean"):
        torch.manual_seed(0)
        model = build_model(dataclasses.replace(cfg.model, value_readout=readout), (4,), 1, 2,
                            cfg.learner.lstm_horizon)
        for p in model.parameters():  # a head spread over many bins, so the readouts part
            if p.dim() > 1:
                torch.nn.init.normal_(p, std=0.3)
        values, entropy = diagnose.readout_values(model, x)
        assert set(values) == {"transformed_mean", "value_mean"}
        np.testing.assert_allclose(values[readout], diagnose.root_values(model, x, train=False), rtol=1e-5, atol=1e-5)
        assert np.abs(values["transformed_mean"] - values["value_mean"]).max() > 1e-3
        assert 0.0 < entropy <= np.log(2 * cfg.model.support_size + 1)
