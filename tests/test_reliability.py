"""Never lose a run: checkpoint fallback, durable writes, safe overwrite, complete resume checks."""

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import (
    checkpoints as ckpt,
    config as config_lib,
    convert,
    data,
    dataset_io,
    files,
    run_reader,
)
from progan_tf.checkpoints import (
    CheckpointError,
    CheckpointWriteError,
    Checkpoints,
    check_resume_compatible,
)
from progan_tf.networks import Architecture
from progan_tf.schedule import Schedule
from progan_tf.steps import StepOptions
from progan_tf.trainer import Trainer, TrainerOptions
from conftest import noise_dataset, tiny_trainer

ARCH = Architecture(resolution=4, latent_size=8, fmap_base=32, fmap_max=8)
SCHEDULE = Schedule(
    final_resolution=4, stable_kimg=1, fade_kimg=1, minibatch={}, minibatch_default=8
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return noise_dataset(tmp_path_factory.mktemp("data") / "noise", 16, 4)


def trainer(
    dataset, run_dir, total_images: int, keep: int = 3, arch=ARCH, config=None, **step
) -> Trainer:
    return tiny_trainer(
        dataset,
        run_dir,
        total_images,
        arch=arch,
        schedule=SCHEDULE,
        step=StepOptions(**step),
        config=config,
        tick_images=16,
        snapshot_images=10_000,
        checkpoint_images=16,
        keep_checkpoints=keep,
        shuffle_buffer=16,
    )


def tree_digest(root) -> dict[str, str]:
    """Path -> sha256 of every file below `root` but the lock (which records its last holder)."""
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            if name != ".lock":
                with open(path, "rb") as f:
                    digests[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.fixture
def run_with_checkpoints(dataset, tmp_path):
    """A run directory with checkpoints at 16, 32 and 48 images."""
    trainer(dataset, tmp_path, 48).train()
    assert [os.path.basename(p) for p in ckpt.list_checkpoints(str(tmp_path / "checkpoints"))] == [
        "ckpt-48",
        "ckpt-32",
        "ckpt-16",
    ]
    return tmp_path


def newest(run_dir) -> str:
    return str(run_dir / "checkpoints" / "ckpt-48")


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param("missing_index", marks=pytest.mark.slow),
        "truncated_data",
        pytest.param("missing_state_file", marks=pytest.mark.slow),
    ],
)  # 2 of 3: -m slow
def test_resume_falls_back_past_a_lost_or_damaged_newest_checkpoint(
    dataset, run_with_checkpoints, damage
):
    run_dir = run_with_checkpoints
    if damage == "missing_index":
        os.remove(newest(run_dir) + ".index")
    elif damage == "truncated_data":
        data_file = newest(run_dir) + ".data-00000-of-00001"
        os.truncate(data_file, os.path.getsize(data_file) // 2)
    else:
        os.remove(run_dir / "checkpoints" / "checkpoint")
    resumed = trainer(dataset, run_dir, 64)
    assert resumed.restore()
    # without a state file the scan still finds 48
    expected = 48 if damage == "missing_state_file" else 32
    assert resumed.seen == expected
    log = (run_dir / "log.txt").read_text()
    if damage != "missing_state_file":
        assert "skipping a checkpoint: ckpt-48" in log
        assert os.listdir(run_dir / "checkpoints" / "skipped")  # set aside, not deleted
    resumed.train()
    names = [os.path.basename(p) for p in ckpt.list_checkpoints(str(run_dir / "checkpoints"))]
    assert names == ["ckpt-64", "ckpt-48", "ckpt-32"]  # the good older ones were kept until rotated
    assert tf.train.latest_checkpoint(str(run_dir / "checkpoints")).endswith("ckpt-64")


def test_networks_that_do_not_fit_the_checkpoint_are_refused_before_anything_is_written(
    dataset, run_with_checkpoints
):
    run_dir = run_with_checkpoints
    before = tree_digest(run_dir)
    for other in (
        Architecture(resolution=4, latent_size=8, fmap_base=32, fmap_max=16),  # other widths
        Architecture(resolution=4, latent_size=8, fmap_base=32, fmap_max=8, channels=1),
    ):
        with pytest.raises(ValueError, match="ckpt-48 holds networks that do not fit"):
            trainer(dataset, run_dir, 64, arch=other)
        assert tree_digest(run_dir) == before  # config.json, run.json and the log as they were
    # the refused constructors let go of the lock: the run's own settings resume in this process
    resumed = trainer(dataset, run_dir, 64)
    assert resumed.restore() and resumed.seen == 48
    resumed.directory.unlock()


def test_a_restore_that_fails_leaves_the_run_files_as_they_were(dataset, run_with_checkpoints):
    # The networks fit, but the checkpoint's optimizer slots are Adam's and this command's
    # optimizer is RMSprop: refused at restore, and config.json / run.json not rewritten.
    run_dir = run_with_checkpoints
    kept = ("config.json", "run.json")
    before = {name: (run_dir / name).read_text() for name in kept}
    resumed = trainer(dataset, run_dir, 64, config={"test": "other"}, optimizer="rmsprop")
    with pytest.raises(ValueError, match="ckpt-48 does not fit this command's settings"):
        resumed.train()
    assert {name: (run_dir / name).read_text() for name in kept} == before
    assert "error" not in before["config.json"]


def test_no_restorable_checkpoint_is_an_error_naming_them_that_changes_nothing(
    dataset, run_with_checkpoints
):
    run_dir = run_with_checkpoints
    for number in (16, 32, 48):
        os.remove(run_dir / "checkpoints" / f"ckpt-{number}.index")
    before = tree_digest(run_dir)
    with pytest.raises(CheckpointError, match="none can be restored") as error:
        trainer(dataset, run_dir, 64)
    assert all(f"ckpt-{n}.index is missing" in str(error.value) for n in (16, 32, 48))
    assert tree_digest(run_dir) == before  # never a new run over them, nothing written


def test_a_write_that_fails_half_way_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    step = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(images_seen=step, weights=tf.Variable(tf.ones([1000])))
    manager = Checkpoints(checkpoint, str(tmp_path), keep=3)
    step.assign(100)
    first = manager.save(100)
    real_write = tf.train.Checkpoint.write

    def fails_half_way(self, prefix, *args, **kwargs):  # bytes on disk, then the disk fails
        path = real_write(self, prefix, *args, **kwargs)
        data_file = path + ".data-00000-of-00001"
        os.truncate(data_file, os.path.getsize(data_file) // 2)
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(tf.train.Checkpoint, "write", fails_half_way)
    step.assign(200)
    with pytest.raises(CheckpointWriteError, match="Input/output error") as error:
        manager.save(200)
    monkeypatch.undo()
    assert first in str(error.value)
    assert tf.train.latest_checkpoint(str(tmp_path)) == first  # the state file still names it
    # our partial files removed
    assert not [n for n in os.listdir(tmp_path) if n.startswith("ckpt-200")]
    assert ckpt.find_restorable(str(tmp_path)) == (first, [])


def test_checkpoint_files_are_synced_before_the_state_file_names_them(tmp_path, monkeypatch):
    events = []
    real_fsync_path, real_replace = files.fsync_path, os.replace
    monkeypatch.setattr(
        files,
        "fsync_path",
        lambda p: (events.append(("fsync", os.path.basename(p))), real_fsync_path(p)),
    )
    monkeypatch.setattr(
        os,
        "replace",
        lambda a, b: (events.append(("rename", os.path.basename(b))), real_replace(a, b)),
    )
    manager = Checkpoints(tf.train.Checkpoint(v=tf.Variable(1.0)), str(tmp_path), keep=2)
    manager.save(7)
    synced = [name for kind, name in events if kind == "fsync"]
    state_renamed = events.index(("rename", "checkpoint"))
    for name in ("ckpt-7.index", "ckpt-7.data-00000-of-00001"):
        assert events.index(("fsync", name)) < state_renamed
    # the rename itself made durable
    assert ("fsync", os.path.basename(str(tmp_path))) in events[state_renamed:]
    assert "checkpoint" not in synced[: synced.index("ckpt-7.index")]


def test_atomic_writes_sync_the_file_and_its_directory(tmp_path, monkeypatch):
    synced = []
    real = files.fsync_path
    monkeypatch.setattr(files, "fsync_path", lambda p: (synced.append(str(p)), real(p)))
    files.write_text(tmp_path / "config.json", "{}\n")
    assert any(".config.json.tmp" in p for p in synced) and str(tmp_path) in synced
    assert (tmp_path / "config.json").read_text() == "{}\n"


def test_keep_checkpoints_below_two_is_refused():
    with pytest.raises(ValueError, match="keep at least 2"):
        Checkpoints(tf.train.Checkpoint(), "/nonexistent", keep=1)
    c = config_lib.get_config()
    c.keep_checkpoints = 1
    with pytest.raises(ValueError, match="--config.keep_checkpoints=1"):
        config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))


