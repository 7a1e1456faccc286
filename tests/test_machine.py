"""tracking/machine.py: the machine facts a run's summary.json records beside its wall times."""
from __future__ import annotations

import torch

from ezero_async.runtime.fastpath import cpu_has_bf16
from ezero_async.tracking.machine import cpu_model, describe_machine


def test_the_cpu_model_is_read_from_cpuinfo_and_falls_back_when_absent(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14\n\n"
                    "processor\t: 1\nmodel name\t: AMD EPYC 9B14\n")
    assert cpu_model(info) == "AMD EPYC 9B14"
    info.write_text("processor\t: 0\nmodel name\t:\n")  # an empty name is no name
    assert cpu_model(info) != "" and cpu_model(tmp_path / "absent") != ""


def test_the_description_of_a_cpu_run_names_its_instruction_set_and_cores():
    facts = describe_machine(torch.device("cpu"))
    assert facts["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert facts["cpu_bf16"] == cpu_has_bf16() and facts["accelerator"] is None and facts["cores"] >= 1
    assert facts["label"].startswith(f"{facts['cpu']}, {facts['cpu_capability']}")
    assert facts["label"].endswith(f"{facts['cores']} cores")
