"""`python -m progan_tf.train` as users run it: flags over the config, a lower --resolution,
kill -9 in the middle of a run and the same command again."""

import json
import re
import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, assert_no_tensorflow_log, cli_env
from progan_tf import dataset_io
from progan_tf.checkpoints import find_restorable


@pytest.fixture(scope="module")
def dataset16(tmp_path_factory):
    rng = np.random.default_rng(5)
    images = (
        tf.image.resize(rng.random((64, 4, 4, 3)).astype("float32"), [16, 16]).numpy().clip(0, 1)
        * 255
    )
    path = tmp_path_factory.mktemp("data") / "blobs"
    # Labelled, as the demo config is conditional: these runs take the path `train` takes by
    # default.
    dataset_io.write_arrays(
        path, images.astype(np.uint8), np.arange(64) % 4, name="blobs", num_labels=4
    )
    return str(path)


def command(data_dir, run_dir, total_kimg):
    return [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--data_dir={data_dir}",
        f"--run_dir={run_dir}",
        "--resolution=8",
        f"--total_kimg={total_kimg}",
        "--checkpoint_kimg=0.128",
        "--snapshot_kimg=0.256",
        "--xla=false",
        "--config.latent_size=16",
        "--config.fmap_base=64",
        "--config.fmap_max=16",
        "--config.lod_training_kimg=0.128",
        "--config.lod_transition_kimg=0.128",
        "--config.steps_per_call=2",
        "--config.tick_kimg=0.064",
        "--config.grid_size=4",
    ]


def start_long_run(data_dir, run_dir) -> subprocess.Popen:
    """`train` towards 100 kimg in the background, its output (stderr too) on a pipe."""
    return subprocess.Popen(
        command(data_dir, run_dir, 100.0),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(),
    )


def run_to(data_dir, run_dir, total_kimg, **popen) -> subprocess.CompletedProcess:
    """`train` to `total_kimg` in the foreground (a resume, in these tests)."""
    return subprocess.run(
        command(data_dir, run_dir, total_kimg),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
        **popen,
    )


def ticks(run_dir) -> int:
    """Lines a run has written to its stats.jsonl so far."""
    stats = run_dir / "stats.jsonl"
    return stats.read_text().count("\n") if stats.exists() else 0


