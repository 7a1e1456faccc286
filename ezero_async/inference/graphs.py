"""A search slot's network calls as CUDA graphs at fixed, padded group sizes.

On a GPU one recurrent step of a search group is some 60 small kernels (dynamics, LSTM, heads,
the pool gather and scatter); launching them one by one from Python costs more than running
them, 50 times per group. A captured graph launches the whole step at once.

Each search slot (one group in flight, so one thread at a time) owns a `SlotGraphs`: a model
copy, the slot's latent/LSTM pools and, per padded size, one graph for the initial inference
and one for a recurrent step. The graphs read the copy's parameters, so a group with other
weights copies them into it (device to device, a few MB): a new weight version never
recaptures. A group of n roots runs at the smallest size >= n (powers of two from 8, and
`max_batch`); padded rows compute on stale but finite inputs and nothing reads them (eval-mode
BatchNorm and every head work per row).

Per simulation one int64 buffer goes to the device (parents, actions, reset flags and the new
node's index) and one flat float32 block comes back (value prefixes, values, then logits, each
contiguous as the tree reads them): one copy each way instead of six.

With `capture=False` the same static buffers and functions run eagerly (the CPU fallback of
the tests, which checks the padding, the pools and the weight swaps without a GPU), or with
`compile=True` through torch.compile (batcher.compile): on a CPU the fixed sizes that make a
graph capturable make one compiled graph per size, fusing a step's many small ops.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch
from torch import nn

from ezero_async.config.sections import BatcherConfig
from ezero_async.errors import ConfigError

SMALLEST_SIZE = 8

_CAPTURE_LOCK = threading.Lock()
"""One capture (or compile) at a time in the process: entering a capture synchronises the device
and empties torch's cache, which must not happen while another thread's capture is open."""


def compiles(batcher: BatcherConfig, device: torch.device) -> bool:
    """Whether the search slots run compiled calls (batcher.compile resolved for `device`);
    raises ConfigError for 'on' off a CPU."""
    if batcher.compile == "on" and device.type != "cpu":
        raise ConfigError(f"batcher.compile: 'on' compiles the CPU's inference, and this run is on {device.type}; "
                          "use batcher.cuda_graphs there, or batcher.compile=auto")
    return batcher.compile != "off" and device.type == "cpu"


def graph_sizes(max_batch: int) -> list[int]:
    """Padded group sizes: powers of two from 8 below max_batch, then max_batch."""
    sizes = []
    size = SMALLEST_SIZE
    while size < max_batch:
        sizes.append(size)
        size *= 2
    return sizes + [max_batch]


class StaticCall:
    """fn(*inputs) on fixed input tensors: captured once as a CUDA graph and replayed, or (with
    capture=False) called eagerly or compiled (compile=True) on the same tensors. Callers write
    into `inputs` in place and read the returned tensor before the next call (it is overwritten)."""

    def __init__(self, fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...], *, capture: bool,
                 pool: tuple | None = None, warmup: int = 2, compile: bool = False) -> None:
        if compile and capture:
            raise ValueError("a StaticCall is captured (CUDA) or compiled (CPU), not both")
        self.fn = fn
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: torch.Tensor | None = None
        if compile:
            # dynamic=False: one graph per padded size, shared by the slots (same code; the guards
            # are on shapes, not on which slot's buffers). Compiled here, one at a time in the
            # process: two slots compiling one size at once would each add a cache entry.
            self.fn = torch.compile(fn, dynamic=False)
            with _CAPTURE_LOCK:
                self.output = self.fn(*inputs)
        self.inputs = inputs
        if not capture:
            return
        device = inputs[0].device
        with _CAPTURE_LOCK:
            # Warm-up on a side stream (lazy initialisation and library handles must not happen
            # inside the capture), then capture on a stream of this call's own: torch's default
            # capture stream is one per process.
            side = torch.cuda.Stream(device)
            side.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(side):
                for _ in range(warmup):
                    fn(*inputs)
            torch.cuda.current_stream(device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            # thread_local: other inference threads and the learner keep launching work meanwhile.
            # (Entering the capture synchronises the device once: capture is a one-off per size.)
            with torch.cuda.graph(self.graph, pool=pool, stream=torch.cuda.Stream(device),
                                  capture_error_mode="thread_local"):
                self.output = fn(*inputs)

    def __call__(self) -> torch.Tensor:
        if self.graph is None:
            self.output = self.fn(*self.inputs)
        else:
            self.graph.replay()
        assert self.output is not None
        return self.output


class SlotGraphs:
    """One search slot's graphs, model copy and pools.

    make_model: builds the network on the device (the runner's factory); max_batch: the largest
    group; num_simulations: S (the pools hold S + 1 nodes per root, node s + 1 created in
    simulation s); capture: CUDA graphs (True) or the eager fallback (False); compile: compiled
    calls instead of the eager fallback (a CPU's fast path).
    """

    def __init__(self, make_model: Callable[[], nn.Module], device: torch.device, *, max_batch: int,
                 num_simulations: int, capture: bool, compile: bool = False) -> None:
        self.device = device
        self.capture = capture
        self.compile = compile
        self.model = make_model().eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.support.bins(device)  # a compiled call guards on this cache: filled before it compiles
        self._weights = list(self.model.state_dict().values())  # views of parameters and buffers
        self.loaded: tuple[str, int] | None = None
        self.sizes = graph_sizes(max_batch)
        nodes = num_simulations + 1
        hidden = self.model.lstm_hidden
        # Zeros, not empty: padded rows read them, and must stay finite.
        self.latents = torch.zeros((nodes, max_batch, *self.model.latent_shape), device=device)
        self.h = torch.zeros((nodes, max_batch, hidden), device=device)
        self.c = torch.zeros_like(self.h)
        self._rows = torch.arange(max_batch, device=device)
        self._pool = torch.cuda.graph_pool_handle() if capture else None
        self._initial: dict[int, StaticCall] = {}
        self._recurrent: dict[int, StaticCall] = {}
        self._host_steer: dict[int, torch.Tensor] = {}
        self.captures = 0
        """Graphs built so far (one per size and kind of call, never per weight version)."""

    def size_for(self, n: int) -> int:
        """The padded size a group of n roots runs at."""
        for size in self.sizes:
            if size >= n:
                return size
        raise ValueError(f"a group of {n} roots exceeds max_batch {self.sizes[-1]}")

    def load(self, source: nn.Module, key: tuple[str, int]) -> None:
        """Copy `source`'s weights (same architecture) into the slot's model unless it holds `key`
        (weights kind, version) already."""
        if key == self.loaded:
            return
        with torch.no_grad():
            for dst, src in zip(self._weights, source.state_dict().values(), strict=True):
                dst.copy_(src)
        self.loaded = key

    def initial(self, obs: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Roots' network inputs obs [n, ...] (on the device) -> (value float32[n], policy logits
        float32[n, A]) on the host. The latents go to node 0 of the pools, the LSTM state to zero."""
        n = len(obs)
        size = self.size_for(n)
        call = self._initial.get(size)
        if call is None:
            static = torch.zeros((size, *obs.shape[1:]), dtype=obs.dtype, device=self.device)
            static[:n].copy_(obs)
            call = self._initial[size] = self._build(self._initial_fn, (static,))
        elif call.inputs[0].shape[1:] != obs.shape[1:] or call.inputs[0].dtype != obs.dtype:
            raise ValueError(f"roots' input {obs.dtype}{list(obs.shape[1:])} differs from the captured "
                             f"{call.inputs[0].dtype}{list(call.inputs[0].shape[1:])}")
        else:
            call.inputs[0][:n].copy_(obs)
        out = call().cpu().numpy()  # sync point: the tree needs the priors
        return out[:n], out[size:size + n * self.model.num_actions].reshape(n, -1)

    def recurrent(self, s: int, parents: np.ndarray, actions: np.ndarray, reset: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Simulation s's expansion of n leaves (parents int32[n] node ids, actions int32[n],
        reset bool[n]) -> (value prefix float32[n], value float32[n], policy logits float32[n, A])
        on the host. The new latents and LSTM states go to node s + 1 of the pools."""
        n = len(parents)
        size = self.size_for(n)
        host = self._host_steer.get(size)
        if host is None:
            host = torch.zeros(3 * size + 1, dtype=torch.int64, pin_memory=self.capture)
            self._host_steer[size] = host
        # Padded rows expand node 0 with action 0: finite, never read.
        steer = host.numpy()
        steer[:] = 0
        steer[:n] = parents
        steer[size:size + n] = actions
        steer[2 * size:2 * size + n] = reset
        steer[3 * size] = s + 1
        call = self._recurrent.get(size)
        if call is None:
            static = host.to(self.device, copy=True)
            call = self._recurrent[size] = self._build(self._recurrent_fn, (static,))
        else:
            # Non-blocking from pinned memory: the previous simulation's readback synchronised,
            # so the host buffer is free to be rewritten by the next one.
            call.inputs[0].copy_(host, non_blocking=self.capture)
        out = call().cpu().numpy()  # sync point (once per simulation): the backup needs these
        return out[:n], out[size:size + n], out[2 * size:2 * size + n * self.model.num_actions].reshape(n, -1)

    def _build(self, fn: Callable[..., torch.Tensor], inputs: tuple[torch.Tensor, ...]) -> StaticCall:
        self.captures += 1
        return StaticCall(fn, inputs, capture=self.capture, pool=self._pool, compile=self.compile)

    def _initial_fn(self, obs: torch.Tensor) -> torch.Tensor:
        size = len(obs)
        latent, value, logits = self.model.initial_inference_scalar(obs)
        self.latents[0, :size].copy_(latent)
        self.h[0, :size].zero_()
        self.c[0, :size].zero_()
        return torch.cat([value.float(), logits.float().reshape(-1)])

    def _recurrent_fn(self, steer: torch.Tensor) -> torch.Tensor:
        size = (len(steer) - 1) // 3
        parent, action = steer[:size], steer[size:2 * size]
        reset, node = steer[2 * size:3 * size].bool(), steer[3 * size:]
        rows = self._rows[:size]
        state = (self.h[parent, rows], self.c[parent, rows])
        latent, (h, c), value_prefix, value, logits = self.model.recurrent_inference_scalar(
            self.latents[parent, rows], state, action, reset)
        self.latents[:, :size].index_copy_(0, node, latent.unsqueeze(0))
        self.h[:, :size].index_copy_(0, node, h.unsqueeze(0))
        self.c[:, :size].index_copy_(0, node, c.unsqueeze(0))
        return torch.cat([value_prefix.float(), value.float(), logits.float().reshape(-1)])
