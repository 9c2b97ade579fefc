"""The layers of the paper (Karras et al. 2018, §4.1, §3 and §A.1), as Keras 3 layers.

Everything is channels-last ([N, H, W, C]). Resampling uses Keras' built-ins, which match
the paper exactly: `keras.layers.UpSampling2D(2)` (nearest neighbour) and
`keras.layers.AveragePooling2D(2)` (2x2 box filter); see `upsample()` / `downsample()`.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

SQRT2 = math.sqrt(2.0)
_PACKAGE = "progan_tf"


def upsample(name: str | None = None) -> keras.layers.Layer:
    """Nearest-neighbour x2 upsampling, [N, H, W, C] -> [N, 2H, 2W, C]."""
    return keras.layers.UpSampling2D(2, interpolation="nearest", name=name)


def downsample(name: str | None = None) -> keras.layers.Layer:
    """2x2 average pooling, [N, H, W, C] -> [N, H/2, W/2, C]."""
    return keras.layers.AveragePooling2D(2, name=name)


class _Equalized(keras.layers.Layer):
    """Shared part of the equalized-learning-rate layers (§4.1).

    Weights are drawn from N(0, 1) and multiplied at every call by `gain / sqrt(fan_in)`, a
    Python constant (not a variable, not saved). Biases are one per output channel, zero
    initialised and never scaled. `equalized=False` (Table 1 before row (f), the release's
    `use_wscale=False`): the usual He initialisation instead, N(0, (gain / sqrt(fan_in))**2)
    with no run-time scale: the same initial function, but Adam's steps are no longer equal
    relative to each layer's weight scale.
    """

    def __init__(
        self, gain: float = SQRT2, use_bias: bool = True, equalized: bool = True, **kwargs
    ):
        super().__init__(**kwargs)
        self.gain = float(gain)
        self.use_bias = use_bias
        self.equalized = bool(equalized)
        self.runtime_scale: float | None = None

    def _build_weights(self, kernel_shape: tuple[int, ...], units: int) -> None:
        fan_in = math.prod(kernel_shape[:-1])
        he_std = self.gain / math.sqrt(fan_in)
        self.runtime_scale = he_std if self.equalized else 1.0
        self.kernel = self.add_weight(
            name="kernel",
            shape=kernel_shape,
            initializer=keras.initializers.RandomNormal(0.0, 1.0 if self.equalized else he_std),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(units,), initializer="zeros")

    def _add_bias(self, x):
        return x if self.bias is None else x + self.bias

    def get_config(self):
        return {
            **super().get_config(),
            "gain": self.gain,
            "use_bias": self.use_bias,
            "equalized": self.equalized,
        }


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EqualizedDense(_Equalized):
    """`y = x @ (W * gain / sqrt(fan_in)) + b` for x of shape [N, fan_in]."""

    def __init__(self, units: int, gain: float = SQRT2, use_bias: bool = True, **kwargs):
        super().__init__(gain=gain, use_bias=use_bias, **kwargs)
        self.units = units

    def build(self, input_shape):
        self._build_weights((int(input_shape[-1]), self.units), self.units)

    def call(self, x):
        return self._add_bias(tf.matmul(x, self.kernel * self.runtime_scale))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class EqualizedConv2D(_Equalized):
    """Stride-1 'same' convolution with kernel `W * gain / sqrt(k * k * C_in)`, plus bias."""

    def __init__(
        self, filters: int, kernel_size: int, gain: float = SQRT2, use_bias: bool = True, **kwargs
    ):
        super().__init__(gain=gain, use_bias=use_bias, **kwargs)
        self.filters = filters
        self.kernel_size = kernel_size

    def build(self, input_shape):
        k = self.kernel_size
        self._build_weights((k, k, int(input_shape[-1]), self.filters), self.filters)

    def call(self, x):
        kernel = self.kernel * self.runtime_scale
        return self._add_bias(tf.nn.conv2d(x, kernel, strides=1, padding="SAME"))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.filters)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Bias(keras.layers.Layer):
    """Adds one learned bias per channel (last axis), zero initialised.

    G's first dense layer has a bias per feature map *after* the reshape to [4, 4, 512]
    (512 biases, not 8192), as in the reference.
    """

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(int(input_shape[-1]),), initializer="zeros")

    def call(self, x):
        return x + self.bias


@keras.saving.register_keras_serializable(package=_PACKAGE)
class LayerNormalization(keras.layers.Layer):
    """Layer normalisation as the WGAN-GP baseline's discriminator uses it (Gulrajani et al.
    2017; Table 1 rows (a)-(c)): each sample's features are normalised over [H, W, C] together,
    `(x - mean) / sqrt(var + epsilon)`, then scaled and shifted per channel (C weights each).
    Keras' own layer with axis=[1, 2, 3] would learn a scale per position and channel."""

    def __init__(self, epsilon: float = 1e-5, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        channels = (int(input_shape[-1]),)
        self.gamma = self.add_weight(name="gamma", shape=channels, initializer="ones")
        self.beta = self.add_weight(name="beta", shape=channels, initializer="zeros")

    def call(self, x):
        axes = list(range(1, len(x.shape)))
        mean, variance = tf.nn.moments(tf.cast(x, tf.float32), axes=axes, keepdims=True)
        normalized = tf.cast(
            (tf.cast(x, tf.float32) - mean) * tf.math.rsqrt(variance + self.epsilon), x.dtype
        )
        return normalized * tf.cast(self.gamma, x.dtype) + tf.cast(self.beta, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class PixelNormalization(keras.layers.Layer):
    """`x / sqrt(mean(x**2 over channels) + epsilon)` (§4.2, pixelwise feature vector norm)."""

    def __init__(self, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)

    def call(self, x):
        return x * tf.math.rsqrt(
            tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + self.epsilon
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def minibatch_group_size(batch_size: int, group_size: int) -> int:
    """The group used for a batch: `min(group_size, N)`, reduced to a divisor of N if needed.

    The reference requires N divisible by min(4, N); for batches where that fails (the paper's
    14 or 6 at high resolutions) we take the largest divisor of N not above `group_size`
    instead of failing.
    """
    group = min(group_size, batch_size)
    while batch_size % group:
        group -= 1
    return group


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MinibatchStdev(keras.layers.Layer):
    """Appends the minibatch standard deviation as one extra feature map (§3).

    Samples are split into groups of `G = min(group_size, N)` with strided membership (sample
    n is in group n mod N/G); per group the standard deviation over its members of every
    feature is averaged over [H, W, C] into one scalar, computed in float32, and tiled to an
    extra channel: [N, H, W, C] -> [N, H, W, C + 1].
    """

    def __init__(self, group_size: int = 4, epsilon: float = 1e-8, **kwargs):
        super().__init__(**kwargs)
        self.group_size = group_size
        self.epsilon = float(epsilon)

    def call(self, x):
        _, h, w, c = x.shape
        if x.shape[0] is not None:
            group = minibatch_group_size(int(x.shape[0]), self.group_size)
        else:  # Unknown batch: the reference rule, N must then be divisible by the group.
            group = tf.minimum(self.group_size, tf.shape(x)[0])
        y = tf.reshape(tf.cast(x, tf.float32), [group, -1, h, w, c])  # [G, M, H, W, C]
        y -= tf.reduce_mean(y, axis=0, keepdims=True)
        stddev = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + self.epsilon)  # [M, H, W, C]
        stddev = tf.reduce_mean(stddev, axis=[1, 2, 3], keepdims=True)  # [M, 1, 1, 1]
        feature = tf.tile(tf.cast(stddev, x.dtype), [group, h, w, 1])  # [N, H, W, 1]
        return tf.concat([x, feature], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] + 1)

    def get_config(self):
        return {**super().get_config(), "group_size": self.group_size, "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class WeightedSum(keras.layers.Layer):
    """The fade-in blend `(1 - alpha) * old + alpha * new` (§2, Figure 2).

    `alpha` is a non-trainable float32 variable. Pass the same variable to every fade layer
    (generator, discriminator, EMA generator) so the trainer sets all of them with one
    `alpha.assign(...)`, without retracing. Without one, the layer makes its own.
    """

    def __init__(self, alpha: keras.Variable | None = None, **kwargs):
        super().__init__(**kwargs)
        if alpha is None:
            alpha = keras.Variable(0.0, trainable=False, dtype="float32", name="alpha")
        self.alpha = alpha

    def call(self, inputs):
        old, new = inputs
        alpha = tf.cast(self.alpha, old.dtype)
        return old + (new - old) * alpha

    def compute_output_shape(self, input_shape):
        return input_shape[0]
