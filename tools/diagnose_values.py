"""Value diagnosis of a checkpoint: eval-mode vs train-mode root values against Monte-Carlo returns.

  python tools/diagnose_values.py RUN_DIR [RUN_DIR/checkpoints/step-*.pt ...] --samples 2048

Reads the run's zarr replay store, picks `--samples` transitions from finished episodes
(uniformly, seeded), builds their model inputs (frame stacks repeat an episode's first frame),
and prints per checkpoint the mean root value in eval mode (running BatchNorm statistics: what
acting, reanalysis and bootstrap values use) and in train mode (the statistics of this batch of
replay roots, on a copy), the discounted Monte-Carlo return of the behaviour data from the same
states, the mean absolute errors of both against it, over all samples and over the 10% with the
lowest return (where a value error costs the episode), the one-step Q spread over actions, the
policy prior's top probability, and the share of states whose prior prefers the most preferred
action (near 1: the policy plays one action everywhere, whatever the state). Eval-mode errors
far above train-mode ones mean the running statistics misfit root latents. `--simulations 25
50` adds the top visit share of searches. `--depth 5` adds the mean value at unroll depths 0..5
along the stored actions, in eval mode and in train mode with the heads run per depth (as the
reference trains them) or once over all depths (learner.prediction_heads = joint): eval-mode
values that drift with depth where train-mode ones stay flat mean the heads' running statistics
misfit unrolled latents (docs/deviations.md#prediction-batchnorm). Under each checkpoint a line
gives the eval-mode root value as both readouts of `model.value_readout` read the same head
(h_inv of the mean bin, the reference's, and the mean of h_inv over the bins), their errors
against the return and the head's mean entropy: a readout below the other by more than the
bins' resolution means the head spreads over targets h_inv's convexity reads low
(docs/learning.md#value-readout).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch
import zarr

from ezero_async.config.sections import VALUE_READOUTS
from ezero_async.config.values import config_from_dict
from ezero_async.learner.model import build_model, stack_frames
from ezero_async.learner.support import Support
from ezero_async.search import batched_search, dirichlet_noise
from ezero_async.tracking.checkpoint import list_checkpoints, load_checkpoint


def episode_table(store: Path) -> dict[str, np.ndarray]:
    group = zarr.open_group(str(store), mode="r")
    w = int(group.attrs["state"]["write_count"])
    return {name: np.asarray(group[name][:w]) for name in
            ("frames", "reward", "episode", "position", "index", "terminal", "truncated", "action")}


def stored_slots(table: dict[str, np.ndarray]) -> dict[tuple[int, int], int]:
    """(episode, position) -> table row, for every transition still stored."""
    return {(int(e), int(p)): i for i, (e, p, x) in
            enumerate(zip(table["episode"], table["position"], table["index"])) if x >= 0}


def stacked_frames(table: dict[str, np.ndarray], slots: dict[tuple[int, int], int], episode: int,
                   position: int, frame_stack: int) -> np.ndarray:
    """[S, *F]: the frames ending at `position`, the episode's first frame repeated before it."""
    return table["frames"][[slots[(episode, max(0, q))] for q in range(position - frame_stack + 1, position + 1)]]


def sample_inputs(table: dict[str, np.ndarray], frame_stack: int, discount: float, samples: int, seed: int):
    """(stacked frames [N, S, *F], MC returns float64[N]) of transitions from terminated episodes."""
    slots = stored_slots(table)
    ended = set(table["episode"][table["terminal"] == 1].tolist())
    rows = [i for (e, _), i in slots.items() if e in ended]
    returns = np.zeros(len(table["episode"]))
    for (e, p), i in sorted(slots.items(), reverse=True):   # each episode backwards from its end
        after = slots.get((e, p + 1))
        returns[i] = table["reward"][i] + (discount * returns[after] if after is not None else 0.0)
    chosen = np.random.default_rng(seed).choice(rows, size=min(samples, len(rows)), replace=False)
    stacks = [stacked_frames(table, slots, int(table["episode"][i]), int(table["position"][i]), frame_stack)
              for i in chosen]
    return np.stack(stacks), returns[chosen]


