"""The update step: loss forward, 1/K-scaled backward, AMP, clip, SGD; priorities back.

`launch()` enqueues a whole update without waiting for the device; `finish()` is the one
device->host sync per step (priorities and loss scalars in a single copy). The learner thread
stages the next batch between the two.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, NamedTuple

import numpy as np
import torch

from ezero_async.config.sections import LearnerConfig
from ezero_async.learner.loss import COMPONENTS, POLICY_STATS, VALUE_STATS, LossOutput, unrolled_loss
from ezero_async.learner.model import EfficientZeroNet
from ezero_async.learner.schedule import learning_rate
from ezero_async.learner.transfer import DeviceBatch


class LossStats(NamedTuple):
    """Python floats of one update (for logging under losses/)."""

    loss: float
    """(1/B) sum_b w_b L_b, before the 1/K scale."""
    value: float
    """Batch mean of sum_k value-mask * CE(value)."""
    policy: float
    """Batch mean of sum_k mask * CE(policy)."""
    value_prefix: float
    """Batch mean of sum_k mask * CE(value prefix)."""
    consistency: float
    """Batch mean of sum_k mask * (-cos) (between -K and K)."""
    grad_norm: float
    """Global gradient norm before clipping (after unscaling with fp16)."""
    lr: float
    """Learning rate used for this step."""
    prior_entropy: float
    """Mean entropy of the predicted policy at k = 0 (nats; ln A is uniform)."""
    target_entropy: float
    """Mean entropy of the policy target at k = 0."""
    prior_mode_share: float
    """Share of the batch whose predicted policy prefers the batch's most preferred action."""
    root_value: float
    """Batch mean of the predicted v_0 (value units)."""
    root_value_target: float
    """Batch mean of the value target z_0."""


class UpdateResult(NamedTuple):
    """One finished update, handed to callbacks on the learner thread."""

    step: int
    """Training step s that was just applied (the learner is now at s + 1)."""
    indices: np.ndarray
    """int64[B]: replay indices of the batch."""
    priorities: np.ndarray
    """float32[B]: |v_0 - z_0| + eps from the pre-update forward pass."""
    stats: LossStats


class PendingUpdate(NamedTuple):
    """An update enqueued on the device but not yet read back."""

    step: int
    lr: float
    indices: np.ndarray
    """int64[B]."""
    readback: torch.Tensor
    """float32[B + len(COMPONENTS) + len(POLICY_STATS) + len(VALUE_STATS) + 2]: priorities,
    components, policy statistics, value statistics, loss, grad norm (device)."""


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: None (fp32) with 'off'; 'bf16' -> bf16 without a scaler; on CUDA
    'auto' -> fp16 (with a GradScaler, as the reference trains: no GPU measurement has yet shown
    bf16 to learn as well). On a CPU 'auto' and 'fp16' train in fp32 (fp16 has no fast CPU
    kernels; bf16 has them where the CPU has AVX512-BF16 or AMX)."""
    if amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"amp must be auto, bf16, fp16 or off, got {amp!r}")
    if amp == "off":
        return None
    if amp == "bf16":
        return torch.bfloat16
    return torch.float16 if device.type == "cuda" else None


def make_optimizer(model: torch.nn.Module, cfg: LearnerConfig) -> torch.optim.Optimizer:
    """SGD with momentum and L2 weight decay (the reference), or Adam with the same L2 decay; the
    learning rate is set before every step from the schedule."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=0.0, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=0.0, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be sgd or adam, got {cfg.optimizer!r}")


class UpdateAborted(Exception):
    """A stop dropped the update in progress; the learner is exactly as before that update."""


class _AbortPoints:
    """Where an update in progress checks whether a stop wants it dropped: before each call of
    the model's top-level modules (forward) and when the gradient of each of their inputs is
    computed (backward). On a CPU an Atari update takes seconds; these points are a small
    fraction of one apart, so a stop waits for that fraction, not for the update."""

    def __init__(self, model: torch.nn.Module, flag: threading.Event) -> None:
        self.flag = flag
        for module in model.children():
            module.register_forward_pre_hook(self._forward)

    def check(self) -> None:
        if self.flag.is_set():
            raise UpdateAborted

    def _forward(self, module: torch.nn.Module, args: tuple) -> None:
        self.check()
        for arg in args:
            if isinstance(arg, torch.Tensor) and arg.requires_grad:
                arg.register_hook(self._backward)

    def _backward(self, grad: torch.Tensor) -> None:
        self.check()


