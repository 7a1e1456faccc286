"""Recommendations derived from a ProfileReport's numbers.

Each rule names the figure that triggered it and the setting to change, with its current
value. Rules come in order of how much they can change throughput: a saturated resource
first (machine, event loop, learner, inference), then how well the work is batched, then the
feeding of the learner, then small costs. The thresholds are the constants below.
"""
from __future__ import annotations

from dataclasses import dataclass

from ezero_async.profiling.report import ProfileReport

SATURATED = 0.85
"""A thread (or every core) busier than this is the limit of whatever waits on it."""
STARVED = 0.25
"""A consumer waiting for its input longer than this share of the time is starved."""
HELD_BACK = 0.30
"""Self-play held back by the pacer this much of the time: the learner sets the pace."""
SMALL_GROUPS = 0.5
"""Search groups filled below this share of max_batch under-use each network call."""
FULL_GROUPS = 0.95
"""Groups this full, with roots left queueing, would take a larger max_batch."""
GPU_IDLE = 50.0
"""GPU utilisation (%) under this while the CPU side is saturated: the run is CPU-bound."""
OTHER_LOAD = 0.5
"""Cores' worth used by other processes during the window that make the figures unreliable."""
TRACKER_COST = 0.03
"""Tracking (metrics file, progress line, Aim) above this share of a thread is worth trimming."""


@dataclass(frozen=True)
class Advice:
    finding: str
    """What the numbers show (with the numbers)."""
    action: str
    """What to change (with the setting and its current value)."""


