"""The training config: every key with its default, and its conversion to typed arguments.

Presets in `configs/*.py` start from `get_config()` and change what they need; on the
command line `--config=configs/demo_32.py --config.total_kimg=100` overrides any key.
Keys keep the reference's names and units (kimg = thousands of real images shown). The
config stops at the entry point: `architecture()`, `schedule()` and `trainer_options()`
turn it into the typed arguments the library takes (image counts as integers), and
`validate()` checks what only the combination of keys can get wrong.

This module and the typed arguments' module (`progan_tf.options`) do not import TensorFlow:
configs/*.py import it before a command has set TensorFlow's log level.
"""

from __future__ import annotations

import dataclasses
import math
import json

import ml_collections
from ml_collections import config_dict

from progan_tf.options import Architecture, StepOptions, TrainerOptions
from progan_tf.schedule import (
    AUTO_PRESET,
    LEARNING_RATE_PRESETS,
    MAX_PER_REPLICA,
    MINIBATCH_PRESETS,
    Schedule,
    kimg_to_images,
    preset_for_replicas,
)


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Data and run.
    c.data_dir = ""  # dataset directory (tools/dataset_tool.py); "" = the bundled demo emoji
    c.run_dir = ""  # run directory; "" = runs/<dataset>-<resolution>; resumed if it has checkpoints
    c.resolution = 0  # final resolution; 0 = the dataset's; lower trains on its lower levels
    c.seed = 0
    c.mirror_augment = False  # random horizontal flips (on for CelebA, CelebA-HQ, LSUN)
    # Use the dataset's labels: one-hot into G, AC-GAN head on D. Unset (None): if it has labels.
    c.conditional = config_dict.placeholder(bool)
    # Networks (Table 2).
    c.latent_size = 512
    c.fmap_base = 8192  # feature maps at 2**r: min(fmap_base // 2**(r-1), fmap_max)
    c.fmap_max = 512
    c.mbstd_group_size = 4  # minibatch stddev group; <= 1 = off (Table 1 before row e)
    # The paper's other switches (Table 1, docs/paper_table1.md); the defaults are its method.
    c.progressive = True  # False: G and D at the final resolution from the first image (rows a, b)
    # False: He-initialised weights, no run-time scale (release: use_wscale; row f)
    c.equalized_lr = True
    # False: no pixelwise feature normalisation in G (release: use_pixelnorm; row g)
    c.pixel_norm = True
    # "batch_layer": batch norm in G, layer norm in D, the WGAN-GP baseline (rows a-c)
    c.normalization = "none"
    # False: ReLU in G instead of leaky ReLU (release: G's use_leakyrelu, its -noleakyrelu preset)
    c.g_leaky_relu = True
    # False: z into G as drawn, not pixel-normalised first (release: normalize_latents)
    c.normalize_latents = True
    # True: tanh on G's output instead of linear, the WGAN-GP baseline's (rows a-c)
    c.g_tanh = False
    # Schedule (images in thousands).
    c.lod_initial_resolution = 4
    c.lod_training_kimg = 600.0  # stable phase of each resolution
    c.lod_transition_kimg = 600.0  # fade-in phase of each resolution after 4x4
    c.total_kimg = 12000.0
    # Global batch and learning rate per resolution (reference §4): auto (the release's preset
    # for the replica count: 1gpu, 2gpu, 4gpu or 8gpu), one of those by name, paper, or "" for
    # minibatch_dict only. Global batches: the per-replica batch is the global one / replicas.
    c.minibatch_preset = "auto"
    c.minibatch_dict = ml_collections.ConfigDict()  # {"4": 64, ...}: overrides the preset
    c.minibatch_default = 16  # resolutions in neither
    # {"1024": 4}; default: the reference's caps
    c.max_minibatch_per_replica = ml_collections.ConfigDict()
    c.learning_rate = 0.001
    c.lrate_dict = ml_collections.ConfigDict()  # {"1024": 0.0015}: overrides the preset's
    # Loss and optimiser.
    c.loss = "wgan_gp"  # wgan_gp (paper) or logistic_r1
    # penalty's norm at the final resolution R (x s/R at stage s), or "native"
    c.gp_scale = "official"
    c.gp_weight = 10.0  # WGAN-GP lambda
    c.drift_weight = 0.001  # epsilon_drift
    c.r1_gamma = 10.0  # logistic_r1 only
    # The penalty (GP or R1) on every gp_interval-th D step only, weighted x gp_interval, and
    # D's pass over its images skipped on the others: StyleGAN2's lazy regularization (Karras
    # et al. 2020, section 3.1). 1 = every step, the paper.
    c.gp_interval = 1
    # D updates per G update, each on its own minibatch (release: D_repeats; WGAN-GP's n_critic)
    c.d_repeats = 1
    c.optimizer = "adam"  # adam or rmsprop
    c.adam_beta1 = 0.0
    c.adam_beta2 = 0.99
    c.adam_epsilon = 1e-8
    c.ema_beta = 0.999  # G_smoothing: G_ema = lerp(G, G_ema, ema_beta) after every step
    c.max_nonfinite_steps = 100  # this many skipped steps in a row stop the run
    # DiffAugment ops on all D inputs: e.g. "color,translation,cutout"; "" = off
    c.augment_policy = ""
    c.augment_probability = 1.0  # chance of each augmentation op per image
    # Conditional runs: the classes G draws are the reals' of each batch ("data", official) or
    # every class equally often ("uniform"; BigGAN's sampling), which trains rare classes more.
    c.fake_labels = "data"
    # Conditional runs: weight of the AC-GAN label cross-entropy in D's and G's loss (the
    # release's cond_weight, 1); larger makes G follow the class more at some cost in variety.
    c.label_weight = 1.0
    # Conditional runs: > 0 weights G's label cross-entropy by this instead, D's staying
    # label_weight (G pushed to follow the class without D spending more on classifying).
    c.g_label_weight = 0.0
    # ... in the phases up to this resolution only (0 = in all); above it G's weight is
    # label_weight again: the class set while the image is coarse, the top stages left to detail.
    c.g_label_weight_max_resolution = 0
    # Labelled data: each image of class c appears round((max n / n_c) ** class_balance) times
    # per epoch, so rare classes are seen more often: 0 = the data's frequencies (official),
    # 1 = every class about equally often. With fake_labels=data, G draws the same mix. A dataset
    # without labels has no classes to balance: there it is 0 whatever is set.
    c.class_balance = 0.0
    # Speed and scale.
    c.strategy = "auto"  # auto, mirrored, one_device, multi_worker, tpu
    c.multi_worker_start_timeout = 600.0  # seconds a worker waits for the cluster to join
    c.tpu = ""  # TPU name or address, --strategy=tpu only
    c.mixed_precision = False  # float16 activations, float32 variables, dynamic loss scaling
    c.mixed_precision_dtype = "auto"  # float16, bfloat16, or auto: bfloat16 on TPUs, else float16
    c.xla = False  # jit_compile the loss+gradient functions
    c.steps_per_call = 50  # training steps per tf.function call (fewer at phase/tick ends)
    # Stable phases below the final resolution train on their fade-in's compiled step at alpha 1
    # (as the reference's single graph does) instead of compiling their own: one compile fewer
    # per resolution, for slightly slower steps (the fade-in model's extra branch at alpha 1;
    # benchmarks/results/performance_log.md,
    # "Stable phases on the fade-in's compiled step"). For short phases.
    c.carry_fade_step = False
    # Make the next phase's step and trace and XLA-compile it in a thread while this phase trains,
    # so that a phase does not wait for its compile (docs/performance.md). Single-device and
    # mirrored strategies. For short phases on CPUs, where a compile is seconds of a phase's time.
    c.compile_ahead = False
    # The input stream shuffles blocks of records of this many MB per input pipeline (the
    # official reader's buffer is sized in MB as well): at each resolution as many records as
    # fit, so 1024x1024 holds few and small levels a whole epoch (data.shuffle_records).
    c.shuffle_mb = 1024
    c.shuffle_buffer = 0  # records per block at every resolution instead; 0 = from shuffle_mb
    c.deterministic = False  # TensorFlow op determinism: bit-identical runs on one device, slower
    # Logging, snapshots, checkpoints (kimg).
    c.tick_kimg = 10.0  # a log line, TensorBoard scalars
    c.snapshot_kimg = 50.0  # an EMA sample grid in samples/
    c.checkpoint_kimg = 100.0
    c.keep_checkpoints = 3
    c.grid_size = 64  # images in each sample grid
    c.metrics = ""  # e.g. "swd,msssim": computed at every checkpoint
    c.metrics_num_images = 1024
    # The 2015 Inception network (a TorchScript file, docs/guide.md "FID and KID"), for "fid,kid"
    c.inception = ""
    return c


