"""The unrolled loss: masks, the 0.5 latent-gradient hook, augmentation draws, schedules, and
overfitting a fixed batch."""
import copy
import dataclasses

import numpy as np
import pytest
import torch

from ezero_async.config import LearnerConfig, build_config
from ezero_async.learner import loss as loss_mod
from ezero_async.learner.augment import random_shift_intensity
from ezero_async.learner.learner import Learner
from ezero_async.learner.loss import model_inputs, unrolled_loss
from ezero_async.learner.model import build_model
from ezero_async.learner.schedule import learning_rate, target_version
from ezero_async.learner.synthetic import random_batch
from ezero_async.learner.transfer import BatchMover


CPU = torch.device("cpu")


def _setup(game, shape, actions, batch_size=8, seed=0, random_heads=True, **learner_overrides):
    cfg = build_config("smoke", game)
    lcfg = dataclasses.replace(cfg.learner, **learner_overrides)
    torch.manual_seed(seed)
    model = build_model(cfg.model, shape, cfg.env.frame_stack, actions, lcfg.lstm_horizon)
    if random_heads:  # zero-initialised heads predict uniform logits: every target would cost the same
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear) and not module.weight.any():
                    module.weight.normal_(0.0, 0.3)
    batch = random_batch(np.random.default_rng(seed), batch_size, shape, cfg.env.frame_stack, lcfg.unroll_steps,
                         actions, end_fraction=0.5)
    return cfg, lcfg, model, batch