@pytest.mark.parametrize(
    "key,value",
    [
        ("max_nonfinite_steps", 0),
        ("shuffle_buffer", -1),
        ("shuffle_mb", 0),
        ("lod_training_kimg", -1.0),
    ],
)
def test_unworkable_config_values_name_the_key(key, value):
    c = config_lib.get_config()
    c[key] = value
    with pytest.raises(ValueError, match=f"--config.{key}="):
        config_lib.validate(c, config_lib.schedule(c, resolution=8, num_replicas=1))


@pytest.mark.parametrize(
    "flag,expected",
    [
        ("--total_kimg=inf", "--config.total_kimg=inf is not a finite number"),
        ("--total_kimg=nan", "--config.total_kimg=nan is not a finite number"),
        ("--config.lod_training_kimg=inf", "--config.lod_training_kimg=inf is not a finite number"),
        ("--resolution=48", "--resolution=48: use a power of two from 4 to 1024"),
    ],
)
def test_numbers_that_cannot_be_used_are_one_line_naming_the_key(flag, expected, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "progan_tf.train", flag, f"--run_dir={tmp_path}/r", "--dry_run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip() == f"error: {expected}"


def _photos(folder, count=3):
    from PIL import Image  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(folder / f"photo{i}.png")
    return sorted(os.listdir(folder))


def test_overwrite_never_replaces_the_source_or_a_folder_the_tool_did_not_write(tmp_path):
    photos = tmp_path / "photos"
    originals = _photos(photos)
    overwrite = convert.ConvertOptions(overwrite=True)
    with pytest.raises(FileExistsError, match="overlaps --source"):  # --source=photos --dest=photos
        convert.create_from_images(str(photos), str(photos), overwrite)
    with pytest.raises(FileExistsError, match="overlaps --source"):  # --dest containing the source
        convert.create_from_images(str(photos), str(tmp_path), overwrite)
    assert sorted(os.listdir(photos)) == originals
    datasets = tmp_path / "datasets"
    convert.create_from_images(str(photos), str(datasets / "a"), convert.ConvertOptions())
    (datasets / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="no dataset.json"):  # --dest=datasets: every dataset
        convert.create_from_images(str(photos), str(datasets), overwrite)
    (datasets / "a" / "notes.txt").write_text("mine too")
    with pytest.raises(FileExistsError, match="notes.txt, which the tool did not write"):
        convert.create_from_images(str(photos), str(datasets / "a"), overwrite)
    os.remove(datasets / "a" / "notes.txt")
    # its own output: replaced
    convert.create_from_images(str(photos), str(datasets / "a"), overwrite)
    assert data.load_info(datasets / "a").num_images == 3
    assert (datasets / "notes.txt").read_text() == "mine"


def test_resume_refuses_schedule_and_stream_changes_unless_accepted(tmp_path):
    trained = dict(config_lib.get_config().to_dict(), data_dir=str(tmp_path / "data"))
    (tmp_path / "config.json").write_text(json.dumps(trained))
    # allowed
    check_resume_compatible(
        str(tmp_path), {**trained, "total_kimg": 24000.0, "learning_rate": 0.002}
    )
    for key, value in [
        ("lod_training_kimg", 300.0),
        ("seed", 1),
        ("minibatch_default", 32),
        ("shuffle_buffer", 64),
        ("shuffle_mb", 64),
        ("data_dir", str(tmp_path / "other")),
        ("progressive", False),
        ("d_repeats", 5),
    ]:
        with pytest.raises(ValueError, match=f"{key}: .* -> .*--accept_changes={key}"):
            check_resume_compatible(str(tmp_path), {**trained, key: value})
        check_resume_compatible(str(tmp_path), {**trained, key: value}, accept=(key,))
    with pytest.raises(ValueError, match="not a checked key"):
        check_resume_compatible(str(tmp_path), trained, accept=("total_kimg",))
    for key, value in [("loss", "logistic_r1"), ("adam_beta1", 0.5), ("adam_beta2", 0.9)]:
        with pytest.raises(ValueError, match=f"{key}: .* -> .*--accept_changes={key}"):
            check_resume_compatible(str(tmp_path), {**trained, key: value})
        check_resume_compatible(str(tmp_path), {**trained, key: value}, accept=(key,))
    # Adam's slots cannot become RMSprop's: refused, and not offered
    with pytest.raises(ValueError, match="optimizer: adam -> rmsprop") as error:
        check_resume_compatible(str(tmp_path), {**trained, "optimizer": "rmsprop"})
    assert "--accept_changes" not in str(error.value)
    with pytest.raises(ValueError, match="optimizer cannot change on resume"):
        check_resume_compatible(
            str(tmp_path), {**trained, "optimizer": "rmsprop"}, accept=("optimizer",)
        )
    (tmp_path / "config.json").write_text("{truncated")
    with pytest.raises(ValueError, match="config.json is unreadable"):
        check_resume_compatible(str(tmp_path), trained)
    # checkpoints without config.json: nothing to check against, so refused unless accepted
    os.remove(tmp_path / "config.json")
    check_resume_compatible(str(tmp_path), trained)  # no checkpoints: a new run
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "ckpt-16.index").write_bytes(b"")
    with pytest.raises(ValueError, match="holds checkpoints but no config.json"):
        check_resume_compatible(str(tmp_path), trained)
    check_resume_compatible(str(tmp_path), trained, accept=("config.json",))


