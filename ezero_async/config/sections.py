"""One documented dataclass per component. A component receives its own section, never the run.

Defaults are the `atari100k` values of shared/SPEC_TRAINING.md; the other presets (TOML files in
presets/) override some of them. Range checks live in each section's `check()`, which raises
ConfigError with one line naming the field; `RunConfig.check()` adds cross-section rules.
Field docs are the string literal under each field (shown by `--help-config`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from ezero_async.errors import ConfigError

ATARI_DISCOUNT = 0.997**4


def _require(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {message}")


@dataclass
class EnvConfig:
    game: str = "Breakout"
    """Game name as given on the command line (resolved per family by ezero_async.envs)."""
    family: str = "auto"
    """'atari', 'minatar', 'classic', or 'auto' (decided from the game name)."""
    frame_skip: int = 4
    """Agent step = this many emulator frames, observation = max over the last two (Atari)."""
    noop_max: int = 30
    """Episode starts with 1..noop_max no-op actions (Atari; 0 disables)."""
    sticky_action_prob: float = 0.0
    """Probability of repeating the previous action (the 100k protocol wants 0)."""
    obs_size: int = 96
    """Atari frames are resized to obs_size x obs_size RGB (area interpolation)."""
    frame_stack: int = 4
    """Number of past frames stacked into the model input."""
    clip_rewards: bool = True
    """Training rewards are clipped to their sign (raw scores are kept for reporting)."""
    episode_life: bool = True
    """A lost life is a terminal for training (Atari); never in evaluation."""
    max_episode_steps: int = 3000
    """Training cap in agent steps over the whole game; reaching it is a truncation."""
    eval_max_episode_steps: int = 27000
    """Evaluation cap in agent steps (27,000 = 108k frames)."""

    def check(self) -> None:
        _require(self.family in ("auto", "atari", "minatar", "classic"), "env.family",
                 f"must be auto, atari, minatar or classic, got {self.family!r}")
        _require(self.frame_skip >= 1, "env.frame_skip", "must be >= 1")
        _require(self.noop_max >= 0, "env.noop_max", "must be >= 0")
        _require(0.0 <= self.sticky_action_prob < 1.0, "env.sticky_action_prob", "must be in [0, 1)")
        _require(8 <= self.obs_size <= 512, "env.obs_size", "must be in [8, 512]")
        _require(self.frame_stack >= 1, "env.frame_stack", "must be >= 1")
        _require(self.max_episode_steps >= 1, "env.max_episode_steps", "must be >= 1")
        _require(self.eval_max_episode_steps >= 1, "env.eval_max_episode_steps", "must be >= 1")


@dataclass
class SearchConfig:
    num_simulations: int = 50
    """Simulations per search (S); also the capacity of a tree object."""
    discount: float = ATARI_DISCOUNT
    """gamma per agent step (Atari: 0.997^4)."""
    c_init: float = 1.25
    """pUCT exploration constant c1."""
    c_base: float = 19652.0
    """pUCT exploration constant c2."""
    value_delta_max: float = 0.01
    """Floor of the min-max normalisation range."""
    lstm_horizon: int = 5
    """Value-prefix LSTM state is reset every H depths (H)."""
    root_noise_fraction: float = 0.25
    """Dirichlet noise weight at the root in self-play and reanalysis (0 in evaluation); pUCT mode
    only (Gumbel mode explores with its Gumbel draws)."""
    dirichlet_alpha: float = 0.3
    """Dirichlet concentration of the root noise (pUCT mode only)."""
    num_threads: int = 1
    """Threads over roots inside one select()/backup() (results do not depend on it)."""
    mode: str = "pucb"
    """'pucb': EfficientZero V1's search (visit-count policy targets, acting by temperature);
    'gumbel': Gumbel MuZero's as in EfficientZero V2 (shared/SPEC_GUMBEL.md: sequential halving
    at the root, improved-policy targets, the search picks the action; no Dirichlet noise)."""
    gumbel_max_considered: int = 0
    """Gumbel mode: actions considered at the root (m_max); 0 = EfficientZero V2's rule
    (2 if A < 4, 4 if A < 16, else 8)."""
    gumbel_c_visit: float = 50.0
    """Gumbel mode: c_visit of sigma(q) = (c_visit + max N) * c_scale * q."""
    gumbel_c_scale: float = 0.1
    """Gumbel mode: c_scale of sigma(q)."""
    gumbel_scale: float = 1.0
    """Gumbel mode: scale of the Gumbel(0, 1) noise drawn for self-play and reanalysis roots
    (evaluation always passes zero noise)."""

    def check(self) -> None:
        _require(self.mode in ("pucb", "gumbel"), "search.mode", f"must be pucb or gumbel, got {self.mode!r}")
        _require(self.gumbel_max_considered >= 0, "search.gumbel_max_considered", "must be >= 0 (0 = EZ-V2's rule)")
        _require(self.gumbel_c_visit >= 0.0, "search.gumbel_c_visit", "must be >= 0")
        _require(self.gumbel_c_scale >= 0.0, "search.gumbel_c_scale", "must be >= 0")
        _require(0.0 <= self.gumbel_scale <= 10.0, "search.gumbel_scale", "must be in [0, 10]")
        _require(1 <= self.num_simulations <= 100_000, "search.num_simulations", "must be in [1, 100000]")
        _require(0.0 < self.discount <= 1.0, "search.discount", "must be in (0, 1]")
        _require(self.c_init > 0.0, "search.c_init", "must be > 0")
        _require(self.c_base > 0.0, "search.c_base", "must be > 0")
        _require(self.value_delta_max > 0.0, "search.value_delta_max", "must be > 0")
        _require(self.lstm_horizon >= 1, "search.lstm_horizon", "must be >= 1")
        _require(0.0 <= self.root_noise_fraction <= 1.0, "search.root_noise_fraction", "must be in [0, 1]")
        _require(0.0 < self.dirichlet_alpha <= 1000.0, "search.dirichlet_alpha", "must be in (0, 1000]")
        _require(1 <= self.num_threads <= 256, "search.num_threads", "must be in [1, 256]")


VALUE_READOUTS = ("transformed_mean", "value_mean")
"""model.value_readout's choices (learner/support.py): h_inv(sum p_i * bin_i), the reference's;
sum p_i * h_inv(bin_i)."""


@dataclass
class ModelConfig:
    kind: str = "auto"
    """'resnet' (Atari sizes), 'conv' (small, MinAtar), 'mlp' (vector observations) or 'auto'."""
    channels: int = 64
    """Latent channels of the conv models."""
    num_blocks: int = 1
    """Residual blocks in representation, dynamics and prediction trunks."""
    reduced_channels: int = 16
    """Channels of the 1x1 convs in front of the value, policy and value-prefix heads."""
    head_hidden: tuple[int, ...] = (32,)
    """Hidden sizes of the value, policy and value-prefix MLPs."""
    lstm_hidden: int = 512
    """Hidden size of the value-prefix LSTM."""
    latent_dim: int = 128
    """Latent width of the MLP model (vector observations)."""
    mlp_hidden: tuple[int, ...] = (128, 128)
    """Hidden sizes of the MLP representation and dynamics networks."""
    support_size: int = 300
    """Value and value-prefix supports span [-support_size, support_size] in h-space."""
    value_readout: str = "transformed_mean"
    """How a predicted distribution over the support becomes a scalar (search, bootstrap values):
    'transformed_mean' = h_inv(mean bin), the reference's; 'value_mean' = mean of h_inv(bin).
    Where one state's targets spread (old and new policies' returns in one replay), the first
    sits below their mean because h_inv is convex, and a bootstrap that reads it passes the
    shortfall on to every target behind it. docs/learning.md#value-readout."""
    proj_hidden: int = 1024
    """SimSiam projection hidden width."""
    proj_out: int = 1024
    """SimSiam projection output width."""
    pred_hidden: int = 512
    """SimSiam predictor hidden width."""
    bn_momentum: float = 0.1
    """BatchNorm momentum (PyTorch convention)."""
    latent_norm: str = "auto"
    """'minmax' scales every latent (representation and dynamics outputs) to [0, 1] per sample,
    'none' leaves it; 'auto' = minmax for vector latents (mlp), none for image latents (the
    reference's Atari setting). Each dynamics step adds a residual, so an unscaled latent grows
    with unroll depth and the prediction BatchNorms' running statistics, averaged over depths,
    can misfit the roots that every eval-mode call reads. Measured with the consistency targets
    through the whole initial inference (which feeds those statistics root latents): CartPole
    (mlp) still needs scaling (eval-mode errors on the lowest-return states 55-64 vs 23-29 in
    train mode; the policy drifted off the track), MinAtar (conv) does not (eval 1.22 vs train
    1.23 mean root value; final return 5.28 unscaled vs 4.47 scaled). docs/learning.md."""

    head_activation: str = "relu"
    """Activation of the hidden layers of the value, policy and value-prefix MLPs: 'relu' (EZ-V1)
    or 'elu' (EZ-V2)."""
    action_embedding: bool = False
    """Image dynamics: embed the action plane a / A with a 1x1 conv to 16 channels, LayerNorm and
    ReLU before it joins the latent (EZ-V2); off: the raw plane joins it (EZ-V1). Vector
    dynamics always take a one-hot action."""

    def check(self) -> None:
        _require(self.head_activation in ("relu", "elu"), "model.head_activation",
                 f"must be relu or elu, got {self.head_activation!r}")
        _require(self.kind in ("auto", "resnet", "conv", "mlp"), "model.kind",
                 f"must be auto, resnet, conv or mlp, got {self.kind!r}")
        for name in ("channels", "num_blocks", "reduced_channels", "lstm_hidden", "latent_dim",
                     "support_size", "proj_hidden", "proj_out", "pred_hidden"):
            _require(getattr(self, name) >= 1, f"model.{name}", "must be >= 1")
        _require(all(h >= 1 for h in self.head_hidden), "model.head_hidden", "sizes must be >= 1")
        _require(all(h >= 1 for h in self.mlp_hidden), "model.mlp_hidden", "sizes must be >= 1")
        _require(0.0 < self.bn_momentum <= 1.0, "model.bn_momentum", "must be in (0, 1]")
        _require(self.latent_norm in ("auto", "minmax", "none"), "model.latent_norm",
                 f"must be auto, minmax or none, got {self.latent_norm!r}")
        _require(self.value_readout in VALUE_READOUTS, "model.value_readout",
                 f"must be {' or '.join(VALUE_READOUTS)}, got {self.value_readout!r}")


