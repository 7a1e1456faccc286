"""CUDA graphs of the search's network calls (inference/graphs.py): on a CPU the graphed path's
static buffers run eagerly, and must give the eager path's searches (padding, pools, weight
swaps); `batcher.cuda_graphs` falls back to the eager path on a CPU, where `batcher.compile`
runs them compiled; on a GPU the captured graphs match the eager path and a new weight version
does not recapture."""
import asyncio

import numpy as np
import pytest
import torch

from ezero_async.config import build_config
from ezero_async.errors import ConfigError
from ezero_async.inference.graphs import SlotGraphs, compiles, graph_sizes
from ezero_async.inference.runner import ModelRunner
from ezero_async.inference.search_service import SearchService
from ezero_async.learner.model import build_model
from ezero_async.learner.weights import WeightStore
from ezero_async.search import root_noise

S = 2


def test_graph_sizes_are_powers_of_two_up_to_the_largest_group():
    assert graph_sizes(256) == [8, 16, 32, 64, 128, 256]
    assert graph_sizes(12) == [8, 12]
    assert graph_sizes(8) == [8]
    assert graph_sizes(3) == [3]


def make_service(game: str, shape: tuple, mode: str, device: torch.device, graphs: bool | None,
                 **overrides) -> tuple[SearchService, ModelRunner, int]:
    preset = "smoke"
    cfg = build_config(preset, game, {"tracking.aim": False, "search.mode": mode, "search.num_simulations": 6,
                                      "batcher.max_batch": 16, **overrides})
    num_actions = 3

    def make():
        return build_model(cfg.model, shape, S, num_actions, cfg.learner.lstm_horizon).to(device)

    store = WeightStore(3, name="target")
    for version in (0, 1):
        torch.manual_seed(version)
        model = make()
        with torch.no_grad():  # the heads start at zero: make every output depend on the input
            for p in model.parameters():
                p.normal_(0.0, 0.3)
        store.publish(version, model)
    runner = ModelRunner(make, device, {"target": store}, inline=True)
    return SearchService(runner, cfg.search, cfg.batcher, num_actions, serial=True, graphs=graphs), runner, num_actions


