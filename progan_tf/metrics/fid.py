"""Fréchet Inception distance: Inception-v3 pool features (2048-D) of two image sets (reference §6).

No weights are downloaded: pass a Keras `InceptionV3` weights file (without the top), e.g.
made once on a machine with internet access by

    python -c "import keras; keras.applications.InceptionV3(include_top=False, pooling='avg').save_weights('inception_v3.weights.h5')"

or Keras' own `inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5`. These are Keras'
ImageNet weights, not the 2015 graph the FID papers used, so values are for comparing runs of
this project with each other; expect them near but not equal to published FIDs.
"""  # noqa: E501 - the command above is one line to copy

from __future__ import annotations

import os
from collections.abc import Iterable

import keras
import numpy as np
import tensorflow as tf

INPUT_SIZE = 299
FEATURES = 2048
HOW_TO_GET_WEIGHTS = (
    'make one on a machine with internet access with: python -c "import keras; '
    "keras.applications.InceptionV3(include_top=False, pooling='avg')"
    ".save_weights('inception_v3.weights.h5')\""
)


def statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of [N, D] features, in float64."""
    features = np.asarray(features, np.float64)
    if len(features) < 2:
        raise ValueError("FID needs at least two images per set")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def _sqrt_psd(matrix: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric positive semi-definite matrix (eigh, clipped at 0)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    tr((S1 S2)^(1/2)) = tr((A S2 A)^(1/2)) with A = S1^(1/2): the product is symmetric PSD, so
    two eigendecompositions replace the general (and complex-valued) matrix square root.
    """
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None)))
    diff = np.asarray(mu1, np.float64) - np.asarray(mu2, np.float64)
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)


class InceptionFeatures:
    """uint8 NHWC images (any size, 1 or 3 channels) -> [N, 2048] Inception-v3 pool features."""

    def __init__(self, weights_path: str, batch_size: int = 64):
        if not weights_path:
            raise ValueError(
                "FID needs --inception_weights=PATH (Keras InceptionV3 weights, no top); "
                f"{HOW_TO_GET_WEIGHTS}"
            )
        if not os.path.isfile(weights_path):
            raise ValueError(
                f"--inception_weights={weights_path}: no such file; {HOW_TO_GET_WEIGHTS}"
            )
        self.model = keras.applications.InceptionV3(
            include_top=False, pooling="avg", weights=None, input_shape=(INPUT_SIZE, INPUT_SIZE, 3)
        )
        try:
            self.model.load_weights(weights_path)
        except Exception as error:  # noqa: BLE001 - any loader failure means the same thing
            raise ValueError(
                f"--inception_weights={weights_path}: not Keras InceptionV3 weights without the "
                f"top ({error})"
            ) from None
        self.batch_size = batch_size

        @tf.function
        def features(images):
            x = tf.image.resize(
                tf.cast(images, tf.float32), [INPUT_SIZE, INPUT_SIZE], method="bilinear"
            )
            x = tf.image.grayscale_to_rgb(x) if x.shape[-1] == 1 else x
            return self.model(x / 127.5 - 1.0, training=False)

        self._features = features

    def __call__(self, batches: Iterable[np.ndarray]) -> np.ndarray:
        out = []
        for batch in batches:
            for start in range(0, len(batch), self.batch_size):
                out.append(self._features(batch[start : start + self.batch_size]).numpy())
        return np.concatenate(out)


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets."""
    return frechet_distance(*statistics(features_a), *statistics(features_b))