@dataclass
class ReplayConfig:
    capacity: int = 100_000
    """Transitions held in the shared-memory hot tier (a ring; the oldest are evicted)."""
    unroll_steps: int = 5
    """K: dynamics steps unrolled per sample."""
    td_steps: int = 5
    """Maximum TD depth of the value target."""
    td_age_unit: int = 30_000
    """Off-policy correction: td = clip(td_steps - age // td_age_unit, 1, td_steps)."""
    discount: float = ATARI_DISCOUNT
    """gamma per agent step for n-step value targets."""
    lstm_horizon: int = 5
    """Value-prefix targets restart every H unroll steps."""
    priority_alpha: float = 0.6
    """P(i) proportional to p_i^alpha."""
    priority_beta_start: float = 0.4
    """Importance-sampling exponent at training step 0."""
    priority_beta_steps: int = 120_000
    """beta reaches 1 at this training step."""
    priority_eps: float = 1e-6
    """Added to |v - z| for new priorities."""
    priority_weight_min: float = 0.0
    """Importance weights are clipped to [this, 1] after max-normalisation (EZ-V2: 0.1; 0: no clip)."""
    value_target: str = "td"
    """'td': n-step TD with the off-policy depth correction (EZ-V1). 'mixed' (EZ-V2): n-step TD
    at full depth for the freshest data, and the reanalysis search's root value for older data
    from training step mixed_start_step on (needs runtime.reanalyse_fraction = 1)."""
    mixed_start_step: int = 30_000
    """'mixed' value target: training step from which older data uses search values."""
    mixed_fresh_transitions: int = 5_000
    """'mixed' value target: the latest this many collected transitions keep the TD target."""
    segment_length: int = 64
    """Frames per zarr chunk (the durable store appends whole segments)."""
    zstd_level: int = 3
    """zstd compression level of the zarr store of record."""

    def check(self) -> None:
        _require(self.capacity >= 16, "replay.capacity", "must be >= 16")
        _require(self.unroll_steps >= 1, "replay.unroll_steps", "must be >= 1")
        _require(self.td_steps >= 1, "replay.td_steps", "must be >= 1")
        _require(self.td_age_unit >= 1, "replay.td_age_unit", "must be >= 1")
        _require(0.0 < self.discount <= 1.0, "replay.discount", "must be in (0, 1]")
        _require(self.lstm_horizon >= 1, "replay.lstm_horizon", "must be >= 1")
        _require(0.0 <= self.priority_alpha <= 1.0, "replay.priority_alpha", "must be in [0, 1]")
        _require(0.0 <= self.priority_beta_start <= 1.0, "replay.priority_beta_start", "must be in [0, 1]")
        _require(self.priority_beta_steps >= 1, "replay.priority_beta_steps", "must be >= 1")
        _require(0.0 < self.priority_eps <= 1.0, "replay.priority_eps", "must be in (0, 1]")
        _require(0.0 <= self.priority_weight_min <= 1.0, "replay.priority_weight_min", "must be in [0, 1]")
        _require(self.value_target in ("td", "mixed"), "replay.value_target",
                 f"must be td or mixed, got {self.value_target!r}")
        _require(self.mixed_start_step >= 0, "replay.mixed_start_step", "must be >= 0")
        _require(self.mixed_fresh_transitions >= 0, "replay.mixed_fresh_transitions", "must be >= 0")
        _require(self.segment_length >= 1, "replay.segment_length", "must be >= 1")
        _require(0 <= self.zstd_level <= 22, "replay.zstd_level", "must be in [0, 22]")