def _loss(model, batch, lcfg, stack, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return unrolled_loss(model, BatchMover(CPU).stage(batch), lcfg, stack, augment=True, generator=gen)


@pytest.mark.parametrize("game,shape,actions", [("CartPole", (4,), 2), ("Breakout", (96, 96, 3), 4)])
def test_masked_positions_do_not_change_the_loss(game, shape, actions):
    cfg, lcfg, model, batch = _setup(game, shape, actions)
    model.eval()  # eval-mode BatchNorm: samples are independent, so masked data cannot leak via batch stats
    s = cfg.env.frame_stack
    mask, value_mask = batch.mask, batch.value_mask.copy()
    value_mask[0, 0] = 0.0  # also a value-masked (truncated) position that the policy still uses
    batch = batch._replace(value_mask=value_mask)
    assert (mask == 0).any()
    base = _loss(model, batch, lcfg, s)
    rng = np.random.default_rng(9)
    changed = batch._replace(
        target_value=np.where(value_mask == 0, rng.normal(size=value_mask.shape) * 50, batch.target_value)
        .astype(np.float32),
        target_value_prefix=np.where(mask[:, 1:] == 0, 7.0, batch.target_value_prefix).astype(np.float32),
        target_policy=np.where((mask == 0)[..., None], 1.0 / actions, batch.target_policy).astype(np.float32),
        actions=np.where(mask[:, 1:] == 0, (batch.actions + 1) % actions, batch.actions),
    )
    obs = changed.obs.copy()  # frames past the end (consistency targets of masked positions)
    for i in range(obs.shape[0]):
        ends = np.nonzero(mask[i] == 0)[0]
        if len(ends):
            obs[i, s + ends[0]:] = obs[i, s + ends[0]:][::-1] // 2 if obs.dtype == np.uint8 else -obs[i, s + ends[0]:]
    changed = changed._replace(obs=obs)
    after = _loss(model, changed, lcfg, s)
    assert after.loss.item() == pytest.approx(base.loss.item(), abs=1e-5)
    assert torch.allclose(after.components, base.components, atol=1e-5)
    # An unmasked target does change it (the test can fail).
    live = batch._replace(target_value=batch.target_value + 50.0 * (value_mask > 0))
    assert abs(_loss(model, live, lcfg, s).loss.item() - base.loss.item()) > 1e-3


def test_latent_gradient_hook_halves_the_gradient_per_dynamics_step(monkeypatch):
    # Only the value-prefix term at k = 1 is live, so every gradient reaching the representation
    # passes through s_1 exactly once: the hook must halve it; the value-prefix head sits after
    # s_1 and is untouched. Eval mode: in train mode the head's batch statistics span all K
    # positions, so the masked ones would pass gradient through s_2.. as well.
    _, lcfg, model, batch = _setup("CartPole", (4,), 2, value_loss_coeff=0.0, policy_loss_coeff=0.0,
                                   consistency_coeff=0.0)
    mask = np.zeros_like(batch.mask)
    mask[:, :2] = 1.0
    batch = batch._replace(mask=mask, value_mask=mask)
    model.eval()

    def grads(scale):
        monkeypatch.setattr(loss_mod, "LATENT_GRAD_SCALE", scale)
        model.zero_grad()
        unrolled_loss(model, BatchMover(CPU).stage(batch), lcfg, 4, augment=False).loss.backward()
        rep = torch.cat([p.grad.flatten() for p in model.representation.parameters()])
        head = torch.cat([p.grad.flatten() for p in model.dynamics.value_prefix.parameters()])
        return rep, head

    rep_on, head_on = grads(0.5)
    rep_off, head_off = grads(1.0)
    assert rep_off.abs().max() > 0
    assert torch.allclose(rep_on, 0.5 * rep_off, atol=1e-7, rtol=1e-5)
    assert torch.allclose(head_on, head_off, atol=1e-7, rtol=1e-5)


def test_augmentation_draws_one_shift_for_o_t_and_one_shared_by_all_targets():
    cfg, lcfg, model, batch = _setup("Breakout", (96, 96, 3), 4)
    obs = torch.from_numpy(batch.obs)
    c, k = 3, lcfg.unroll_steps
    first, targets = model_inputs(model, obs, 4, k, augment=True, generator=torch.Generator().manual_seed(3))
    assert first.shape == (8, 12, 96, 96) and len(targets) == k
    for i in range(k - 1):  # consecutive target stacks overlap in 3 frames, augmented identically
        assert torch.equal(targets[i][:, c:], targets[i + 1][:, :-c])
    assert not torch.allclose(first[:, c:], targets[0][:, :-c])  # o_t's stack has its own draw
    plain, _ = model_inputs(model, obs, 4, k, augment=False, generator=None)
    assert torch.allclose(plain, obs[:, :4].permute(0, 1, 4, 2, 3).reshape(8, 12, 96, 96).float() / 255)


def test_random_shift_is_a_crop_of_the_replicate_padded_image():
    images = torch.rand(6, 2, 12, 12)
    out = random_shift_intensity(images, torch.Generator().manual_seed(0), intensity=0.0)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4), mode="replicate")
    for i in range(6):
        assert any(torch.equal(out[i], padded[i, :, dy:dy + 12, dx:dx + 12]) for dy in range(9) for dx in range(9))
    scaled = random_shift_intensity(torch.ones(500, 1, 8, 8), torch.Generator().manual_seed(1))
    factors = scaled[:, 0, 0, 0]
    assert factors.min() >= 0.9 - 1e-6 and factors.max() <= 1.1 + 1e-6 and factors.std() > 0.02
    assert torch.all(scaled == factors.view(-1, 1, 1, 1))  # one factor per sample


def test_learning_rate_and_target_schedules():
    cfg = build_config("atari100k", "Breakout").learner
    assert learning_rate(0, cfg) == 0.0
    assert learning_rate(500, cfg) == pytest.approx(0.1)
    assert learning_rate(1000, cfg) == pytest.approx(0.2)
    assert learning_rate(100_999, cfg) == pytest.approx(0.2)
    assert learning_rate(101_000, cfg) == pytest.approx(0.02)
    assert [target_version(s, 200) for s in (0, 199, 200, 399, 400, 401, 999)] == [0, 0, 0, 0, 200, 200, 600]


def test_overfitting_a_fixed_batch_lowers_the_loss():
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, batch_size=16, random_heads=False)
    learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
    mover = BatchMover(CPU)
    losses = []
    for s in range(100):
        result = learner.train_step(mover.stage(batch._replace(step=s)))
        losses.append(result.stats.loss)
        assert result.priorities.shape == (16,) and np.all(result.priorities > 0)
    assert np.isfinite(losses).all()
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[1:11])
    assert result.stats.lr == pytest.approx(lcfg.lr_init)


