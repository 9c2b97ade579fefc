"""The paper's Table 1 switches: each changes the networks, schedule or step as the paper says,
and the defaults are the paper's method (the official parameter counts stay exact)."""

import importlib.util
import math
import os

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import config as config_lib
from progan_tf import layers as L
from progan_tf.networks import Architecture, Discriminator, Generator
from progan_tf.schedule import Schedule, phase_at
from progan_tf.strategies import mirrored_strategy
from progan_tf.trainer import Trainer, TrainerOptions
from conftest import noise_dataset, tiny_trainer

# reference §2 at 32x32: every toRGB (512*3 + 3) and fromRGB (3*512 + 512) counted
G32, D32, TO_RGB, FROM_RGB = 20_719_628, 20_726_785, 512 * 3 + 3, 3 * 512 + 512


def layer_names(network) -> list[str]:
    return [layer.name for block in network.layers() for layer in getattr(block, "layers", [block])]


def test_default_switches_keep_the_official_counts_and_layers():
    arch = Architecture(32)
    assert (arch.progressive, arch.equalized_lr, arch.pixel_norm, arch.normalization) == (
        True,
        True,
        True,
        "none",
    )
    g, d = Generator(arch), Discriminator(arch)
    assert (g.count_params(), d.count_params()) == (G32, D32)
    assert not g.non_trainable_state() and not d.non_trainable_state()
    # the config's defaults build the same networks
    c = config_lib.get_config()
    built = config_lib.architecture(c, resolution=32, channels=3, num_labels=0)
    assert built == arch


def test_not_progressive_has_only_the_final_rgb_layers_and_stage():
    arch = Architecture(32, progressive=False)
    g, d = Generator(arch), Discriminator(arch)
    # the three lower toRGB / fromRGB layers are gone, nothing else
    assert g.count_params() == G32 - 3 * TO_RGB
    assert d.count_params() == D32 - 3 * FROM_RGB
    assert list(g.to_rgb) == [32] and list(d.from_rgb) == [32]
    with pytest.raises(ValueError, match="no fade-in"):
        g.stage_model(32, fade=True)
    with pytest.raises(ValueError, match="not one of"):
        d.stage_model(16)


def test_not_progressive_schedule_has_no_fade_phases():
    schedule = Schedule(final_resolution=32, stable_kimg=1, fade_kimg=1, progressive=False)
    grown = Schedule(final_resolution=32, stable_kimg=1, fade_kimg=1)
    for images in (0, 1_000, 1_500, 7_000, 100_000):
        phase = phase_at(schedule, images)
        assert (
            phase.resolution,
            phase.fade,
            phase.alpha,
            phase.start_images,
            phase.end_images,
        ) == (32, False, 1.0, 0, None)
    assert phase_at(grown, 1_500).fade  # the same lengths grow when progressive


def test_pixel_norm_off_removes_every_feature_norm_but_the_latents():
    on, off = Generator(Architecture(16)), Generator(Architecture(16, pixel_norm=False))
    assert sum("pixelnorm" in n for n in layer_names(on)) == 1 + 2 * 3  # latent + two per block
    assert [n for n in layer_names(off) if "pixelnorm" in n] == ["g_4x4_latent_pixelnorm"]
    assert on.count_params() == off.count_params()