@dataclass
class LearnerConfig:
    batch_size: int = 256
    """Samples per training step (B)."""
    unroll_steps: int = 5
    """K: dynamics steps unrolled in the loss."""
    lstm_horizon: int = 5
    """H: the LSTM state is zeroed after depths that are multiples of H."""
    lr_init: float = 0.2
    """Peak learning rate (after warm-up)."""
    lr_warmup_steps: int = 1000
    """Linear warm-up length in training steps."""
    lr_decay_rate: float = 0.1
    """Step decay factor."""
    lr_decay_steps: int = 100_000
    """Decay by lr_decay_rate every this many steps after warm-up."""
    optimizer: str = "sgd"
    """'sgd' (momentum, the reference's) or 'adam'; both with L2 weight decay."""
    momentum: float = 0.9
    """SGD momentum."""
    weight_decay: float = 1e-4
    """SGD weight decay."""
    grad_clip: float = 5.0
    """Global gradient-norm clip."""
    value_loss_coeff: float = 0.25
    """Weight of the value cross-entropy."""
    policy_loss_coeff: float = 1.0
    """Weight of the policy cross-entropy."""
    value_prefix_loss_coeff: float = 1.0
    """Weight of the value-prefix cross-entropy."""
    consistency_coeff: float = 2.0
    """Weight of the negative cosine consistency term."""
    augment: bool = True
    """Random shift + intensity augmentation of image inputs."""
    prediction_heads: str = "per_position"
    """How the update runs the value and policy heads over the unroll: 'per_position' (the
    reference's: once per position, and once more on each consistency target's root, each
    train-mode call normalising with one position's batch statistics) or 'joint' (once over all
    K + 1 positions, the consistency targets without them, so train-mode statistics are those
    the running statistics average). Joint fixes an eval/train mismatch with depth but, measured
    over seeds, helps MinAtar and costs CartPole (docs/deviations.md#prediction-batchnorm)."""
    amp: str = "auto"
    """Mixed precision of the update on CUDA: 'auto' = 'fp16' (autocast + GradScaler, as the
    reference trains), 'bf16' (autocast, no scaler), or 'off'. On a CPU only 'bf16' autocasts
    (on one with AVX512-BF16 a MinAtar-size conv update is ~1.3x faster); the others train in
    fp32 there."""
    target_update_interval: int = 200
    """Target weights at step s are the online weights of step max(0, I*(s//I - 1))."""
    publish_interval: int = 100
    """Online weights are published to self-play every this many training steps."""
    prefetch_depth: int = 2
    """D >= 1: batch s is built from the replay as it stood after update s - D."""
    queue_size: int = 4
    """Bound of the TrainingBatch queue feeding the learner thread."""
    isolation: str = "thread"
    """Where the learner runs: 'thread' (beside the event loop, the design's), 'process' (a child
    process; CPU runs only) or 'auto' (a process on a CPU, a thread on a GPU). On a CPU every
    torch op re-takes the GIL, so a thread updates only while the loop and the inference threads
    run no Python; a process updates beside them (docs/learning.md)."""
    compile: str = "off"
    """torch.compile the loss (forward and backward; inductor): 'off', 'on', or 'auto' (on where
    the learner runs in its own process, i.e. a CPU run; off for a learner thread). On a CPU a
    CartPole-size update runs 1.3-1.5x faster; a MinAtar-size conv update hardly (1.02-1.07x;
    docs/tuning.md#compiled-loss). The learner process compiles before its first update (about
    1.5 min on a 2-core machine the first time, seconds once torch's cache under
    /tmp/torchinductor_<user> holds it) and a stop cuts that short; an update in progress then
    finishes instead of being dropped. 'on' with a learner thread is refused: the thread could
    not give up on a compile when the run stops."""
    zero_copy: bool = True
    """On CUDA, reanalysis gathers each batch's observation window (64 MB at Atari 100k scale)
    straight into pinned host memory and the learner copies it to the device from there, without
    the staging memcpy. Ignored on CPU (batches are wrapped in place there anyway)."""

    def check(self) -> None:
        _require(1 <= self.batch_size <= 65_536, "learner.batch_size", "must be in [1, 65536]")
        _require(self.unroll_steps >= 1, "learner.unroll_steps", "must be >= 1")
        _require(self.lstm_horizon >= 1, "learner.lstm_horizon", "must be >= 1")
        _require(0.0 < self.lr_init <= 10.0, "learner.lr_init", "must be in (0, 10]")
        _require(self.lr_warmup_steps >= 0, "learner.lr_warmup_steps", "must be >= 0")
        _require(0.0 < self.lr_decay_rate <= 1.0, "learner.lr_decay_rate", "must be in (0, 1]")
        _require(self.lr_decay_steps >= 1, "learner.lr_decay_steps", "must be >= 1")
        _require(self.prediction_heads in ("per_position", "joint"), "learner.prediction_heads",
                 f"must be per_position or joint, got {self.prediction_heads!r}")
        _require(self.optimizer in ("sgd", "adam"), "learner.optimizer",
                 f"must be sgd or adam, got {self.optimizer!r}")
        _require(0.0 <= self.momentum < 1.0, "learner.momentum", "must be in [0, 1)")
        _require(0.0 <= self.weight_decay <= 1.0, "learner.weight_decay", "must be in [0, 1]")
        for name in ("value_loss_coeff", "policy_loss_coeff", "value_prefix_loss_coeff", "consistency_coeff"):
            _require(0.0 <= getattr(self, name) <= 1000.0, f"learner.{name}", "must be in [0, 1000]")
        _require(self.grad_clip > 0.0, "learner.grad_clip", "must be > 0")
        _require(self.amp in ("auto", "bf16", "fp16", "off"), "learner.amp",
                 f"must be auto, bf16, fp16 or off, got {self.amp!r}")
        _require(self.target_update_interval >= 1, "learner.target_update_interval", "must be >= 1")
        _require(self.publish_interval >= 1, "learner.publish_interval", "must be >= 1")
        _require(self.prefetch_depth >= 1, "learner.prefetch_depth",
                 "must be >= 1 (batch s is built from the priorities after update s - D)")
        _require(self.queue_size >= 1, "learner.queue_size", "must be >= 1")
        _require(self.isolation in ("thread", "process", "auto"), "learner.isolation",
                 f"must be thread, process or auto, got {self.isolation!r}")
        _require(self.compile in ("off", "on", "auto"), "learner.compile",
                 f"must be off, on or auto, got {self.compile!r}")