def test_priorities_are_value_errors_of_the_prediction_at_k0():
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, random_heads=False)
    learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
    result = learner.train_step(BatchMover(CPU).stage(batch))
    # Zero-initialised value head: v_0 = 0 before the first update.
    np.testing.assert_allclose(result.priorities, np.abs(batch.target_value[:, 0]) + 1e-6, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="step"):
        learner.train_step(BatchMover(CPU).stage(batch._replace(step=5)))


def _fit_by_position_and_unroll(seed: int, prediction_heads: str = "per_position",
                                **targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Train a CartPole model in train mode for 250 Adam steps on random inputs whose targets
    (`target_value` float32[K+1] or `target_value_prefix` float32[K], the same row for every
    sample) depend on the unroll position alone; then unroll 256 random roots in eval mode.
    Returns the mean (value at depths 0..K float64[K+1], value prefix at depths 1..K float64[K])."""
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, batch_size=64, seed=seed, random_heads=False,
                                     prediction_heads=prediction_heads)
    k = lcfg.unroll_steps
    assert lcfg.lstm_horizon >= k  # one LSTM segment: VP_k = k
    rng = np.random.default_rng(seed)
    batch = batch._replace(mask=np.ones_like(batch.mask), value_mask=np.ones_like(batch.value_mask),
                           **{name: np.tile(row, (64, 1)) for name, row in targets.items()})
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(250):
        obs = rng.standard_normal(batch.obs.shape).astype(np.float32)
        actions = rng.integers(0, 2, size=batch.actions.shape)
        staged = BatchMover(CPU).stage(batch._replace(obs=obs, actions=actions))
        optimizer.zero_grad()
        unrolled_loss(model, staged, lcfg, cfg.env.frame_stack, augment=False).loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        roots = rng.standard_normal((256, 4 * cfg.env.frame_stack))
        latent, value, _ = model.initial_inference_scalar(torch.as_tensor(roots, dtype=torch.float32))
        state = model.initial_lstm_state(256, "cpu")
        values, prefixes = [value.mean().item()], []
        for depth in range(k):
            action = torch.as_tensor(rng.integers(0, 2, size=256))
            latent, state, prefix, value, _ = model.recurrent_inference_scalar(
                latent, state, action, torch.full((256,), depth == 0, dtype=torch.bool))
            values.append(value.mean().item())
            prefixes.append(prefix.mean().item())
    return np.array(values), np.array(prefixes)


def _prediction_inputs_of_one_update(game, shape, actions, heads):
    """One train-mode unrolled_loss with learner.prediction_heads = heads. Returns (K, B, the
    prediction net's inputs in call order, the train-mode root latents of the K consistency
    targets and then of the unroll, the prediction BatchNorm's num_batches_tracked)."""
    cfg, lcfg, model, batch = _setup(game, shape, actions, prediction_heads=heads)
    model.train()
    staged = BatchMover(CPU).stage(batch)
    first, targets = model_inputs(model, staged.obs, cfg.env.frame_stack, lcfg.unroll_steps, False, None)
    with torch.no_grad():
        twin = copy.deepcopy(model)  # train-mode batch statistics: no state is read
        roots = [twin.represent(x) for x in [*targets, first]]
    seen: list[torch.Tensor] = []
    hook = model.prediction.register_forward_hook(lambda module, args, out: seen.append(args[0].detach().clone()))
    try:
        unrolled_loss(model, staged, lcfg, cfg.env.frame_stack, augment=False)
    finally:
        hook.remove()
    bn = next(m for m in model.prediction.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
    return lcfg.unroll_steps, batch.weights.shape[0], seen, roots, int(bn.num_batches_tracked)


@pytest.mark.parametrize("game,shape,actions", [("CartPole", (4,), 2), ("MinAtar/Breakout", (10, 10, 4), 3)])
def test_joint_prediction_heads_run_once_over_every_unroll_position(game, shape, actions):
    """docs/deviations.md#prediction-batchnorm, learner.prediction_heads = 'joint': one
    train-mode call of the prediction net per update, over the K + 1 unrolled latents (the root
    first, then depth 1..K, B rows each), so its BatchNorm running statistics average the same
    batches its training normalised with; the consistency targets' roots never reach it."""
    k, b, seen, roots, tracked = _prediction_inputs_of_one_update(game, shape, actions, "joint")
    assert len(seen) == 1 and seen[0].shape[0] == (k + 1) * b
    torch.testing.assert_close(seen[0][:b], roots[-1], atol=1e-6, rtol=1e-5)
    assert tracked == 1


def test_per_position_prediction_heads_see_each_position_and_the_consistency_roots():
    """learner.prediction_heads = 'per_position' (the reference's, the default): K train-mode
    calls on the consistency targets' roots, then one per unroll position, root first, B rows
    each."""
    assert LearnerConfig().prediction_heads == "per_position"
    k, b, seen, roots, tracked = _prediction_inputs_of_one_update("CartPole", (4,), 2, "per_position")
    assert len(seen) == 2 * k + 1 and all(x.shape[0] == b for x in seen)
    for got, root in zip(seen[:k + 1], roots):  # the K target roots, then the unroll's root
        torch.testing.assert_close(got, root, atol=1e-6, rtol=1e-5)
    assert tracked == 2 * k + 1


def test_joint_value_head_reads_every_depth_in_eval_mode():
    """Value targets 0, 1, ..., K by unroll depth alone: trained in train mode, the eval-mode
    heads (running statistics, as the search reads them at its leaves) must tell the depths
    apart along an unroll. With the heads run per position, batch statistics of one depth remove
    the drift that encodes it, and eval mode read about 2.2 at every depth. (Deeper than 3 the
    values saturate near 3.5: the dynamics' own BatchNorms must run step by step.)"""
    k = 5
    values, _ = _fit_by_position_and_unroll(5, "joint", target_value=np.arange(k + 1, dtype=np.float32))
    predicted = values.tolist()
    assert predicted[0] < 0.5, predicted
    assert all(deeper - shallower > 0.3 for shallower, deeper in zip(predicted[:3], predicted[1:4])), predicted


def test_amp_resolution_defaults_to_the_references_fp16_on_cuda_and_fp32_on_cpu():
    from ezero_async.learner.learner import resolve_amp

    cuda = torch.device("cuda", 0)  # resolve_amp only reads the device type: no GPU needed
    assert resolve_amp("auto", cuda) == torch.float16
    assert resolve_amp("fp16", cuda) == torch.float16
    assert resolve_amp("bf16", cuda) == torch.bfloat16
    assert resolve_amp("off", cuda) is None
    assert all(resolve_amp(a, CPU) is None for a in ("auto", "fp16", "off"))
    assert resolve_amp("bf16", CPU) == torch.bfloat16
    with pytest.raises(ValueError):
        resolve_amp("fp8", CPU)


def test_bf16_update_on_cpu_runs_in_bf16_and_follows_the_fp32_update():
    """learner.amp = 'bf16' autocasts the CPU update: the convolutions run in bf16, the weights
    stay fp32, and every loss term stays within bf16's rounding of the fp32 update's."""
    results = {}
    for amp in ("off", "bf16"):
        cfg, lcfg, model, batch = _setup("MinAtar/Breakout", (10, 10, 4), 3, batch_size=16, amp=amp)
        seen = []
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
        learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
        stats = learner.train_step(BatchMover(CPU).stage(batch)).stats
        results[amp] = stats, torch.cat([p.detach().flatten() for p in model.parameters()]), set(seen)
    (fp32, _, dt32), (bf16, w16, dt16) = results["off"], results["bf16"]
    assert dt32 == {torch.float32} and dt16 == {torch.bfloat16}
    assert w16.dtype == torch.float32  # autocast leaves the weights the optimiser steps in fp32
    assert bf16.loss != fp32.loss  # it did compute in bf16
    for name in ("loss", "value", "policy", "value_prefix", "consistency", "grad_norm"):
        assert getattr(bf16, name) == pytest.approx(getattr(fp32, name), rel=0.02, abs=0.02), name


@pytest.mark.parametrize("name,kind", [("sgd", torch.optim.SGD), ("adam", torch.optim.Adam)])
def test_optimizer_choice_builds_it_and_trains(name, kind):
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, batch_size=16, optimizer=name, lr_init=0.01,
                                     lr_warmup_steps=0)
    learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
    assert isinstance(learner.optimizer, kind)
    before = [p.detach().clone() for p in model.parameters()]
    learner.train_step(BatchMover(CPU).stage(batch._replace(step=0)))
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))


