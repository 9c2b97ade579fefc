"""Importing the release's pickles: numpy forward pass of the release's networks vs the
imported Keras models, a refused malicious pickle, and an imported run directory that exports."""

import io
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import official_reference as ref
from conftest import ROOT, cli_env
from progan_tf import release_pickle, run_reader
from progan_tf.release_pickle import import_pickle
from progan_tf.networks import Architecture, Discriminator, Generator


def release(
    rng,
    *,
    resolution,
    fused,
    label_size=0,
    channels=3,
    fmap_base=128,
    fmap_max=16,
    latent_size=12,
    mbstd=4,
):
    common = dict(
        num_channels=channels,
        resolution=resolution,
        label_size=label_size,
        fmap_base=fmap_base,
        fmap_max=fmap_max,
        fused_scale=fused,
    )
    sizes = dict(
        resolution=resolution,
        channels=channels,
        label_size=label_size,
        fmap_base=fmap_base,
        fmap_max=fmap_max,
        latent_size=latent_size,
        fused=fused,
        mbstd=mbstd,
    )
    g = ref.variables("G", rng, **sizes)
    d = ref.variables("D", rng, **sizes)
    gs = ref.variables("G", rng, **sizes)
    states = [
        ref.network_state("G", "networks.G_paper", {**common, "latent_size": latent_size}, g),
        ref.network_state("D", "networks.D_paper", {**common, "mbstd_group_size": mbstd}, d),
        ref.network_state("Gs", "networks.G_paper", {**common, "latent_size": latent_size}, gs),
    ]
    return states, (g, d, gs)


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("label_size", [0, 3])
def test_imported_g_and_d_equal_the_release_forward_pass(rng, resolution, fused, label_size):
    # Catches: an unflipped or unswapped Conv0_up kernel, NCHW/NHWC order in the 4x4 dense layers,
    # a wrong gain, bias order in D's fused block, labels concatenated on the wrong side.
    states, (g, d, gs) = release(rng, resolution=resolution, fused=fused, label_size=label_size)
    g_state, d_state, gs_state = release_pickle.load_pickle(ref.release_pickle(states))
    kwargs = release_pickle.architecture_kwargs(g_state, d_state)
    assert kwargs["fused_scale"] == fused
    arch = Architecture(**kwargs)
    generator, discriminator = Generator(arch), Discriminator(arch, name="d")
    release_pickle.assign(generator, release_pickle.generator_weights(gs_state, arch, fused))
    release_pickle.assign(discriminator, release_pickle.discriminator_weights(d_state, arch, fused))

    latents = rng.standard_normal((8, 12)).astype(np.float32)
    labels = (
        np.eye(label_size, dtype=np.float32)[np.arange(8) % label_size]
        if label_size
        else np.zeros((8, 0), np.float32)
    )
    want = ref.generator(
        gs, latents, labels, resolution=resolution, fmap_base=128, fmap_max=16, fused=fused
    )
    model = generator.stage_model(resolution)
    inputs = [tf.constant(latents), tf.constant(labels)] if label_size else tf.constant(latents)
    got = model(inputs).numpy().transpose(0, 3, 1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())

    images = rng.standard_normal((8, 3, resolution, resolution)).astype(np.float32)
    want = ref.discriminator(d, images, resolution=resolution, mbstd_group_size=4, fused=fused)
    got = discriminator.stage_model(resolution)(tf.constant(images.transpose(0, 2, 3, 1))).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_numpy_1x_reconstructor_name_is_read(rng):
    states, _ = release(rng, resolution=8, fused=True)
    data = ref.release_pickle(states, protocol=3)  # globals as text lines: renamed in place
    old = data.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct" in old and b"numpy._core" not in old
    g_state, _, _ = release_pickle.load_pickle(old)
    assert g_state.variables["4x4/Conv/weight"].shape == (3, 3, 16, 16)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + _Evil.marker,))


