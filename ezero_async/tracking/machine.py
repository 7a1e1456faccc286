"""The machine a run ran on, as recorded in RUN_DIR/summary.json: wall times of the same recipe
differ about 2x between two 2-core CPU machines (docs/learning.md#cartpole-slower-machine), so a
report that compares or bounds wall times names the machines behind them."""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import torch

from ezero_async.runtime.fastpath import cpu_has_bf16


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows, else 'unknown CPU'."""
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one, else all)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def describe_machine(device: torch.device) -> dict[str, Any]:
    """JSON-ready facts that set a run's pace: CPU model, torch's best CPU instruction set
    (AVX2, AVX512, ...), whether it has bf16 instructions, usable cores, and the accelerator's
    name on CUDA; `label` puts them on one line."""
    capability = torch.backends.cpu.get_cpu_capability()
    cores = usable_cores()
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    facts: dict[str, Any] = {"cpu": cpu_model(), "cpu_capability": capability, "cpu_bf16": cpu_has_bf16(),
                             "cores": cores, "accelerator": accelerator}
    parts = [facts["cpu"], capability + (" + bf16" if facts["cpu_bf16"] else ""), f"{cores} cores"]
    facts["label"] = ", ".join(parts + ([accelerator] if accelerator else []))
    return facts
