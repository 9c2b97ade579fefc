"""What a run is made of, as typed values: the networks' sizes, one step's settings, the loop's.

`progan_tf.config` turns the command line's config into these; `networks`, `steps` and
`trainer` take them. Plain dataclasses that check their own values, without TensorFlow, so a
config can be built and checked before TensorFlow is imported (its log level is set first).
"""

from __future__ import annotations

import dataclasses
import math

# config name of each loss (progan_tf.losses.LOSSES holds the functions)
LOSSES = ("wgan_gp", "logistic_r1")
# DiffAugment's ops, in the order they apply (progan_tf.augment)
AUGMENT_OPS = ("color", "translation", "cutout")


def parse_augment_policy(policy: str) -> tuple[str, ...]:
    """ "color,translation,cutout" -> the op names; ValueError naming the config key otherwise."""
    names = tuple(name.strip() for name in policy.split(",") if name.strip())
    unknown = [name for name in names if name not in AUGMENT_OPS]
    if unknown:
        raise ValueError(
            f"--config.augment_policy={policy!r}: unknown {unknown}; "
            f"choose from {', '.join(AUGMENT_OPS)}"
        )
    return names


# "none": the paper's networks. "batch_layer": the WGAN-GP baseline's (Gulrajani et al. 2017) that
# Table 1 starts from, batch normalisation after every conv/dense of G and layer normalisation
# after every 3x3 conv of D and its "Conv 4x4" (the dense after the 4x4 block's conv), each before
# the activation (the paper's A.2); row (d) removes them.
NORMALIZATIONS = ("none", "batch_layer")