def recommend(r: ProfileReport) -> list[Advice]:
    """Recommendations for one profiling window, most important first; never empty."""
    s, st = r.setup, r.stages
    out: list[Advice] = []
    on_gpu = s.device.startswith("cuda")
    inference_busy = st["inference_net"] + st["tree"]  # both averaged over the inference threads
    loop_saturated = r.loop_busy >= SATURATED
    learner_saturated = st["learner_update"] + st["learner_stage"] >= SATURATED

    if r.cpu.other_cores >= OTHER_LOAD:
        out.append(Advice(f"other processes used {r.cpu.other_cores:.2f} of the {s.cores} cores during the window "
                          f"(this run {r.cpu.run_cores:.2f}): every figure here is skewed by them",
                          "profile again on an otherwise idle machine before changing settings"))
    cores_saturated = r.cores_busy >= SATURATED and r.cpu.run_cores >= SATURATED * s.cores
    if cores_saturated:
        if on_gpu and r.gpu_util is not None and r.gpu_util < GPU_IDLE:
            out.append(Advice(f"all {s.cores} CPU cores are {100 * r.cores_busy:.0f}% busy while the GPU is only "
                              f"{r.gpu_util:.0f}% utilised: the run is CPU-bound",
                              f"give it more cores, or cut CPU work per step: fewer search.num_simulations "
                              f"(now {s.num_simulations}) or a larger batcher.max_batch (now {s.max_batch}) so each "
                              f"device call carries more roots"))
        elif not on_gpu:
            out.append(Advice(f"all {s.cores} CPU cores are {100 * r.cores_busy:.0f}% busy: on CPU the network, the "
                              f"tree, the envs and the learner share these cores",
                              "more coroutines or threads cannot help here; a GPU (--device cuda) takes the network "
                              "and learner work off the cores"))
    if loop_saturated:
        out.append(Advice(f"the event loop thread uses {r.loop_busy:.2f} of a core: every coroutine it runs waits on "
                          f"it (env hand-offs, replay appends {100 * st['replay_append']:.0f}%, replay assembly "
                          f"{100 * st['replay_assembly']:.0f}%)",
                          f"lower --num-envs (now {s.num_envs}) if groups stay full without them"
                          if r.group_fill >= SMALL_GROUPS else
                          "the loop cannot take more work: keep --num-envs, and give the machine a faster core"))
    learner_bound = learner_saturated and st["pacer_wait"] >= HELD_BACK
    if learner_bound:
        out.append(Advice(f"the learner is the bottleneck: it computes {100 * st['learner_update']:.0f}% of the time "
                          f"and self-play is held back by the replay ratio {100 * st['pacer_wait']:.0f}% of the time",
                          ("turn on mixed precision (learner.amp, now 'off')" if on_gpu and s.amp == "off" else
                           f"a smaller learner.batch_size (now {s.batch_size}) or a smaller model" if on_gpu else
                           f"the learner in its own process (learner.isolation = 'auto', now '{s.isolation}'): as a "
                           "thread each of its ops waits for the GIL the event loop and inference hold"
                           if s.isolation == "thread" else
                           "the loss compiled in the learner process (--set learner.compile=auto: 1.5x updates/s for "
                           "the CartPole MLP, 1.07x for the MinAtar convnet, docs/tuning.md#compiled-loss)"
                           if s.learner_compile == "off" else
                           "bf16 on this CPU, which has bf16 instructions (--set learner.amp=bf16 --set batcher.amp=bf16, "
                           f"now learner.amp = '{s.amp}': 1.36x updates/s for the MinAtar net, docs/tuning.md)"
                           if s.cpu_bf16 and s.amp != "bf16" else "a faster device for the learner (--device cuda)")
                          + ("; more envs or search capacity will not raise throughput" if on_gpu else
                             "; more search capacity will not raise throughput, fewer and larger search calls "
                             "only help by leaving the learner more of the shared cores")))
    if inference_busy >= SATURATED:
        if on_gpu and r.gpu_util is not None and r.gpu_util < GPU_IDLE:
            out.append(Advice(f"inference threads are {100 * inference_busy:.0f}% busy but the GPU is "
                              f"{r.gpu_util:.0f}% utilised: each call is small (launch and host-sync overhead)",
                              f"raise batcher.max_batch (now {s.max_batch}) and --num-envs (now {s.num_envs}) so each "
                              f"call carries more roots"))
        else:
            no_room = cores_saturated and not on_gpu
            out.append(Advice(f"inference threads are {100 * inference_busy:.0f}% busy (network "
                              f"{100 * st['inference_net']:.0f}%, tree {100 * st['tree']:.0f}%, each averaged over "
                              f"{s.searches_in_flight} threads)",
                              (f"the network is the limit on these cores: fewer search.num_simulations (now "
                               f"{s.num_simulations}), a smaller model, or a GPU" if no_room else
                               f"raise batcher.searches_in_flight (now {s.searches_in_flight}): the cores or the "
                               f"GPU have room")
                              + ("; on a CPU the searches' calls can run compiled (--set batcher.compile=auto: 1.2x "
                                 "less network time per root for the CartPole MLP, docs/tuning.md#compiled-inference)"
                                 if not on_gpu and s.inference_compile == "off" else "")))
    # With the learner setting the pace, group size matters only on CPU (where small calls take
    # cores from the learner); on a GPU the advice would contradict the one above.
    if r.group_fill < SMALL_GROUPS and not loop_saturated and not (learner_bound and on_gpu):
        if s.num_envs < s.max_batch:
            action = (f"raise --num-envs (now {s.num_envs}) towards batcher.max_batch ({s.max_batch}), or lower "
                      f"max_batch to {s.num_envs}: self-play groups can never fill otherwise")
        else:
            action = (f"raise --num-envs (now {s.num_envs}) so more roots are waiting, or batcher.max_wait_ms "
                      f"(now {s.max_wait_ms:g}) so groups wait longer to fill")
        out.append(Advice(f"search groups are {100 * r.group_fill:.0f}% full (mean {r.group_size:.1f} of "
                          f"{s.max_batch} roots): each network call is under-used", action))
    elif r.group_fill >= FULL_GROUPS and r.pending_roots_mean >= s.max_batch / 2 and inference_busy < SATURATED:
        out.append(Advice(f"search groups are full ({100 * r.group_fill:.0f}%) and {r.pending_roots_mean:.0f} roots "
                          f"wait for a group on average",
                          f"raise batcher.max_batch (now {s.max_batch}) if device memory allows, or "
                          f"batcher.searches_in_flight (now {s.searches_in_flight})"))
    if st["learner_wait_batch"] >= STARVED:
        if st["reanalyse_targets_wait"] >= 1.0 - STARVED:
            action = (f"raise runtime.reanalyse_workers (now {s.reanalyse_workers}) so more batches' searches "
                      f"overlap, or lower runtime.reanalyse_fraction (now {s.reanalyse_fraction:g})"
                      + (", or set runtime.reanalyse_mode = sweep (each stored transition searched once per "
                         "target version)" if s.reanalyse_mode == "batch" else ""))
        elif st["replay_assembly"] >= STARVED:
            action = (f"batch assembly on the event loop takes {100 * st['replay_assembly']:.0f}% of it: a smaller "
                      f"learner.batch_size (now {s.batch_size}) or a faster core")
        elif st["pacer_wait"] < HELD_BACK and st["env_wait"] + st["search_wait"] >= 1.0 - STARVED:
            action = ("self-play collects too slowly for the replay ratio: see the env and search rows; more "
                      f"--num-envs (now {s.num_envs}) if cores have room")
        else:
            action = f"raise learner.queue_size (now {s.queue_size}) to absorb bursts"
        out.append(Advice(f"the learner waits for batches {100 * st['learner_wait_batch']:.0f}% of the time "
                          f"(queue mean {r.learner_queue_mean:.1f} of {s.queue_size})", action))
    workers = r.cpu.env_worker_count
    if workers and r.cpu.env_workers >= SATURATED * workers and st["env_wait"] >= STARVED:
        out.append(Advice(f"the {workers} env worker processes use {r.cpu.env_workers:.2f} cores (saturated) and "
                          f"env coroutines wait on them {100 * st['env_wait']:.0f}% of the time",
                          "emulation is the limit: more cores (env workers follow the core count)"))
    if st["tracker"] >= TRACKER_COST:
        out.append(Advice(f"tracking takes {100 * st['tracker']:.1f}% of a thread",
                          f"raise tracking.log_interval_s (now {s.log_interval_s:g})"))
    if not out:
        out.append(Advice("no stage is saturated or starved at these settings",
                          "the pipeline is balanced here; compare settings with --sweep"))
    return out
