"""SearchService: the dynamic batcher for searches and bootstrap values.

Roots requested by any coroutine (one env's self-play root, or a reanalysis batch's 1,518) are
grouped by (weights kind, version, noise on/off) into search groups of at most `max_batch`
roots: a group is sent once it is full or its oldest root has waited `max_wait_ms`. A group's
whole search (initial inference, then select -> recurrent inference -> backup per simulation)
is one job of the ModelRunner, whose `searches_in_flight` threads run that many groups at once:
one group's tree work (CTree, GIL released) overlaps another's network calls, and the event
loop pays one thread hand-off per group instead of one per simulation (measured: +25-50 %
self-play steps/s on 2 CPU cores, tools/profile_pipeline.py).

Latents and LSTM states never leave the device during a search: each group slot owns pools
[S + 1, max_batch, ...] indexed by node id (the node created in simulation s is s + 1), and a
recurrent step gathers its parents from them. Per simulation only the parents/actions (int32)
go to the device and value prefix, value and logits come back (the tree needs them). On CUDA
with `batcher.cuda_graphs` a slot replays CUDA graphs of both network calls instead
(graphs.py): same pools, same numbers up to kernel choice, a fraction of the launch cost.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import NamedTuple, Sequence

import numpy as np
import torch

from ezero_async._ext.frames import gather_planes
from ezero_async.config.sections import BatcherConfig, SearchConfig
from ezero_async.inference.graphs import SlotGraphs, compiles
from ezero_async.inference.runner import ModelRunner
from ezero_async.learner.model import stack_frames
from ezero_async.search import CTree, GumbelCTree


class RootResult(NamedTuple):
    """One root's search outputs, in either search mode."""

    policy: np.ndarray
    """float32[A]: the policy target: visit counts / S (pUCT) or the improved policy pi' (Gumbel)."""
    root_value: float
    """The search value: mean backed-up value (pUCT); W / N over the network value and the
    backed-up returns (Gumbel)."""
    action: int
    """The search's own action: the most visited, lowest index on ties (pUCT; self-play samples
    from the visit counts instead); sequential halving's winner (Gumbel, what self-play plays)."""
    visit_counts: np.ndarray
    """int32[A]: visits of the root's children (sum S)."""


class SearchResult(NamedTuple):
    """Search outputs for the n roots of one request."""

    policies: np.ndarray
    """float32[n, A]: policy targets (see RootResult.policy)."""
    root_values: np.ndarray
    """float32[n]: search values (see RootResult.root_value)."""
    visit_counts: np.ndarray
    """int32[n, A]."""


@dataclass
class _Root:
    obs: Sequence[np.ndarray]  # S frames, oldest first: an array [S, *F] or a tuple of S arrays [*F]
    noise: np.ndarray | None  # float32[A]
    seed: int
    future: asyncio.Future
    since: float = field(default_factory=time.monotonic)


class _Slot:
    """One group in flight: its tree (CTree or GumbelCTree by search.mode) and its device pools
    (allocated on first use)."""

    def __init__(self, num_roots: int, num_actions: int, config: SearchConfig) -> None:
        tree_cls = GumbelCTree if config.mode == "gumbel" else CTree
        self.tree = tree_cls(num_roots=num_roots, num_actions=num_actions, config=config)
        self.latents: torch.Tensor | None = None  # [S + 1, B, *latent]
        self.h: torch.Tensor | None = None  # [S + 1, B, hidden]
        self.c: torch.Tensor | None = None
        self.graphs: SlotGraphs | None = None  # graphed calls (built on first use), pools of their own