@dataclasses.dataclass(frozen=True)
class Architecture:
    """Sizes of a G/D pair; the defaults are the paper's (Table 2)."""

    resolution: int  # final output resolution, a power of two in 4..1024
    channels: int = 3  # 1 (grayscale) or 3 (RGB)
    num_labels: int = 0  # > 0: conditional G (one-hot labels concatenated to z), AC-GAN D head
    latent_size: int = 512
    fmap_base: int = 8192  # feature maps of a block at 2**r: min(fmap_base // 2**(r-1), fmap_max)
    fmap_max: int = 512
    mbstd_group_size: int = 4  # <= 1 turns minibatch stddev off (as officially)
    pixelnorm_epsilon: float = 1e-8  # the reference uses 1e-4 with float16 activations
    # D blocks pool before their 2nd activation (the release's default); False: after
    fused_scale: bool = True
    # The paper's switches (Table 1); the defaults are its full method.
    # False: only the final resolution's toRGB / fromRGB and stage model (rows a, b)
    progressive: bool = True
    equalized_lr: bool = True  # False: He-initialised weights, no run-time scale (row f)
    # False: no pixelwise feature normalisation in G; z is still normalised (row g)
    pixel_norm: bool = True
    # "batch_layer": batch norm in G, layer norm in D (rows a-c); "none"
    normalization: str = "none"
    # False: ReLU instead of leaky ReLU in G (the release's use_leakyrelu, its -noleakyrelu)
    g_leaky_relu: bool = True
    # False: G takes z as drawn, without pixel norm (the release's normalize_latents)
    normalize_latents: bool = True
    # True: tanh on G's output, each toRGB's (the WGAN-GP baseline, A.2); False: linear (Table 2)
    g_tanh: bool = False

    def __post_init__(self):
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(
                f"--config.normalization={self.normalization!r}; choose one of "
                f"{', '.join(NORMALIZATIONS)}"
            )
        r = self.resolution
        if r < 4 or r > 1024 or r & (r - 1):
            raise ValueError(f"resolution must be a power of two from 4 to 1024, got {r}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.num_features(r) < 1:
            smallest = self.fmap_base // 2 ** (int(math.log2(r)) - 1)
            raise ValueError(
                f"--config.fmap_base={self.fmap_base} gives {smallest} feature maps at {r}x{r}; "
                f"use --config.fmap_base={2 ** (int(math.log2(r)) - 1)} or more for resolution {r}"
            )

    @property
    def resolutions(self) -> list[int]:
        """[4, 8, ..., resolution]."""
        return [2**k for k in range(2, int(math.log2(self.resolution)) + 1)]

    @property
    def stages(self) -> list[int]:
        """The resolutions that have a toRGB / fromRGB and stage models: every one when growing,
        the final one alone when not (§2 against the non-progressive rows of Table 1)."""
        return self.resolutions if self.progressive else [self.resolution]

    def num_features(self, resolution: int) -> int:
        """Feature maps of the block at `resolution`: nf(log2(resolution) - 1)."""
        stage = int(math.log2(resolution)) - 1
        return min(self.fmap_base // 2**stage, self.fmap_max)


@dataclasses.dataclass(frozen=True)
class StepOptions:
    loss: str = "wgan_gp"
    # official: penalise the norm at the final resolution (s / R x native); native
    gp_scale: str = "official"
    gp_weight: float = 10.0
    drift_weight: float = 1e-3
    r1_gamma: float = 10.0
    # the penalty (GP or R1) on every k-th D step only, weighted x k (lazy regularization)
    gp_interval: int = 1
    optimizer: str = "adam"
    adam_beta1: float = 0.0
    adam_beta2: float = 0.99
    adam_epsilon: float = 1e-8
    ema_beta: float = 0.999
    # D steps per G step (WGAN-GP's n_critic); each D step takes its own minibatch
    d_repeats: int = 1
    mixed_precision: bool = False
    # float16 (with loss scaling) or bfloat16 (TPUs, Ampere+ GPUs)
    mixed_precision_dtype: str = "float16"
    xla: bool = False
    seed: int = 0
    augment_policy: str = ""  # DiffAugment ops D sees, e.g. "color,translation,cutout"; "" = none
    augment_probability: float = 1.0  # chance of each op per image
    # conditional: G draws the reals' classes (data) or each class equally often (uniform)
    fake_labels: str = "data"
    # conditional: weight of the label cross-entropy in D's and G's loss (the release's cond_weight)
    label_weight: float = 1.0
    # conditional: > 0 weights G's label cross-entropy by this instead (D's stays label_weight)
    g_label_weight: float = 0.0
    # conditional: g_label_weight only in the phases up to this resolution (0 = in every phase);
    # above it G's label term is weighted label_weight, as D's
    g_label_weight_max_resolution: int = 0

    def generator_label_weight(self, resolution: int) -> float:
        """The weight of G's label term in a phase at `resolution`."""
        top = self.g_label_weight_max_resolution
        if self.g_label_weight > 0 and (top == 0 or resolution <= top):
            return self.g_label_weight
        return self.label_weight

    def __post_init__(self):
        if self.gp_interval < 1:
            raise ValueError(
                f"--config.gp_interval={self.gp_interval}; use 1 (every D step, the paper) or more"
            )
        if self.gp_scale not in ("official", "native"):
            raise ValueError(f"--config.gp_scale={self.gp_scale!r}; choose official or native")
        if self.loss not in LOSSES:
            raise ValueError(f"--config.loss={self.loss!r}; choose one of {', '.join(LOSSES)}")
        parse_augment_policy(self.augment_policy)
        for key in ("label_weight", "g_label_weight"):
            if getattr(self, key) < 0:
                raise ValueError(f"--config.{key}={getattr(self, key)}; a weight is 0 or more")
        if self.g_label_weight_max_resolution < 0:
            raise ValueError(
                f"--config.g_label_weight_max_resolution={self.g_label_weight_max_resolution}; "
                "use a resolution, or 0 for every phase"
            )
        if self.fake_labels not in ("data", "uniform"):
            raise ValueError(f"--config.fake_labels={self.fake_labels!r}; choose data or uniform")
        if self.mixed_precision_dtype not in ("float16", "bfloat16"):
            raise ValueError(
                f"--config.mixed_precision_dtype={self.mixed_precision_dtype!r}; choose float16 or "
                "bfloat16"
            )


@dataclasses.dataclass(frozen=True)
class TrainerOptions:
    total_images: int = 12_000_000
    # loss, optimizer, EMA, precision
    step: StepOptions = dataclasses.field(default_factory=StepOptions)
    max_nonfinite_steps: int = 100
    steps_per_call: int = 50
    # stable phases below the final resolution reuse their fade-in's step
    carry_fade_step: bool = False
    compile_ahead: bool = False  # compile the next phase's step in a thread while this one trains
    mirror_augment: bool = False
    shuffle_mb: int = 1024  # shuffle blocks of this many MB of records per input pipeline
    shuffle_buffer: int = 0  # or of this many records at every resolution (0: from shuffle_mb)
    # labelled data: 0 = the data's class frequencies, 1 = equal (data.class_repeats_for)
    class_balance: float = 0.0
    tick_images: int = 10_000
    snapshot_images: int = 50_000
    checkpoint_images: int = 100_000
    keep_checkpoints: int = 3
    grid_size: int = 64
    metrics: tuple[str, ...] = ()
    metrics_num_images: int = 1024
    inception: str = ""