def test_value_prefix_head_sees_every_unroll_position_in_one_batch():
    """A reward of 1 at every step: the value-prefix targets are 1, 2, ..., K for every sample,
    so only the position tells them apart. Trained in train mode, the eval-mode head (running
    BatchNorm statistics, as acting and reanalysis read it) must predict each position's prefix.
    With the head applied per position, batch statistics of one position remove the mean that
    encodes it, and eval mode predicted prefixes stuck near the middle of 1..K."""
    k = 5
    _, prefixes = _fit_by_position_and_unroll(3, target_value_prefix=np.arange(1, k + 1, dtype=np.float32))
    predicted = prefixes.tolist()
    np.testing.assert_allclose(predicted, np.arange(1, k + 1), atol=0.35)


def test_policy_statistics_measure_entropies_and_the_share_preferring_one_action():
    # Four samples over three actions: uniform, sharp on 0, sharp on 0, sharp on 2.
    logits = torch.tensor([[0.0, 0.0, 0.0], [9.0, 0.0, 0.0], [5.0, 1.0, 0.0], [0.0, 0.0, 4.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0], [1.0, 0.0, 0.0], [0.25, 0.25, 0.5]])
    prior_entropy, target_entropy, mode_share = loss_mod.policy_statistics(logits, target).tolist()
    p = torch.softmax(logits, -1)
    expected = float(-(p * p.log()).sum(-1).mean())
    assert prior_entropy == pytest.approx(expected, rel=1e-6)
    assert prior_entropy < np.log(3)  # three of four samples are sharper than uniform
    assert target_entropy == pytest.approx((0 + np.log(2) + 0 + (0.5 * np.log(4) + 0.5 * np.log(2))) / 4, rel=1e-6)
    # argmax: 0 (ties go to the lowest index), 0, 0, 2 -> three of four prefer action 0.
    assert mode_share == pytest.approx(0.75)


