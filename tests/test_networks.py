"""Networks against reference §2: parameter counts, scale constants, fades and weight sharing."""

import math

import numpy as np
import pytest
import tensorflow as tf

from progan_tf import layers as L
from progan_tf.networks import Architecture, Discriminator, Generator, table

# reference §2: (final resolution, G, D), RGB, no labels, every toRGB/fromRGB counted.
PAPER_COUNTS = [
    (1024, 23_079_115, 23_087_249),
    (512, 23_072_120, 23_080_225),
    (256, 23_044_309, 23_052_353),
    (128, 22_933_394, 22_941_313),
    (64, 22_490_383, 22_498_049),
    (32, 20_719_628, 20_726_785),
]

TINY = Architecture(resolution=16, latent_size=8, fmap_base=64, fmap_max=16)


@pytest.mark.parametrize("resolution,g_params,d_params", PAPER_COUNTS)
def test_parameter_counts_equal_spec(resolution, g_params, d_params):
    arch = Architecture(resolution=resolution)
    assert Generator(arch).count_params() == g_params
    assert Discriminator(arch).count_params() == d_params


def test_parameter_counts_grayscale_and_without_minibatch_stdev_equal_spec():
    assert Generator(Architecture(1024, channels=1)).count_params() == 23_074_009
    assert Discriminator(Architecture(1024, channels=1)).count_params() == 23_082_161
    assert Discriminator(Architecture(1024, mbstd_group_size=0)).count_params() == 23_082_641


def test_layer_parameter_checks_at_1024_equal_spec():
    arch = Architecture(1024)
    g_rows = {name: params for name, _, params in table(Generator(arch))}
    d_rows = {name: params for name, _, params in table(Discriminator(arch))}
    assert g_rows["g_4x4_dense"] + g_rows["g_4x4_dense_bias"] == 4_194_816
    assert g_rows["g_8x8_conv0"] == 2_359_808
    assert sum(p for n, p in g_rows.items() if "torgb" in n) == 7_659
    assert sum(p for n, p in d_rows.items() if "fromrgb" in n) == 10_176
    assert d_rows["d_4x4_conv"] == 2_364_416
    assert d_rows["d_4x4_dense0"] == 4_194_816
    assert d_rows["d_4x4_dense1"] == 513


def test_runtime_scale_constants_equal_spec():
    arch = Architecture(64)
    g, d = Generator(arch), Discriminator(arch)
    assert g.blocks[4].get_layer("g_4x4_dense").runtime_scale == pytest.approx(1 / 64)
    assert g.to_rgb[64].runtime_scale == pytest.approx(1 / math.sqrt(256))
    assert g.blocks[8].get_layer("g_8x8_conv0").runtime_scale == pytest.approx(
        math.sqrt(2 / (9 * 512))
    )
    assert d.blocks[4].get_layer("d_4x4_conv").runtime_scale == pytest.approx(
        math.sqrt(2) / math.sqrt(4617)
    )
    assert d.blocks[4].get_layer("d_4x4_dense1").runtime_scale == pytest.approx(1 / math.sqrt(512))


def test_table_shapes_follow_the_paper():
    rows = {name: shape for name, shape, _ in table(Generator(Architecture(128)))}
    assert rows["g_4x4_reshape"] == (4, 4, 512)
    assert rows["g_128x128_conv1"] == (128, 128, 128)
    assert rows["g_torgb_128x128"] == (128, 128, 3)


def test_stage_models_compute_at_native_resolution(rng):
    g, d = Generator(TINY), Discriminator(TINY)
    z = rng.normal(size=(4, 8)).astype("float32")
    for r in TINY.resolutions:
        for fade in (False, True) if r > 4 else (False,):
            images = g.stage_model(r, fade)(z)
            assert images.shape == (4, r, r, 3)
            assert d.stage_model(r, fade)(images).shape == (4, 1)


def _fade_check(fade_out, old_out, new_out, alpha):
    np.testing.assert_allclose(
        fade_out, (1 - alpha) * old_out + alpha * new_out, rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_generator_fade_blends_upsampled_previous_and_new_stage(rng, alpha):
    g = Generator(TINY)
    z = rng.normal(size=(4, 8)).astype("float32")
    g.alpha.assign(alpha)
    faded = g.stage_model(8, fade=True)(z).numpy()
    old = L.upsample()(g.stage_model(4)(z)).numpy()
    new = g.stage_model(8)(z).numpy()
    _fade_check(faded, old, new, alpha)
    if alpha == 0.0:
        np.testing.assert_array_equal(faded, old)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_discriminator_fade_blends_downsampled_previous_and_new_stage(rng, alpha):
    d = Discriminator(TINY)
    x = rng.normal(size=(4, 8, 8, 3)).astype("float32")
    d.alpha.assign(alpha)
    faded = d.stage_model(8, fade=True)(x).numpy()
    # The blend is of the 4x4 features; D's 4x4 block then maps it to the output.
    old = d.from_rgb[4](L.downsample()(x)).numpy()
    new = d.blocks[8](d.from_rgb[8](x)).numpy()
    expected = d.blocks[4]((1 - alpha) * old + alpha * new).numpy()
    np.testing.assert_allclose(faded, expected, rtol=1e-5, atol=1e-5)
    if alpha in (0.0, 1.0):  # the ends are exactly the previous and the new stage
        stage = d.stage_model(4)(L.downsample()(x)) if alpha == 0 else d.stage_model(8)(x)
        np.testing.assert_allclose(faded, stage.numpy(), rtol=1e-5, atol=1e-6)


def test_stages_share_weights(rng):
    g = Generator(TINY)
    z = rng.normal(size=(2, 8)).astype("float32")
    before = g.stage_model(16)(z).numpy()
    conv = g.stage_model(4).get_layer("g_4x4").get_layer("g_4x4_conv")
    conv.kernel.assign(conv.kernel + rng.normal(size=conv.kernel.shape).astype("float32"))
    after = g.stage_model(16)(z).numpy()
    assert np.abs(after - before).max() > 1e-3


def test_conditional_networks_take_labels_and_output_label_logits(rng):
    arch = Architecture(8, latent_size=8, fmap_base=32, fmap_max=8, num_labels=5)
    g, d = Generator(arch), Discriminator(arch)
    z = tf.constant(rng.normal(size=(4, 8)).astype("float32"))
    labels = tf.one_hot([0, 1, 2, 3], 5)
    images = g.stage_model(8, fade=True)([z, labels])
    assert images.shape == (4, 8, 8, 3)
    assert d.stage_model(8, fade=True)(images).shape == (4, 6)
    other = g.stage_model(8, fade=True)([z, tf.one_hot([4, 4, 4, 4], 5)])
    assert np.abs(other.numpy() - images.numpy()).max() > 1e-4


def test_invalid_resolution_is_a_clear_error():
    with pytest.raises(ValueError, match="power of two"):
        Architecture(resolution=48)
    with pytest.raises(ValueError, match="no fade-in"):
        Generator(TINY).stage_model(4, fade=True)


def test_checkpoint_tracks_every_layer_and_restores(tmp_path, rng):
    g1, g2 = Generator(TINY), Generator(TINY)
    path = g1.checkpoint().write(str(tmp_path / "g"))
    g2.checkpoint().read(path).assert_consumed()
    z = rng.normal(size=(2, 8)).astype("float32")
    for r in TINY.resolutions:
        np.testing.assert_array_equal(g1.stage_model(r)(z).numpy(), g2.stage_model(r)(z).numpy())
