"""Losses against hand computations on tiny discriminators (reference §3)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from progan_tf import losses, options


class Quadratic(keras.layers.Layer):
    """D(x) = [sum(w * x^2), x . v]: score with gradient 2 w x, plus one label logit."""

    def __init__(self, w, v):
        super().__init__()
        self.w, self.v = tf.constant(w), tf.constant(v)

    def call(self, x):
        score = tf.reduce_sum(self.w * x * x, axis=[1, 2, 3])
        logit = tf.reduce_sum(self.v * x, axis=[1, 2, 3])
        return tf.stack([score, logit, -logit], axis=1)


@pytest.fixture
def setup(rng):
    shape = (3, 2, 2, 1)
    reals, fakes = (rng.normal(size=shape).astype("float32") for _ in range(2))
    w, v = rng.normal(size=(2, 2, 2, 1)).astype("float32")
    mix = rng.uniform(size=(3, 1, 1, 1)).astype("float32")
    return Quadratic(w, v), reals, fakes, mix, w, v


def _score(x, w):
    return (w * x * x).sum(axis=(1, 2, 3))


def test_wgan_gp_discriminator_equals_hand_computation(setup):
    d, reals, fakes, mix, w, _ = setup
    loss, terms = losses.wgan_gp_discriminator(d, reals, fakes, mix)
    x_hat = reals + mix * (fakes - reals)
    norm = np.sqrt(((2 * w * x_hat) ** 2).sum(axis=(1, 2, 3)))
    real, fake = _score(reals, w), _score(fakes, w)
    expected = fake - real + 10 * (norm - 1) ** 2 + 1e-3 * real**2
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(terms["gradient_penalty"].numpy(), (norm - 1) ** 2, rtol=1e-5)


def test_wgan_generator_and_label_cross_entropy(setup):
    d, _, fakes, _, w, v = setup
    labels = tf.one_hot([0, 1, 1], 2)
    loss, _ = losses.wgan_generator(d, fakes, labels)
    logit = (v * fakes).sum(axis=(1, 2, 3))
    logits = np.stack([logit, -logit], 1)
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    xent = -(labels.numpy() * log_softmax).sum(1)
    np.testing.assert_allclose(loss.numpy(), -_score(fakes, w) + xent, rtol=1e-5)
    weighted, _ = losses.wgan_generator(d, fakes, labels, label_weight=3.0)  # cond_weight
    np.testing.assert_allclose(weighted.numpy(), -_score(fakes, w) + 3 * xent, rtol=1e-5)


def _xent(x, v, labels):
    logit = (v * x).sum(axis=(1, 2, 3))
    logits = np.stack([logit, -logit], 1)
    return -(labels * (logits - np.log(np.exp(logits).sum(1, keepdims=True)))).sum(1)


@pytest.mark.parametrize(
    "loss_fn", [losses.wgan_gp_discriminator, losses.logistic_r1_discriminator]
)
def test_discriminator_label_terms_use_the_fakes_own_classes(setup, loss_fn):
    # AC-GAN: reals are classified against their labels, fakes against the classes G drew
    # (fake_labels, e.g. uniform ones); without fake_labels, against the reals' labels.
    d, reals, fakes, mix, _, v = setup
    labels, drawn = np.eye(2, dtype="float32")[[0, 1, 1]], np.eye(2, dtype="float32")[[1, 0, 0]]
    unlabelled, _ = loss_fn(d, reals, fakes, mix)
    same, _ = loss_fn(d, reals, fakes, mix, labels)
    own, _ = loss_fn(d, reals, fakes, mix, labels, fake_labels=drawn)
    np.testing.assert_allclose(
        same.numpy() - unlabelled.numpy(),
        _xent(reals, v, labels) + _xent(fakes, v, labels),
        rtol=1e-4,
    )
    np.testing.assert_allclose(
        own.numpy() - unlabelled.numpy(),
        _xent(reals, v, labels) + _xent(fakes, v, drawn),
        rtol=1e-4,
    )
    weighted, _ = loss_fn(d, reals, fakes, mix, labels, fake_labels=drawn, label_weight=3.0)
    np.testing.assert_allclose(
        weighted.numpy() - unlabelled.numpy(),
        3 * (_xent(reals, v, labels) + _xent(fakes, v, drawn)),
        rtol=1e-4,
    )


def test_logistic_r1_equals_hand_computation(setup):
    d, reals, fakes, mix, w, _ = setup
    loss, _ = losses.logistic_r1_discriminator(d, reals, fakes, mix, r1_gamma=2.0)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    r1 = ((2 * w * reals) ** 2).sum(axis=(1, 2, 3))
    expected = softplus(_score(fakes, w)) + softplus(-_score(reals, w)) + r1
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    g_loss, _ = losses.logistic_generator(d, fakes)
    np.testing.assert_allclose(g_loss.numpy(), softplus(-_score(fakes, w)), rtol=1e-5)


def test_gradient_penalty_reaches_discriminator_weights(rng):
    d = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(4, "tanh"),
            keras.layers.Dense(1),
        ]
    )
    reals, fakes = (tf.constant(rng.normal(size=(4, 2, 2, 1)).astype("float32")) for _ in range(2))
    mix = tf.constant(rng.uniform(size=(4, 1, 1, 1)).astype("float32"))
    with tf.GradientTape() as tape:
        _, terms = losses.wgan_gp_discriminator(d, reals, fakes, mix)
        penalty = tf.reduce_mean(terms["gradient_penalty"])
    grads = tape.gradient(penalty, d.trainable_variables)
    # The input gradient does not depend on the last bias; every other weight gets a gradient.
    assert [g is None for g in grads] == [False, False, False, True]
    assert float(tf.linalg.global_norm(grads[:3])) > 0


def _native_d(rng, size):
    """A nonlinear D at native resolution: a conv, tanh, a weighted sum; [N, s, s, 3] -> [N, 1]."""
    kernel = tf.constant(rng.normal(size=(3, 3, 3, 4)).astype("float32"))
    weights = tf.constant(rng.normal(size=(1, size, size, 4)).astype("float32"))

    def d(x):
        h = tf.tanh(tf.nn.conv2d(x, kernel, 1, "SAME"))
        return tf.reduce_sum(h * weights, axis=[1, 2, 3])[:, None]

    return d


@pytest.mark.parametrize("native,final", [(4, 32), (8, 16), (16, 16)])
def test_official_gp_scale_equals_the_penalty_at_the_final_resolution(rng, native, final):
    # The release's penalty: x_hat upscaled (nearest) to R, D average-pools it back. Computed
    # explicitly at R here; progan_tf computes at native resolution with gradient_scale = s/R.
    # Catches a missing or inverted scale (s/R vs R/s) for WGAN-GP and for R1.
    factor = final // native
    d_native = _native_d(rng, native)
    d_final = lambda x: d_native(tf.nn.avg_pool2d(x, factor, factor, "VALID"))  # noqa: E731
    up = lambda x: tf.constant(np.repeat(np.repeat(x, factor, axis=1), factor, axis=2))  # noqa: E731
    reals, fakes = (rng.normal(size=(5, native, native, 3)).astype("float32") for _ in range(2))
    mix = rng.uniform(size=(5, 1, 1, 1)).astype("float32")
    _, at_final = losses.wgan_gp_discriminator(d_final, up(reals), up(fakes), tf.constant(mix))
    _, at_native = losses.wgan_gp_discriminator(
        d_native,
        tf.constant(reals),
        tf.constant(fakes),
        tf.constant(mix),
        gradient_scale=native / final,
    )
    np.testing.assert_allclose(
        at_native["gradient_penalty"], at_final["gradient_penalty"], rtol=1e-4, atol=1e-6
    )
    if factor > 1:  # the native norm penalised as it is would differ
        _, unscaled = losses.wgan_gp_discriminator(
            d_native, tf.constant(reals), tf.constant(fakes), tf.constant(mix)
        )
        assert not np.allclose(
            unscaled["gradient_penalty"], at_final["gradient_penalty"], rtol=1e-2
        )
    _, r1_final = losses.logistic_r1_discriminator(d_final, up(reals), up(fakes), None)
    _, r1_native = losses.logistic_r1_discriminator(
        d_native, tf.constant(reals), tf.constant(fakes), None, gradient_scale=native / final
    )
    np.testing.assert_allclose(
        r1_native["gradient_penalty"], r1_final["gradient_penalty"], rtol=1e-4, atol=1e-7
    )


def test_every_loss_the_config_offers_exists_and_no_other():
    assert tuple(losses.LOSSES) == options.LOSSES


def test_without_the_penalty_each_loss_is_its_hand_computation_less_that_term(setup):
    # penalty=False: the D steps between penalised ones under lazy regularization (gp_interval).
    d, reals, fakes, mix, w, _ = setup
    real, fake = _score(reals, w), _score(fakes, w)
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    wgan, wgan_terms = losses.wgan_gp_discriminator(d, reals, fakes, mix, penalty=False)
    np.testing.assert_allclose(wgan.numpy(), fake - real + 1e-3 * real**2, rtol=1e-5)
    r1, r1_terms = losses.logistic_r1_discriminator(d, reals, fakes, mix, penalty=False)
    np.testing.assert_allclose(r1.numpy(), softplus(fake) + softplus(-real), rtol=1e-5)
    assert "gradient_penalty" not in wgan_terms and "gradient_penalty" not in r1_terms