def test_baseline_relu_and_plain_latents_change_layers_not_counts(rng):
    # the release's use_leakyrelu=False (G only) and normalize_latents=False
    small = dict(latent_size=8, fmap_base=32, fmap_max=8, pixel_norm=False)  # as rows a-c
    on = Generator(Architecture(8, **small))
    off = Generator(Architecture(8, **small, g_leaky_relu=False, normalize_latents=False))
    assert on.count_params() == off.count_params()
    names = layer_names(off)
    assert "g_4x4_latent_pixelnorm" not in names and not any("lrelu" in n for n in names)
    assert sum("_relu" in n for n in names) == 2 * 2  # two per block
    # the same weights: z scaled by 10 changes nothing with pixel norm on the latents, and
    # scales the image without it (zero biases: homogeneous); ReLU zeroes what leaky ReLU
    # lets through at 0.2
    off.copy_weights_from(on)
    z = rng.normal(size=(4, 8)).astype("float32")
    model_on, model_off = on.stage_model(8), off.stage_model(8)
    np.testing.assert_allclose(model_on(z), model_on(10 * z), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(10 * model_off(z), model_off(10 * z), rtol=1e-4, atol=1e-4)
    block = off.blocks[4]
    x = block.get_layer("g_4x4_relu0")(np.array([[-1.0, 2.0]], "float32"))
    np.testing.assert_array_equal(x, [[0.0, 2.0]])


def test_tanh_output_is_tanh_of_the_linear_output_in_every_stage_model(rng):
    # A.2's baseline G: tanh in place of toRGB's linear activation; no weights of its own
    small = dict(latent_size=8, fmap_base=32, fmap_max=8)
    linear = Generator(Architecture(8, **small))
    tanh = Generator(Architecture(8, **small, g_tanh=True))
    assert tanh.count_params() == linear.count_params()
    for layer in linear.to_rgb.values():  # large outputs, where tanh bends
        layer.kernel.assign(layer.kernel * 30.0)
    tanh.copy_weights_from(linear)
    z = rng.normal(size=(4, 8)).astype("float32")
    stable = linear.stage_model(8)(z).numpy()
    assert np.abs(stable).max() > 2.0
    np.testing.assert_allclose(tanh.stage_model(8)(z), np.tanh(stable), rtol=1e-5, atol=1e-6)
    # fading in: each toRGB's output through tanh, then blended
    linear.alpha.assign(0.25)
    tanh.alpha.assign(0.25)
    low = np.repeat(np.repeat(linear.stage_model(4)(z).numpy(), 2, axis=1), 2, axis=2)
    high = linear.stage_model(8)(z).numpy()
    np.testing.assert_allclose(
        tanh.stage_model(8, fade=True)(z),
        0.75 * np.tanh(low) + 0.25 * np.tanh(high),
        rtol=1e-5,
        atol=1e-6,
    )


def test_equalized_lr_off_is_he_initialisation_without_runtime_scale():
    keras_seed = 3
    tf.keras.utils.set_random_seed(keras_seed)
    eq = L.EqualizedConv2D(64, 3)
    eq.build((None, 8, 8, 32))
    tf.keras.utils.set_random_seed(keras_seed)
    he = L.EqualizedConv2D(64, 3, equalized=False)
    he.build((None, 8, 8, 32))
    he_std = math.sqrt(2) / math.sqrt(3 * 3 * 32)
    assert eq.runtime_scale == pytest.approx(he_std) and he.runtime_scale == 1.0
    assert np.std(eq.kernel.numpy()) == pytest.approx(1.0, rel=0.05)
    assert np.std(he.kernel.numpy()) == pytest.approx(he_std, rel=0.05)
    # the same initial function: the effective kernels have the same distribution
    x = tf.random.normal([2, 8, 8, 32], seed=1)
    assert np.std(eq(x).numpy()) == pytest.approx(np.std(he(x).numpy()), rel=0.1)
    # every layer of both networks follows the switch; the gains stay (G's dense sqrt(2)/4)
    g = Generator(Architecture(8, equalized_lr=False))
    dense = g.blocks[4].get_layer("g_4x4_dense")
    assert dense.runtime_scale == 1.0
    assert np.std(dense.kernel.numpy()) == pytest.approx(
        math.sqrt(2) / 4 / math.sqrt(512), rel=0.05
    )
    d = Discriminator(Architecture(8, equalized_lr=False))
    scaled = [
        layer
        for block in d.layers()
        for layer in getattr(block, "layers", [block])
        if isinstance(layer, L._Equalized) and layer.runtime_scale != 1.0
    ]
    assert not scaled


def test_layer_normalization_against_numpy(rng):
    x = rng.normal(2.0, 3.0, (3, 4, 4, 5)).astype(np.float32)
    layer = L.LayerNormalization()
    layer.build(x.shape)
    layer.gamma.assign(np.arange(1, 6, dtype=np.float32))
    layer.beta.assign(np.full(5, 0.5, np.float32))
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    var = x.var(axis=(1, 2, 3), keepdims=True)
    expected = (x - mean) / np.sqrt(var + 1e-5) * np.arange(1, 6) + 0.5
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-4, atol=1e-4)
    assert [w.shape for w in layer.trainable_weights] == [(5,), (5,)]


def test_batch_layer_normalization_adds_the_baselines_layers():
    arch = Architecture(32, normalization="batch_layer")
    g, d = Generator(arch), Discriminator(arch)
    # G: a batch norm after the dense and every conv (2 per block, 4 blocks); D: a layer norm
    # after every 3x3 conv (2 per block above 4x4, 1 at 4x4) and after the "Conv 4x4" (A.2: the
    # dense after the 4x4 block's conv); each 2 weights per channel, 512 channels at 32x32
    assert sum("batchnorm" in n for n in layer_names(g)) == 8
    assert sum("layernorm" in n for n in layer_names(d)) == 2 * 3 + 1 + 1
    assert "d_4x4_layernorm1" in layer_names(d)
    assert g.count_params() == G32 + 8 * 2 * 512
    assert d.count_params() == D32 + 8 * 2 * 512
    assert len(g.non_trainable_state()) == 8 * 2  # moving mean and variance
    with pytest.raises(ValueError, match="normalization"):
        Architecture(32, normalization="group")


