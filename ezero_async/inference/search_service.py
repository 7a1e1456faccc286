"""SearchService: the dynamic batcher for searches and bootstrap values.

Roots requested by any coroutine (one env's self-play root, or a reanalysis batch's 1,518) are
grouped by (weights kind, version, noise on/off) into search groups of at most `max_batch`
roots: a group is sent once it is full or its oldest root has waited `max_wait_ms`. Up to
`searches_in_flight` groups run at once, so one group's tree work (CTree, GIL released) runs
on the loop thread while another's network call runs on the inference thread.

Latents and LSTM states never leave the device during a search: each group slot owns pools
[S + 1, max_batch, ...] indexed by node id (the node created in simulation s is s + 1), and a
recurrent step gathers its parents from them. Per simulation only the parents/actions (int32)
go to the device and value prefix, value and logits come back (the tree needs them).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

from ezero_async.config.sections import BatcherConfig, SearchConfig
from ezero_async.inference.runner import ModelRunner
from ezero_async.learner.model import stack_frames
from ezero_async.search import CTree


class SearchResult(NamedTuple):
    """Search outputs for the n roots of one request."""

    visit_counts: np.ndarray
    """int32[n, A]."""
    root_values: np.ndarray
    """float32[n]: mean backed-up value over the simulations."""


@dataclass
class _Root:
    obs: np.ndarray  # [S, *F]
    noise: np.ndarray | None  # float32[A]
    seed: int
    future: asyncio.Future
    since: float = field(default_factory=time.monotonic)


class _Slot:
    """One group in flight: its tree and its device pools (allocated on first use)."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        self.tree = CTree(num_roots=num_roots, num_actions=num_actions, config=config)
        self.latents: torch.Tensor | None = None  # [S + 1, B, *latent]
        self.h: torch.Tensor | None = None  # [S + 1, B, hidden]
        self.c: torch.Tensor | None = None