def test_an_update_reports_the_policy_statistics_of_its_batch():
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, random_heads=False)
    # Zero-initialised heads predict uniform policies: entropy ln 2 and every tie resolved to action 0.
    batch = batch._replace(target_policy=np.broadcast_to(np.array([1.0, 0.0], np.float32),
                                                         batch.target_policy.shape).copy())
    learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
    stats = learner.train_step(BatchMover(CPU).stage(batch)).stats
    assert stats.prior_entropy == pytest.approx(np.log(2), rel=1e-5)
    assert stats.target_entropy == pytest.approx(0.0, abs=1e-6)
    assert stats.prior_mode_share == 1.0


def test_an_update_reports_its_batch_mean_root_value_and_value_target():
    cfg, lcfg, model, batch = _setup("CartPole", (4,), 2, random_heads=False)
    targets = batch.target_value.copy()
    targets[:, 0] = np.arange(len(targets), dtype=np.float32)  # mean (B - 1) / 2
    learner = Learner(model, lcfg, CPU, frame_stack=cfg.env.frame_stack)
    stats = learner.train_step(BatchMover(CPU).stage(batch._replace(target_value=targets))).stats
    assert stats.root_value_target == pytest.approx((len(targets) - 1) / 2, rel=1e-6)
    # Zero-initialised value heads: a uniform distribution over a symmetric support is the value 0.
    assert stats.root_value == pytest.approx(0.0, abs=1e-5)
