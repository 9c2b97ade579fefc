"""The run directory at run time: reproducible runs, exact resume, one trainer, disk faults."""

import json
import os
import signal
import subprocess
import sys

import pytest
import tensorflow as tf

from progan_tf.checkpoints import CheckpointWriteError, Checkpoints
from progan_tf.run_writer import RunWriter, RunDirLockedError, snapshot_name
from progan_tf.stopping import RunInterrupted, StopRequests
from conftest import ROOT


def determinism_run(tmp_path, **env) -> dict:
    """tests/determinism_main.py in its own process: A uninterrupted, B crashed twice, resumed."""
    out = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "determinism_main.py"), str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **env},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # work after ckpt-64 (in the fade-in) and after ckpt-128 (the stable phase's start) was lost
    assert result["crashes"] == [[96, "ckpt-64"], [160, "ckpt-128"]]
    # SIGTERM saved where the run was, between checkpoints, and B resumed from there
    assert result["stopped"] == [
        143,
        "kimg 0.072: stopped by SIGTERM, saved ckpt-72; the same command resumes",
    ]
    assert result["checkpoints"] == ["ckpt-192", "ckpt-192"] and result["same_keys"]
    return result


def test_same_seed_and_crash_resume_give_every_variable_bit_for_bit(tmp_path):
    # Catches any unseeded source (data order, mirror flips, latents, penalty mix, augmentation,
    # initial weights) and any state a resume loses (data position, optimizer, counters).
    # with mirror flips on, too, and the lazy penalty on every 3rd D step (the resumes start
    # after D steps 8, 9 and 16: two of them mid-interval)
    result = determinism_run(tmp_path, AUGMENT="color,translation,cutout", GP_INTERVAL="3")
    assert result["num_variables"] > 50  # G, D, EMA, both optimizers, counters, data position
    assert result["resumed_differs"] == []


@pytest.mark.slow  # full determinism runs: ~60-90 s each (pytest -m slow)
@pytest.mark.parametrize("gp_interval", ["1", "3"])
def test_two_replicas_crashed_and_resumed_end_bit_for_bit_with_the_uninterrupted_run(
    tmp_path, gp_interval
):
    # As above on MirroredStrategy over two logical CPU devices: the saved stream position must be
    # where the replicas' last batches ended (not replica 0's), or the resumed run re-reads data.
    # With the penalty on every step and on every 3rd (its cond inside the replicas' step).
    result = determinism_run(tmp_path, REPLICAS="2", GP_INTERVAL=gp_interval)
    assert result["resumed_differs"] == []


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP", "SIGINT"])
def test_a_stop_request_records_the_first_signal_and_the_second_acts_as_before(name):
    signum = getattr(signal, name)
    before = []
    previous = signal.signal(signum, lambda signum, frame: before.append(signum))
    try:
        with StopRequests() as requests:
            os.kill(os.getpid(), signum)
            assert requests.received == signum and before == []
            os.kill(os.getpid(), signum)  # the second: the handler from before
            # ... except a hang-up's: a closing terminal may send two (ignored until the end)
            assert before == ([] if name == "SIGHUP" else [signum])
        if name == "SIGHUP":  # after a stop, a late hang-up stays ignored while it exits ...
            os.kill(os.getpid(), signum)
            assert before == [] and signal.getsignal(signum) is not signal.SIG_IGN
            # ... by a handler, not SIG_IGN: a process started now does not inherit it
            child = subprocess.run(
                [sys.executable, "-c", "import signal; print(signal.getsignal(signal.SIGHUP))"],
                capture_output=True,
                text=True,
            )
            assert child.stdout.strip() in ("0", "Handlers.SIG_DFL"), child.stdout  # SIG_DFL
            signal.signal(signum, lambda signum, frame: before.append(signum))
        with StopRequests():
            pass  # no signal: leaving puts the handler from before back
        os.kill(os.getpid(), signum)
        assert before == [signum] * (1 if name == "SIGHUP" else 2)
    finally:
        signal.signal(signum, previous)
    assert (
        RunInterrupted(signum, "").exit_code == {"SIGTERM": 143, "SIGHUP": 129, "SIGINT": 130}[name]
    )


def test_a_signal_the_process_ignores_stays_ignored():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # as for a script's `train &`
    try:
        with StopRequests() as requests:
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)
        assert requests.received is None
    finally:
        signal.signal(signal.SIGINT, previous)


def test_second_lock_is_refused_naming_the_holder_and_a_killed_holder_never_blocks(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, sys.argv[1]); "
                "from progan_tf.run_writer import RunWriter; "
                "RunWriter(sys.argv[2]).lock(); print('locked', flush=True); time.sleep(60)"
            ),
            ROOT,
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(RunDirLockedError, match=f"pid {holder.pid}"):
        RunWriter(str(tmp_path)).lock()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    directory = RunWriter(str(tmp_path))
    directory.lock()  # the kernel released the dead holder's lock
    with pytest.raises(RunDirLockedError, match=f"pid {os.getpid()}"):
        RunWriter(str(tmp_path)).lock()
    directory.unlock()
    RunWriter(str(tmp_path)).lock()


def test_snapshot_names_carry_the_image_count():
    assert snapshot_name(96_000) == "fakes000096.png"
    assert (
        snapshot_name(300) == "fakes000000_300.png" and snapshot_name(600) == "fakes000000_600.png"
    )
    names = [snapshot_name(n) for n in (0, 300, 1000, 1300, 12_000)]
    assert names == sorted(names) and len(set(names)) == 5


def _checkpoint(directory):
    step = tf.Variable(0, dtype=tf.int64)
    return step, Checkpoints(tf.train.Checkpoint(images_seen=step), str(directory), keep=3)


def test_failed_checkpoint_write_names_the_path_and_keeps_the_previous(tmp_path, monkeypatch):
    step, checkpoints = _checkpoint(tmp_path / "checkpoints")
    step.assign(100)
    first = checkpoints.save(100)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tf.train.Checkpoint, "write", disk_full)
    step.assign(200)
    with pytest.raises(CheckpointWriteError, match="No space left") as error:
        checkpoints.save(200)
    assert str(tmp_path / "checkpoints") in str(error.value) and first in str(error.value)
    monkeypatch.undo()
    assert checkpoints.latest() == first
    assert int(tf.train.load_variable(first, "images_seen/.ATTRIBUTES/VARIABLE_VALUE")) == 100


def test_read_only_checkpoint_directory_is_a_clear_error(tmp_path):
    directory = tmp_path / "checkpoints"
    step, checkpoints = _checkpoint(directory)
    first = checkpoints.save(1)
    made_read_only = (
        subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode == 0
    )
    if not made_read_only:
        os.chmod(directory, 0o555)
        probe = directory / "probe"
        try:
            probe.write_text("x")  # root ignores permission bits
            probe.unlink()
            pytest.skip("cannot make a directory read-only here (root without chattr)")
        except PermissionError:
            pass
    try:
        with pytest.raises(CheckpointWriteError, match=str(directory)):
            checkpoints.save(2)
    finally:
        if made_read_only:
            subprocess.run(["chattr", "-i", str(directory)])
        os.chmod(directory, 0o755)
    assert checkpoints.latest() == first
