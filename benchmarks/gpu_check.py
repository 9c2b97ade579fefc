"""The first check to run on a GPU machine: devices, per-stage speed and memory, a 1024x1024
phase with a snapshot, a checkpoint and a kill-and-resume, and two replicas if there are two.

    python benchmarks/gpu_check.py --out=gpu_check         # about 8 minutes on one GPU
    python benchmarks/gpu_check.py --out=DIR --max_resolution=256

Writes DIR/gpu_check.json and DIR/gpu_check.md (a table to paste into docs/performance.md,
"The first GPU run"), and prints each part as it goes. What it records:

1. the devices and the CUDA / cuDNN / driver versions TensorFlow reports;
2. per stage 4x4 ... 1024x1024 at the paper's widths, non-progressive (the stage's networks
   alone), at the batch `--config.minibatch_preset=auto` gives one replica: images/s of the
   compiled step (float32; then mixed precision with XLA), the device's peak memory
   (`tf.config.experimental.get_memory_info`) and `train --dry_run`'s estimate beside it;
3. `python -m progan_tf.train` at 1024x1024 with configs/celebahq_1024.py's networks on noise
   images: one snapshot, one checkpoint, killed (SIGKILL) after the checkpoint, then the same
   command again, which must resume from it and finish;
4. with two or more GPUs, a two-replica run (`--strategy=mirrored`).

With no GPU visible it runs the same parts at tiny widths up to 32x32 on the CPU (the
two-replica run on two logical CPU devices) in a few minutes and says that no GPU was found:
its figures say only that the script works (tests/test_gpu_check.py runs it so).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from progan_tf import cli  # noqa: E402

cli.quiet_tensorflow()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import machine  # noqa: E402  (this directory)
from progan_tf import config as config_lib, dataset_io, plan  # noqa: E402
from progan_tf.networks import Architecture  # noqa: E402
from progan_tf.schedule import Phase  # noqa: E402
from progan_tf.state import TrainState  # noqa: E402
from progan_tf.steps import PhaseStep, StepOptions  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CELEBAHQ = os.path.join(ROOT, "configs", "celebahq_1024.py")
TINY = dict(latent_size=16, fmap_base=64, fmap_max=8)  # no GPU: the same parts, small


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def devices() -> dict:
    gpus = tf.config.list_physical_devices("GPU")
    build = tf.sysconfig.get_build_info()
    details = [tf.config.experimental.get_device_details(g) for g in gpus]
    driver = None
    if gpus and shutil.which("nvidia-smi"):
        try:
            driver = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=30,
            ).stdout.split()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            driver = None
    return {
        "gpus": [
            {
                "name": d.get("device_name", "GPU"),
                "compute_capability": list(d.get("compute_capability", ())),
            }
            for d in details
        ],
        "tensorflow": tf.__version__,
        "cuda": build.get("cuda_version"),
        "cudnn": build.get("cudnn_version"),
        "driver": driver,
        "built_with_cuda": tf.test.is_built_with_cuda(),
        **machine.describe(),
    }


def auto_batch(resolution: int, mixed: bool) -> int:
    """One replica's batch under minibatch_preset auto (the release's 1gpu preset, capped)."""
    c = config_lib.get_config()
    c.mixed_precision = mixed
    return config_lib.schedule(c, resolution=resolution, num_replicas=1).global_batch_size(
        resolution
    )


def time_stage(
    arch: Architecture, resolution: int, batch: int, steps: int, *, mixed: bool, device: str
) -> dict:
    """images/s of the compiled step at a stable stage, and the device's peak memory."""
    dtype = "float16" if device.startswith("/gpu") else "bfloat16"
    keras.mixed_precision.set_global_policy(f"mixed_{dtype}" if mixed else "float32")
    strategy = tf.distribute.OneDeviceStrategy(device)
    try:
        state = TrainState(arch, strategy)
        reals = tf.cast(
            tf.random.uniform([batch * 2, resolution, resolution, arch.channels], 0, 255), tf.uint8
        )
        stream = (
            tf.data.Dataset.from_tensor_slices((reals, tf.zeros([batch * 2, 0])))
            .repeat()
            .batch(batch, drop_remainder=True)
            .prefetch(2)
        )
        iterator = iter(strategy.experimental_distribute_dataset(stream))
        step = PhaseStep(
            strategy=strategy,
            state=state,
            phase=Phase(resolution, False, 0, None, 1.0, batch, 0.001),
            options=StepOptions(mixed_precision=mixed, mixed_precision_dtype=dtype, xla=mixed),
        )
        memory_device = "GPU:0" if device.startswith("/gpu") else None
        if memory_device:
            tf.config.experimental.reset_memory_stats(memory_device)
        start = time.perf_counter()
        float(step.train(iterator, tf.constant(1, tf.int64))["d_loss"])  # trace, compile, one
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        float(step.train(iterator, tf.constant(steps, tf.int64))["d_loss"])
        seconds = time.perf_counter() - start
        peak = (
            tf.config.experimental.get_memory_info(memory_device)["peak"] if memory_device else None
        )
    finally:
        keras.mixed_precision.set_global_policy("float32")
    estimate = plan.step_memory(arch, resolution, batch, mixed_precision=mixed).total
    return {
        "resolution": resolution,
        "batch": batch,
        "precision": f"mixed {dtype} + XLA" if mixed else "float32",
        "images_per_s": steps * batch / seconds,
        "first_call_s": compile_s,
        "peak_gib": None if peak is None else peak / plan.GIB,
        "estimate_gib": estimate / plan.GIB,
    }