class SearchService:
    def __init__(self, runner: ModelRunner, search: SearchConfig, batcher: BatcherConfig, num_actions: int,
                 *, serial: bool = False) -> None:
        self.runner = runner
        self.config = search
        self.batcher = batcher
        self.num_actions = num_actions
        self.device = runner.device
        self._pending: dict[tuple[str, int, bool], list[_Root]] = {}
        self._free = [_Slot(batcher.max_batch, num_actions, search) for _ in range(batcher.searches_in_flight)]
        self._wake = asyncio.Event()
        self._groups: set[asyncio.Task] = set()
        self.group_sizes: list[int] = []
        """Roots per group sent (for the batch-size distribution in reports)."""
        self.tree_s = 0.0
        """Seconds of tree work (select + backup) on the loop thread."""
        self.roots_searched = 0
        """Roots whose search finished."""
        self.batch_wait_s = 0.0
        """Seconds groups waited to form (oldest root's request to the group's launch), summed."""
        self.serial = serial
        self._serial_lock = asyncio.Lock()

    # ------------------------------------------------------------ requests

    async def search(self, kind: str, version: int, stacks: np.ndarray, noise: np.ndarray | None,
                     seed: int) -> SearchResult:
        """Search n roots: stacks [n, S, *F] (frames oldest first), noise float32[n, A] or None."""
        loop = asyncio.get_running_loop()
        roots = [_Root(stacks[i], None if noise is None else noise[i], seed + i, loop.create_future())
                 for i in range(len(stacks))]
        if self.serial:  # one request at a time, in groups of its own roots only: no timing in the results
            async with self._serial_lock:
                for lo in range(0, len(roots), self.batcher.max_batch):
                    await self._run_group((kind, version, noise is not None), roots[lo:lo + self.batcher.max_batch],
                                          self._free.pop())  # handed back by _run_group
            results = [root.future.result() for root in roots]
        else:
            self._pending.setdefault((kind, version, noise is not None), []).extend(roots)
            self._wake.set()
            results = await asyncio.gather(*(r.future for r in roots))
        return SearchResult(np.stack([r[0] for r in results]), np.array([r[1] for r in results], np.float32))

    async def values(self, kind: str, version: int, stacks: np.ndarray) -> np.ndarray:
        """Scalar values float32[n] of stacks [n, S, *F] (bootstrap targets)."""
        if len(stacks) == 0:
            return np.zeros(0, np.float32)
        return await self.runner.call(self._values, kind, version, stacks)

    @property
    def pending_roots(self) -> int:
        """Roots waiting for a group (the batcher's queue depth)."""
        return sum(len(roots) for roots in self._pending.values())

    # ------------------------------------------------------------ dispatcher

    async def run(self) -> None:
        """Form and launch groups until cancelled (a task of the supervisor's TaskGroup)."""
        wait_s = self.batcher.max_wait_ms / 1000.0
        try:
            while True:
                timeout = None
                now = time.monotonic()
                for key in list(self._pending):
                    roots = self._pending[key]
                    while roots and self._free:
                        due = roots[0].since + wait_s
                        if len(roots) < self.batcher.max_batch and now < due:
                            timeout = due - now if timeout is None else min(timeout, due - now)
                            break
                        group, self._pending[key] = roots[:self.batcher.max_batch], roots[self.batcher.max_batch:]
                        roots = self._pending[key]
                        task = asyncio.ensure_future(self._run_group(key, group, self._free.pop()))
                        self._groups.add(task)
                        task.add_done_callback(self._groups.discard)
                    if not roots:
                        del self._pending[key]
                self._wake.clear()
                if timeout is None:
                    await self._wake.wait()
                else:
                    try:
                        await asyncio.wait_for(self._wake.wait(), timeout)
                    except asyncio.TimeoutError:
                        pass
        finally:
            for task in self._groups:
                task.cancel()

    async def _run_group(self, key: tuple[str, int, bool], roots: list[_Root], slot: _Slot) -> None:
        kind, version, noisy = key
        try:
            n = len(roots)
            self.group_sizes.append(n)
            self.batch_wait_s += time.monotonic() - roots[0].since
            obs = np.stack([r.obs for r in roots])
            logits = await self.runner.call(self._initial, slot, kind, version, obs)
            noise = np.stack([r.noise for r in roots]).astype(np.float32) if noisy else None
            tree = slot.tree
            started = time.perf_counter()
            tree.prepare(logits, noise=noise, seed=roots[0].seed)
            for s in range(self.config.num_simulations):
                parents, actions, reset = tree.select()
                self.tree_s += time.perf_counter() - started
                vp, value, leaf_logits = await self.runner.call(self._recurrent, slot, kind, version, s,
                                                               parents, actions, reset)
                started = time.perf_counter()
                tree.backup(vp, value, leaf_logits)
            counts, root_values = tree.visit_counts(), tree.root_values()
            self.tree_s += time.perf_counter() - started
            self.roots_searched += n
            for i, root in enumerate(roots):
                if not root.future.done():
                    root.future.set_result((counts[i], float(root_values[i])))
        except BaseException as exc:  # every waiting root gets the original exception
            for root in roots:
                if not root.future.done():
                    root.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._free.append(slot)
            self._wake.set()

    # ------------------------------------------------------------ inference thread

    def _input(self, obs: np.ndarray) -> torch.Tensor:
        # Host -> device copy of uint8/float32 stacks; images are scaled to [0, 1] in the model.
        return stack_frames(torch.from_numpy(obs).to(self.device, non_blocking=False))

    def _initial_inference(self, kind: str, version: int, obs: np.ndarray
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent, value float32[n], policy logits) of stacks obs [n, S, *F]; on CPU in chunks of
        initial_chunk, where initial inference peaks at 8-32 samples (FACTS.md)."""
        model = self.runner.model(kind, version)
        chunk = self.batcher.initial_chunk if self.device.type == "cpu" else len(obs)
        parts = [model.initial_inference_scalar(self._input(obs[lo:lo + chunk])) for lo in range(0, len(obs), chunk)]
        return tuple(torch.cat(column) for column in zip(*parts))  # type: ignore[return-value]

    def _values(self, kind: str, version: int, obs: np.ndarray) -> np.ndarray:
        _, value, _ = self._initial_inference(kind, version, obs)
        return value.float().cpu().numpy()  # sync point: the caller needs the numbers

    def _initial(self, slot: _Slot, kind: str, version: int, obs: np.ndarray) -> np.ndarray:
        model = self.runner.model(kind, version)
        n = len(obs)
        latent, _, logits = self._initial_inference(kind, version, obs)
        if slot.latents is None or slot.latents.shape[2:] != latent.shape[1:] or slot.latents.dtype != latent.dtype:
            sims = self.config.num_simulations + 1
            slot.latents = torch.empty((sims, self.batcher.max_batch, *latent.shape[1:]), dtype=latent.dtype,
                                       device=self.device)
            slot.h = torch.zeros((sims, self.batcher.max_batch, model.lstm_hidden), device=self.device)
            slot.c = torch.zeros_like(slot.h)
        slot.latents[0, :n] = latent
        slot.h[0, :n] = 0.0  # the LSTM state is zero at the root
        slot.c[0, :n] = 0.0
        return logits.float().cpu().numpy()  # sync point: the tree needs the priors

    def _recurrent(self, slot: _Slot, kind: str, version: int, s: int, parents: np.ndarray, actions: np.ndarray,
                   reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        model = self.runner.model(kind, version)
        n = len(parents)
        rows = torch.arange(n, device=self.device)
        parent = torch.from_numpy(parents.astype(np.int64)).to(self.device)
        latent = slot.latents[parent, rows]
        state = (slot.h[parent, rows], slot.c[parent, rows])
        action = torch.from_numpy(actions.astype(np.int64)).to(self.device)
        reset_mask = torch.from_numpy(reset).to(self.device)
        next_latent, (h, c), vp, value, logits = model.recurrent_inference_scalar(latent, state, action, reset_mask)
        slot.latents[s + 1, :n] = next_latent
        slot.h[s + 1, :n] = h
        slot.c[s + 1, :n] = c
        # Sync point (once per simulation): the tree's backup needs these on the host.
        return vp.float().cpu().numpy(), value.float().cpu().numpy(), logits.float().cpu().numpy()