class SearchService:
    """graphs: run the slots' network calls as CUDA graphs on a CUDA device, compiled or eager
    static-shape calls on a CPU; None = batcher.cuda_graphs on a CUDA device, batcher.compile
    (resolved by graphs.compiles) on a CPU. True on a CPU without batcher.compile runs the graphed
    path's static buffers eagerly (what the tests check it with)."""

    def __init__(self, runner: ModelRunner, search: SearchConfig, batcher: BatcherConfig, num_actions: int,
                 *, serial: bool = False, graphs: bool | None = None) -> None:
        self.runner = runner
        self.config = search
        self.batcher = batcher
        self.num_actions = num_actions
        self.device = runner.device
        self.compiled = compiles(batcher, self.device)
        if graphs is None:
            graphs = (batcher.cuda_graphs and self.device.type == "cuda") or self.compiled
        self.graphs = graphs
        self._pending: dict[tuple[str, int, bool], list[_Root]] = {}
        self._free = [_Slot(batcher.max_batch, num_actions, search) for _ in range(batcher.searches_in_flight)]
        self._wake = asyncio.Event()
        self._groups: set[asyncio.Task] = set()
        self.group_sizes: list[int] = []
        """Roots per group sent (for the batch-size distribution in reports)."""
        self.tree_s = 0.0
        """Seconds of tree work (select + backup), summed over inference threads."""
        self.roots_searched = 0
        """Roots whose search finished."""
        self.batch_wait_s = 0.0
        """Seconds groups waited to form (oldest root's request to the group's launch), summed."""
        self.serial = serial
        self._serial_lock = asyncio.Lock()

    # ------------------------------------------------------------ requests

    async def search(self, kind: str, version: int, stacks: np.ndarray, noise: np.ndarray | None,
                     seed: int) -> SearchResult:
        """Search n roots: stacks [n, S, *F] (frames oldest first), noise float32[n, A] or None
        (root noise of the search mode: Dirichlet draws, or Gumbel draws; None in evaluation)."""
        loop = asyncio.get_running_loop()
        roots = [_Root(stacks[i], None if noise is None else noise[i], seed + i, loop.create_future())
                 for i in range(len(stacks))]
        await self._submit((kind, version, noise is not None), roots)
        results: list[RootResult] = [root.future.result() for root in roots]
        return SearchResult(np.stack([r.policy for r in results]),
                            np.array([r.root_value for r in results], np.float32),
                            np.stack([r.visit_counts for r in results]))

    async def search_one(self, kind: str, version: int, frames: Sequence[np.ndarray], noise: np.ndarray | None,
                         seed: int) -> RootResult:
        """Search one root (an env's step): frames S arrays [*F] oldest first, noise float32[A] or
        None. The frames are only read, and are copied into the group's input before the result
        is set."""
        root = _Root(frames, noise, seed, asyncio.get_running_loop().create_future())
        await self._submit((kind, version, noise is not None), [root])
        return root.future.result()

    async def _submit(self, key: tuple[str, int, bool], roots: list[_Root]) -> None:
        """Queue roots for grouping and wait until every one has its result (or the group's error)."""
        if self.serial:  # one request at a time, in groups of its own roots only: no timing in the results
            async with self._serial_lock:
                for lo in range(0, len(roots), self.batcher.max_batch):
                    await self._run_group(key, roots[lo:lo + self.batcher.max_batch],
                                          self._free.pop())  # handed back by _run_group
            return
        self._pending.setdefault(key, []).extend(roots)
        self._wake.set()
        if len(roots) == 1:
            await roots[0].future
        else:
            await asyncio.gather(*(r.future for r in roots))

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
                    # Not asyncio.wait_for: on Python 3.11 it swallows a cancellation that lands
                    # as the event fires, and this task then never ends (a stop that hung).
                    try:
                        async with asyncio.timeout(timeout):
                            await self._wake.wait()
                    except TimeoutError:
                        pass
        finally:
            for task in self._groups:
                task.cancel()

    async def _run_group(self, key: tuple[str, int, bool], roots: list[_Root], slot: _Slot) -> None:
        kind, version, noisy = key
        try:
            self.group_sizes.append(len(roots))
            self.batch_wait_s += time.monotonic() - roots[0].since
            noise = np.stack([r.noise for r in roots]) if noisy else None
            policies, root_values, actions, counts = await self.runner.call(
                self._search, slot, kind, version, [r.obs for r in roots], noise, roots[0].seed)
            self.roots_searched += len(roots)
            for i, root in enumerate(roots):
                if not root.future.done():
                    root.future.set_result(RootResult(policies[i], float(root_values[i]), int(actions[i]), counts[i]))
        except BaseException as exc:  # every waiting root gets the original exception
            for root in roots:
                if not root.future.done():
                    root.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            self._free.append(slot)
            self._wake.set()

    # ------------------------------------------------------------ inference threads

    def _search(self, slot: _Slot, kind: str, version: int, stacks: list[Sequence[np.ndarray]],
                noise: np.ndarray | None, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """One group's whole search: policies float32[n, A], root values float32[n], actions
        int32[n] and visit counts int32[n, A] (see RootResult)."""
        n = len(stacks)
        with self.runner.lease(kind, version) as model, self.runner.precision(n):
            if self.graphs:
                if slot.graphs is None:
                    slot.graphs = SlotGraphs(self.runner.make_model, self.device, max_batch=self.batcher.max_batch,
                                             num_simulations=self.config.num_simulations,
                                             capture=self.device.type == "cuda", compile=self.compiled)
                slot.graphs.load(model, (kind, version))
                value, root_logits = slot.graphs.initial(self._input(stacks))
            else:
                latent, value_t, logits = self._initial_inference(model, stacks)
                self._root_state(slot, model, latent)
                root_logits = logits.float().cpu().numpy()  # sync: the tree needs the priors
                value = value_t.float().cpu().numpy() if self.config.mode == "gumbel" else None
            tree = slot.tree
            started = time.perf_counter()
            tree_s = 0.0
            if isinstance(tree, GumbelCTree):
                tree.prepare(root_logits, value, gumbel=noise)
            else:
                tree.prepare(root_logits, noise=noise, seed=seed)
            rows = torch.arange(n, device=self.device)
            for s in range(self.config.num_simulations):
                parents, actions, reset = tree.select()
                tree_s += time.perf_counter() - started
                out = self._recurrent(slot, model, rows, s, parents, actions, reset)
                started = time.perf_counter()
                tree.backup(*out)
            counts, root_values = tree.visit_counts(), tree.root_values()
            if isinstance(tree, GumbelCTree):
                policies, actions = tree.improved_policy(), tree.actions()
            else:
                policies = (counts / counts.sum(axis=1, keepdims=True)).astype(np.float32)
                actions = counts.argmax(axis=1)  # numpy's argmax: the first maximum
            self.tree_s += tree_s + time.perf_counter() - started  # GIL held: one += at a time
            return policies, root_values, actions, counts

    def _input(self, stacks: Sequence[Sequence[np.ndarray]]) -> torch.Tensor:
        """n roots' stacks (each S frames [*F] oldest first, or an array [S, *F]) as the network
        input: [n, S*C, H, W] for images (scaled to [0, 1] in the model), [n, S*D] for vectors."""
        frame = np.asarray(stacks[0][0])
        if frame.ndim == 3 and frame.dtype == np.uint8 and self.device.type == "cpu":
            # One GIL-free pass gathers and transposes HWC -> CHW (a numpy gather plus transpose
            # costs about 3x as much, all of it holding the GIL the event loop needs).
            height, width, c = frame.shape
            out = np.empty((len(stacks), len(stacks[0]) * c, height, width), np.uint8)
            return torch.from_numpy(gather_planes(stacks, out))
        return stack_frames(torch.from_numpy(_gather(stacks)).to(self.device, non_blocking=False))  # permuted on the device

    def _initial_inference(self, model: torch.nn.Module, stacks: Sequence[Sequence[np.ndarray]]
                           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(latent, value float32[n], policy logits) of n roots' stacks; on CPU in chunks of
        initial_chunk, where initial inference peaks at 8-32 samples (FACTS.md)."""
        obs = self._input(stacks)
        chunk = self.batcher.initial_chunk if self.device.type == "cpu" else len(obs)
        parts = [model.initial_inference_scalar(obs[lo:lo + chunk]) for lo in range(0, len(obs), chunk)]
        return tuple(torch.cat(column) for column in zip(*parts))  # type: ignore[return-value]

    def _values(self, kind: str, version: int, obs: np.ndarray) -> np.ndarray:
        with self.runner.lease(kind, version) as model, self.runner.precision(len(obs)):
            _, value, _ = self._initial_inference(model, obs)
            return value.float().cpu().numpy()  # sync point: the caller needs the numbers

    def _root_state(self, slot: _Slot, model: torch.nn.Module, latent: torch.Tensor) -> None:
        """Roots' latents into node 0 of the slot's pools (allocated on first use), LSTM state zero.
        The pools are fp32 whatever a group's precision (batcher.amp), so that a slot serving
        small fp32 and large bf16 groups in turn keeps them."""
        n = len(latent)
        if slot.latents is None or slot.latents.shape[2:] != latent.shape[1:]:
            sims = self.config.num_simulations + 1
            slot.latents = torch.empty((sims, self.batcher.max_batch, *latent.shape[1:]), dtype=torch.float32,
                                       device=self.device)
            slot.h = torch.zeros((sims, self.batcher.max_batch, model.lstm_hidden), device=self.device)
            slot.c = torch.zeros_like(slot.h)
        slot.latents[0, :n] = latent
        slot.h[0, :n] = 0.0
        slot.c[0, :n] = 0.0

    def _recurrent(self, slot: _Slot, model: torch.nn.Module, rows: torch.Tensor, s: int, parents: np.ndarray,
                   actions: np.ndarray, reset: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Expand simulation s's leaves (node s + 1) from their parents' pooled states."""
        if slot.graphs is not None:
            return slot.graphs.recurrent(s, parents, actions, reset)
        n = len(parents)
        parent = torch.from_numpy(parents.astype(np.int64)).to(self.device)
        latent = slot.latents[parent, rows]
        state = (slot.h[parent, rows], slot.c[parent, rows])
        action = torch.from_numpy(actions.astype(np.int64)).to(self.device)
        reset_mask = torch.from_numpy(reset).to(self.device)
        next_latent, (h, c), vp, value, logits = model.recurrent_inference_scalar(latent, state, action, reset_mask)
        slot.latents[s + 1, :n] = next_latent
        slot.h[s + 1, :n] = h
        slot.c[s + 1, :n] = c
        # Sync point (once per simulation): the tree's backup needs these on the host; one copy.
        out = torch.cat([vp.float(), value.float(), logits.float().reshape(-1)]).cpu().numpy()
        return out[:n], out[n:2 * n], out[2 * n:].reshape(n, -1)


def _gather(stacks: list[Sequence[np.ndarray]]) -> np.ndarray:
    """[n, S, *F] from n roots' frames, copied once (a root is an array [S, *F] or S arrays [*F])."""
    first = stacks[0]
    frame = np.asarray(first[0])
    out = np.empty((len(stacks), len(first), *frame.shape), frame.dtype)
    for i, frames in enumerate(stacks):
        if isinstance(frames, np.ndarray):
            out[i] = frames
        else:
            for j, f in enumerate(frames):
                out[i, j] = f
    return out
