"""Checkpoint size of a preset: what a periodic checkpoint of a run of that preset holds, by part.

  python tools/checkpoint_size.py --game Breakout --preset atari100k
  python tools/checkpoint_size.py --game CartPole --preset cartpole --step 2000

Builds the preset's model and learner on the CPU, fills the online and target weight stores the
way a run does up to training step --step (a version every learner.publish_interval steps, a
target every learner.target_update_interval steps, the weights changing between versions), takes
the learner thread's checkpoint snapshot, and writes it with torch.save to a temporary file.
Prints the file size and the size of each part as if saved alone (shared tensors count in each
part that names them, so the parts can add up to more than the file).
"""
from __future__ import annotations

import argparse
import io
import math
import queue
import sys
import tempfile
from pathlib import Path

import torch


def saved_bytes(obj: object) -> int:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.tell()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--game", default="Breakout")
    parser.add_argument("--preset", default="atari100k")
    parser.add_argument("--step", type=int, default=None, help="training step of the checkpoint "
                        "(default: tracking.checkpoint_interval)")
    args = parser.parse_args(argv)

    from ezero_async.config import build_config
    from ezero_async.envs.registry import make_game
    from ezero_async.learner.learner import Learner
    from ezero_async.learner.model import build_model
    from ezero_async.learner.thread import LearnerThread
    from ezero_async.learner.weights import WeightStore

    config = build_config(args.preset, args.game)
    lc, rt = config.learner, config.runtime
    step = args.step if args.step is not None else config.tracking.checkpoint_interval
    game = make_game(config.env, seed=0, training=True)
    spec, actions = game.obs_spec, game.num_actions
    game.close()
    model = build_model(config.model, spec.shape, config.env.frame_stack, actions, lc.lstm_horizon)
    learner = Learner(model, lc, torch.device("cpu"), frame_stack=config.env.frame_stack, seed=0,
                      priority_eps=config.replay.priority_eps)
    # The run's store sizes (runtime/trainer.py).
    versions_held = math.ceil((rt.self_play_lag + lc.publish_interval) / lc.publish_interval) + 2
    online, target = WeightStore(max(2, versions_held), name="online"), WeightStore(3, name="target")
    first = max(0, step - (versions_held + 3) * max(lc.publish_interval, lc.target_update_interval))
    with torch.no_grad():
        for s in range(first, step + 1):
            if s % lc.publish_interval == 0:
                online.publish(s, model)
            if s % lc.target_update_interval == 0:
                target.publish(s, model)
            if s < step:
                for p in model.parameters():  # stands in for an update: every version differs
                    p.add_(1e-3)
    for p in model.parameters():  # one optimizer step: the optimizer's state exists, as in a run
        p.grad = torch.zeros_like(p)
    learner.optimizer.step()
    learner.optimizer.zero_grad(set_to_none=True)
    learner.step = step
    thread = LearnerThread(learner, queue.Queue(), on_priorities=lambda i, p: None, online=online, target=target)
    snapshot = thread.snapshot()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint.pt"
        torch.save(snapshot, path)
        total = path.stat().st_size
    mb = 1e6
    print(f"{args.game}, preset {args.preset}: checkpoint at training step {step}: {total / mb:.1f} MB")
    print(f"  learner (model, optimizer, scaler): {saved_bytes(snapshot['learner']) / mb:.1f} MB")
    for name in ("online", "target"):
        versions = [held["version"] for held in snapshot[name]]
        print(f"  {name} versions {versions}: {saved_bytes(snapshot[name]) / mb:.1f} MB alone")
    print(f"  model weights alone: {saved_bytes(model.state_dict()) / mb:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