def resolve_labels(c: ml_collections.ConfigDict, num_labels: int, dataset_path: str) -> None:
    """Settles the keys that follow the dataset's labels, in place: `conditional` unset becomes
    whether the dataset has labels, and `class_balance` is 0 for a dataset without them. An
    explicit `conditional=True` on a dataset without labels is a ValueError naming it."""
    if c.conditional is None:
        c.conditional = num_labels > 0
    elif c.conditional and not num_labels:
        raise ValueError(
            f"--config.conditional=True needs labels and {dataset_path} has none: convert it with "
            "labels, or leave --config.conditional unset (it follows the dataset)"
        )
    if not num_labels:
        c.class_balance = 0.0


def _int_keys(d: ml_collections.ConfigDict) -> dict[int, float]:
    return {int(k): v for k, v in d.to_dict().items()}


def _same_keys(c: ml_collections.ConfigDict, typed, **settled):
    """`typed` (a dataclass) from the config keys of its fields' names, or of `<name>_kimg` for
    its `<name>_images` fields (converted to images); `settled` gives the fields the config
    does not hold as such. The typed options' list is theirs alone: a new field needs only its
    config key (of the same name) in `get_config`."""
    values = {}
    for field in dataclasses.fields(typed):
        name = field.name
        if name in settled:
            values[name] = settled[name]
        elif name.endswith("_images") and name[: -len("_images")] + "_kimg" in c:
            values[name] = kimg_to_images(c[name[: -len("_images")] + "_kimg"])
        else:
            values[name] = c[name]  # KeyError: the config lacks a key the options take
    return typed(**values)