@dataclass
class BatcherConfig:
    max_batch: int = 256
    """Largest device batch of recurrent (search) inferences."""
    max_wait_ms: float = 2.0
    """A partial batch is sent after waiting this long for more requests."""
    initial_chunk: int = 32
    """Initial (representation) inferences run in chunks of at most this size (CPU peaks at 8-32)."""
    searches_in_flight: int = 2
    """Search groups run at once, one per inference thread (one group's tree work overlaps another's network calls)."""
    amp: str = "off"
    """Precision of every inference call (self-play and reanalysis searches, bootstrap values,
    evaluation): 'off' = fp32 (TF32 on CUDA with runtime.tf32), 'bf16' = bf16 autocast
    (convolutions and matmuls in bf16, outputs read back as fp32). On a CPU with AVX512-BF16 the
    16-channel MinAtar convolutions run ~3x faster. Not with cuda_graphs (captured in fp32)."""
    amp_min_rows: int = 64
    """With batcher.amp, calls of fewer rows (small self-play groups) run in fp32: on a CPU a
    bf16 recurrent step costs ~4 ms more per call than fp32 whatever its size, and is faster
    only from about 64 rows (tools/bench_fastpath.py)."""
    cuda_graphs: bool = False
    """On CUDA, each group's initial inference and recurrent steps replay CUDA graphs captured at
    padded group sizes (powers of two from 8, and max_batch) instead of launching every kernel
    from Python; new weight versions are copied in, never recaptured. Ignored on CPU. Off until a
    GPU measurement (tools/bench_fastpath.py in the device check) shows the gain."""
    compile: str = "off"
    """On a CPU, each group's initial inference and recurrent steps run the CUDA-graph path's
    static-shape calls (same padded sizes and pools) through torch.compile: 'off', 'on' (CPU
    only), or 'auto' (on a CPU, off on a GPU, where cuda_graphs is the fast path). A CartPole
    search of 25 simulations runs 1.5-2x faster (docs/tuning.md#compiled-inference); each padded
    size compiles when a group first needs it (seconds each once torch's cache holds them)."""

    def check(self) -> None:
        _require(1 <= self.max_batch <= 65_536, "batcher.max_batch", "must be in [1, 65536]")
        _require(self.amp in ("off", "bf16"), "batcher.amp", f"must be off or bf16, got {self.amp!r}")
        _require(self.amp_min_rows >= 0, "batcher.amp_min_rows", "must be >= 0")
        _require(not (self.cuda_graphs and self.amp != "off"), "batcher.amp",
                 "bf16 inference does not combine with batcher.cuda_graphs (graphs are captured in fp32): "
                 "turn one of them off")
        _require(self.compile in ("off", "on", "auto"), "batcher.compile",
                 f"must be off, on or auto, got {self.compile!r}")
        _require(not (self.compile != "off" and self.amp != "off"), "batcher.amp",
                 "bf16 inference does not combine with batcher.compile (compiled in fp32): turn one of them off")
        _require(0.0 <= self.max_wait_ms <= 10_000.0, "batcher.max_wait_ms", "must be in [0, 10000]")
        _require(self.initial_chunk >= 1, "batcher.initial_chunk", "must be >= 1")
        _require(1 <= self.searches_in_flight <= 64, "batcher.searches_in_flight", "must be in [1, 64]")