def test_tampered_run_files_and_corrupt_checkpoints_are_one_error_naming_the_file(
    dataset, run_with_checkpoints
):
    run_dir = run_with_checkpoints
    for number in (16, 32):
        data_file = run_dir / "checkpoints" / f"ckpt-{number}.data-00000-of-00001"
        os.truncate(data_file, 10)
    assert run_reader.load_run(str(run_dir)).images_seen == 48
    with pytest.raises(run_reader.RunError, match="ckpt-32 is unreadable"):
        run_reader.load_run(str(run_dir), "ckpt-32")
    info = json.loads((run_dir / "run.json").read_text())
    info["architecture"]["latent_size"] = 16  # another dense layer shape
    (run_dir / "run.json").write_text(json.dumps(info))
    with pytest.raises(run_reader.RunError, match="does not fit .*run.json"):
        run_reader.load_run(str(run_dir))
    (run_dir / "run.json").write_text('{"architecture": {"resolution": 4')
    with pytest.raises(run_reader.RunError, match="run.json is unreadable"):
        run_reader.load_run(str(run_dir))


def test_a_short_append_is_cut_off_and_a_torn_line_is_never_continued(tmp_path):
    log = tmp_path / "log.txt"
    # a file-size limit 100 bytes in: the third line fits only partly
    script = (
        "import resource, sys\n"
        "from progan_tf import files\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))\n"
        "files.append_line(sys.argv[1], 'a' * 39)\n"
        "files.append_line(sys.argv[1], 'b' * 39)\n"
        "try:\n"
        "    files.append_line(sys.argv[1], 'c' * 39)\n"
        "except OSError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(log)], capture_output=True, text=True, check=True
    )
    assert "wrote 20 of 40 bytes" in out.stdout and str(log) in out.stdout
    assert log.read_text() == "a" * 39 + "\n" + "b" * 39 + "\n"  # the half line cut off
    # a torn last line from elsewhere (a power loss): the next line starts on its own
    with open(log, "a") as f:
        f.write('{"kimg": 1.2')
    files.append_line(log, "next")
    assert log.read_text().splitlines()[-2:] == ['{"kimg": 1.2', "next"]