def test_a_pickle_with_os_system_is_refused_and_nothing_runs(tmp_path):
    _Evil.marker = str(tmp_path / "ran")
    data = pickle.dumps(_Evil(), protocol=2)
    with pytest.raises(release_pickle.OfficialImportError, match=r"global (posix|os)\.system"):
        release_pickle.load_pickle(data, "evil.pkl")
    assert not (tmp_path / "ran").exists()
    path = tmp_path / "evil.pkl"
    path.write_bytes(data)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.import_official",
            f"--pkl={path}",
            f"--run_dir={tmp_path / 'r'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(),
    )
    assert out.returncode == 1 and "system" in out.stderr and not (tmp_path / "ran").exists()
    assert not (tmp_path / "r").exists()


def test_unknown_kwargs_and_unmapped_variables_are_listed(rng):
    states, _ = release(rng, resolution=8, fused=True)
    states[0]["static_kwargs"]["use_wscale"] = False
    states[0]["static_kwargs"]["something_new"] = 1
    g_state, d_state, _ = release_pickle.load_pickle(ref.release_pickle(states))
    with pytest.raises(
        release_pickle.OfficialImportError, match="use_wscale=False.*something_new=1"
    ):
        release_pickle.architecture_kwargs(g_state, d_state)
    states, _ = release(rng, resolution=8, fused=True)
    states[1]["variables"].append(("8x8/Extra/weight", np.zeros(3, np.float32)))
    _, d_state, _ = release_pickle.load_pickle(ref.release_pickle(states))
    arch = Architecture(resolution=8, latent_size=12, fmap_base=128, fmap_max=16)
    with pytest.raises(release_pickle.OfficialImportError, match=r"8x8/Extra/weight"):
        release_pickle.discriminator_weights(d_state, arch, fused=True)


def test_imported_run_generates_and_exports_for_saved_model_cli(rng, tmp_path):
    states, (_, _, gs) = release(rng, resolution=16, fused=True)
    pkl = tmp_path / "release.pkl"
    pkl.write_bytes(ref.release_pickle(states))
    import_pickle(str(pkl), str(tmp_path / "run"))
    with pytest.raises(ValueError, match="exists"):
        import_pickle(str(pkl), str(tmp_path / "run"))  # never overwritten
    run = run_reader.load_run(str(tmp_path / "run"))
    assert (run.resolution, run.phase.fade) == (16, False)
    latents = rng.standard_normal((2, 12)).astype(np.float32)
    want = ref.generator(
        gs,
        latents,
        np.zeros((2, 0), np.float32),
        resolution=16,
        fmap_base=128,
        fmap_max=16,
        fused=True,
    )
    np.testing.assert_allclose(
        run.model(tf.constant(latents)).numpy().transpose(0, 3, 1, 2),
        want,
        rtol=1e-4,
        atol=1e-4 * np.abs(want).max(),
    )
    export_dir = tmp_path / "served"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.export",
            f"--run_dir={tmp_path / 'run'}",
            f"--export_dir={export_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(),
    )
    assert out.returncode == 0, out.stderr
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    ran = subprocess.run(
        [
            cli,
            "run",
            "--dir",
            str(export_dir / "1"),
            "--tag_set",
            "serve",
            "--signature_def",
            "generate_from_seed",
            "--input_exprs",
            "seed=1;num=2",
            "--outdir",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stderr
    assert np.load(tmp_path / "o" / "images.npy").shape == (2, 16, 16, 3)


def test_an_imported_run_fine_tunes_with_fresh_optimizers(rng, tmp_path):
    from progan_tf import data, dataset_io  # noqa: PLC0415
    from progan_tf.schedule import Schedule  # noqa: PLC0415
    from progan_tf.trainer import Trainer, TrainerOptions  # noqa: PLC0415

    states, _ = release(rng, resolution=8, fused=True)
    pkl = tmp_path / "release.pkl"
    pkl.write_bytes(ref.release_pickle(states))
    import_pickle(str(pkl), str(tmp_path / "run"))
    dataset_io.write_arrays(
        tmp_path / "data", rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), None, name="mine"
    )
    arch = Architecture(resolution=8, latent_size=12, fmap_base=128, fmap_max=16)
    schedule = Schedule(final_resolution=8, minibatch={}, minibatch_default=8)
    start = schedule.stable_images + schedule.fade_images  # the import's image count: 8x8 stable
    trainer = Trainer(
        arch=arch,
        schedule=schedule,
        dataset=data.load_info(tmp_path / "data"),
        run_dir=str(tmp_path / "run"),
        options=TrainerOptions(
            total_images=start + 16,
            tick_images=8,
            snapshot_images=16,
            checkpoint_images=16,
            steps_per_call=1,
            grid_size=4,
        ),
        strategy=tf.distribute.OneDeviceStrategy("/cpu:0"),
    )
    imported = run_reader.load_run(str(tmp_path / "run")).generator.stage_model(8).get_weights()
    trainer.train()
    assert (
        trainer.seen == start + 16 and int(trainer.phase_step.d_optimizer.iterations.numpy()) == 2
    )
    tuned = run_reader.load_run(str(tmp_path / "run")).generator.stage_model(8).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(imported, tuned))


