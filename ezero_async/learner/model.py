"""EfficientZeroNet: the model the learner trains and the inference batcher runs.

Input layout (every caller builds it the same way, see `stack_frames`):
- images: S stored frames uint8[H, W, C] -> float[B, S*C, H, W], frame-major channels
  (channels [i*C:(i+1)*C] are frame i, oldest first); uint8 input is scaled by `pixel_scale`
  (1/255) on the device, so the host ships 4x fewer bytes.
- vectors: S frames float32[D] -> float32[B, S*D], oldest first.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ezero_async.config.sections import ModelConfig
from ezero_async.learner.blocks import AtariStem
from ezero_async.learner.networks import (
    ImageDynamics,
    ImagePrediction,
    ImageRepresentation,
    LstmState,
    Predictor,
    Projection,
    VectorDynamics,
    VectorPrediction,
    VectorRepresentation,
)
from ezero_async.learner.support import Support


def resolve_kind(kind: str, obs_shape: Sequence[int]) -> str:
    """'auto' -> 'resnet' for (H, W, C) images with H >= 64, 'conv' for smaller images, 'mlp'
    for 1-D observations; an explicit kind is checked against the observation rank."""
    rank = len(obs_shape)
    if rank not in (1, 3):
        raise ValueError(f"observation shape must be (H, W, C) or (D,), got {tuple(obs_shape)}")
    if kind == "auto":
        if rank == 1:
            return "mlp"
        return "resnet" if obs_shape[0] >= 64 else "conv"
    if kind == "mlp" and rank != 1:
        raise ValueError(f"model kind 'mlp' needs vector observations (D,), got {tuple(obs_shape)}")
    if kind in ("resnet", "conv") and rank != 3:
        raise ValueError(f"model kind {kind!r} needs image observations (H, W, C), got {tuple(obs_shape)}")
    if kind not in ("resnet", "conv", "mlp"):
        raise ValueError(f"unknown model kind {kind!r}: expected auto, resnet, conv or mlp")
    return kind


def stack_frames(frames: torch.Tensor) -> torch.Tensor:
    """frames: [B, S, H, W, C] (images, any dtype) -> [B, S*C, H, W]; or [B, S, D] -> [B, S*D].
    A view when possible (vectors), one copy for images (HWC -> CHW)."""
    if frames.dim() == 5:
        b, s, height, width, c = frames.shape
        return frames.permute(0, 1, 4, 2, 3).reshape(b, s * c, height, width)
    if frames.dim() == 3:
        return frames.reshape(frames.shape[0], -1)
    raise ValueError(f"frames must be [B, S, H, W, C] or [B, S, D], got shape {tuple(frames.shape)}")


class EfficientZeroNet(nn.Module):
    """Representation, dynamics (+ LSTM value prefix), prediction and the consistency branch.

    Latents are float[B, C, h, w] (image kinds) or float[B, L] ('mlp'); `latent_shape` gives
    the per-sample shape. Logits are over the support bins (2S+1) or the A actions.
    """

    def __init__(self, kind: str, representation: nn.Module, dynamics: nn.Module, prediction: nn.Module,
                 projection: Projection, predictor: Predictor, *, support_size: int, num_actions: int,
                 lstm_hidden: int, lstm_horizon: int, latent_shape: tuple[int, ...], pixel_scale: float,
                 value_readout: str = "transformed_mean") -> None:
        super().__init__()
        self.kind = kind
        self.representation = representation
        self.dynamics = dynamics
        self.prediction = prediction
        self.projection = projection
        self.predictor = predictor
        self.support = Support(support_size, value_readout)
        self.num_actions = num_actions
        self.lstm_hidden = lstm_hidden
        self.lstm_horizon = lstm_horizon
        self.latent_shape = latent_shape
        self.pixel_scale = pixel_scale

    # ------------------------------------------------------------ inference API

    def represent(self, obs: torch.Tensor) -> torch.Tensor:
        """obs: uint8 or float[B, S*C, H, W] / float[B, S*D] -> latent."""
        if obs.dtype == torch.uint8:
            obs = obs.float() * self.pixel_scale
        return self.representation(obs)

    def initial_inference(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """obs: uint8/float[B, S*C, H, W] or float[B, S*D] -> (latent, value logits
        float[B, 2S+1], policy logits float[B, A])."""
        latent = self.represent(obs)
        value_logits, policy_logits = self.prediction(latent)
        return latent, value_logits, policy_logits

    def initial_lstm_state(self, batch: int, device: torch.device | str,
                           dtype: torch.dtype = torch.float32) -> LstmState:
        """Zero (h, c), float[batch, lstm_hidden] each: the state at a root."""
        zeros = torch.zeros(batch, self.lstm_hidden, device=device, dtype=dtype)
        return zeros, zeros.clone()

    def recurrent_inference(self, latent: torch.Tensor, lstm_state: LstmState, action: torch.Tensor,
                            reset_mask: torch.Tensor) -> tuple[torch.Tensor, LstmState, torch.Tensor, torch.Tensor,
                                                               torch.Tensor]:
        """One dynamics step from a parent.

        latent: the parent's latent [B, ...]; lstm_state: the parent's (h, c) float[B, hidden];
        action: int64[B]; reset_mask: bool[B], True where the parent is a reset node (the root,
        or depth d >= 1 with d % H == 0): its incoming state is replaced by zeros.
        Returns (next latent, new (h, c), value-prefix logits float[B, 2S+1],
        value logits float[B, 2S+1], policy logits float[B, A]).
        """
        next_latent, value_prefix_logits, new_state = self.dynamics(latent, action, _reset(lstm_state, reset_mask))
        value_logits, policy_logits = self.prediction(next_latent)
        return next_latent, new_state, value_prefix_logits, value_logits, policy_logits

    def dynamics_step(self, latent: torch.Tensor, lstm_state: LstmState, action: torch.Tensor,
                      reset_mask: torch.Tensor) -> tuple[torch.Tensor, LstmState]:
        """recurrent_inference's dynamics alone: (next latent, new (h, c)), no heads. The learner
        unrolls with it and applies value_prefix_logits to all K positions' h at once."""
        return self.dynamics.step(latent, action, _reset(lstm_state, reset_mask))

    def value_prefix_logits(self, h: torch.Tensor) -> torch.Tensor:
        """h: float[N, lstm_hidden] from dynamics_step (any mix of positions) -> logits float[N, 2S+1].

        In the learner N = K*B, every unroll position in one batch: in train mode the head's
        BatchNorms then normalise with statistics over all positions, which are what their
        running statistics average and every eval-mode call reads. Called per position (batch
        statistics of position k alone), the head could not tell positions apart by their mean,
        and in eval mode it predicted prefixes that stop growing after two steps
        (docs/learning.md)."""
        return self.dynamics.value_prefix.logits(h)

    def prediction_logits(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """latents [N, ...], any mix of unroll depths -> (value logits float[N, 2S+1], policy
        logits float[N, A]).

        With learner.prediction_heads = 'joint' the learner passes N = (K+1)*B, the root and
        every unrolled latent in one batch, for the reason value_prefix_logits gives: latents
        drift with depth, and per-position batch statistics normalise that drift away in
        training while the running statistics every eval-mode call reads (acting, reanalysis,
        the search's leaves) keep it; in a MinAtar checkpoint trained per position, eval-mode
        values fell with depth, by a sixth at depth 5, where train mode read them flat. Per
        position (the reference's, the default) it passes one position's B latents at a time
        (docs/deviations.md#prediction-batchnorm)."""
        return self.prediction(latents)

    def initial_inference_scalar(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """As initial_inference, with the value as float32[B] (support -> scalar on the device,
        no host sync). Returns (latent, value float32[B], policy logits float[B, A])."""
        latent, value_logits, policy_logits = self.initial_inference(obs)
        return latent, self.support.scalar_from_logits(value_logits), policy_logits

    def recurrent_inference_scalar(self, latent: torch.Tensor, lstm_state: LstmState, action: torch.Tensor,
                                   reset_mask: torch.Tensor) -> tuple[torch.Tensor, LstmState, torch.Tensor,
                                                                      torch.Tensor, torch.Tensor]:
        """As recurrent_inference, with value prefix and value as float32[B]. Returns
        (next latent, new (h, c), value prefix float32[B], value float32[B], policy logits)."""
        next_latent, state, vp_logits, value_logits, policy_logits = self.recurrent_inference(
            latent, lstm_state, action, reset_mask)
        value_prefix, value = self.support.scalars_from_logits(vp_logits, value_logits)
        return next_latent, state, value_prefix, value, policy_logits

    # ------------------------------------------------------------ consistency branch

    def project(self, latent: torch.Tensor, with_predictor: bool) -> torch.Tensor:
        """latent [B, ...] -> float[B, proj_out]: proj(latent), then pred(.) on the online side."""
        projected = self.projection(latent)
        return self.predictor(projected) if with_predictor else projected


def build_model(model_cfg: ModelConfig, obs_shape: Sequence[int], frame_stack: int, num_actions: int,
                lstm_horizon: int, *, pixel_scale: float = 1.0 / 255.0) -> EfficientZeroNet:
    """Build the network for one stored frame shape F = obs_shape ((H, W, C) or (D,)).

    model_cfg.kind may be 'auto' (see resolve_kind). pixel_scale multiplies uint8 image input
    (1/255 for 0..255 frames; pass 1.0 for 0/1 grids stored as uint8).
    """
    model_cfg.check()
    if frame_stack < 1 or num_actions < 1 or lstm_horizon < 1:
        raise ValueError(f"frame_stack, num_actions and lstm_horizon must be >= 1, got "
                         f"{frame_stack}, {num_actions}, {lstm_horizon}")
    kind = resolve_kind(model_cfg.kind, obs_shape)
    m = model_cfg.bn_momentum
    norm = model_cfg.latent_norm == "minmax" or (model_cfg.latent_norm == "auto" and kind == "mlp")
    bins = 2 * model_cfg.support_size + 1
    hidden = tuple(model_cfg.head_hidden)
    act = model_cfg.head_activation
    if kind == "mlp":
        in_size = frame_stack * int(obs_shape[0])
        latent = model_cfg.latent_dim
        representation: nn.Module = VectorRepresentation(in_size, latent, model_cfg.mlp_hidden, m, norm)
        dynamics: nn.Module = VectorDynamics(latent, num_actions, model_cfg.mlp_hidden, model_cfg.lstm_hidden,
                                             hidden, bins, m, norm, act)
        prediction: nn.Module = VectorPrediction(latent, num_actions, hidden, bins, m, act)
        latent_shape: tuple[int, ...] = (latent,)
    else:
        height, width, channels_in = (int(v) for v in obs_shape)
        if height != width:
            raise ValueError(f"image observations must be square, got {height}x{width}")
        c = model_cfg.channels
        stem = "atari" if kind == "resnet" else "conv"
        spatial = AtariStem.output_size(height) if kind == "resnet" else height
        representation = ImageRepresentation(frame_stack * channels_in, c, model_cfg.num_blocks, m, stem, norm)
        dynamics = ImageDynamics(c, spatial, num_actions, model_cfg.num_blocks, model_cfg.reduced_channels,
                                 model_cfg.lstm_hidden, hidden, bins, m, norm, model_cfg.action_embedding, act)
        prediction = ImagePrediction(c, spatial, num_actions, model_cfg.num_blocks, model_cfg.reduced_channels,
                                     hidden, bins, m, act)
        latent_shape = (c, spatial, spatial)
    flat = 1
    for v in latent_shape:
        flat *= v
    projection = Projection(flat, model_cfg.proj_hidden, model_cfg.proj_out, m)
    predictor = Predictor(model_cfg.proj_out, model_cfg.pred_hidden, m)
    return EfficientZeroNet(kind, representation, dynamics, prediction, projection, predictor,
                            support_size=model_cfg.support_size, num_actions=num_actions,
                            value_readout=model_cfg.value_readout,
                            lstm_hidden=model_cfg.lstm_hidden, lstm_horizon=lstm_horizon,
                            latent_shape=latent_shape, pixel_scale=pixel_scale)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _reset(lstm_state: LstmState, reset_mask: torch.Tensor) -> LstmState:
    """(h, c) with rows where reset_mask (bool[B]) is True replaced by zeros."""
    keep = ~reset_mask.view(-1, 1)
    h, c = lstm_state
    # torch.where (not a multiply) so a reset also clears non-finite garbage in unused rows.
    return (torch.where(keep, h, torch.zeros((), dtype=h.dtype, device=h.device)),
            torch.where(keep, c, torch.zeros((), dtype=c.dtype, device=c.device)))
