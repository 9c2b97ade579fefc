"""What users do with a trained run: load it, generate, evaluate, export for TF Serving."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from progan_tf import data, dataset_io, export, generate, run_reader, savedmodel
from progan_tf.metrics import inception as inception_lib, measure
from progan_tf import images as image_utils
from conftest import ROOT, assert_no_tensorflow_log, cli_env
from progan_tf.networks import Architecture
from progan_tf.schedule import Schedule
from progan_tf.steps import StepOptions
from progan_tf.trainer import Trainer, TrainerOptions

SCHEDULE = Schedule(
    final_resolution=8, stable_kimg=0.032, fade_kimg=0.032, minibatch={}, minibatch_default=8
)


def train_tiny(tmp_path_factory, num_labels: int):
    rng = np.random.default_rng(num_labels)
    images = (
        tf.nn.avg_pool2d(rng.random((48, 8, 8, 3)).astype("float32"), 3, 1, "SAME").numpy() * 255
    ).astype(np.uint8)
    labels = np.arange(48) % 3 if num_labels else None
    path = tmp_path_factory.mktemp("data") / "tiny"
    dataset_io.write_arrays(path, images, labels, name="tiny", num_labels=num_labels)
    info = data.load_info(path)
    run_dir = tmp_path_factory.mktemp("run")
    options = TrainerOptions(
        total_images=112,
        tick_images=32,
        snapshot_images=64,
        checkpoint_images=48,
        steps_per_call=2,
        grid_size=4 if num_labels else 6,
        shuffle_buffer=64,
        step=StepOptions(ema_beta=0.9),
        metrics=("swd", "msssim") if not num_labels else (),
        metrics_num_images=16,
    )
    arch = Architecture(
        resolution=8, num_labels=num_labels, latent_size=8, fmap_base=32, fmap_max=8
    )
    trainer = Trainer(
        arch=arch,
        schedule=SCHEDULE,
        options=options,
        dataset=info,
        run_dir=str(run_dir),
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
    )
    trainer.train()
    return trainer, info


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_tiny(tmp_path_factory, num_labels=0)


@pytest.fixture(scope="module")
def conditional(tmp_path_factory):
    return train_tiny(tmp_path_factory, num_labels=3)


def test_load_run_rebuilds_the_ema_generator(trained):
    trainer, _ = trained
    run = run_reader.load_run(trainer.run_dir)
    assert run.images_seen == 112 and run.phase.resolution == 8 and not run.phase.fade
    z = image_utils.latents(5, 8, seed=3)
    expected = trainer.ema.stage_model(8)(z, training=False).numpy()
    np.testing.assert_allclose(run.model(z, training=False).numpy(), expected, atol=1e-6)
    older = run_reader.load_run(trainer.run_dir, "ckpt-48")  # half-way through the 8x8 fade-in
    assert older.images_seen == 48 and older.phase.fade and older.generator.alpha.numpy() == 0.5
    with pytest.raises(run_reader.RunError, match="ckpt-5.index is missing"):
        run_reader.load_run(trainer.run_dir, "ckpt-5")
    with pytest.raises(run_reader.RunError, match="not a progan_tf run directory"):
        run_reader.load_run(os.path.dirname(trainer.run_dir))


def test_metrics_during_training_at_every_checkpoint(trained):
    with open(os.path.join(trained[0].run_dir, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    assert [line["kimg"] for line in lines] == [0.048, 0.096, 0.112]
    assert all({"swd_avg", "msssim"} <= set(line) for line in lines)


def test_generate_files_grid_and_looping_gif(trained, tmp_path):
    run = run_reader.load_run(trained[0].run_dir)
    paths = generate.generate_files(run, str(tmp_path), num=3, seed=7)
    assert [os.path.basename(p) for p in paths] == [
        "seed7-00000.png",
        "seed7-00001.png",
        "seed7-00002.png",
    ]
    first = np.asarray(Image.open(paths[0]))
    assert first.shape == (8, 8, 3)
    np.testing.assert_array_equal(first, run.generate(image_utils.latents(3, 8, 7))[0])
    with pytest.raises(ValueError, match="already exist.*--overwrite"):
        generate.generate_files(run, str(tmp_path), num=3, seed=7)
    grid = generate.generate_grid(run, str(tmp_path), num=6, seed=7)
    assert np.asarray(Image.open(grid)).shape == (16, 24, 3)  # 2 rows x 3 columns
    gif = generate.generate_interpolation(
        run, str(tmp_path), num=4, seed=1, frames=12, fps=10, smoothing=1.5
    )
    with Image.open(gif) as animation:
        assert animation.n_frames == 12 and animation.info["loop"] == 0
        assert animation.size == (16, 16)


def test_smooth_loop_is_periodic_and_unit_rms(rng):
    noise = rng.normal(size=(40, 3, 5))
    smooth = generate.smooth_loop(noise, sigma=4.0)
    assert np.sqrt(np.mean(smooth**2)) == pytest.approx(1.0, rel=1e-5)
    steps = np.linalg.norm(np.diff(np.concatenate([smooth, smooth[:1]]), axis=0), axis=-1)
    assert steps.max() < 0.5 * np.linalg.norm(smooth, axis=-1).mean()  # no jump, including the wrap


def test_conditional_grid_has_one_row_per_class(conditional, tmp_path):
    run = run_reader.load_run(conditional[0].run_dir)
    labels, columns = image_utils.class_rows(7, 3)
    assert columns == 3 and labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    grid = np.asarray(Image.open(generate.generate_grid(run, str(tmp_path), num=7, seed=0)))
    assert grid.shape == (24, 24, 3)
    # Row c holds class c: the grid equals the generator's output for those labels, and not for
    # the labels shifted by one row (catches labels ignored, or laid out by column).
    latents = image_utils.latents(9, run.generator.arch.latent_size, 0)
    np.testing.assert_array_equal(
        grid, image_utils.make_grid(run.generate(latents, labels), columns=3)
    )
    assert not np.array_equal(
        grid, image_utils.make_grid(run.generate(latents, (labels + 1) % 3), columns=3)
    )


def test_generate_one_class_and_bad_labels(conditional, trained, tmp_path):
    run = run_reader.load_run(conditional[0].run_dir)
    grid = np.asarray(
        Image.open(generate.generate_grid(run, str(tmp_path), num=4, seed=3, label=2))
    )
    latents = image_utils.latents(4, run.generator.arch.latent_size, 3)
    np.testing.assert_array_equal(grid, image_utils.make_grid(run.generate(latents, np.full(4, 2))))
    files = generate.generate_files(run, str(tmp_path / "files"), num=2, seed=3, label=2)
    np.testing.assert_array_equal(
        np.asarray(Image.open(files[1])), run.generate(latents[:2], np.full(2, 2))[1]
    )
    with pytest.raises(ValueError, match=r"--label=3: this run has classes 0 \.\.\. 2"):
        generate.generate_grid(run, str(tmp_path), num=4, seed=3, label=3)
    with pytest.raises(ValueError, match="--label=0: this run's generator is not conditional"):
        generate.generate_files(
            run_reader.load_run(trained[0].run_dir), str(tmp_path / "u"), num=2, seed=3, label=0
        )
    assert not (tmp_path / "u").exists()


def test_conditional_run_grids_have_whole_rows_per_class(conditional):
    # grid_size 4 with 3 classes: 2 columns, and every class gets its whole row (6 tiles), in
    # the run's sample grids and in reals.png (the first 2 images of each class, class order).
    trainer, info = conditional
    reals = np.asarray(Image.open(os.path.join(trainer.run_dir, "reals.png")))
    dataset, labels = next(data.iterate_level(info, 8, batch_size=48))
    first = np.concatenate([np.flatnonzero(labels.argmax(axis=1) == c)[:2] for c in range(3)])
    np.testing.assert_array_equal(reals, image_utils.make_grid(dataset[first], columns=2))
    samples = sorted(os.listdir(os.path.join(trainer.run_dir, "samples")))
    assert samples and np.asarray(
        Image.open(os.path.join(trainer.run_dir, "samples", samples[-1]))
    ).shape == (24, 16, 3)


def test_evaluate_swd_msssim_and_record(trained):
    trainer, info = trained
    run = run_reader.load_run(trainer.run_dir)
    results = measure.evaluate_generator(
        run.generator, run.phase, info, ["swd", "msssim"], num_images=24
    )
    assert set(results) == {"swd8", "swd_avg", "swd8_real", "swd_avg_real", "msssim"}
    assert all(np.isfinite(v) and v > 0 for v in results.values())
    # a barely trained G is further from the reals than reals are
    assert results["swd8"] > results["swd8_real"]
    assert results["msssim"] < 1  # the generated images are not all the same
    # Seeded: the same call gives the same numbers (latents, patches and directions).
    again = measure.evaluate_generator(
        run.generator, run.phase, info, ["swd", "msssim"], num_images=24
    )
    assert again == pytest.approx(results)
    measure.record(trainer.run_dir, results, kimg=run.kimg, step=run.images_seen)
    with open(os.path.join(trainer.run_dir, "metrics.jsonl")) as f:
        line = json.loads(f.readlines()[-1])
    assert line["kimg"] == 0.112 and line["swd_avg"] == pytest.approx(results["swd_avg"])
    with pytest.raises(ValueError, match="unknown"):
        measure.evaluate_generator(run.generator, run.phase, info, ["is"], num_images=8)
    with pytest.raises(ValueError, match="FID and KID need --inception=FILE"):
        measure.evaluate_generator(run.generator, run.phase, info, ["swd", "fid"], num_images=8)
    # the 2015 network's test copy (tests/test_inception.py): one feature pass for both
    tiny = os.path.join(ROOT, "tests", "data", "inception_tiny.pt")
    scores = measure.evaluate_generator(
        run.generator, run.phase, info, ["fid", "kid"], num_images=16, inception=tiny
    )
    assert set(scores) == {"fid", "kid", "kid_std"} and scores["fid"] > 0

    class Counting(inception_lib.InceptionFeatures):  # what the network is given, not its output
        def __init__(self):
            self.seen = []

        def __call__(self, batches):
            images = np.concatenate(list(batches))
            self.seen.append(images)
            return np.random.default_rng(len(self.seen)).normal(size=(len(images), 4))

    counting = Counting()  # FID-50k on a smaller set: all the fakes, every real
    measure.evaluate_generator(
        run.generator, run.phase, info, ["fid"], num_images=100, inception=counting
    )
    reals, fakes = counting.seen
    assert (len(reals), len(fakes)) == (48, 100)
    assert np.abs(fakes[48:96].astype(int) - fakes[:48]).max() > 0  # new latents, same labels


def test_evaluate_cli_prints_a_table(trained):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.evaluate",
            f"--run_dir={trained[0].run_dir}",
            "--metrics=swd",
            "--num_images=16",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    assert_no_tensorflow_log(out.stderr)
    assert out.stdout.splitlines()[0].split() == ["metric", "value", "real", "vs", "real"]
    assert out.stdout.splitlines()[1].startswith("swd8")
    missing = subprocess.run(
        [sys.executable, "-m", "progan_tf.evaluate", "--run_dir=/nonexistent"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert missing.returncode == 1 and "--run_dir=/nonexistent: no such directory" in missing.stderr


FRESH_PROCESS = textwrap.dedent("""
    import sys, numpy as np, tensorflow as tf
    model = tf.saved_model.load(sys.argv[1])
    assert "progan_tf" not in sys.modules
    inputs = dict(np.load(sys.argv[2]))
    out = model.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})
    np.savez(sys.argv[3], images=out["images"].numpy(), raw=out["raw"].numpy())
    try:
        others = {k: tf.constant(v[:2]) for k, v in inputs.items() if k != "latents"}
        model.signatures["serving_default"](latents=tf.zeros([2, 3]), **others)
    except Exception as error:
        print("WRONG SHAPE:", type(error).__name__, error)