def architecture(
    c: ml_collections.ConfigDict, *, resolution: int, channels: int, num_labels: int
) -> Architecture:
    return _same_keys(
        c,
        Architecture,
        resolution=resolution,
        channels=channels,
        num_labels=num_labels if c.conditional else 0,
        pixelnorm_epsilon=1e-4 if c.mixed_precision else 1e-8,
        fused_scale=Architecture.fused_scale,  # imported release networks set it otherwise
    )


def resolve_preset(c: ml_collections.ConfigDict, num_replicas: int) -> None:
    """Settles `minibatch_preset` "auto" in place to the release's preset for `num_replicas`
    (as config.json then records it, so a resume on as many replicas finds the same)."""
    if c.minibatch_preset == AUTO_PRESET:
        c.minibatch_preset = preset_for_replicas(num_replicas)


def schedule(c: ml_collections.ConfigDict, *, resolution: int, num_replicas: int) -> Schedule:
    """The run's schedule on `num_replicas` replicas ("auto" presets resolved for that count);
    learning rates follow the batch preset, as in the release."""
    choices = [AUTO_PRESET, *sorted(MINIBATCH_PRESETS)]
    if c.minibatch_preset and c.minibatch_preset not in choices:
        raise ValueError(
            f'--config.minibatch_preset={c.minibatch_preset!r}; choose one of {choices} or ""'
        )
    if c.lod_initial_resolution != 4:
        raise ValueError("--config.lod_initial_resolution: only 4 is supported")
    preset = c.minibatch_preset
    if preset == AUTO_PRESET:
        preset = preset_for_replicas(num_replicas)
    minibatch = dict(MINIBATCH_PRESETS.get(preset, {}))
    minibatch.update(_int_keys(c.minibatch_dict))
    lrates = dict(LEARNING_RATE_PRESETS.get(preset, {}))
    lrates.update(_int_keys(c.lrate_dict))
    caps = (
        _int_keys(c.max_minibatch_per_replica)
        or MAX_PER_REPLICA["float16" if c.mixed_precision else "float32"]
    )
    return Schedule(
        final_resolution=resolution,
        stable_kimg=c.lod_training_kimg,
        fade_kimg=c.lod_transition_kimg,
        minibatch={k: int(v) for k, v in minibatch.items()},
        minibatch_default=c.minibatch_default,
        learning_rate=lrates,
        learning_rate_default=c.learning_rate,
        num_replicas=num_replicas,
        max_per_replica={k: int(v) for k, v in caps.items()},
        progressive=c.progressive,
    )


