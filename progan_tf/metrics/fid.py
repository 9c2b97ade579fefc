"""Fréchet and kernel Inception distances (FID, KID) between two sets of Inception features
(reference §6); the features come from the 2015 Inception network (`progan_tf.metrics.inception`).
"""

from __future__ import annotations

import numpy as np


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


def fid(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two feature sets."""
    return frechet_distance(*statistics(features_a), *statistics(features_b))


def kid(
    features_a: np.ndarray,
    features_b: np.ndarray,
    *,
    num_subsets: int = 100,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception distance (Bińkowski et al. 2018): the unbiased MMD² with the kernel
    k(x, y) = (x·y / d + 1)³, averaged over `num_subsets` random subsets of m = min(n_a, n_b,
    max_subset_size) features of each set (drawn without replacement), as torch-fidelity and
    StyleGAN2-ADA compute it. Returns (mean, standard deviation over the subsets)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    m = min(len(a), len(b), max_subset_size)
    if m < 2:
        raise ValueError("KID needs at least two images per set")
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(within - 2.0 * kxy.sum() / (m * m))
    return float(np.mean(values)), float(np.std(values))