def test_two_processes_appending_never_tear_a_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    script = (
        "import sys; from progan_tf import files\n"
        "for i in range(400): files.append_line(sys.argv[1], sys.argv[2] * 3000 + str(i))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(path), letter], env=env)
        for letter in "ab"
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    lines = path.read_text().splitlines()
    assert len(lines) == 800
    for line in lines:
        assert line.rstrip("0123456789") in ("a" * 3000, "b" * 3000)


def _level_file(info, resolution):
    return info.level_files(resolution)[0]


def test_an_empty_level_or_a_record_of_the_wrong_shape_is_one_error_naming_the_file(tmp_path):
    images = np.random.default_rng(1).integers(0, 256, (16, 8, 8, 3), dtype=np.uint8)
    arch = Architecture(resolution=8, latent_size=8, fmap_base=32, fmap_max=8)
    schedule = Schedule(
        final_resolution=8, stable_kimg=0.016, fade_kimg=0.016, minibatch={}, minibatch_default=8
    )
    options = TrainerOptions(
        total_images=64,
        tick_images=16,
        snapshot_images=10_000,
        checkpoint_images=64,
        steps_per_call=2,
        grid_size=4,
        shuffle_buffer=16,
    )

    def run(info, run_dir):
        Trainer(
            arch=arch,
            schedule=schedule,
            options=options,
            dataset=info,
            run_dir=str(run_dir),
            strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
            config={"test": True},
        ).train()

    empty = data.load_info(
        dataset_io.write_arrays(tmp_path / "empty", images, None, name="x") and tmp_path / "empty"
    )
    with tf.io.TFRecordWriter(_level_file(empty, 4)):
        pass  # the 4x4 level now holds no record
    with pytest.raises(data.DatasetError, match=r"level 4x4 holds no image .*x-r02"):
        run(empty, tmp_path / "run-empty")
    wrong = data.load_info(
        dataset_io.write_arrays(tmp_path / "wrong", images, None, name="x") and tmp_path / "wrong"
    )
    with tf.io.TFRecordWriter(
        _level_file(wrong, 4)
    ) as writer:  # intact records of 8x8 images at the 4x4 level
        for image in images:
            feature = {
                "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[3, 8, 8])),
                "data": tf.train.Feature(bytes_list=tf.train.BytesList(value=[image.tobytes()])),
            }
            writer.write(
                tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()
            )
    with pytest.raises(
        data.DatasetError, match=r"x-r02.*record 0 holds an image of shape \[3, 8, 8\]"
    ):
        run(wrong, tmp_path / "run-wrong")


def _die(_):  # run in a decoding worker: the OS killing it
    os._exit(9)


def test_a_dead_decoding_worker_is_an_error_not_a_hang():
    with pytest.raises(convert.ConversionError, match="a decoding worker died"):
        with convert._Workers(1) as workers:
            list(workers.map(_die, range(3), chunksize=1))


def test_any_pillow_failure_skips_the_file_by_name_and_large_images_are_refused_by_header(
    tmp_path, monkeypatch
):
    import struct  # noqa: PLC0415

    from PIL import Image  # noqa: PLC0415

    def broken(*args, **kwargs):
        raise struct.error("unpack requires a buffer of 4 bytes")

    _photos(tmp_path / "p", 1)
    monkeypatch.setattr(Image, "open", broken)
    with pytest.raises(dataset_io.ImageError, match="photo0.png: unpack requires"):
        dataset_io.load_image(tmp_path / "p" / "photo0.png", 8, 3)
    monkeypatch.undo()
    Image.fromarray(np.zeros((80, 100, 3), np.uint8)).save(tmp_path / "p" / "big.png")
    meta = convert.create_from_images(
        str(tmp_path / "p"),
        str(tmp_path / "out"),
        convert.ConvertOptions(max_pixels=5000, workers=1),
    )
    assert meta["num_images"] == 1
    assert any(
        "big.png" in s["file"] and "--max_pixels=5,000" in s["reason"] for s in meta["skipped"]
    )


def test_two_replicas_save_the_position_after_the_last_batch_read(tmp_path):
    from progan_tf.strategies import mirrored_strategy  # noqa: PLC0415

    images = np.random.default_rng(2).integers(0, 256, (64, 4, 4, 3), dtype=np.uint8)
    info = data.load_info(
        dataset_io.write_arrays(tmp_path / "d", images, None, name="d") and tmp_path / "d"
    )
    schedule = Schedule(
        final_resolution=4,
        stable_kimg=1,
        fade_kimg=1,
        minibatch={},
        minibatch_default=8,
        num_replicas=2,
    )
    options = TrainerOptions(
        total_images=24,
        tick_images=8,
        snapshot_images=10_000,
        checkpoint_images=24,
        steps_per_call=3,
        grid_size=4,
        shuffle_buffer=64,
    )
    trainer = Trainer(
        arch=ARCH,
        schedule=schedule,
        options=options,
        dataset=info,
        run_dir=str(tmp_path / "run"),
        strategy=mirrored_strategy(["/cpu:0", "/cpu:1"]),
        config={"test": True},
    )
    trainer.train()
    # 3 steps of 8 images from a 64-image epoch: 24 records read, not replica 0's 20
    assert trainer.data_position.numpy().tolist() == [0, 24]
    saved = tf.train.load_variable(
        ckpt.list_checkpoints(str(tmp_path / "run" / "checkpoints"))[0],
        "data_position/.ATTRIBUTES/VARIABLE_VALUE",
    )
    assert saved.tolist() == [0, 24]


def test_generate_and_export_never_write_into_the_checkpoints(
    dataset, run_with_checkpoints, tmp_path_factory
):
    from progan_tf import generate, savedmodel  # noqa: PLC0415

    run_dir = run_with_checkpoints
    before = tree_digest(run_dir / "checkpoints")
    run = run_reader.load_run(str(run_dir))
    out = tmp_path_factory.mktemp("out")
    generate.generate_files(run, str(out), num=2, seed=1)
    with pytest.raises(
        ValueError, match="already exist"
    ):  # a second time: refused, not overwritten
        generate.generate_files(run, str(out), num=2, seed=1)
    savedmodel.export_generator(run.model, ARCH.latent_size, 0, str(out / "model" / "1"))
    assert tree_digest(run_dir / "checkpoints") == before


def test_temporaries_of_dead_writers_are_removed_and_live_ones_kept(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead, live = child.pid, os.getppid()
    folder = tmp_path / "out"
    folder.mkdir()
    for name in (f".a.png.tmp-{dead}", f".b.json.tmp-{live}", f"c.tmp-{dead}"):
        (folder / name).write_bytes(b"half")
    files.write_text(folder / "d.json", "{}")
    assert sorted(p.name for p in folder.iterdir()) == [
        f".b.json.tmp-{live}",
        f"c.tmp-{dead}",
        "d.json",
    ]
    # TensorFlow's, in a run's checkpoints (the trainer holds the run's lock while it saves)
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    junk = ["ckpt-16.index.tempstate8817", "checkpoint.tmp0f3a9c", "ckpt-16_temp"]
    for name in junk[:2]:
        (checkpoints / name).write_bytes(b"half")
    (checkpoints / junk[2]).mkdir()
    Checkpoints(tf.train.Checkpoint(v=tf.Variable(1.0)), str(checkpoints), keep=2).save(32)
    assert not any((checkpoints / name).exists() for name in junk)
    assert (checkpoints / "ckpt-32.index").exists()
