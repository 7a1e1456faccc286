"""The process-wide CUDA switches a run applies at start-up: TF32 and the channels-last layout;
and whether this CPU has the bf16 instructions that make `learner.amp`/`batcher.amp` bf16 pay.

Both switches are no-ops on a CPU (a `--serial` CPU run stays bit-identical whatever they say);
on CUDA they change numbers within fp32 rounding (TF32) or not at all (layout).
"""
from __future__ import annotations

import torch
from torch import nn

from ezero_async.config.sections import RunConfig, RuntimeConfig


def apply_precision(rt: RuntimeConfig, device: torch.device) -> bool:
    """Set TF32 for matmuls and cuDNN convolutions per `runtime.tf32` on CUDA; returns whether
    TF32 is on. Leaves torch's flags untouched on a CPU."""
    if device.type != "cuda":
        return False
    torch.backends.cuda.matmul.allow_tf32 = rt.tf32
    torch.backends.cudnn.allow_tf32 = rt.tf32
    return rt.tf32


def uses_channels_last(rt: RuntimeConfig, device: torch.device, image: bool) -> bool:
    """Whether a network runs channels-last: CUDA, runtime.channels_last, and an image network."""
    return device.type == "cuda" and rt.channels_last and image


def to_layout(model: nn.Module, rt: RuntimeConfig, device: torch.device) -> nn.Module:
    """`model` (already on `device`) in the run's memory layout: its 4-D weights channels-last
    where uses_channels_last says so (convolutions then keep activations channels-last), else
    unchanged. Weights copied in later (load_state_dict) keep the layout."""
    if uses_channels_last(rt, device, image=getattr(model, "kind", "mlp") != "mlp"):
        return model.to(memory_format=torch.channels_last)
    return model


def in_effect(config: RunConfig, device: torch.device, image: bool) -> list[str]:
    """The CUDA switches, by config name, that a run of `config` on `device` uses (`image`: its
    network takes images)."""
    if device.type != "cuda":
        return []
    rt = config.runtime
    switches = (("cuda_graphs", config.batcher.cuda_graphs), ("tf32", rt.tf32),
                ("channels_last", uses_channels_last(rt, device, image)))
    return [name for name, on in switches if on]


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX512-BF16 or AMX; torch's own probes, False
    where it has none): without them bf16 autocast on a CPU runs slower than fp32."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(probe() for probe in probes if probe is not None)
