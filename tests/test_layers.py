"""Each layer against an independent numpy computation (reference §1)."""

import math

import keras
import numpy as np
import pytest

from progan_tf import layers as L


def np_conv_same(x, w):
    """Stride-1 'same' convolution, x [N, H, W, Ci], w [k, k, Ci, Co], by explicit shifts."""
    k = w.shape[0]
    p = k // 2
    xp = np.pad(x, [(0, 0), (p, p), (p, p), (0, 0)])
    n, h, wd, _ = x.shape
    out = np.zeros((n, h, wd, w.shape[-1]))
    for i in range(k):
        for j in range(k):
            out += np.einsum("nhwc,co->nhwo", xp[:, i : i + h, j : j + wd, :], w[i, j])
    return out


def np_minibatch_stdev(x, group_size):
    n = x.shape[0]
    g = min(group_size, n)
    m = n // g
    out = np.zeros(n)
    for i in range(n):
        members = x[[j for j in range(n) if j % m == i % m]]  # strided groups
        std = np.sqrt(members.var(axis=0) + 1e-8)  # biased variance
        out[i] = std.mean()
    feature = np.broadcast_to(out[:, None, None, None], (*x.shape[:3], 1))
    return np.concatenate([x, feature], axis=-1)


def set_random_bias(layer, rng):
    layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))


def test_equalized_dense_matches_numpy(rng):
    x = rng.normal(size=(5, 12)).astype("float32")
    layer = L.EqualizedDense(7, gain=0.5)
    layer.build(x.shape)
    set_random_bias(layer, rng)
    w = layer.kernel.numpy()
    expected = x @ (w * 0.5 / math.sqrt(12)) + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_equalized_conv_matches_numpy(rng):
    x = rng.normal(size=(2, 6, 6, 4)).astype("float32")
    layer = L.EqualizedConv2D(5, 3)
    layer.build(x.shape)
    set_random_bias(layer, rng)
    w = layer.kernel.numpy() * math.sqrt(2) / math.sqrt(3 * 3 * 4)
    expected = np_conv_same(x, w) + layer.bias.numpy()
    np.testing.assert_allclose(layer(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def test_equalized_weights_are_standard_normal_and_biases_zero():
    keras.utils.set_random_seed(0)  # unseeded, the 2-sigma bound on the mean failed ~1 run in 20
    layer = L.EqualizedConv2D(64, 3)
    layer.build((None, 8, 8, 64))
    w = layer.kernel.numpy()
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1.0) < 0.01
    assert not layer.bias.numpy().any()
    assert len(layer.weights) == 2  # the runtime scale is a constant, not a variable


def test_pixel_normalization_matches_numpy(rng):
    x = rng.normal(size=(3, 4, 4, 6)).astype("float32")
    expected = x / np.sqrt(np.mean(x**2, axis=-1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(L.PixelNormalization()(x).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("n", [8, 2, 4, 12])
def test_minibatch_stdev_strided_groups_match_numpy(rng, n):
    x = rng.normal(size=(n, 4, 4, 3)).astype("float32") * np.arange(1, n + 1)[:, None, None, None]
    out = L.MinibatchStdev(4)(x).numpy()
    assert out.shape == (n, 4, 4, 4)
    np.testing.assert_allclose(out, np_minibatch_stdev(x, 4), rtol=1e-5, atol=1e-5)


def test_minibatch_stdev_groups_are_strided_not_contiguous(rng):
    # With N = 8, G = 4: groups {0,2,4,6} and {1,3,5,7}. Make the odd samples identical: their
    # group's stddev is ~0 while the even group's is large.
    x = rng.normal(size=(8, 2, 2, 1)).astype("float32")
    x[1::2] = 3.0
    stat = L.MinibatchStdev(4)(x).numpy()[:, 0, 0, -1]
    assert np.allclose(stat[1::2], 1e-4, atol=1e-4)
    assert (stat[0::2] > 0.3).all()


def test_minibatch_group_size_falls_back_to_a_divisor():
    assert L.minibatch_group_size(8, 4) == 4
    assert L.minibatch_group_size(2, 4) == 2
    assert L.minibatch_group_size(6, 4) == 3
    assert L.minibatch_group_size(14, 4) == 2


def test_weighted_sum_blends_with_shared_alpha(rng):
    old, new = rng.normal(size=(2, 3, 4, 4, 2)).astype("float32")
    alpha = keras.Variable(0.0, trainable=False)
    first, second = L.WeightedSum(alpha), L.WeightedSum(alpha)
    for a in (0.0, 0.25, 1.0):
        alpha.assign(a)
        expected = (1 - a) * old + a * new
        np.testing.assert_allclose(first([old, new]).numpy(), expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(second([old, new]).numpy(), expected, rtol=1e-6, atol=1e-6)
    assert not first.trainable_weights


def test_resampling_matches_numpy(rng):
    x = rng.normal(size=(2, 4, 4, 3)).astype("float32")
    up = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    np.testing.assert_allclose(L.upsample()(x).numpy(), up)
    down = x.reshape(2, 2, 2, 2, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(L.downsample()(x).numpy(), down, rtol=1e-6)


def test_layers_round_trip_through_keras_saving(tmp_path, rng):
    model = keras.Sequential(
        [
            keras.Input((4, 4, 3)),
            L.EqualizedConv2D(8, 3, gain=1.0, name="conv"),
            L.PixelNormalization(1e-4),
            L.MinibatchStdev(2),
            keras.layers.Flatten(),
            L.EqualizedDense(5, use_bias=False),
            L.Bias(),
        ]
    )
    x = rng.normal(size=(4, 4, 4, 3)).astype("float32")
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(x).numpy(), model(x).numpy(), rtol=1e-6)
    assert loaded.get_layer("conv").gain == 1.0
    weighted = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(L.WeightedSum())
    )
    assert isinstance(weighted, L.WeightedSum)