@dataclass
class RuntimeConfig:
    env_steps: int = 100_000
    """Transitions collected in the whole run (the collection phase)."""
    start_transitions: int = 2_000
    """Transitions collected by the uniform random policy before training starts."""
    train_steps_per_env_step: float = 1.0
    """Updates per collected transition (the replay ratio): an integer k >= 1, or 1/k (one update
    per k transitions, e.g. 0.25); the warm-up trains ceil(start_transitions * ratio) steps."""
    tail_train_steps: int = 20_000
    """Extra training steps after the last transition (no new data)."""
    num_envs: int = 1
    """Self-play env coroutines."""
    reanalyse_workers: int = 2
    """Reanalysis coroutines building TrainingBatch objects."""
    reanalyse_fraction: float = 0.99
    """Fraction of each batch whose policy targets come from a fresh search (with the batch's
    target weights; see reanalyse_mode); the other rows keep the stored self-play policies."""
    reanalyse_mode: str = "batch"
    """'batch': each batch searches its reanalysed rows' K + 1 positions itself (the spec: ~1,500
    roots per update). 'sweep': every stored transition is searched once per target-weight
    version, while the version before it is the target, and batches read those results (the
    same network's search: MuZero Reanalyse's refresh of stored targets; 5-20x fewer roots at
    Atari 100k and CartPole scale). Transitions collected after the sweep began keep their
    self-play policies; the root noise is drawn once per transition and version."""
    reanalyse_start_step: int = 0
    """Training step from which reanalysed rows take fresh policy targets; earlier batches train on
    the stored self-play policies only. Early, the values are uninformative and a fresh search
    returns the prior sharpened: refreshed for every stored transition each target version, the
    policy can fit its own sharpening until it plays one action everywhere
    (docs/learning.md#sweep-lock-in).
    0: from the first batch (the spec)."""
    self_play_lag: int = 100
    """D_sp: self-play at collection index n acts with weights of version 100*((n - D_sp)//100)."""
    temperature_steps: tuple[int, ...] = (50_000, 75_000)
    """Training steps at which the acting temperature drops (pUCT mode; Gumbel self-play plays
    the search's own action)."""
    temperatures: tuple[float, ...] = (1.0, 0.5, 0.25)
    """Acting temperatures before, between and after temperature_steps (pUCT mode only)."""
    eval_interval: int = 10_000
    """Periodic evaluation every this many training steps (and at step 0); 0 disables."""
    eval_episodes: int = 32
    """Episodes of each periodic evaluation."""
    final_eval_episodes: int = 32
    """Episodes of the final evaluation (the figure a run reports; at least 32 for a learning
    result, as in the publications)."""
    periodic_eval_max_steps: int = 3_000
    """Step cap of periodic evaluation episodes."""
    stall_timeout: float = 300.0
    """Seconds without progress after which a stage is reported by name and the run stops."""
    serial: bool = False
    """Run every component on one thread, one request at a time (bit-deterministic)."""
    seed: int = 0
    """Seed of every random stream of the run."""
    device: str = "auto"
    """'auto', 'cpu' or 'cuda'."""
    tf32: bool = True
    """On CUDA, fp32 matmuls and convolutions (learner and inference) run on TF32 tensor cores:
    10-bit mantissa products, fp32 sums. Ignored on CPU."""
    channels_last: bool = True
    """On CUDA, image networks keep weights and activations channels-last (NHWC), the layout of
    tensor-core convolutions. Ignored on CPU and for vector networks."""

    def check(self) -> None:
        _require(self.env_steps >= 1, "runtime.env_steps", "must be >= 1")
        _require(self.start_transitions >= 1, "runtime.start_transitions", "must be >= 1")
        r = self.train_steps_per_env_step
        _require(r > 0 and (float(r).is_integer() or (1.0 / r).is_integer()), "runtime.train_steps_per_env_step",
                 f"must be an integer k >= 1 or 1/k (e.g. 2, 1, 0.5, 0.25), got {r}")
        _require(self.tail_train_steps >= 0, "runtime.tail_train_steps", "must be >= 0")
        _require(1 <= self.num_envs <= 4096, "runtime.num_envs", "must be in [1, 4096]")
        _require(self.reanalyse_workers >= 1, "runtime.reanalyse_workers", "must be >= 1")
        _require(0.0 <= self.reanalyse_fraction <= 1.0, "runtime.reanalyse_fraction", "must be in [0, 1]")
        _require(self.reanalyse_mode in ("batch", "sweep"), "runtime.reanalyse_mode",
                 f"must be batch or sweep, got {self.reanalyse_mode!r}")
        _require(self.reanalyse_start_step >= 0, "runtime.reanalyse_start_step", "must be >= 0")
        _require(self.self_play_lag >= 0, "runtime.self_play_lag", "must be >= 0")
        _require(len(self.temperatures) == len(self.temperature_steps) + 1, "runtime.temperatures",
                 "needs exactly one more entry than runtime.temperature_steps")
        _require(all(t > 0.0 for t in self.temperatures), "runtime.temperatures", "must be > 0")
        _require(list(self.temperature_steps) == sorted(self.temperature_steps), "runtime.temperature_steps",
                 "must be increasing")
        _require(self.eval_interval >= 0, "runtime.eval_interval", "must be >= 0")
        _require(self.eval_episodes >= 0, "runtime.eval_episodes", "must be >= 0")
        _require(self.final_eval_episodes >= 1, "runtime.final_eval_episodes", "must be >= 1")
        _require(self.periodic_eval_max_steps >= 1, "runtime.periodic_eval_max_steps", "must be >= 1")
        _require(self.stall_timeout > 0.0, "runtime.stall_timeout", "must be > 0")
        _require(self.seed >= 0, "runtime.seed", "must be >= 0")
        _require(self.device in ("auto", "cpu", "cuda"), "runtime.device",
                 f"must be auto, cpu or cuda, got {self.device!r}")