def stacks_for(shape: tuple, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if len(shape) == 1:
        return rng.normal(size=(n, S, *shape)).astype(np.float32)
    return rng.integers(0, 2, size=(n, S, *shape), dtype=np.uint8)


def searches(service: SearchService, shape: tuple, num_actions: int, plan: list[tuple[int, int]]):
    """Search each (version, n) of the plan in turn (noise on), as a reanalysis would."""
    out = []
    for i, (version, n) in enumerate(plan):
        noise = root_noise(service.config, n, num_actions, np.random.default_rng(i))
        out.append(asyncio.run(service.search("target", version, stacks_for(shape, n, i), noise, seed=i)))
    return out


GAMES = [("CartPole", (4,)), ("MinAtar/Breakout", (10, 10, 4))]


@pytest.mark.parametrize("mode", ["pucb", "gumbel"])
@pytest.mark.parametrize("game,shape", GAMES)
def test_graphed_path_gives_the_eager_search_with_padding_and_weight_swaps(game, shape, mode):
    torch.set_num_threads(1)
    plan = [(0, 5), (1, 16), (0, 3), (1, 9), (1, 5)]  # sizes 8, 16, 8, 16, 8; versions swap
    eager, _, a = make_service(game, shape, mode, torch.device("cpu"), graphs=False)
    graphed, _, _ = make_service(game, shape, mode, torch.device("cpu"), graphs=True)
    want = searches(eager, shape, a, plan)
    got = searches(graphed, shape, a, plan)
    for w, g in zip(want, got):
        np.testing.assert_array_equal(g.visit_counts, w.visit_counts)
        np.testing.assert_allclose(g.policies, w.policies, atol=1e-6)
        np.testing.assert_allclose(g.root_values, w.root_values, atol=1e-5, rtol=1e-5)
    (used,) = [slot.graphs for slot in graphed._free if slot.graphs is not None]  # serial: one slot
    assert used.loaded == ("target", 1)
    assert used.captures == 4  # initial + recurrent at sizes 8 and 16, whatever the versions


def test_cuda_graphs_fall_back_to_the_eager_path_on_cpu():
    service, _, a = make_service("CartPole", (4,), "pucb", torch.device("cpu"), graphs=None,
                                 **{"batcher.cuda_graphs": True})
    assert not service.graphs
    eager, _, _ = make_service("CartPole", (4,), "pucb", torch.device("cpu"), graphs=None,
                               **{"batcher.cuda_graphs": False})
    plan = [(0, 5), (1, 7)]
    for w, g in zip(searches(eager, (4,), a, plan), searches(service, (4,), a, plan)):
        np.testing.assert_array_equal(g.visit_counts, w.visit_counts)
        np.testing.assert_array_equal(g.root_values, w.root_values)
    assert all(slot.graphs is None for slot in service._free)


def test_compiled_calls_give_the_eager_search_on_cpu():
    """batcher.compile: the static-shape calls through torch.compile (one graph per padded size,
    shared by the slots); fused kernels round differently, so visits agree up to near ties."""
    torch.set_num_threads(1)
    plan = [(0, 5), (1, 5), (0, 16), (1, 9)]  # each size's graph serves both versions: weights are read, not baked in
    eager, _, a = make_service("CartPole", (4,), "pucb", torch.device("cpu"), graphs=False)
    compiled, _, _ = make_service("CartPole", (4,), "pucb", torch.device("cpu"), graphs=None,
                                  **{"batcher.compile": "auto"})
    assert compiled.graphs and compiled.compiled
    for w, g in zip(searches(eager, (4,), a, plan), searches(compiled, (4,), a, plan)):
        np.testing.assert_allclose(g.root_values, w.root_values, atol=1e-4, rtol=1e-4)
        assert np.abs(g.visit_counts - w.visit_counts).sum() <= 2
    (used,) = [slot.graphs for slot in compiled._free if slot.graphs is not None]
    assert used.compile and used.captures == 4


@pytest.mark.parametrize("setting, device, expected", [("off", "cpu", False), ("auto", "cpu", True),
                                                       ("auto", "cuda", False), ("on", "cpu", True)])
def test_batcher_compile_resolves_per_device(setting, device, expected):
    cfg = build_config("smoke", "CartPole", {"batcher.compile": setting})
    assert compiles(cfg.batcher, torch.device(device)) is expected


def test_batcher_compile_on_a_gpu_or_with_bf16_is_refused():
    with pytest.raises(ConfigError, match="batcher.compile: 'on' compiles the CPU's inference"):
        compiles(build_config("smoke", "CartPole", {"batcher.compile": "on"}).batcher, torch.device("cuda"))
    with pytest.raises(ConfigError, match="does not combine with batcher.compile"):
        build_config("smoke", "CartPole", {"batcher.compile": "auto", "batcher.amp": "bf16"})


def test_a_group_larger_than_max_batch_is_refused():
    model_cfg = build_config("smoke", "CartPole", {"tracking.aim": False})
    graphs = SlotGraphs(lambda: build_model(model_cfg.model, (4,), S, 2, 5), torch.device("cpu"), max_batch=8,
                        num_simulations=2, capture=False)
    with pytest.raises(ValueError, match="exceeds max_batch 8"):
        graphs.size_for(9)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["pucb", "gumbel"])
@pytest.mark.parametrize("game,shape", GAMES)
def test_captured_graphs_match_the_eager_path_on_cuda(game, shape, mode):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    plan = [(0, 5), (1, 16), (0, 3), (1, 9)]
    cuda = torch.device("cuda", 0)
    eager, _, a = make_service(game, shape, mode, cuda, graphs=False)
    graphed, _, _ = make_service(game, shape, mode, cuda, graphs=None, **{"batcher.cuda_graphs": True})
    assert graphed.graphs
    for w, g in zip(searches(eager, shape, a, plan), searches(graphed, shape, a, plan)):
        np.testing.assert_allclose(g.root_values, w.root_values, atol=1e-4, rtol=1e-4)
        # Kernel choice may differ between graphs and eager calls: visits agree up to near ties.
        assert np.abs(g.visit_counts - w.visit_counts).sum() <= 2 * len(plan)
    (used,) = [slot.graphs for slot in graphed._free if slot.graphs is not None]
    assert used.captures == 4  # two versions, two sizes: no recapture for the second version
    assert all(call.graph is not None for call in [*used._initial.values(), *used._recurrent.values()])