def test_kill_9_mid_run_then_the_same_command_resumes(dataset16, tmp_path):
    run_dir = tmp_path / "run"
    proc = start_long_run(dataset16, run_dir)
    checkpoints = run_dir / "checkpoints"
    deadline = time.time() + 240
    while time.time() < deadline and len(list(checkpoints.glob("ckpt-*.index"))) < 2:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    # A second trainer on the same directory is refused at once, naming the first one's pid.
    second = subprocess.run(
        command(dataset16, run_dir, 100.0),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert second.returncode == 1 and f"in use by another trainer (pid {proc.pid})" in second.stderr
    assert_no_tensorflow_log(second.stderr)
    time.sleep(0.7)  # somewhere in the next chunk or checkpoint write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The newest checkpoint whose files are complete: a kill between its files and the state file
    # leaves tf.train.latest_checkpoint one behind, and the trainer rightly takes the newer one.
    latest, _ = find_restorable(str(checkpoints))
    assert latest is not None
    killed_at = int(latest.rsplit("-", 1)[1])
    assert killed_at >= 256 and killed_at % 128 == 0

    total = (killed_at + 256) / 1000
    out = run_to(dataset16, run_dir, total)
    assert out.returncode == 0, out.stderr[-3000:]
    # the killed run's lock did not block
    assert f"resuming from kimg {killed_at / 1000:.3f}" in out.stderr
    assert_no_tensorflow_log(out.stderr)
    assert "time per phase" in out.stderr and "8x8 stable" in out.stderr.split("time per phase")[1]
    config = json.load(open(run_dir / "config.json"))
    # --resolution=8 on a 16x16 dataset trains its lower levels; flags and --config.* override.
    assert config["resolution"] == 8 and config["latent_size"] == 16 and config["xla"] is False
    assert config["conditional"] is True  # unset in the demo config: the dataset has labels
    assert json.load(open(run_dir / "run.json"))["architecture"]["num_labels"] == 4
    assert config["total_kimg"] == total
    stats = [json.loads(line) for line in open(run_dir / "stats.jsonl")]
    assert any("phase_time" in s for s in stats)
    stats = [s for s in stats if "phase_time" not in s]
    assert stats[-1]["kimg"] == total and stats[-1]["resolution"] == 8
    assert all(np.isfinite(s["d_loss"]) for s in stats)
    assert tf.train.latest_checkpoint(str(checkpoints)).endswith(f"ckpt-{killed_at + 256}")


def test_ctrl_c_saves_where_the_run_is_and_the_same_command_resumes(dataset16, tmp_path):
    run_dir = tmp_path / "run"
    proc = start_long_run(dataset16, run_dir)
    deadline = time.time() + 240
    while time.time() < deadline and ticks(run_dir) < 3:
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output[-3000:]
    stopped = re.search(
        r"kimg ([\d.]+): stopped by SIGINT, saved ckpt-(\d+); the same command", output
    )
    assert stopped, output[-3000:]
    # a checkpoint where the run stopped, whole, and the newest: not the last checkpoint_kimg's
    images = int(stopped.group(2))
    assert images == round(float(stopped.group(1)) * 1000) and images >= 192
    assert find_restorable(str(run_dir / "checkpoints"))[0].endswith(f"ckpt-{images}")
    assert "time per phase" in output
    assert_no_tensorflow_log(output)

    out = run_to(dataset16, run_dir, (images + 64) / 1000)
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"resuming from kimg {images / 1000:.3f} (ckpt-{images})" in out.stderr


def test_a_terminal_that_hangs_up_stops_the_run_with_a_checkpoint(dataset16, tmp_path):
    # A real hang-up: the run's terminal is a pty whose other end closes, as when an ssh
    # session drops. Writing to it fails from then on; the run must still save and exit 129.
    run_dir = tmp_path / "run"
    pid, terminal = pty.fork()
    if pid == 0:  # the child: train, its output on the terminal
        os.chdir(ROOT)
        os.execve(sys.executable, command(dataset16, run_dir, 100.0), cli_env())
    deadline = time.time() + 240
    while time.time() < deadline and ticks(run_dir) < 3:
        if select.select([terminal], [], [], 0.2)[0]:
            os.read(terminal, 65536)  # keep the terminal from filling up
    os.close(terminal)  # the hang-up: the kernel sends SIGHUP to the child's session
    time.sleep(0.3)
    os.kill(pid, signal.SIGHUP)  # and the shell sends its jobs another: it must not kill the run
    while not (exited := os.waitpid(pid, os.WNOHANG))[0]:
        if time.time() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the run did not stop after its terminal hung up")
        time.sleep(0.2)
    log = (run_dir / "log.txt").read_text()
    assert os.waitstatus_to_exitcode(exited[1]) == 129, log[-2000:]
    stopped = re.search(r"stopped by SIGHUP, saved ckpt-(\d+); the same command resumes", log)
    assert stopped, log[-2000:]
    assert find_restorable(str(run_dir / "checkpoints"))[0].endswith(f"ckpt-{stopped.group(1)}")


def test_a_reader_that_goes_away_never_ends_the_run_or_costs_its_checkpoint(dataset16, tmp_path):
    # `train ... 2>&1 | tee log`, then Ctrl-C: tee dies with it, so the run's next writes meet a
    # closed pipe. The stop must still save where the run is and exit 130.
    run_dir = tmp_path / "run"
    proc = start_long_run(dataset16, run_dir)
    deadline = time.time() + 240
    while time.time() < deadline and ticks(run_dir) < 3:
        assert proc.poll() is None
        if select.select([proc.stdout], [], [], 0.2)[0]:
            os.read(proc.stdout.fileno(), 65536)
    proc.stdout.close()  # the reader is gone
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 130, (run_dir / "log.txt").read_text()[-2000:]
    log = (run_dir / "log.txt").read_text()
    stopped = re.search(r"stopped by SIGINT, saved ckpt-(\d+); the same command resumes", log)
    assert stopped, log[-2000:]
    assert find_restorable(str(run_dir / "checkpoints"))[0].endswith(f"ckpt-{stopped.group(1)}")


def test_after_a_hang_up_output_to_a_file_is_kept(dataset16, tmp_path):
    # `train ... > out.txt 2>&1` in a terminal that closes: only a terminal is silenced
    run_dir, out = tmp_path / "run", tmp_path / "out.txt"
    with open(out, "w") as sink:
        proc = subprocess.Popen(
            command(dataset16, run_dir, 100.0),
            cwd=ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=cli_env(),
        )
    deadline = time.time() + 240
    while time.time() < deadline and ticks(run_dir) < 3:
        assert proc.poll() is None
        time.sleep(0.2)
    proc.send_signal(signal.SIGHUP)
    assert proc.wait(timeout=120) == 129
    text = out.read_text()
    assert re.search(r"stopped by SIGHUP, saved ckpt-\d+", text), text[-2000:]
    assert "time per phase" in text


def test_a_file_size_limit_is_one_error_in_the_terminal_and_the_log(dataset16, tmp_path):
    # `ulimit -f`: the first checkpoint cannot be written (Python ignores SIGXFSZ, so the write
    # fails): one line, exit 1, and the same line in log.txt, where a failed stop checkpoint
    # after a hang-up is seen too.
    import resource  # noqa: PLC0415

    run_dir = tmp_path / "run"
    limit = 64 << 10

    def small_files():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = run_to(dataset16, run_dir, 0.256, preexec_fn=small_files)
    assert result.returncode == 1, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "checkpoint" in errors[0], result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    log = (run_dir / "log.txt").read_text()
    assert log.rstrip("\n").splitlines()[-1].endswith(errors[0]), log[-2000:]


def test_bad_flags_and_data_are_named(dataset16, tmp_path):
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.train",
            f"--data_dir={tmp_path / 'nothing'}",
            f"--run_dir={tmp_path / 'r'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1 and str(tmp_path / "nothing") in missing.stderr
    too_high = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.train",
            f"--data_dir={dataset16}",
            "--resolution=64",
            f"--run_dir={tmp_path / 'r2'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert too_high.returncode == 1 and "holds images up to 16x16" in too_high.stderr
    # The default config follows the data: an unlabelled set trains unconditionally with no flag
    # added (the demo's class balancing falls away), and says so first; conditional=True is refused.
    unlabelled = tmp_path / "unlabelled"
    dataset_io.write_arrays(unlabelled, np.zeros((4, 8, 8, 3), np.uint8), None, name="plain")
    plain = subprocess.run(
        command(unlabelled, tmp_path / "r3", 0.064),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert plain.returncode == 0, plain.stderr[-2000:]
    first, second = plain.stderr.splitlines()[:2]
    assert first == "running on 1 CPU, OneDeviceStrategy, 1 replica, float32, XLA off"
    assert second == f"{unlabelled}: no labels: unconditional, no class balancing"
    config = json.load(open(tmp_path / "r3" / "config.json"))
    assert config["conditional"] is False and config["class_balance"] == 0
    forced = subprocess.run(
        [*command(unlabelled, tmp_path / "r4", 0.064), "--config.conditional=True"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        forced.returncode == 1
        and f"--config.conditional=True needs labels and {unlabelled} has none" in forced.stderr
    )
    assert not (tmp_path / "r4").exists()
    bad_key = subprocess.run(
        [sys.executable, "-m", "progan_tf.train", "--config.no_such_key=1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad_key.returncode != 0 and "no_such_key" in bad_key.stderr


def test_resume_refuses_other_network_or_precision_settings(tmp_path):
    from progan_tf.checkpoints import check_resume_compatible

    trained = {
        "resolution": 8,
        "latent_size": 16,
        "fmap_base": 64,
        "fmap_max": 16,
        "mbstd_group_size": 4,
        "conditional": False,
        "mixed_precision": True,
        "mixed_precision_dtype": "float16",
    }
    (tmp_path / "config.json").write_text(json.dumps(trained))
    check_resume_compatible(str(tmp_path), dict(trained))  # the same settings resume
    # a new run directory
    check_resume_compatible(str(tmp_path / "new"), {**trained, "fmap_base": 32})
    with pytest.raises(ValueError, match="fmap_base: 64 -> 32"):
        check_resume_compatible(str(tmp_path), {**trained, "fmap_base": 32})
    with pytest.raises(ValueError, match="mixed_precision_dtype: mixed_float16 -> float32"):
        check_resume_compatible(str(tmp_path), {**trained, "mixed_precision": False})
    with pytest.raises(ValueError, match="mixed_float16 -> mixed_bfloat16"):
        check_resume_compatible(str(tmp_path), {**trained, "mixed_precision_dtype": "bfloat16"})
    # a run from before class_balance drew the data's frequencies: its stream position means that
    check_resume_compatible(str(tmp_path), {**trained, "class_balance": 0.0})
    with pytest.raises(ValueError, match="class_balance: 0.0 -> 0.5"):
        check_resume_compatible(str(tmp_path), {**trained, "class_balance": 0.5})


def test_corrupt_shard_is_one_message_naming_file_and_offset(dataset16, tmp_path):
    import shutil  # noqa: PLC0415

    data_dir = tmp_path / "data"
    shutil.copytree(dataset16, data_dir)
    shard = sorted(data_dir.glob("*-r02-*"))[0]  # the 4x4 level: read by the first step
    payload = shard.read_bytes()
    shard.write_bytes(payload[: len(payload) - 40])
    out = subprocess.run(
        command(data_dir, tmp_path / "run", 0.256),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    assert out.returncode == 1
    assert_no_tensorflow_log(out.stderr)
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and re.search(
        rf"{re.escape(str(shard))}: (truncated|corrupted) record at \d+\)", errors[0]
    ), out.stderr
    assert "{{" not in errors[0] and "Op:" not in errors[0]  # no TensorFlow op decorations
    assert "Traceback" not in out.stderr


def test_a_refused_resume_prints_one_line_and_no_tensorflow_log(dataset16, tmp_path):
    # Networks that do not fit the checkpoint are refused before the input stream or any op on
    # images runs (issue 46: a oneDNN C++ line reached the user on this path).
    run_dir = tmp_path / "run"
    assert run_to(dataset16, run_dir, 0.128).returncode == 0
    before = (run_dir / "config.json").read_text()
    refused = subprocess.run(
        [*command(dataset16, run_dir, 0.256), "--config.fmap_max=8", "--accept_changes=fmap_max"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "holds networks that do not fit" in lines[0], refused.stderr
    assert_no_tensorflow_log(refused.stderr)
    assert (run_dir / "config.json").read_text() == before
