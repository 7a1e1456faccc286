"""ModelRunner: every network call of inference runs on one thread beside the event loop.

Coroutines `await runner.call(fn, *args)`; the inference thread runs fn (torch releases the GIL
while it computes) and resolves the future with loop.call_soon_threadsafe. On CUDA the thread
runs on its own stream, so inference never queues behind the learner's kernels. With
`inline=True` (serial mode) calls run on the caller's thread, in order.

Weights: `model(kind, version)` returns an eval-mode copy of the network holding that published
version of the online or target weights (loaded on first use, a few kept per kind).
"""
from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections import OrderedDict
from typing import Any, Callable

import torch
from torch import nn

from ezero_async.learner.weights import WeightStore

MODELS_PER_KIND = 3
"""Weight versions kept loaded per kind: in-flight search groups may still use older ones."""


class ModelRunner:
    def __init__(self, make_model: Callable[[], nn.Module], device: torch.device, stores: dict[str, WeightStore],
                 *, inline: bool = False, num_threads: int = 1) -> None:
        self.make_model = make_model
        self.device = device
        self.stores = stores
        self.inline = inline
        self.num_threads = num_threads
        self._models: dict[str, OrderedDict[int, nn.Module]] = {kind: OrderedDict() for kind in stores}
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._error: BaseException | None = None
        self.busy_s = 0.0
        """Seconds the inference thread spent in model calls (for timing/ metrics)."""
        self.calls = 0
        self._thread: threading.Thread | None = None
        if not inline:
            self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
            self._thread.start()

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
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join(timeout=30.0)

    # ------------------------------------------------------------ inference-thread side

    def model(self, kind: str, version: int) -> nn.Module:
        """The network with `kind` weights of `version` (called on the inference thread)."""
        cache = self._models[kind]
        model = cache.get(version)
        if model is None:
            model = cache.popitem(last=False)[1] if len(cache) >= MODELS_PER_KIND else self.make_model()
            self.stores[kind].load_into(model, version)
            model.eval()
            cache[version] = model
        cache.move_to_end(version)
        return model

    def _timed(self, fn: Callable[..., Any], args: tuple) -> Any:
        start = time.perf_counter()
        try:
            with torch.inference_mode():
                return fn(*args)
        finally:
            self.busy_s += time.perf_counter() - start
            self.calls += 1

    def _run(self) -> None:
        torch.set_num_threads(self.num_threads)  # per-thread intra-op pool on CPU (FACTS.md)
        stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
            while (job := self._jobs.get()) is not None:
                fn, args, loop, future = job
                try:
                    result = self._timed(fn, args)
                except BaseException as exc:  # handed to the awaiting coroutine, which re-raises it
                    loop.call_soon_threadsafe(_settle, future, None, exc)
                else:
                    loop.call_soon_threadsafe(_settle, future, result, None)


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():  # the awaiting coroutine was cancelled meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
