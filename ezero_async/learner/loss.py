"""The EfficientZero training loss over a K-step unroll (SPEC_TRAINING.md, "Loss").

L_b = sum_{k=0..K} [vm_k 0.25 CE(value_k, phi(z_k)) + m_k CE(policy_k, pi_k)]
    + sum_{k=1..K} m_k [CE(vp_k, phi(VP_k)) - 2 cos(pred(proj(s_k)), sg(proj(repr(o_{t+k}))))]
loss = (1/B) sum_b w_b L_b. The caller scales it by 1/K before backward.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch.nn import functional as F

from ezero_async.config.sections import LearnerConfig
from ezero_async.learner.augment import random_shift_intensity
from ezero_async.learner.model import EfficientZeroNet
from ezero_async.learner.transfer import DeviceBatch

LATENT_GRAD_SCALE = 0.5
"""Every dynamics output s_k (k >= 1) passes this factor times its gradient (MuZero's trick:
the recurrent gradient does not grow with the unroll length)."""

COMPONENTS = ("value", "policy", "value_prefix", "consistency")
"""Names of LossOutput.components, in order."""

POLICY_STATS = ("prior_entropy", "target_entropy", "prior_mode_share")
"""Names of LossOutput.policy_stats, in order."""

VALUE_STATS = ("root_value", "root_value_target")
"""Names of LossOutput.value_stats, in order."""


class LossOutput(NamedTuple):
    """What one forward pass of the loss yields (tensors on the device)."""

    loss: torch.Tensor
    """float32[]: (1/B) sum_b w_b L_b (before the 1/K gradient scale)."""
    components: torch.Tensor
    """float32[4]: batch means of sum_k m_k * term for value CE, policy CE, value-prefix CE and
    the negative cosine (no coefficients, no importance weights), detached."""
    value0: torch.Tensor
    """float32[B]: scalar v_0 predicted at k = 0 (for priorities), detached."""
    policy_stats: torch.Tensor
    """float32[3], detached, at k = 0 over the batch: the mean entropy of the predicted policy,
    the mean entropy of the policy target, and the share of samples whose predicted policy
    prefers the action the batch's predictions prefer most often. A policy locking onto one
    action everywhere (docs/learning.md#sweep-lock-in) shows as falling entropies and a mode
    share rising towards 1, whatever the game."""
    value_stats: torch.Tensor
    """float32[2], detached: the batch means of the predicted v_0 and of its target z_0 (value
    units). Values that trail their targets update after update are values that cannot keep up
    with their bootstraps (docs/learning.md#cartpole-seeds-6-10)."""


def model_inputs(model: EfficientZeroNet, obs: torch.Tensor, frame_stack: int, unroll_steps: int, augment: bool,
                 generator: torch.Generator | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """obs window uint8[B, S+K, H, W, C] or float32[B, S+K, D] -> (input at k = 0, [input at
    k = 1..K]), model-ready floats. Images are scaled on the device; with augment, the o_t stack
    gets one draw and all target stacks share one independent draw."""
    s, k = frame_stack, unroll_steps
    if obs.dim() == 3:
        b = obs.shape[0]
        stacks = [obs[:, i:i + s].reshape(b, -1) for i in range(k + 1)]
        return stacks[0], stacks[1:]
    b, frames, height, width, c = obs.shape
    # One uint8 -> float conversion of the whole window; the stacks are channel slices of it.
    x = obs.permute(0, 1, 4, 2, 3).float().mul_(model.pixel_scale).reshape(b, frames * c, height, width)
    first = x[:, : s * c]
    rest = x[:, c:]  # frames 1 .. S+K-1, the union of the K target stacks
    if augment:
        first = random_shift_intensity(first, generator)
        rest = random_shift_intensity(rest, generator)
    targets = [rest[:, i * c:(i + s) * c] for i in range(k)]
    return first, targets


def _cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits float[N, M] (any float dtype), target float32[N, M] -> float32[N]."""
    return -(target * F.log_softmax(logits.float(), dim=-1)).sum(-1)


def _scale_grad(grad: torch.Tensor) -> torch.Tensor:
    return grad * LATENT_GRAD_SCALE


def unrolled_loss(model: EfficientZeroNet, batch: DeviceBatch, cfg: LearnerConfig, frame_stack: int,
                  augment: bool, generator: torch.Generator | None = None) -> LossOutput:
    """Forward the K-step unroll and return the loss (the model's train/eval mode is the
    caller's: the learner trains in train mode; tests may use eval mode to decouple samples)."""
    k_steps, horizon = cfg.unroll_steps, cfg.lstm_horizon
    b = batch.weights.shape[0]
    device = batch.weights.device
    support = model.support
    first, targets = model_inputs(model, batch.obs, frame_stack, k_steps, augment and batch.obs.dim() == 5, generator)

    # Consistency targets: ONLINE representation and projection, BatchNorm as the model's mode
    # (train in the learner), no gradient. Per position (the reference's), the whole initial
    # inference runs, prediction included: its outputs are unused, but in train mode the heads'
    # running statistics then see K more root batches per update. Joint, the heads run once below
    # over the K + 1 unrolled latents, so their running statistics average exactly the batches
    # their train-mode statistics come from (docs/deviations.md#prediction-batchnorm).
    joint = cfg.prediction_heads == "joint"
    with torch.no_grad():
        roots = [model.represent(t) if joint else model.initial_inference(t)[0] for t in targets]
        target_proj = [model.project(root, with_predictor=False) for root in roots]

    latent = model.represent(first)
    latents, consistency = [latent], []
    state = model.initial_lstm_state(b, device, dtype=torch.float32)
    reset = torch.ones(b, dtype=torch.bool, device=device)
    keep = torch.zeros(b, dtype=torch.bool, device=device)
    hidden = []
    for k in range(1, k_steps + 1):
        # The parent at depth k-1 is a reset node iff (k-1) % H == 0 (the root included).
        latent, state = model.dynamics_step(latent, state, batch.actions[:, k - 1],
                                            reset if (k - 1) % horizon == 0 else keep)
        if latent.requires_grad:
            latent.register_hook(_scale_grad)
        latents.append(latent)
        hidden.append(state[0])
        online = model.project(latent, with_predictor=True).float()
        consistency.append((F.normalize(online, dim=-1, eps=1e-5)
                            * F.normalize(target_proj[k - 1].float(), dim=-1, eps=1e-5)).sum(-1))

    if joint:  # the prediction heads once over all K + 1 positions (EfficientZeroNet.prediction_logits)
        value_logits, policy_logits = model.prediction_logits(torch.cat(latents))
        values = value_logits.view(k_steps + 1, b, -1).unbind(0)
        policies = policy_logits.view(k_steps + 1, b, -1).unbind(0)
    else:  # once per position, root first, as the reference's unroll calls them
        values, policies = zip(*(model.prediction_logits(z) for z in latents))
    # The value-prefix head once over all K positions (see EfficientZeroNet.value_prefix_logits).
    prefixes = model.value_prefix_logits(torch.cat(hidden)).view(k_steps, b, -1).unbind(0)

    bins = support.num_bins
    value_target = support.two_hot(batch.target_value.reshape(-1)).view(b, k_steps + 1, bins)
    prefix_target = support.two_hot(batch.target_value_prefix.reshape(-1)).view(b, k_steps, bins)
    value_ce = torch.stack([_cross_entropy(values[k], value_target[:, k]) for k in range(k_steps + 1)], 1)
    policy_ce = torch.stack([_cross_entropy(policies[k], batch.target_policy[:, k]) for k in range(k_steps + 1)], 1)
    prefix_ce = torch.stack([_cross_entropy(prefixes[k], prefix_target[:, k]) for k in range(k_steps)], 1)
    cosine = torch.stack(consistency, 1)  # float32[B, K]

    mask, later = batch.mask, batch.mask[:, 1:]
    value_term = (value_ce * batch.value_mask).sum(1)
    policy_term = (policy_ce * mask).sum(1)
    prefix_term = (prefix_ce * later).sum(1)
    consistency_term = (-cosine * later).sum(1)
    per_sample = (cfg.value_loss_coeff * value_term + cfg.policy_loss_coeff * policy_term
                  + cfg.value_prefix_loss_coeff * prefix_term + cfg.consistency_coeff * consistency_term)
    loss = (batch.weights * per_sample).mean()
    components = torch.stack([value_term.mean(), policy_term.mean(), prefix_term.mean(),
                              consistency_term.mean()]).detach()
    value0 = support.scalar_from_logits(values[0].detach())
    return LossOutput(loss=loss, components=components, value0=value0,
                      policy_stats=policy_statistics(policies[0].detach(), batch.target_policy[:, 0]),
                      value_stats=torch.stack([value0.mean(), batch.target_value[:, 0].float().mean()]))


def policy_statistics(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """logits float[B, A], target float32[B, A] -> float32[3] (see LossOutput.policy_stats).
    No host sync: the mode is found from a one-hot count, not bincount."""
    log_prior = F.log_softmax(logits.float(), dim=-1)
    prior_entropy = -(log_prior.exp() * log_prior).sum(-1).mean()
    target_entropy = -(target * torch.log(target.clamp_min(1e-12))).sum(-1).mean()
    counts = F.one_hot(logits.argmax(-1), logits.shape[-1]).sum(0)
    mode_share = counts.max().float() / logits.shape[0]
    return torch.stack([prior_entropy, target_entropy, mode_share])
