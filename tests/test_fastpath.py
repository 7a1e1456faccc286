"""The process-wide CUDA switches (runtime/fastpath.py): no-ops on a CPU, in effect on CUDA."""
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.learner.model import build_model
from ezero_async.runtime.fastpath import apply_precision, to_layout, uses_channels_last


def image_model(cfg):
    return build_model(cfg.model, (10, 10, 4), cfg.env.frame_stack, 3, cfg.learner.lstm_horizon)


def test_the_switches_leave_a_cpu_run_alone():
    cfg = build_config("minatar", "MinAtar/Breakout", {"runtime.tf32": True, "runtime.channels_last": True})
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    assert apply_precision(cfg.runtime, torch.device("cpu")) is False
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before
    model = image_model(cfg)
    assert not uses_channels_last(cfg.runtime, torch.device("cpu"), image=model.kind != "mlp")
    assert to_layout(model, cfg.runtime, torch.device("cpu")) is model
    assert all(p.is_contiguous() for p in model.parameters())


def test_vector_networks_never_go_channels_last():
    cfg = build_config("cartpole", "CartPole", {"runtime.channels_last": True})
    model = build_model(cfg.model, (4,), cfg.env.frame_stack, 2, cfg.learner.lstm_horizon)
    assert not uses_channels_last(cfg.runtime, torch.device("cuda"), image=model.kind != "mlp")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_tf32_and_channels_last_follow_the_config():
    cuda = torch.device("cuda", 0)
    for flag in (False, True):
        cfg = build_config("minatar", "MinAtar/Breakout", {"runtime.tf32": flag, "runtime.channels_last": flag})
        assert apply_precision(cfg.runtime, cuda) is flag
        assert torch.backends.cuda.matmul.allow_tf32 is flag and torch.backends.cudnn.allow_tf32 is flag
        model = to_layout(image_model(cfg).to(cuda), cfg.runtime, cuda)
        convs = [p for p in model.parameters() if p.dim() == 4]
        assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs) is flag
        obs = torch.randint(0, 2, (8, 4 * cfg.env.frame_stack, 10, 10), dtype=torch.uint8, device=cuda)
        with torch.inference_mode():
            latent, _, _ = model.eval().initial_inference(obs)
        assert latent.is_contiguous(memory_format=torch.channels_last) is flag