def train_command(data_dir: str, run_dir: str, resolution: int, tiny: bool, *extra: str):
    """The phase run: celebahq_1024's networks (or tiny ones) at `resolution` alone."""
    command = [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--config={CELEBAHQ}",
        f"--data_dir={data_dir}",
        f"--run_dir={run_dir}",
        f"--resolution={resolution}",
        "--config.progressive=False",
        "--config.minibatch_dict={'%d': 4}" % resolution,
        "--config.tick_kimg=0.004",
        "--config.snapshot_kimg=0.008",
        "--config.checkpoint_kimg=0.008",
        "--config.grid_size=8",
        "--config.shuffle_mb=64",
        *extra,
    ]
    if tiny:
        command += [f"--config.{k}={v}" for k, v in TINY.items()]
    return command


def run_phase(data_dir: str, work: str, resolution: int, tiny: bool) -> dict:
    """Trains to a checkpoint and the snapshot at its count, kills the process (SIGKILL) once
    both are written, then runs the same command, which must resume from the checkpoint."""
    run_dir = os.path.join(work, "run")
    command = train_command(data_dir, run_dir, resolution, tiny, "--total_kimg=0.024")
    checkpoints = os.path.join(run_dir, "checkpoints")
    samples = os.path.join(run_dir, "samples")

    def written(directory: str, suffix: str) -> bool:
        return os.path.isdir(directory) and any(n.endswith(suffix) for n in os.listdir(directory))

    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed_after = None
    while process.poll() is None:
        if written(checkpoints, ".index") and written(samples, ".png"):
            process.send_signal(signal.SIGKILL)
            killed_after = time.perf_counter() - start
            break
        time.sleep(0.5)
    first_out = process.communicate()[0].decode(errors="replace")
    saved = sorted(n for n in os.listdir(checkpoints) if n.endswith(".index"))
    snapshots = sorted(os.listdir(samples))
    start = time.perf_counter()
    resumed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    resume_s = time.perf_counter() - start
    resumed_from = next(
        (line for line in resumed.stderr.splitlines() if "resuming from" in line), None
    )
    return {
        "resolution": resolution,
        "killed_after_s": killed_after,
        "first_run_exit": process.returncode,
        "first_run_tail": first_out.strip().splitlines()[-3:],
        "checkpoints_before_kill": saved,
        "snapshots_before_kill": snapshots,
        "resume_exit": resumed.returncode,
        "resumed_from": resumed_from,
        "resume_s": resume_s,
        "resume_tail": (resumed.stdout + resumed.stderr).strip().splitlines()[-3:],
        "ok": resumed.returncode == 0 and resumed_from is not None and killed_after is not None,
    }


def run_two_replicas(data_dir: str, work: str, resolution: int, tiny: bool, gpus: int) -> dict:
    replicas = ["--strategy=mirrored"] if gpus >= 2 else ["--cpu_replicas=2"]
    command = train_command(
        data_dir, os.path.join(work, "two"), resolution, tiny, "--total_kimg=0.016", *replicas
    )
    command = [c for c in command if not c.startswith("--config.minibatch_dict")] + [
        "--config.minibatch_dict={'%d': 8}" % resolution
    ]
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    first = next((line for line in result.stderr.splitlines() if "running on" in line), None)
    return {
        "flags": replicas,
        "exit": result.returncode,
        "seconds": time.perf_counter() - start,
        "running_on": first,
        "tail": result.stderr.strip().splitlines()[-3:],
        "ok": result.returncode == 0,
    }


def brief(row: dict) -> str:
    if "error" in row:
        return row["error"]
    peak = "n/a" if row["peak_gib"] is None else f"{row['peak_gib']:.2f} GiB"
    return (
        f"{row['images_per_s']:.1f} img/s at batch {row['batch']}, first call "
        f"{row['first_call_s']:.1f} s, peak {peak}, estimate {row['estimate_gib']:.2f} GiB"
    )


