"""Speed of the G+D training step against this machine's measured conv throughput.

    # paper width at 16, 32, 64 + the demo config
    python benchmarks/train_step.py
    python benchmarks/train_step.py --resolutions=16,32 --steps=3 --no_paper_64

For each configuration: images/s of the compiled step (one D and one G update per step, as
in training, fed from an in-memory dataset), FLOPs per image counted from the layer shapes,
the achieved FLOP/s, and the ratio to the machine's peak measured in the same run (a large
3x3 conv, forward + backward, timed alone). With --compare, XLA off/on and steps per call
1 vs 25 are measured back to back, so their ratios come from one run.

FLOPs per image. F_G and F_D are forward FLOPs (2 per multiply-add, convs and denses) of G
and D at the stage. One step per real image costs about 4 F_G + 14 F_D:
  D update: G forward (F_G); D forward+backward on reals and fakes (2 x 3 F_D); gradient
  penalty: D forward on the mix (F_D), its input gradient (F_D) and that double backward
  (2 x 2 F_D) = 6 F_D.  G update: G forward+backward (3 F_G); D forward (F_D) and input
  gradient (F_D).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from progan_tf import cli  # noqa: E402

# the training command's settings: oneDNN on unless TF_ENABLE_ONEDNN_OPTS is set
cli.quiet_tensorflow()

import tensorflow as tf  # noqa: E402

from progan_tf.networks import Architecture  # noqa: E402
from progan_tf.schedule import Phase  # noqa: E402
from progan_tf.state import TrainState  # noqa: E402
from progan_tf.steps import PhaseStep, StepOptions  # noqa: E402

PAPER = Architecture(resolution=64)
# configs/demo_32.py
DEMO = Architecture(resolution=32, latent_size=128, fmap_base=256, fmap_max=32)


def forward_flops(arch: Architecture, resolution: int) -> tuple[int, int]:
    """Forward FLOPs per image (2 per multiply-add) of G and D at a stable stage, from Table 2's
    layer shapes: convs at their output size (D's second conv before its pool), denses,
    toRGB/fromRGB."""
    nf, c = arch.num_features, arch.channels

    def conv(size, k, cin, cout):
        return 2 * size * size * k * k * cin * cout

    g = 2 * (arch.latent_size + arch.num_labels) * 16 * nf(4) + conv(4, 3, nf(4), nf(4))
    d = (
        conv(4, 3, nf(4) + (arch.mbstd_group_size > 1), nf(4))
        + 2 * 16 * nf(4) * nf(4)
        + 2 * nf(4) * (1 + arch.num_labels)
    )
    r = 8
    while r <= resolution:
        g += conv(r, 3, nf(r // 2), nf(r)) + conv(r, 3, nf(r), nf(r))
        d += conv(r, 3, nf(r), nf(r)) + conv(r, 3, nf(r), nf(r // 2))
        r *= 2
    g += conv(resolution, 1, nf(resolution), c)
    d += conv(resolution, 1, c, nf(resolution))
    return g, d


def step_flops(arch: Architecture, resolution: int) -> tuple[int, int, int]:
    fg, fd = forward_flops(arch, resolution)
    return fg, fd, 4 * fg + 14 * fd


FIRST_STEP_SECONDS: list[
    float
] = []  # time to the first step (trace + compile + 1 step) of each measure_step


def stable_phase(arch: Architecture, resolution: int, batch: int):
    """(a function making `PhaseStep`s of one stable phase on shared networks, an iterator
    of random in-memory reals at that stage) on one CPU device."""
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    state = TrainState(arch, strategy)
    phase = Phase(resolution, False, 0, None, 1.0, batch, 0.001)
    reals = tf.random.uniform([batch * 4, resolution, resolution, arch.channels], -1, 1)
    dataset = (
        tf.data.Dataset.from_tensor_slices((reals, tf.zeros([batch * 4, 0])))
        .repeat()
        .batch(batch, drop_remainder=True)
        .prefetch(2)
    )
    iterator = iter(strategy.experimental_distribute_dataset(dataset))

    def make_trainer(options: StepOptions, **kwargs) -> PhaseStep:
        return PhaseStep(
            strategy=strategy,
            state=state,
            phase=phase,
            options=options,
            **kwargs,
        )

    return make_trainer, iterator


def measure_step(
    arch: Architecture, resolution: int, batch: int, steps: int, *, xla: bool, steps_per_call: int
) -> float:
    """images/s of the compiled step after one warm-up call."""
    make_trainer, iterator = stable_phase(arch, resolution, batch)
    trainer = make_trainer(StepOptions(xla=xla))
    calls = max(1, steps // steps_per_call)
    start = time.perf_counter()
    float(trainer.train(iterator, tf.constant(1, tf.int64))["d_loss"])  # trace, compile, one step
    FIRST_STEP_SECONDS.append(time.perf_counter() - start)
    trainer.train(iterator, tf.constant(steps_per_call, tf.int64))  # warm up
    start = time.perf_counter()
    for _ in range(calls):
        stats = trainer.train(iterator, tf.constant(steps_per_call, tf.int64))
    float(stats["d_loss"])  # wait for the device
    return calls * steps_per_call * batch / (time.perf_counter() - start)


def measure_fade_model(
    arch: Architecture, resolution: int, batch: int, steps: int, rounds: int = 4
) -> tuple[float, float]:
    """images/s of a stable phase's step on the stable model and on the fade-in model at
    alpha 1 (how `carry_fade_step` trains a stable phase), timed in alternating rounds in one
    process so that the machine's drift falls on both alike."""
    make_trainer, iterator = stable_phase(arch, resolution, batch)
    trainers = [make_trainer(StepOptions(xla=True), fade_graph=fade) for fade in (False, True)]
    calls = max(1, steps // (25 * rounds))
    seconds = [0.0, 0.0]
    for trainer in trainers:
        # trace, compile, warm up
        float(trainer.train(iterator, tf.constant(25, tf.int64))["d_loss"])
    for _ in range(rounds):
        for i, trainer in enumerate(trainers):
            start = time.perf_counter()
            for _ in range(calls):
                stats = trainer.train(iterator, tf.constant(25, tf.int64))
            float(stats["d_loss"])
            seconds[i] += time.perf_counter() - start
    images = rounds * calls * 25 * batch
    return images / seconds[0], images / seconds[1]


def measure_conv_peak(repeats: int = 3) -> float:
    """FLOP/s of a 3x3, 512 -> 512 conv at 32x32, batch 16, forward + both backward convs,
    compiled by XLA like the step's."""
    x = tf.Variable(tf.random.normal([16, 32, 32, 512]))
    w = tf.Variable(tf.random.normal([3, 3, 512, 512]) * 0.01)

    @tf.function(jit_compile=True)  # as the step's convs run: inside XLA (not TF's oneDNN kernels)
    def step():
        with tf.GradientTape() as tape:
            y = tf.nn.conv2d(x, w, 1, "SAME")
            loss = tf.reduce_sum(y)
        gx, gw = tape.gradient(loss, [x, w])
        return tf.reduce_sum(gx) + tf.reduce_sum(gw)

    float(step())
    start = time.perf_counter()
    for _ in range(repeats):
        float(step())
    seconds = (time.perf_counter() - start) / repeats
    flops = 3 * 2 * 16 * 32 * 32 * 9 * 512 * 512  # forward, input gradient, filter gradient
    return flops / seconds


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--resolutions", default="16,32,64", help="paper-width resolutions to time")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--steps", type=int, default=2, help="timed steps per paper-width configuration"
    )
    parser.add_argument("--demo_steps", type=int, default=50)
    parser.add_argument(
        "--compare",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time XLA off and steps_per_call=1 (before/after)",
    )
    parser.add_argument(
        "--fade_graph",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also time the demo's stable step at --batch on the stable model and on the fade-in "
        "model at alpha 1 (config carry_fade_step), interleaved",
    )
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    parser.add_argument(
        "--demo_resolutions",
        default="16,32",
        help="demo-width resolutions to time (4,8,16,32: "
        "every stage, with --resolutions= to skip the paper widths)",
    )
    args = parser.parse_args()

    print(
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPU threads, devices: "
        f"{[d.name for d in tf.config.list_logical_devices()]}"
    )
    peak = measure_conv_peak()
    print(
        f"measured peak: 3x3 conv 512->512 at 32x32, batch 16, fwd+bwd: {peak / 1e9:.1f} GFLOP/s\n"
    )
    rows = []

    def run(name, arch, resolution, batch, steps, xla, steps_per_call):
        fg, fd, per_image = step_flops(arch, resolution)
        speed = measure_step(arch, resolution, batch, steps, xla=xla, steps_per_call=steps_per_call)
        row = dict(
            config=name,
            resolution=resolution,
            batch=batch,
            xla=xla,
            steps_per_call=steps_per_call,
            images_per_sec=speed,
            gflop_per_image=per_image / 1e9,
            g_fwd_gflop=fg / 1e9,
            d_fwd_gflop=fd / 1e9,
            achieved_gflops=speed * per_image / 1e9,
            peak_gflops=peak / 1e9,
            of_peak=speed * per_image / peak,
            first_step_s=FIRST_STEP_SECONDS[-1],
        )
        rows.append(row)
        print(
            f"{name:<6} {resolution:>4}x{resolution:<4} batch {batch:<3} xla "
            f"{'on ' if xla else 'off'} "
            f"steps/call {steps_per_call:<3} {speed:9.2f} img/s  {per_image / 1e9:8.3f} GFLOP/img  "
            f"{row['achieved_gflops']:7.1f} GFLOP/s  {100 * row['of_peak']:5.1f}% of peak  "
            f"first step {row['first_step_s']:5.1f} s",
            flush=True,
        )

    for r in [int(x) for x in args.resolutions.split(",") if x]:
        paper = Architecture(resolution=max(PAPER.resolution, r))  # same widths, to r x r
        run("paper", paper, r, args.batch, args.steps, xla=True, steps_per_call=1)
        if args.compare and r <= 32:
            run("paper", paper, r, args.batch, args.steps, xla=False, steps_per_call=1)
    for r in [int(x) for x in args.demo_resolutions.split(",") if x]:
        run("demo", DEMO, r, 32, args.demo_steps, xla=True, steps_per_call=25)
        if args.compare:
            run("demo", DEMO, r, 32, args.demo_steps, xla=False, steps_per_call=25)
            run("demo", DEMO, r, 32, args.demo_steps, xla=True, steps_per_call=1)
        if args.fade_graph and r > 4:
            stable, fade = measure_fade_model(DEMO, r, args.batch, args.demo_steps)
            rows.append(
                dict(
                    config="demo",
                    resolution=r,
                    batch=args.batch,
                    stable_model_images_per_sec=stable,
                    fade_model_images_per_sec=fade,
                )
            )
            print(
                f"demo     {r:>4}x{r:<4} batch {args.batch:<3} stable model {stable:8.1f} img/s, "
                "fade-in model at "
                f"alpha 1 {fade:8.1f} img/s: {fade / stable:.3f}x",
                flush=True,
            )
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak resident memory: {peak_rss:.0f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"rows": rows, "peak_gflops": peak / 1e9, "peak_rss_mib": peak_rss}, f, indent=1
            )


if __name__ == "__main__":
    main()
