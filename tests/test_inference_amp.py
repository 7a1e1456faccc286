"""batcher.amp: network calls under the runner's bf16 precision compute in bf16 and hand the
searches fp32 numbers close to the fp32 path's; calls below batcher.amp_min_rows stay fp32."""
import asyncio

import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.model import build_model
from ezero_async.learner.weights import WeightStore
from ezero_async.search import root_noise

SHAPE, S, A = (10, 10, 4), 2, 3


def _runner_and_service(amp: str, mode: str = "pucb", min_rows: int = 0) -> tuple[ModelRunner, SearchService]:
    cfg = build_config("smoke", "MinAtar/Breakout", {"tracking.aim": False, "search.mode": mode,
                                                     "search.num_simulations": 6, "batcher.max_batch": 16,
                                                     "batcher.amp": amp})

    def make():
        return build_model(cfg.model, SHAPE, S, A, cfg.learner.lstm_horizon)

    torch.manual_seed(0)
    model = make()
    with torch.no_grad():  # the heads start at zero: make every output depend on the input
        for p in model.parameters():
            p.normal_(0.0, 0.3)
    store = WeightStore(2, name="target")
    store.publish(0, model)
    runner = ModelRunner(make, torch.device("cpu"), {"target": store}, inline=True, amp=cfg.batcher.amp,
                         amp_min_rows=min_rows)
    return runner, SearchService(runner, cfg.search, cfg.batcher, A, serial=True)


def _stacks(n: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy(rng.integers(0, 2, size=(n, S * SHAPE[2], *SHAPE[:2]), dtype=np.uint8) * 255)


def _initial(runner: ModelRunner, obs: torch.Tensor):
    def call():
        with runner.lease("target", 0) as model, runner.precision(len(obs)):
            return model.initial_inference_scalar(obs)
    return asyncio.run(runner.call(call))


def test_bf16_inference_computes_in_bf16_close_to_fp32():
    obs = _stacks(32)
    latent32, value32, logits32 = _initial(_runner_and_service("off")[0], obs)
    latent16, value16, logits16 = _initial(_runner_and_service("bf16")[0], obs)
    assert latent32.dtype == torch.float32 and latent16.dtype == torch.bfloat16
    assert not torch.equal(value16.float(), value32)
    scale = float(value32.abs().max())
    assert scale > 0.1
    torch.testing.assert_close(value16.float(), value32, atol=0.03 * scale, rtol=0.0)
    torch.testing.assert_close(torch.softmax(logits16.float(), -1), torch.softmax(logits32, -1), atol=0.03, rtol=0.0)


@pytest.mark.parametrize("mode", ["pucb", "gumbel"])
def test_bf16_searches_return_fp32_results(mode):
    n = 12
    stacks = _stacks(n).numpy().reshape(n, S, SHAPE[2], *SHAPE[:2]).transpose(0, 1, 3, 4, 2).copy()
    results = {}
    for amp in ("off", "bf16"):
        _, service = _runner_and_service(amp, mode)
        noise = root_noise(service.config, n, A, np.random.default_rng(1))
        results[amp] = asyncio.run(service.search("target", 0, stacks, noise, seed=1))
    got, want = results["bf16"], results["off"]
    assert got.policies.dtype == np.float32 and got.root_values.dtype == np.float32
    assert np.isfinite(got.root_values).all()
    np.testing.assert_allclose(got.policies.sum(-1), 1.0, atol=1e-5)
    scale = float(np.abs(want.root_values).max())
    np.testing.assert_allclose(got.root_values, want.root_values, atol=0.1 * scale)


def test_calls_below_the_minimum_rows_stay_fp32():
    runner, _ = _runner_and_service("bf16", min_rows=64)
    assert _initial(runner, _stacks(63))[0].dtype == torch.float32
    assert _initial(runner, _stacks(64))[0].dtype == torch.bfloat16
    off, _ = _runner_and_service("off")
    assert _initial(off, _stacks(64))[0].dtype == torch.float32


def test_unknown_inference_precision_is_refused():
    with pytest.raises(ValueError, match="amp must be one of"):
        ModelRunner(lambda: None, torch.device("cpu"), {}, inline=True, amp="fp16")