class Learner:
    """Owns the online model (train mode), the optimiser and the step counter.

    model: built by build_model, moved here to `device`; cfg: the learner section;
    frame_stack: S of the observation windows; start_step: first step to train (resume);
    seed: seeds the augmentation generator; priority_eps: added to |v_0 - z_0|.
    """

    def __init__(self, model: EfficientZeroNet, cfg: LearnerConfig, device: torch.device | str, *,
                 frame_stack: int, start_step: int = 0, seed: int = 0, priority_eps: float = 1e-6) -> None:
        cfg.check()
        self.cfg = cfg
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:  # set_device/streams need an index
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.model = model.to(self.device).train()
        self.frame_stack = frame_stack
        self.step = start_step
        self.priority_eps = priority_eps
        self.augment = cfg.augment and model.kind != "mlp"
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.optimizer = make_optimizer(self.model, cfg)
        # Loss scaling is needed only for fp16 (bf16 has fp32's exponent range).
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.abort = threading.Event()
        """Set by a stop: the update in progress raises UpdateAborted at its next abort point and
        leaves the learner as before it (CPU only: on a GPU an update takes milliseconds; not
        with a compiled loss, whose graph cannot run the points' hooks)."""
        self._abort_points = (_AbortPoints(self.model, self.abort)
                              if self.device.type == "cpu" and cfg.compile != "on" else None)
        self._loss = unrolled_loss
        if cfg.compile == "on":  # 'auto' is the run's to resolve (runtime.trainer.learner_in_process)
            self.model.support.bins(self.device)  # the cache the compiled graph guards on, filled first
            self._loss = torch.compile(unrolled_loss, dynamic=False)

    def launch(self, batch: DeviceBatch) -> PendingUpdate:
        """Enqueue forward, backward and the optimiser step for `batch` (must be for the current
        step). Returns without a host sync on CUDA."""
        if batch.step != self.step:
            raise ValueError(f"batch is for training step {batch.step}, the learner is at step {self.step}")
        lr = learning_rate(self.step, self.cfg)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for p in self.model.parameters() if p.requires_grad]
        # Forward and backward change only the BatchNorm statistics and the augmentation RNG
        # (parameters and optimizer state change in the step): what a dropped update restores.
        before = self._before_update() if self._abort_points is not None else None
        try:
            out = self._forward_backward(batch)
        except UpdateAborted:
            self._drop_update(before)
            raise
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self.scaler.step(self.optimizer)  # skips the step on inf/nan gradients
            self.scaler.update()
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
            self.optimizer.step()
        priorities = (out.value0 - batch.target_value[:, 0]).abs() + self.priority_eps
        readback = torch.cat([priorities, out.components, out.policy_stats, out.value_stats,
                              out.loss.detach().float().view(1), norm.detach().float().view(1)])
        pending = PendingUpdate(step=self.step, lr=lr, indices=batch.indices, readback=readback)
        self.step += 1
        return pending

    def warm_up(self, batch: DeviceBatch) -> None:
        """Run the loss forward and backward on `batch` (any step; synthetic is fine) and undo
        what that changed: with learner.compile this is where the compiling happens, before the
        first update and outside it (a caller can give up on it without losing a step)."""
        before = self._before_update()
        self.optimizer.zero_grad(set_to_none=True)
        self._forward_backward(batch)
        self._drop_update(before)

    def _forward_backward(self, batch: DeviceBatch) -> LossOutput:
        autocast = (torch.autocast(self.device.type, dtype=self.amp_dtype) if self.amp_dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            out = self._loss(self.model, batch, self.cfg, self.frame_stack, self.augment, self.generator)
        # Every term's gradient is scaled by 1/K.
        scaled = out.loss / self.cfg.unroll_steps
        (self.scaler.scale(scaled) if self.scaler is not None else scaled).backward()
        return out

    def _before_update(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        buffers = {name: buf.detach().clone() for name, buf in self.model.named_buffers()}
        return buffers, self.generator.get_state()

    def _drop_update(self, before: tuple[dict[str, torch.Tensor], torch.Tensor] | None) -> None:
        """Undo what a dropped update's (or the warm-up's) forward and backward changed."""
        if before is None:
            return
        buffers, generator = before
        with torch.no_grad():
            for name, buf in self.model.named_buffers():
                buf.copy_(buffers[name])
        self.generator.set_state(generator)
        self.optimizer.zero_grad(set_to_none=True)

    def finish(self, pending: PendingUpdate) -> UpdateResult:
        """Read the update back: the one device -> host sync point of a step."""
        host = pending.readback.cpu().numpy()  # sync point (CUDA): waits for the whole update
        b = pending.indices.shape[0]
        comp, policy, value = np.split(host[b:-2], np.cumsum([len(COMPONENTS), len(POLICY_STATS)]))
        loss, grad_norm = float(host[-2]), float(host[-1])
        if self.scaler is None and not np.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss} at training step {pending.step}")
        stats = LossStats(loss=loss, value=float(comp[0]), policy=float(comp[1]), value_prefix=float(comp[2]),
                          consistency=float(comp[3]), grad_norm=grad_norm, lr=pending.lr,
                          **{name: float(x) for name, x in zip(POLICY_STATS, policy)},
                          **{name: float(x) for name, x in zip(VALUE_STATS, value)})
        return UpdateResult(step=pending.step, indices=pending.indices, priorities=host[:b].copy(), stats=stats)

    def train_step(self, batch: DeviceBatch) -> UpdateResult:
        """launch + finish: one synchronous update."""
        return self.finish(self.launch(batch))

    def state_dict(self) -> dict[str, Any]:
        """Everything a checkpoint needs to resume the learner bit-for-bit."""
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scaler": None if self.scaler is None else self.scaler.state_dict(), "step": self.step,
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler") is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.generator.set_state(state["generator"])
