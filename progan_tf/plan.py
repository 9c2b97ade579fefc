"""A run's plan before it trains: per resolution its phases, batch, learning rate and memory.

`train --dry_run` prints it and exits; every run logs its first lines. The memory figure is an
estimate of one replica's memory for one training step, from the layer shapes alone (no
TensorFlow): the weights of G, D and the EMA G, Adam's two slots and the gradients of the
stage's trainable weights, and the step's activations, which dominate from 32x32 up. Its
constants are set against measured peaks (docs/performance.md, "Memory per stage"); it is a
guide for choosing a batch, not a guarantee.
"""

from __future__ import annotations

import dataclasses

from progan_tf.options import Architecture
from progan_tf.schedule import Schedule, phase_list

GIB = 2**30
# Per image and training step, how many float tensors of each layer's output size the step
# holds at its peak: D runs on reals, fakes and the penalty's mixed images, and the penalty's
# gradient is differentiated again (double backward); the G step holds G's and D's forward
# activations for their backward. Set against benchmarks/memory.py's peaks (module docstring).
D_STEP_COPIES = 3.0
G_STEP_COPIES = 1.25
# Feature tensors per 3x3 conv kept for the backward pass: conv output, activation, and in G
# the pixel norm's output.
G_TENSORS_PER_CONV = 3
D_TENSORS_PER_CONV = 2
# A CPU process's resident memory besides the step's (TensorFlow, Keras, the input stream):
# added where the estimate is set against a CPU peak (benchmarks/memory.py), not in the plan.
PROCESS_BYTES = int(0.9 * GIB)


def generator_parameters(arch: Architecture, up_to: int | None = None) -> int:
    """Trainable parameters of G's blocks up to `up_to` (default: all) and their toRGBs
    (Table 2; biases included)."""
    up_to = up_to or arch.resolution
    c, total = arch.channels, 0
    for r in arch.resolutions:
        if r > up_to:
            break
        nf = arch.num_features(r)
        if r == 4:
            total += (arch.latent_size + arch.num_labels) * 16 * nf + nf  # dense, bias
            total += 9 * nf * nf + nf
        else:
            total += 9 * arch.num_features(r // 2) * nf + nf + 9 * nf * nf + nf
        if r in arch.stages:
            total += nf * c + c  # toRGB
    return total


def discriminator_parameters(arch: Architecture, up_to: int | None = None) -> int:
    """Trainable parameters of D's blocks up to `up_to` (default: all) and their fromRGBs."""
    up_to = up_to or arch.resolution
    c, total = arch.channels, 0
    for r in arch.resolutions:
        if r > up_to:
            break
        nf = arch.num_features(r)
        if r in arch.stages:
            total += c * nf + nf  # fromRGB
        if r == 4:
            mbstd = 1 if arch.mbstd_group_size > 1 else 0
            total += 9 * (nf + mbstd) * nf + nf
            total += 16 * nf * arch.num_features(2) + arch.num_features(2)
            total += arch.num_features(2) * (1 + arch.num_labels) + 1 + arch.num_labels
        else:
            total += (
                9 * nf * nf + nf + 9 * nf * arch.num_features(r // 2) + arch.num_features(r // 2)
            )
    return total


def activations_per_image(arch: Architecture, resolution: int) -> tuple[int, int]:
    """(G, D) feature elements per image of the stage at `resolution` that a step keeps for
    its backward pass (the fade-in model's extra toRGB / fromRGB branch included)."""
    g = d = 0
    for r in arch.resolutions:
        if r > resolution:
            break
        nf, area = arch.num_features(r), r * r
        if r == 4:
            g += (
                arch.latent_size + 16 * nf * (1 + G_TENSORS_PER_CONV) + G_TENSORS_PER_CONV * 16 * nf
            )
            d += 16 * (nf + 1) + D_TENSORS_PER_CONV * 16 * nf + 2 * arch.num_features(2)
        else:
            g += area * arch.num_features(r // 2) + 2 * G_TENSORS_PER_CONV * area * nf
            d += D_TENSORS_PER_CONV * area * nf + area * arch.num_features(r // 2) // 4 * 2
    top = resolution * resolution * arch.channels
    g += 3 * top  # toRGBs and the fade's blend
    d += 3 * top + D_TENSORS_PER_CONV * resolution * resolution * arch.num_features(resolution)
    return g, d


@dataclasses.dataclass(frozen=True)
class MemoryEstimate:
    weights: int  # G, D and the EMA G, every stage (bytes)
    optimizer: int  # Adam's two slots and the gradients of the stage's trainable weights
    activations: int  # the step's peak

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations


def step_memory(
    arch: Architecture, resolution: int, per_replica_batch: int, mixed_precision: bool = False
) -> MemoryEstimate:
    """One replica's estimated memory for a training step at `resolution` (module docstring);
    under mixed precision the activations take 2 bytes an element, the variables stay 4."""
    weights = 4 * (2 * generator_parameters(arch) + discriminator_parameters(arch))
    trainable = generator_parameters(arch, resolution) + discriminator_parameters(arch, resolution)
    optimizer = 4 * 3 * trainable
    g, d = activations_per_image(arch, resolution)
    per_image = max(D_STEP_COPIES * d, G_STEP_COPIES * (g + d))
    element = 2 if mixed_precision else 4
    return MemoryEstimate(weights, optimizer, int(per_image * per_replica_batch * element))


def gib(num_bytes: int) -> str:
    return f"{num_bytes / GIB:.1f} GiB"


def plan_table(
    arch: Architecture, schedule: Schedule, total_images: int, mixed_precision: bool
) -> list[str]:
    """One line per resolution the run reaches: its phases (kimg), global batch, per-replica
    batch, learning rate, minibatch-stddev group and estimated step memory per replica
    (float32 and mixed precision; the one the run uses first)."""
    phases: dict[int, list] = {}
    for phase in phase_list(schedule, total_images):
        phases.setdefault(phase.resolution, []).append(phase)
    n = schedule.num_replicas
    order = "mixed | float32" if mixed_precision else "float32 | mixed"
    header = (
        f"{'stage':>9}  {'phases (kimg)':<22} {'batch':>6} {'per replica':>12} {'lr':>7} "
        f"{'group':>5}  memory per replica ({order})"
    )
    lines = [header]
    for resolution, entries in phases.items():
        spans = []
        for phase in entries:
            end = total_images if phase.end_images is None else min(phase.end_images, total_images)
            kind = "fade" if phase.fade else "stable"
            spans.append(f"{kind} {(end - phase.start_images) / 1000:g}")
        batch = schedule.global_batch_size(resolution)
        per_replica = batch // n
        group = min(arch.mbstd_group_size, per_replica) if arch.mbstd_group_size > 1 else 0
        full, mixed = (step_memory(arch, resolution, per_replica, m).total for m in (False, True))
        first, second = (mixed, full) if mixed_precision else (full, mixed)
        lines.append(
            f"{resolution:>4}x{resolution:<4}  {', '.join(spans):<22} {batch:>6} "
            f"{per_replica:>5} x {n:<4} {schedule.lr(resolution):>7g} {group or 'off':>5}  "
            f"{gib(first)} | {gib(second)}"
        )
    return lines