""")


@pytest.mark.parametrize("which", ["trained", "conditional"])
def test_export_runs_without_progan_tf(which, request, tmp_path):
    trainer, _ = request.getfixturevalue(which)
    run = run_reader.load_run(trainer.run_dir)
    arch = run.generator.arch
    assert export.next_version(str(tmp_path / "model")) == 1
    path = str(tmp_path / "model" / "1")
    savedmodel.export_generator(run.model, arch.latent_size, arch.num_labels, path)
    assert export.next_version(str(tmp_path / "model")) == 2
    z = image_utils.latents(4, arch.latent_size, seed=11)
    inputs = {"latents": z}
    model_inputs = z
    if arch.num_labels:
        inputs["labels"] = np.array([0, 1, 2, 1], np.int32)
        model_inputs = [tf.constant(z), tf.one_hot(inputs["labels"], arch.num_labels)]
    np.savez(tmp_path / "inputs.npz", **inputs)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            FRESH_PROCESS,
            path,
            str(tmp_path / "inputs.npz"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert f"latents: expected float32 [N, {arch.latent_size}]" in out.stdout
    served = np.load(tmp_path / "out.npz")
    expected = run.model(model_inputs, training=False).numpy()
    np.testing.assert_allclose(served["raw"], expected, atol=1e-5)
    np.testing.assert_array_equal(served["images"], data.to_uint8(expected).numpy())


def test_export_cli_and_saved_model_cli(conditional, tmp_path):
    # A conditional run, as the demo's (the README's call passes a label); the unconditional
    # export goes through the same CLI and saved_model_cli in test_official.py.
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    export_dir = tmp_path / "served"
    (export_dir / "1").mkdir(parents=True)  # an existing version is kept; the export goes to 2/
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.export",
            f"--run_dir={conditional[0].run_dir}",
            f"--export_dir={export_dir}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    assert_no_tensorflow_log(out.stderr)
    assert os.listdir(export_dir / "1") == [] and (export_dir / "2" / "saved_model.pb").exists()
    show = subprocess.run(
        [cli, "show", "--dir", str(export_dir / "2"), "--all"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert show.returncode == 0, show.stderr
    for expected in (
        "signature_def['serving_default']",
        "signature_def['generate_from_seed']",
        "inputs['latents']",
        "inputs['labels']",
        "outputs['images']",
        "dtype: DT_UINT8",
        "inputs['seed']",
        "inputs['label']",
    ):
        assert expected in show.stdout
    run_out = subprocess.run(
        [
            cli,
            "run",
            "--dir",
            str(export_dir / "2"),
            "--tag_set",
            "serve",
            "--signature_def",
            "generate_from_seed",
            "--input_exprs",
            "seed=7;num=3;label=2",
            "--outdir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run_out.returncode == 0, run_out.stderr
    images = np.load(tmp_path / "o" / "images.npy")
    assert images.shape == (3, 8, 8, 3) and images.dtype == np.uint8
    # The label reaches the generator: the same seed in class 2 is what saved_model_cli drew, in
    # class 0 not.
    from_seed = tf.saved_model.load(str(export_dir / "2")).signatures["generate_from_seed"]
    raw = {
        c: from_seed(seed=tf.constant(7, tf.int64), num=tf.constant(3), label=tf.constant(c))[
            "raw"
        ].numpy()
        for c in (0, 2)
    }
    np.testing.assert_allclose(raw[2], np.load(tmp_path / "o" / "raw.npy"), atol=1e-6)
    assert np.abs(raw[0] - raw[2]).max() > 1e-4


def test_generate_cli_writes_a_grid_quietly(trained, tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.generate",
            f"--run_dir={trained[0].run_dir}",
            f"--out={tmp_path}",
            "--num_images=4",
            "--grid",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "grid-seed0.png").exists()
    assert_no_tensorflow_log(out.stderr)
    assert "grid-seed0.png" in out.stdout  # the result on stdout, diagnostics on stderr


def test_evaluate_mirrors_the_reals_of_a_mirrored_run(trained):
    trainer, info = trained
    run = run_reader.load_run(trainer.run_dir)
    plain = measure.evaluate_generator(run.generator, run.phase, info, ["swd"], num_images=24)
    mirrored = measure.evaluate_generator(
        run.generator, run.phase, info, ["swd"], num_images=24, mirror=True
    )
    again = measure.evaluate_generator(
        run.generator, run.phase, info, ["swd"], num_images=24, mirror=True
    )
    assert mirrored == pytest.approx(again)  # seeded
    assert mirrored["swd8_real"] != pytest.approx(plain["swd8_real"])  # the reals were flipped


def test_paths_a_command_cannot_use_are_one_line_naming_them(trained, tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    run_dir = trained[0].run_dir
    commands = {
        "generate": (["--run_dir", run_dir, "--out", f"{a_file}/out"], f"{a_file}/out"),
        "export": (["--run_dir", run_dir, "--export_dir", f"{a_file}/models"], str(a_file)),
        "evaluate": (
            ["--run_dir", run_dir, "--data_dir", str(a_file), "--metrics=swd"],
            f"{a_file} is a file, not a dataset directory",
        ),
        "train": (["--data_dir", str(a_file)], f"{a_file} is a file, not a dataset directory"),
    }
    running = {
        name: subprocess.Popen(
            [sys.executable, "-m", f"progan_tf.{name}", *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=cli_env(),
        )
        for name, (args, _) in commands.items()
    }
    for name, process in running.items():
        _, stderr = process.communicate(timeout=300)
        expected = commands[name][1]
        errors = [line for line in stderr.splitlines() if line.startswith("error: ")]
        assert process.returncode == 1 and len(errors) == 1, f"{name}: {stderr[-2000:]}"
        assert expected in errors[0] and "Traceback" not in stderr, f"{name}: {stderr[-2000:]}"