def unroll_inputs(table: dict[str, np.ndarray], frame_stack: int, depth: int, samples: int,
                  seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(stacked frames [N, S, *F], stored actions int64[N, depth]) of transitions followed by
    `depth` more in their episode."""
    slots = stored_slots(table)
    rows = [i for (e, p), i in slots.items() if all((e, p + k) in slots for k in range(1, depth + 1))]
    chosen = np.random.default_rng(seed).choice(rows, size=min(samples, len(rows)), replace=False)
    stacks, actions = [], []
    for i in chosen:
        e, p = int(table["episode"][i]), int(table["position"][i])
        stacks.append(stacked_frames(table, slots, e, p, frame_stack))
        actions.append([table["action"][slots[(e, p + k)]] for k in range(depth)])
    return np.stack(stacks), np.asarray(actions, dtype=np.int64)


def depth_values(model: torch.nn.Module, x: torch.Tensor, actions: np.ndarray, horizon: int,
                 mode: str) -> np.ndarray:
    """float64[depth + 1]: the mean value at unroll depths 0..depth along `actions`, in eval mode
    ('eval'), or in train mode (this batch's statistics, on a copy) with the prediction heads
    run per depth ('per depth') or once over all depths ('all depths')."""
    model = copy.deepcopy(model).train(mode != "eval")
    n, depth = actions.shape
    with torch.no_grad():
        latent = model.represent(x)
        latents = [latent]
        state = model.initial_lstm_state(n, "cpu")
        for k in range(depth):
            reset = torch.full((n,), k % horizon == 0, dtype=torch.bool)
            latent, state = model.dynamics_step(latent, state, torch.from_numpy(actions[:, k]), reset)
            latents.append(latent)
        if mode == "all depths":
            logits = model.prediction_logits(torch.cat(latents))[0].view(depth + 1, n, -1).unbind(0)
        else:
            logits = [model.prediction_logits(z)[0] for z in latents]
        return np.array([model.support.scalar_from_logits(v).mean().item() for v in logits])


def root_values(model: torch.nn.Module, x: torch.Tensor, train: bool) -> np.ndarray:
    """float64[N]: the value head at the roots, eval-mode (running statistics) or train-mode
    (this batch's statistics, on a copy so the running statistics stay as saved)."""
    model = copy.deepcopy(model).train(train)
    with torch.no_grad():
        return model.initial_inference_scalar(x)[1].numpy().astype(np.float64)


def readout_values(model: torch.nn.Module, x: torch.Tensor) -> tuple[dict[str, np.ndarray], float]:
    """Eval mode: the root value head read by every `model.value_readout` ({readout:
    float64[N]}) and the head's mean entropy in nats (0: one bin; spread over many bins is where
    the readouts part)."""
    model = copy.deepcopy(model).eval()
    with torch.no_grad():
        probs = torch.softmax(model.prediction_logits(model.represent(x))[0].double(), -1)
    entropy = float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())
    values = {r: Support(model.support.size, r).scalar_from_probs(probs).numpy().astype(np.float64)
              for r in VALUE_READOUTS}
    return values, entropy


def action_spread(model: torch.nn.Module, x: torch.Tensor,
                  discount: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eval mode: (max - min over actions of the one-step Q = value prefix + discount * value,
    float64[N]; the policy prior's largest probability, float64[N]; its argmax, int64[N])."""
    model = copy.deepcopy(model).eval()
    n = x.shape[0]
    with torch.no_grad():
        latent, _, logits = model.initial_inference_scalar(x)
        state = model.initial_lstm_state(n, "cpu")
        reset = torch.ones(n, dtype=torch.bool)
        qs = []
        for a in range(model.num_actions):
            action = torch.full((n,), a, dtype=torch.int64)
            _, _, vp, v, _ = model.recurrent_inference_scalar(latent, state, action, reset)
            qs.append(vp + discount * v)
        q = torch.stack(qs, 1).numpy().astype(np.float64)
        top = torch.softmax(logits.float(), -1).max(-1)
    return q.max(1) - q.min(1), top.values.numpy().astype(np.float64), top.indices.numpy().astype(np.int64)


def visit_sharpness(model: torch.nn.Module, x: torch.Tensor, search_cfg, simulations: int,
                    noise_fraction: float) -> float:
    """Mean over roots of the most visited action's share of the visits of an eval-mode search
    with `simulations` simulations (root noise as given): how far the policy targets and the
    acting distribution get from uniform."""
    model = copy.deepcopy(model).eval()
    cfg = dataclasses.replace(search_cfg, num_simulations=simulations, root_noise_fraction=noise_fraction)
    n = x.shape[0]
    with torch.no_grad():
        latent, _, logits = model.initial_inference_scalar(x)
    latents = {0: latent}
    states = {0: model.initial_lstm_state(n, "cpu")}
    made = [0]

    def recurrent(parents: np.ndarray, actions: np.ndarray, reset: np.ndarray):
        """Gather each root's parent latent and LSTM state, step the dynamics, keep the leaf."""
        made[0] += 1
        rows = list(enumerate(parents.tolist()))
        parent_latent = torch.stack([latents[i][r] for r, i in rows])
        h = torch.stack([states[i][0][r] for r, i in rows])
        c = torch.stack([states[i][1][r] for r, i in rows])
        with torch.no_grad():
            leaf, state, vp, v, leaf_logits = model.recurrent_inference_scalar(
                parent_latent, (h, c), torch.from_numpy(actions.astype(np.int64)), torch.from_numpy(reset))
        latents[made[0]], states[made[0]] = leaf, state
        return (vp.numpy().astype(np.float32), v.numpy().astype(np.float32),
                leaf_logits.float().numpy().astype(np.float32))

    noise = dirichlet_noise(n, model.num_actions, cfg.dirichlet_alpha, np.random.default_rng(0)) \
        if noise_fraction > 0 else None
    out = batched_search(logits.float().numpy().astype(np.float32), recurrent, cfg, noise=noise, seed=0)
    counts = out.visit_counts.astype(np.float64)
    return float((counts.max(1) / counts.sum(1)).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="*", help="default: every checkpoint of the run")
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--simulations", type=int, nargs="*", default=[],
                        help="also report the most visited action's share for these simulation counts")
    parser.add_argument("--depth", type=int, default=0,
                        help="also report the mean value at unroll depths 0..DEPTH, eval vs train mode")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    paths = args.checkpoints or [p for _, p in list_checkpoints(args.run_dir)]
    table = episode_table(args.run_dir / "replay")
    print(f"{'checkpoint (run/step)':>28} {'eval v':>8} {'train v':>8} {'MC':>8} {'|eval-MC|':>9} {'|train-MC|':>10} "
          f"{'low10% |eval-MC|':>16} {'low10% |train-MC|':>17} {'Q spread':>8} {'max prior':>9} {'one action':>10}")
    x = mc = unroll = None
    for path in paths:
        state = load_checkpoint(path)
        config = config_from_dict(state["config"])
        stack, shape = config.env.frame_stack, table["frames"].shape[1:]
        model = build_model(config.model, shape, stack, _num_actions(state), config.learner.lstm_horizon)
        model.load_state_dict(state["learner"]["model"])
        if x is None:  # one set of states for every checkpoint (the run's stack and discount)
            frames, mc = sample_inputs(table, stack, config.replay.discount, args.samples, args.seed)
            x = stack_frames(torch.from_numpy(frames))
        ev, tr = root_values(model, x, False), root_values(model, x, True)
        spread, prior, argmax = action_spread(model, x, config.search.discount)
        one_action = np.bincount(argmax).max() / len(argmax)
        low = mc <= np.quantile(mc, 0.1)  # the states where a value error costs the episode
        label = f"{Path(path).parent.parent.name}/{Path(path).stem}"  # checkpoints of other runs may join
        print(f"{label:>28} {ev.mean():>8.2f} {tr.mean():>8.2f} {mc.mean():>8.2f} "
              f"{np.abs(ev - mc).mean():>9.2f} {np.abs(tr - mc).mean():>10.2f} {np.abs(ev - mc)[low].mean():>16.2f} "
              f"{np.abs(tr - mc)[low].mean():>17.2f} {spread.mean():>8.2f} {prior.mean():>9.3f} {one_action:>10.2f}")
        readouts, entropy = readout_values(model, x)
        print(f"{'':>28} readouts (eval, model: {model.support.readout}): " + ", ".join(
            f"{r} {v.mean():.2f} (|v-MC| {np.abs(v - mc).mean():.2f})" for r, v in readouts.items())
            + f"; head entropy {entropy:.2f} nats")
        for sims in args.simulations:
            sub = x[:256]
            print(f"{'':>28} top visit share, {sims} simulations: no noise "
                  f"{visit_sharpness(model, sub, config.search, sims, 0.0):.3f}, with root noise "
                  f"{visit_sharpness(model, sub, config.search, sims, config.search.root_noise_fraction):.3f}")
        if args.depth > 0:
            if unroll is None:
                frames, acts = unroll_inputs(table, stack, args.depth, args.samples, args.seed)
                unroll = stack_frames(torch.from_numpy(frames)), acts
            print(f"{'':>28} value at unroll depth " + " ".join(f"{k:>6d}" for k in range(args.depth + 1)))
            for mode in ("eval", "per depth", "all depths"):
                values = depth_values(model, *unroll, config.learner.lstm_horizon, mode)
                label = "eval mode" if mode == "eval" else f"train, heads {mode}"
                print(f"{'':>28} {label:>22} " + " ".join(f"{v:>6.2f}" for v in values))
    return 0


def _num_actions(state: dict) -> int:
    """A from the last layer of the policy head in the saved weights."""
    weights = state["learner"]["model"]
    last = [k for k in weights if k.startswith("prediction.policy") and k.endswith(".weight")
            and weights[k].dim() == 2]
    return int(weights[sorted(last, key=_layer_order)[-1]].shape[0])


def _layer_order(key: str) -> tuple[int, ...]:
    return tuple(int(p) for p in key.split(".") if p.isdigit())


if __name__ == "__main__":
    sys.exit(main())
