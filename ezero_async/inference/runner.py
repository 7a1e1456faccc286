"""ModelRunner: every network call of inference runs on inference threads beside the event loop.

Coroutines `await runner.call(fn, *args)`; one of `workers` inference threads runs fn (torch and
CTree release the GIL while they compute) and resolves the future with
loop.call_soon_threadsafe. A job is a whole unit of work (a search group's 50 simulations, a
batch of bootstrap values), so the loop thread pays one hand-off per group, not one per
simulation. On CUDA each thread runs on its own stream: one group's tree work overlaps another's
kernels, and inference never queues behind the learner's. With `inline=True` (serial mode)
calls run on the caller's thread, in order.

With `amp` (batcher.amp) the network calls of a job run under `precision(rows)`: bf16 autocast
(convolutions and matmuls in bf16, read back as fp32) for calls of at least `amp_min_rows` rows,
fp32 for smaller ones, where bf16's fixed cost per call outweighs its faster kernels.

Weights: `lease(kind, version)` lends an eval-mode copy of the network holding that published
version of the online, target or evaluation weights (loaded on first use, a few kept per kind;
a copy in use by another thread is never reloaded under it).
"""
from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator

import torch
from torch import nn

from ezero_async.config.sections import BatcherConfig
from ezero_async.learner.weights import WeightStore

AMP_DTYPES: dict[str, torch.dtype | None] = {"off": None, "bf16": torch.bfloat16}
"""batcher.amp -> the autocast dtype of inference calls (None: fp32)."""

MODELS_PER_KIND = 3
"""Weight versions kept loaded per kind when idle (copies in use are never evicted)."""


class ModelRunner:
    def __init__(self, make_model: Callable[[], nn.Module], device: torch.device, stores: dict[str, WeightStore],
                 *, inline: bool = False, num_threads: int = 1, workers: int = 1, amp: str = "off",
                 amp_min_rows: int = 0) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if amp not in AMP_DTYPES:
            raise ValueError(f"amp must be one of {sorted(AMP_DTYPES)}, got {amp!r}")
        self.make_model = make_model
        self.device = device
        self.amp_dtype = AMP_DTYPES[amp]
        self.amp_min_rows = amp_min_rows
        self.stores = stores
        self.inline = inline
        self.num_threads = num_threads
        self._models: dict[str, OrderedDict[int, _Loaded]] = {kind: OrderedDict() for kind in stores}
        self._models_lock = threading.Lock()
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self._busy = [0.0] * (1 if inline else workers)  # one cell per thread: no shared +=
        self._threads = [] if inline else [threading.Thread(target=self._run, args=(i,), name=f"inference-{i}",
                                                            daemon=True) for i in range(workers)]
        for thread in self._threads:
            thread.start()

    @classmethod
    def configured(cls, make_model: Callable[[], nn.Module], device: torch.device, stores: dict[str, WeightStore],
                   batcher: BatcherConfig, *, serial: bool) -> ModelRunner:
        """The runner a run or an evaluation uses: one inference thread per search in flight
        (calls inline in serial mode), batcher.amp above batcher.amp_min_rows."""
        return cls(make_model, device, stores, inline=serial, workers=batcher.searches_in_flight,
                   amp=batcher.amp, amp_min_rows=batcher.amp_min_rows)

    @property
    def workers(self) -> int:
        """Inference threads (1 when inline: the event loop's thread does the calls)."""
        return len(self._busy)

    @property
    def busy_s(self) -> float:
        """Seconds spent in calls, summed over inference threads (for timing/ metrics)."""
        return sum(self._busy)

    # ------------------------------------------------------------ event-loop side

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the inference thread; its exception is raised here, traceback kept."""
        if self.inline:
            return self._timed(fn, args)
        if self._error is not None:
            raise self._error
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._jobs.put((fn, args, loop, future))
        return await future

    def close(self) -> None:
        alive = [thread for thread in self._threads if thread.is_alive()]
        for _ in alive:
            self._jobs.put(None)
        for thread in alive:
            thread.join(timeout=30.0)

    # ------------------------------------------------------------ inference-thread side

    @contextlib.contextmanager
    def lease(self, kind: str, version: int) -> Iterator[nn.Module]:
        """The network with `kind` weights of `version`, held for the block (inference threads)."""
        with self._models_lock:
            cache = self._models[kind]
            loaded = cache.get(version)
            if loaded is None:
                idle = [v for v, entry in cache.items() if entry.users == 0]  # oldest first
                if len(cache) >= MODELS_PER_KIND and idle:
                    loaded = cache.pop(idle[0])
                else:
                    loaded = _Loaded(self.make_model())
                self.stores[kind].load_into(loaded.model, version)
                loaded.model.eval()
                cache[version] = loaded
            cache.move_to_end(version)
            loaded.users += 1
        try:
            yield loaded.model
        finally:
            with self._models_lock:
                loaded.users -= 1

    def precision(self, rows: int) -> contextlib.AbstractContextManager:
        """What network calls of `rows` rows run under (inference threads): batcher.amp's
        autocast from amp_min_rows rows, else fp32."""
        if self.amp_dtype is None or rows < self.amp_min_rows:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _timed(self, fn: Callable[..., Any], args: tuple, cell: int = 0) -> Any:
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                return fn(*args)
        finally:
            self._busy[cell] += time.perf_counter() - start

    def _run(self, cell: int) -> None:
        torch.set_num_threads(self.num_threads)  # per-thread intra-op pool on CPU (FACTS.md)
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            while (job := self._jobs.get()) is not None:
                fn, args, loop, future = job
                try:
                    result = self._timed(fn, args, cell)
                except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
                    loop.call_soon_threadsafe(_settle, future, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, future, result, None)


class _Loaded:
    """A loaded network and how many calls are using it."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.users = 0


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