def precision_dtype(c: ml_collections.ConfigDict, tpu: bool = False) -> str:
    """`mixed_precision_dtype` with "auto" settled: bfloat16 on TPUs, float16 elsewhere."""
    if c.mixed_precision_dtype != "auto":
        return c.mixed_precision_dtype
    return "bfloat16" if tpu else "float16"


def trainer_options(c: ml_collections.ConfigDict) -> TrainerOptions:
    # the train CLI has settled mixed_precision_dtype per strategy; "auto" here is the default
    step = _same_keys(c, StepOptions, mixed_precision_dtype=precision_dtype(c))
    metrics = tuple(m for m in c.metrics.split(",") if m)
    return _same_keys(c, TrainerOptions, step=step, metrics=metrics)


def check_numbers(c: ml_collections.ConfigDict) -> None:
    """ValueError naming the first key whose number is not finite (inf, nan), checked before
    anything is computed from them."""
    for key, value in c.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"--config.{key}={value} is not a finite number")
    r = c.get("resolution")
    if r and (r < 4 or r > 1024 or r & (r - 1)):
        raise ValueError(f"--resolution={r}: use a power of two from 4 to 1024")


def validate(c: ml_collections.ConfigDict, schedule: Schedule) -> None:
    """ValueError naming the key, for combinations the networks or steps cannot run: image
    counts below one image, and per-replica batches that the minibatch-stddev group does not
    divide (the reference groups min(group, batch) images and needs the rest to divide)."""
    for key in ("total_kimg", "tick_kimg", "snapshot_kimg", "checkpoint_kimg"):
        if kimg_to_images(c[key]) < 1:
            raise ValueError(f"--config.{key}={c[key]} is less than one image; use at least 0.001")
    for key in ("lod_training_kimg", "lod_transition_kimg"):
        if c[key] < 0:
            raise ValueError(f"--config.{key}={c[key]} is negative; use 0 or more (the paper: 800)")
    # keep_checkpoints 2: a checkpoint that cannot be read has one to fall back to
    at_least = {
        "max_nonfinite_steps": (1, 100),
        "shuffle_buffer": (0, 4096),
        "shuffle_mb": (1, 1024),
        "steps_per_call": (1, 50),
        "grid_size": (1, 64),
        "metrics_num_images": (2, 1024),
        "keep_checkpoints": (2, 3),
    }
    for key, (lowest, example) in at_least.items():
        if c[key] < lowest:
            raise ValueError(
                f"--config.{key}={c[key]} is below {lowest}; use e.g. --config.{key}={example}"
            )
    if c.d_repeats < 1:
        raise ValueError(
            f"--config.d_repeats={c.d_repeats}; use 1 (the paper) or more (WGAN-GP's 5)"
        )
    if c.gp_interval < 1:
        raise ValueError(
            f"--config.gp_interval={c.gp_interval}; use 1 (the penalty on every D step, the "
            "paper) or more (on every k-th, weighted x k)"
        )
    if c.d_repeats > 1 and c.mixed_precision and c.mixed_precision_dtype != "bfloat16":
        raise ValueError(
            "--config.d_repeats > 1 with float16 mixed precision is not supported (the loss "
            "scaling skips steps its own way); use float32 or "
            "--config.mixed_precision_dtype=bfloat16"
        )
    if not 0 <= c.class_balance <= 1:
        raise ValueError(
            f"--config.class_balance={c.class_balance}; use 0 (the data's class frequencies) to 1 "
            "(equal)"
        )
    group = c.mbstd_group_size
    if group > 1:
        starved = []
        for resolution in _trained_resolutions(schedule):
            per_replica = schedule.global_batch_size(resolution) // schedule.num_replicas
            if per_replica < 2:
                starved.append(resolution)
                continue
            used = min(group, per_replica)
            if per_replica % used:
                works = max(g for g in range(1, used + 1) if per_replica % g == 0)
                raise ValueError(
                    f"--config.mbstd_group_size={group} does not divide the per-replica batch "
                    f"{per_replica} at "
                    f"{resolution}x{resolution}; use --config.mbstd_group_size={works} or a batch "
                    f"divisible by {used}"
                )
        if starved:
            # One image per replica: every group is that image, its stddev 0, the feature a
            # constant: minibatch stddev silently off (the release's per-GPU clamp, reference §9).
            n = schedule.num_replicas
            need = {str(r): min(group, 4) * n for r in starved}
            raise ValueError(
                f"--config.mbstd_group_size={group} needs at least 2 images per replica and "
                + ", ".join(
                    f"{r}x{r} gets 1 (global batch {schedule.global_batch_size(r)} on {n})"
                    for r in starved
                )
                + f": minibatch stddev would be a constant. Use --config.minibatch_preset=auto "
                f"({preset_for_replicas(n)} on {n} replicas), or "
                f"--config.minibatch_dict='{json.dumps(need)}', or fewer replicas, or "
                "--config.mbstd_group_size=1 (the feature off)"
            )