def markdown(report: dict) -> str:
    d = report["devices"]
    gpus = ", ".join(g["name"] for g in d["gpus"]) or "none (tiny widths on the CPU)"
    lines = [
        f"# gpu_check {report['date']}",
        "",
        f"GPUs: {gpus}; TensorFlow {d['tensorflow']}, CUDA {d['cuda']}, cuDNN {d['cudnn']}, "
        f"driver {d['driver']}; host {d['machine']} ({d['cpu']}).",
        f"Command: `{report['command']}`",
        "",
        "| stage | batch | precision | img/s | first call (s) | peak device memory (GiB) | "
        "`--dry_run` estimate (GiB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in report["stages"]:
        if "error" in row:
            lines.append(f"| {row['resolution']}² | {row['batch']} | | {row['error']} | | | |")
            continue
        peak = "—" if row["peak_gib"] is None else f"{row['peak_gib']:.2f}"
        lines.append(
            f"| {row['resolution']}² | {row['batch']} | {row['precision']} | "
            f"{row['images_per_s']:.1f} | {row['first_call_s']:.1f} | {peak} | "
            f"{row['estimate_gib']:.2f} |"
        )
    phase = report["phase"]
    lines += [
        "",
        f"{phase['resolution']}² phase: killed after {phase['killed_after_s'] or 0:.0f} s with "
        f"{', '.join(phase['checkpoints_before_kill']) or 'no checkpoint'} and "
        f"{len(phase['snapshots_before_kill'])} snapshot(s); resumed: "
        f"{phase['resumed_from'] or 'no'} (exit {phase['resume_exit']}, {phase['resume_s']:.0f} "
        f"s): {'ok' if phase['ok'] else 'FAILED'}.",
    ]
    two = report.get("two_replicas")
    if two:
        lines.append(
            f"Two replicas ({' '.join(two['flags'])}): exit {two['exit']} in "
            f"{two['seconds']:.0f} s; {two['running_on']}."
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", required=True, help="Directory for gpu_check.json / .md.")
    parser.add_argument("--max_resolution", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20, help="Timed steps per stage.")
    args = parser.parse_args(argv)
    gpus = tf.config.list_physical_devices("GPU")
    tiny = not gpus
    top = args.max_resolution if gpus else min(args.max_resolution, 32)
    steps = args.steps if gpus else min(args.steps, 3)
    device = "/gpu:0" if gpus else "/cpu:0"
    if tiny:
        say("no GPU found: the same parts at tiny widths on the CPU (they check the script only)")
    os.makedirs(args.out, exist_ok=True)
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
        "command": " ".join(["python", "benchmarks/gpu_check.py", *(argv or sys.argv[1:])]),
        "devices": devices(),
        "tiny": tiny,
        "stages": [],
    }
    say(f"devices: {report['devices']['gpus'] or 'CPU only'}")
    resolutions = [2**k for k in range(2, top.bit_length())]
    started, done, total = time.perf_counter(), 0, 2 * len(resolutions)
    for resolution in resolutions:
        arch = Architecture(resolution=resolution, progressive=False, **(TINY if tiny else {}))
        for mixed in (False, True):
            batch = auto_batch(resolution, mixed)
            try:
                row = time_stage(arch, resolution, batch, steps, mixed=mixed, device=device)
            except tf.errors.ResourceExhaustedError:
                row = {"resolution": resolution, "batch": batch, "error": "out of memory"}
            report["stages"].append(row)
            done += 1
            eta = (time.perf_counter() - started) / done * (total - done)
            say(f"{resolution}x{resolution} {'mixed+XLA' if mixed else 'float32'}: {brief(row)}")
            say(f"  ETA of the stages {eta:.0f} s")
    with tempfile.TemporaryDirectory() as work:
        data_dir = os.path.join(work, "noise")
        rng = np.random.default_rng(0)
        dataset_io.write_arrays(
            data_dir, rng.integers(0, 256, (16, top, top, 3), dtype=np.uint8), None, name="noise"
        )
        say(f"{top}x{top} phase: train, kill after the first checkpoint, resume")
        report["phase"] = run_phase(data_dir, work, top, tiny)
        say(f"phase: {'ok' if report['phase']['ok'] else 'FAILED'}")
        if len(gpus) >= 2 or tiny:
            say("two replicas")
            report["two_replicas"] = run_two_replicas(data_dir, work, min(top, 64), tiny, len(gpus))
            say(f"two replicas: {'ok' if report['two_replicas']['ok'] else 'FAILED'}")
    with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
        json.dump(report, f, indent=2)
    with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
        f.write(markdown(report))
    say(f"wrote {args.out}/gpu_check.json and gpu_check.md")
    print(markdown(report))
    ok = report["phase"]["ok"] and report.get("two_replicas", {"ok": True})["ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
