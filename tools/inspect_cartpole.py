"""Play a CartPole checkpoint with its own search and show what its values say.

  python tools/inspect_cartpole.py RUN_DIR/checkpoints/step-000005000.pt --episodes 3

Per episode (seeds 0..N-1, the action of a noise-free search with the run's search config, as
evaluation plays it: pUCT's most visited action, Gumbel's chosen action with zero Gumbel draws; with
--act q the argmax of the model's one-step Q, with --act prior the policy head's argmax): its length and why it ended (cart off the track,
pole down, or the 500-step cap), the eval-mode value V at the first state against the discounted
return actually collected from there (the value the search needs), and a few states along the
way with their visit counts, one-step Q of both actions and policy prior. If the one-step Q plays
better than the search, the tree's deeper values mislead it; if the prior does, the search fails
to correct the policy it starts from.

Then the model unrolled along the played actions from every state: the reward it predicts at
each depth (value-prefix differences, as the tree reads them; CartPole pays 1 per step) and its
value against the value of the state actually reached. Last, V(x, v) at a balanced pole
(theta = omega = 0): a value function that has learned the track's edges falls towards x = +-2.4,
more so when moving outward.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from ezero_async.config.values import config_from_dict
from ezero_async.learner.model import build_model
from ezero_async.search import batched_gumbel_search, batched_search, greedy_action
from ezero_async.tracking.checkpoint import load_checkpoint


class Player:
    """The checkpoint's online network (eval mode) with the run's search."""

    def __init__(self, path: Path) -> None:
        state = load_checkpoint(path)
        self.config = config_from_dict(state["config"])
        if self.config.env.game != "CartPole" or self.config.env.frame_stack != 1:
            raise SystemExit(f"{path}: not a CartPole run with frame_stack 1")
        self.model = build_model(self.config.model, (4,), 1, 2, self.config.learner.lstm_horizon)
        self.model.load_state_dict(state["learner"]["model"])
        self.model.eval()

    def values(self, states: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(V float[N], one-step Q = value prefix + discount * V' float[N, 2], prior float[N, 2])."""
        x = torch.as_tensor(states, dtype=torch.float32)
        n = len(x)
        with torch.no_grad():
            latent, v, logits = self.model.initial_inference_scalar(x)
            lstm = self.model.initial_lstm_state(n, "cpu")
            reset = torch.ones(n, dtype=torch.bool)
            qs = []
            for a in range(2):
                _, _, vp, v_next, _ = self.model.recurrent_inference_scalar(latent, lstm, torch.full((n,), a), reset)
                qs.append((vp + self.config.search.discount * v_next).numpy())
        return v.numpy(), np.stack(qs, 1), torch.softmax(logits.float(), -1).numpy()

    def search(self, state: np.ndarray) -> tuple[np.ndarray, int]:
        """(visit counts int[2], action) of a noise-free search from `state` in the run's search mode."""
        with torch.no_grad():
            latent, value, logits = self.model.initial_inference_scalar(torch.as_tensor(state[None], dtype=torch.float32))
        nodes = {0: (latent, self.model.initial_lstm_state(1, "cpu"))}

        def recurrent(parents: np.ndarray, actions: np.ndarray, reset: np.ndarray):
            parent_latent, (h, c) = nodes[int(parents[0])]
            with torch.no_grad():
                leaf, lstm, vp, v, leaf_logits = self.model.recurrent_inference_scalar(
                    parent_latent, (h, c), torch.from_numpy(actions.astype(np.int64)), torch.from_numpy(reset))
            nodes[len(nodes)] = (leaf, lstm)
            return vp.numpy().astype(np.float32), v.numpy().astype(np.float32), leaf_logits.numpy().astype(np.float32)

        root_logits = logits.numpy().astype(np.float32)
        if self.config.search.mode == "gumbel":
            out = batched_gumbel_search(root_logits, value.numpy().astype(np.float32), recurrent, self.config.search)
            return out.visit_counts[0], int(out.actions[0])
        counts = batched_search(root_logits, recurrent, self.config.search, noise=None, seed=0).visit_counts[0]
        return counts, greedy_action(counts)

    def unroll(self, states: np.ndarray, actions: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """From states float[N, 4], the model stepped along actions int[N, depth] as the search
        does (LSTM reset every lstm_horizon steps): (reward float[N, depth] = value-prefix
        differences, value float[N, depth] of the latent after each step)."""
        horizon = self.config.search.lstm_horizon
        n = len(states)
        rewards, values = np.empty((n, depth)), np.empty((n, depth))
        with torch.no_grad():
            latent, _, _ = self.model.initial_inference_scalar(torch.as_tensor(states, dtype=torch.float32))
            lstm = self.model.initial_lstm_state(n, "cpu")
            previous = torch.zeros(n)
            for k in range(depth):
                reset = k % horizon == 0
                latent, lstm, prefix, value, _ = self.model.recurrent_inference_scalar(
                    latent, lstm, torch.as_tensor(actions[:, k]), torch.full((n,), reset))
                rewards[:, k] = (prefix - (0.0 if reset else previous)).numpy()
                values[:, k] = value.numpy()
                previous = prefix
        return rewards, values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--rows", type=int, default=6, help="states printed per episode")
    parser.add_argument("--act", choices=("search", "q", "prior"), default="search",
                        help="play by the search (default), the model's one-step Q or the policy prior")
    parser.add_argument("--depth", type=int, default=10, help="unroll depth of the model check")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    player = Player(args.checkpoint)
    gamma = player.config.replay.discount
    env = gym.make("CartPole-v1", max_episode_steps=player.config.env.eval_max_episode_steps)
    windows: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # (start states, actions, reached states)
    lengths = []
    for episode in range(args.episodes):
        obs, _ = env.reset(seed=episode)
        trail = []
        while True:
            counts, searched = player.search(obs)
            trail.append((obs, counts))
            if args.act == "search":
                action = searched
            else:  # the heads' one-step Q or prior, read only when they choose the action
                _, q, prior = player.values(obs[None])
                action = int((q if args.act == "q" else prior)[0].argmax())
            obs, _, terminated, truncated, _ = env.step(action)
            trail[-1] += (action,)
            if terminated or truncated:
                break
        length = len(trail)
        lengths.append(length)
        why = ("the cap (truncated)" if truncated else "the cart off the track" if abs(obs[0]) > 2.4
               else "the pole down")
        states = np.stack([s for s, _, _ in trail] + [obs])
        played = np.array([a for _, _, a in trail])
        starts = np.arange(len(trail) - args.depth + 1)
        if len(starts) > 0:
            steps = starts[:, None] + np.arange(args.depth)[None, :]
            windows.append((states[starts], played[steps], states[steps + 1]))
        states = states[:-1]
        v, q, prior = player.values(states)
        collected = (1 - gamma ** length) / (1 - gamma)  # reward 1 per step
        tail = " + the value of the last state (truncated)" if truncated else ""
        print(f"episode {episode}: {length} steps, ended by {why} at x = {obs[0]:+.2f}, v = {obs[1]:+.2f}; "
              f"V(first state) = {v[0]:.1f} against a discounted return of {collected:.1f}{tail}")
        for t in np.linspace(0, length - 1, args.rows).astype(int):
            x, xv, th, om = states[t]
            print(f"  t={t:3d} x={x:+.2f} v={xv:+.2f} theta={th:+.3f} omega={om:+.2f} visits={trail[t][1].tolist()} "
                  f"V={v[t]:6.1f} Q=[{q[t, 0]:.1f}, {q[t, 1]:.1f}] prior=[{prior[t, 0]:.2f}, {prior[t, 1]:.2f}]")
    print(f"played by the {args.act} over {len(lengths)} episodes: mean length {np.mean(lengths):.1f}, "
          f"shortest {min(lengths)}")
    if windows:
        starts, actions, reached = (np.concatenate(part) for part in zip(*windows))
        rewards, values = player.unroll(starts, actions, args.depth)
        real = player.values(reached.reshape(-1, 4).astype(np.float32))[0].reshape(reached.shape[:2])
        print(f"the model unrolled along the played actions from {len(starts)} states (true reward 1 per step):")
        for k in range(args.depth):
            gap = values[:, k] - real[:, k]
            print(f"  depth {k + 1:2d}: reward {rewards[:, k].mean():5.2f}   value - value of the state reached "
                  f"{gap.mean():+6.1f} (mean |.| {np.abs(gap).mean():5.1f})")
    xs, vs = np.array([-2.0, -1.0, 0.0, 1.0, 2.0]), np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    grid = np.array([[x, v, 0.0, 0.0] for x in xs for v in vs], np.float32)
    values = player.values(grid)[0].reshape(len(xs), len(vs))
    print("V(x, v) at theta = omega = 0 (rows x, columns v):")
    print("        " + "".join(f"v={v:+.1f}  " for v in vs))
    for x, row in zip(xs, values):
        print(f"x={x:+.1f} " + "".join(f"{value:7.1f}  " for value in row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