def test_the_guides_fine_tune_command_trains_an_imported_run_through_the_cli(rng, tmp_path):
    """import_official, then `train --run_dir=IMPORTED --data_dir=MINE --config=configs/...` as
    the guide shows it, with settings the import lacks (shuffle, phase lengths, penalty
    interval) changed freely and a network setting refused."""
    from progan_tf import dataset_io  # noqa: PLC0415

    states, _ = release(rng, resolution=8, fused=True)
    pkl = tmp_path / "release.pkl"
    pkl.write_bytes(ref.release_pickle(states))
    run_dir = tmp_path / "run"
    subprocess.run(
        [sys.executable, "-m", "progan_tf.import_official", f"--pkl={pkl}", f"--run_dir={run_dir}"],
        cwd=ROOT,
        env=cli_env(),
        check=True,
        capture_output=True,
    )
    dataset_io.write_arrays(
        tmp_path / "mine", rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), None, name="mine"
    )
    imported = run_reader.load_run(str(run_dir)).generator.stage_model(8).get_weights()
    command = [
        sys.executable,
        "-m",
        "progan_tf.train",
        f"--run_dir={run_dir}",
        f"--data_dir={tmp_path / 'mine'}",
        f"--config={os.path.join(ROOT, 'configs', 'celebahq_1024.py')}",
        "--resolution=8",
        "--config.latent_size=12",
        "--config.fmap_base=128",
        "--config.fmap_max=16",
        "--config.lod_training_kimg=0.008",  # another schedule than the import's 600/600
        "--config.lod_transition_kimg=0.008",
        "--config.gp_interval=2",
        "--config.shuffle_buffer=16",
        "--config.minibatch_dict={'8': 8}",
        "--config.tick_kimg=0.008",
        "--config.snapshot_kimg=0.016",
        "--config.checkpoint_kimg=0.016",
        "--config.grid_size=4",
    ]
    refused = subprocess.run(
        [*command, "--config.fmap_max=32", "--total_kimg=1200.016"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert refused.returncode == 1
    assert "imported networks of other settings (fmap_max: 16 -> 32)" in refused.stderr
    # the import's count (600/600 kimg: 8x8 stable from 1200 kimg) is past this schedule's 16
    result = subprocess.run(
        [*command, "--total_kimg=1200.016"], cwd=ROOT, env=cli_env(), capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "fine-tuning imported networks" in result.stderr
    tuned = run_reader.load_run(str(run_dir))
    assert tuned.images_seen == 1_200_016 and tuned.resolution == 8
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(imported, tuned.generator.stage_model(8).get_weights())
    )
    # from now on it is a run like any other: its own settings are checked on resume
    again = subprocess.run(
        [*command, "--total_kimg=1200.032", "--config.gp_interval=1"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "gp_interval: 2 -> 1" in again.stderr


def test_a_small_pickle_asking_for_huge_arrays_is_refused():
    shared = bytes(4 << 20)  # one 4 MB buffer, written once and referenced by every array

    class Pickler(pickle.Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, np.ndarray):
                return (
                    np._core.multiarray._reconstruct,
                    (np.ndarray, (0,), b"b"),
                    (1, (1 << 20,), np.dtype(np.float32), False, shared),
                )
            return NotImplemented

    buffer = io.BytesIO()
    # 256 MB from a 4 MB file
    Pickler(buffer, protocol=2).dump([np.zeros(1, np.float32) for _ in range(64)])
    data = buffer.getvalue()
    assert len(data) < (5 << 20)
    with pytest.raises(release_pickle.OfficialImportError, match="more memory"):
        release_pickle.load_pickle(data, "amplified.pkl")
    # lists nested 200,000 deep: one error, no crash
    deep = b"\x80\x02" + b"]" * 200_000 + b"a" * 199_999 + b"."
    with pytest.raises(
        release_pickle.OfficialImportError, match="deep.pkl does not hold the release's"
    ):
        release_pickle.load_pickle(deep, "deep.pkl")
    with pytest.raises(release_pickle.OfficialImportError, match="array of Python objects"):
        release_pickle.load_pickle(
            pickle.dumps(np.array([None, 1], dtype=object), protocol=2), "objects.pkl"
        )


def test_a_real_size_release_pickle_loads_within_the_unpicklers_budget(rng):
    # CelebA-HQ's G, D and Gs at paper widths, fused layers: ~264 MB, read in one process with
    # the budget of twice the file's size (docs/reference.md §2 has the counts)
    data = ref.release_pickle(ref.celebahq_states(rng))
    assert len(data) > 250 << 20
    g, d, gs = release_pickle.load_pickle(data, "celebahq.pkl")
    trainable = lambda state: sum(  # noqa: E731
        np.size(value) for name, value in state.variables.items() if not name.endswith("lod")
    )
    assert (trainable(g), trainable(d), trainable(gs)) == (23_079_115, 23_087_249, 23_079_115)


def test_a_run_dir_that_cannot_be_made_is_one_line(rng, tmp_path):
    states, _ = release(rng, resolution=32, fused=False)
    pkl = tmp_path / "net.pkl"
    pkl.write_bytes(ref.release_pickle(states))
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "progan_tf.import_official",
            f"--pkl={pkl}",
            f"--run_dir={a_file}/r",
        ],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=300,
    )
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert result.returncode == 1 and len(errors) == 1, result.stderr[-2000:]
    assert str(a_file) in errors[0] and "Traceback" not in result.stderr


def test_scalar_bombs_huge_settings_and_nested_settings_are_refused(rng, tmp_path):
    # numpy's scalar reconstructor with a 1 GB void dtype: a few bytes of pickle
    class Bomb:
        def __reduce__(self):
            return (np._core.multiarray.scalar, (np.dtype("V1000000000"),))  # 1 GB of zeros

    with pytest.raises(release_pickle.OfficialImportError, match="scalar of type"):
        release_pickle.load_pickle(pickle.dumps([Bomb()], protocol=2), "bomb.pkl")
    # settings that describe networks far larger than the arrays: refused before any is built
    states, _ = release(rng, resolution=32, fused=False)
    for state in states:
        state["static_kwargs"]["fmap_max"] = 1 << 20
        state["static_kwargs"]["fmap_base"] = 1 << 24
    pkl = tmp_path / "huge.pkl"
    pkl.write_bytes(ref.release_pickle(states))
    with pytest.raises(
        release_pickle.OfficialImportError, match="describe .* weights, and its arrays"
    ):
        import_pickle(str(pkl), str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    # a setting nested 100,000 deep (spliced in: Python's pickler cannot write one)
    states, _ = release(rng, resolution=32, fused=False)
    states[0]["static_kwargs"]["fmap_max"] = "DEEPMARK"
    marker = b"\x8c\x08DEEPMARK\x94"  # the string, then its memo entry
    data = ref.release_pickle(states)
    assert data.count(marker) == 1
    nested = b"]" * 100_000 + b"a" * 99_999 + b"\x94"  # lists in lists, memoized as the string was
    with pytest.raises(
        release_pickle.OfficialImportError, match="release pickle's settings are plain"
    ):
        release_pickle.load_pickle(data.replace(marker, nested), "nested.pkl")