@dataclass
class TrackingConfig:
    aim: bool = True
    """Track the run in Aim."""
    aim_repo: str = ""
    """Aim repository; empty = the run directory's parent, so runs compare side by side."""
    log_interval_s: float = 5.0
    """Seconds between metric flushes to the tracker (Aim costs ~130 us per scalar)."""
    checkpoint_interval: int = 5_000
    """Training steps between checkpoints (one is also written at exit)."""
    keep_checkpoints: int = 3
    """Checkpoints kept on disk (oldest removed first)."""
    progress: str = "auto"
    """Progress lines: 'auto' (a live line when stderr is a terminal, else a plain line to stdout
    every progress_interval_s), 'plain' (plain lines even on a terminal) or 'off' (evaluation
    results only)."""
    progress_interval_s: float = 60.0
    """Seconds between plain progress lines (logs without a terminal: nohup, batch jobs)."""

    def check(self) -> None:
        _require(self.log_interval_s > 0.0, "tracking.log_interval_s", "must be > 0")
        _require(self.checkpoint_interval >= 1, "tracking.checkpoint_interval", "must be >= 1")
        _require(self.keep_checkpoints >= 1, "tracking.keep_checkpoints", "must be >= 1")
        _require(self.progress in ("auto", "plain", "off"), "tracking.progress",
                 f"must be auto, plain or off, got {self.progress!r}")
        _require(self.progress_interval_s > 0.0, "tracking.progress_interval_s", "must be > 0")