def _trained_resolutions(schedule: Schedule) -> list[int]:
    if not schedule.progressive:
        return [schedule.final_resolution]
    return [2**k for k in range(2, schedule.final_resolution.bit_length())]


def group_warnings(c: ml_collections.ConfigDict, schedule: Schedule) -> list[str]:
    """A warning if the per-replica batch is below `mbstd_group_size` somewhere: the release
    then uses groups of the per-replica batch (its own paper preset does at 256-1024 on one
    GPU), a noisier statistic over fewer images than asked for."""
    group = c.mbstd_group_size
    smaller = [
        (r, schedule.global_batch_size(r) // schedule.num_replicas)
        for r in _trained_resolutions(schedule)
        if 1 < schedule.global_batch_size(r) // schedule.num_replicas < group
    ]
    if group <= 1 or not smaller:
        return []
    return [
        f"--config.mbstd_group_size={group} is more than the per-replica batch at "
        + ", ".join(f"{r}x{r} ({b})" for r, b in smaller)
        + ": minibatch stddev uses groups of that batch there, as the release does"
    ]


def preset_warnings(c: ml_collections.ConfigDict, schedule: Schedule) -> list[str]:
    """Warnings for a multi-GPU preset run on fewer replicas: the per-replica caps shrink its
    global batch at high resolutions while its learning rates, tuned for the full batch, stay.
    Not rescaled (the reference tuned them by hand, not by a rule): the user is told."""
    replicas = {"2gpu": 2, "4gpu": 4, "8gpu": 8}.get(c.minibatch_preset, 1)
    if schedule.num_replicas >= replicas:
        return []
    affected = [
        f"{r}x{r}: batch {schedule.global_batch_size(r)} instead of "
        f"{MINIBATCH_PRESETS[c.minibatch_preset][r]}, "
        f"lr {schedule.lr(r)}"
        for r in sorted(LEARNING_RATE_PRESETS.get(c.minibatch_preset, {}))
        if r <= schedule.final_resolution
        and schedule.global_batch_size(r) < MINIBATCH_PRESETS[c.minibatch_preset][r]
    ]
    if not affected:
        return []
    return [
        f"--config.minibatch_preset={c.minibatch_preset} is written for {replicas} replicas and "
        "runs on "
        f"{schedule.num_replicas}: its learning rates are kept while the per-replica caps shrink "
        "the batch "
        f"({'; '.join(affected)}); lower --config.lrate_dict if training is unstable"
    ]