def load_table1():
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "paper_table1.py"
    )
    spec = importlib.util.spec_from_file_location("paper_table1", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_table1_rows_are_cumulative_presets():
    paper_table1 = load_table1()
    rows = {row: paper_table1.get_config(row) for row in paper_table1.ROWS}
    a, b, c, d, e, f, g = (rows[k] for k in "abcdefg")
    assert not a.progressive and b.progressive
    assert a.minibatch_default == b.minibatch_default == 64 and c.minibatch_default == 16
    assert (a.normalization, c.normalization, d.normalization) == (
        "batch_layer",
        "batch_layer",
        "none",
    )
    assert (c.d_repeats, d.d_repeats) == (5, 1) and c.learning_rate < d.learning_rate
    assert (d.mbstd_group_size, e.mbstd_group_size) == (0, 4)
    assert (e.equalized_lr, f.equalized_lr) == (False, True)
    assert (f.pixel_norm, g.pixel_norm) == (False, True)
    # ReLU, a tanh output and z as drawn in the baseline rows, the paper's from (d) on
    assert [(r.g_leaky_relu, r.g_tanh, r.normalize_latents) for r in (a, c, d)] == [
        (False, True, False),
        (False, True, False),
        (True, False, True),
    ]
    assert all(r.total_kimg == a.total_kimg for r in rows.values())  # the same image budget
    with pytest.raises(ValueError, match="row"):
        paper_table1.get_config("z")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return noise_dataset(tmp_path_factory.mktemp("data") / "noise", 32, 8)


def train(dataset, run_dir, arch, schedule, total_images, **step):
    from progan_tf.steps import StepOptions  # noqa: PLC0415

    trainer = tiny_trainer(
        dataset,
        run_dir,
        total_images,
        arch=arch,
        schedule=schedule,
        step=StepOptions(**step),
        snapshot_images=10_000,
        checkpoint_images=64,
        steps_per_call=4,
    )
    trainer.train()
    return trainer


def test_not_progressive_run_trains_the_final_networks_and_resumes(dataset, tmp_path):
    from progan_tf import run_reader  # noqa: PLC0415

    arch = Architecture(8, latent_size=8, fmap_base=32, fmap_max=8, progressive=False)
    schedule = Schedule(
        final_resolution=8,
        stable_kimg=0.032,
        fade_kimg=0.032,
        minibatch={},
        minibatch_default=8,
        progressive=False,
    )
    first = train(dataset, tmp_path, arch, schedule, 64)
    # one phase, no fade
    assert [entry.name for entry in first.phase_times.phases] == ["8x8 stable"]
    before = [w.numpy().copy() for w in first.generator.blocks[8].trainable_weights]
    resumed = train(dataset, tmp_path, arch, schedule, 128)
    assert resumed.kimg == 0.128
    assert [entry.name for entry in resumed.phase_times.phases] == ["8x8 stable"]
    after = [w.numpy() for w in resumed.generator.blocks[8].trainable_weights]
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, after))
    run = run_reader.load_run(str(tmp_path))  # generate / evaluate / export read it back
    assert run.resolution == 8 and not run.phase.fade
    assert run.generate(np.zeros((2, 8), np.float32)).shape == (2, 8, 8, 3)


def test_d_repeats_updates_g_once_per_repeats_d_steps(dataset, tmp_path):
    arch = Architecture(4, latent_size=8, fmap_base=32, fmap_max=8)
    schedule = Schedule(
        final_resolution=4, stable_kimg=1, fade_kimg=1, minibatch={}, minibatch_default=8
    )
    trainer = train(dataset, tmp_path, arch, schedule, 8 * 10, d_repeats=5)
    assert int(trainer.phase_step.d_optimizer.iterations.numpy()) == 10
    assert int(trainer.phase_step.g_optimizer.iterations.numpy()) == 2


def test_batch_norm_statistics_are_averaged_into_the_ema_generator_on_two_replicas(
    dataset, tmp_path
):
    # One 4x4 step, mirrored (batch norm is in the 4x4 block as in every block): the EMA's
    # moving statistics are averaged with the weights' beta, from their start (mean 0, var 1).
    arch = Architecture(
        4, latent_size=8, fmap_base=32, fmap_max=8, normalization="batch_layer", pixel_norm=False
    )
    schedule = Schedule(
        final_resolution=4,
        stable_kimg=0.032,
        fade_kimg=0.032,
        minibatch={},
        minibatch_default=8,
        num_replicas=2,
    )
    options = TrainerOptions(
        total_images=8,
        tick_images=8,
        snapshot_images=10_000,
        checkpoint_images=8,
        steps_per_call=1,
        grid_size=4,
        shuffle_buffer=32,
    )
    trainer = Trainer(
        arch=arch,
        schedule=schedule,
        options=options,
        dataset=dataset,
        run_dir=str(tmp_path),
        strategy=mirrored_strategy(["/cpu:0", "/cpu:1"]),
        config={"test": True},
    )
    trainer.train()
    g_state = [v.numpy() for v in trainer.generator.non_trainable_state()]
    ema_state = [v.numpy() for v in trainer.ema.non_trainable_state()]
    moving_means = [
        s for v, s in zip(trainer.generator.non_trainable_state(), g_state) if "mean" in v.path
    ]
    assert moving_means and any(np.abs(m).max() > 0 for m in moving_means)  # the statistics moved
    beta = options.step.ema_beta
    for variable, g_value, ema_value in zip(
        trainer.generator.non_trainable_state(), g_state, ema_state, strict=True
    ):
        start = 0.0 if "mean" in variable.path else 1.0  # Keras' initial moving statistics
        np.testing.assert_allclose(ema_value, g_value + (start - g_value) * beta, rtol=1e-5)