SECTIONS: dict[str, type] = {
    "env": EnvConfig,
    "model": ModelConfig,
    "search": SearchConfig,
    "replay": ReplayConfig,
    "learner": LearnerConfig,
    "batcher": BatcherConfig,
    "runtime": RuntimeConfig,
    "tracking": TrackingConfig,
}


@dataclass
class RunConfig:
    """A whole run: one section per component, plus the preset it was built from."""

    preset: str = "atari100k"
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    batcher: BatcherConfig = field(default_factory=BatcherConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def check(self) -> None:
        """Check every section, then the values that several sections must agree on. Every
        float must be finite first: an inf or nan passes most range checks and then breaks the
        first update (or the first search)."""
        for name in SECTIONS:
            section = getattr(self, name)
            for f in fields(section):
                value = getattr(section, f.name)
                values = value if isinstance(value, tuple) else (value,)
                if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                    raise ConfigError(f"{name}.{f.name}: must be a finite number, got {value!r}")
            section.check()
        same = [
            ("search.discount", self.search.discount, "replay.discount", self.replay.discount),
            ("search.lstm_horizon", self.search.lstm_horizon, "learner.lstm_horizon", self.learner.lstm_horizon),
            ("replay.lstm_horizon", self.replay.lstm_horizon, "learner.lstm_horizon", self.learner.lstm_horizon),
            ("replay.unroll_steps", self.replay.unroll_steps, "learner.unroll_steps", self.learner.unroll_steps),
        ]
        for a, va, b, vb in same:
            _require(va == vb, a, f"must equal {b} ({va} != {vb})")
        _require(self.runtime.start_transitions <= self.runtime.env_steps, "runtime.start_transitions",
                 f"must be <= runtime.env_steps ({self.runtime.env_steps})")
        _require(self.replay.value_target != "mixed" or self.runtime.reanalyse_fraction == 1.0,
                 "replay.value_target", "'mixed' needs runtime.reanalyse_fraction = 1 (older samples' value "
                 f"targets come from fresh searches), got {self.runtime.reanalyse_fraction}")
        _require(self.replay.value_target != "mixed"
                 or self.replay.mixed_start_step >= self.runtime.reanalyse_start_step, "replay.mixed_start_step",
                 f"must be >= runtime.reanalyse_start_step ({self.runtime.reanalyse_start_step}): search value "
                 f"targets come from the fresh searches, got {self.replay.mixed_start_step}")
        _require(self.replay.capacity >= self.learner.batch_size, "replay.capacity",
                 f"must be >= learner.batch_size ({self.learner.batch_size})")
