"""SWD, MS-SSIM and FID against straightforward numpy computations (reference §6)."""

import numpy as np
import pytest
import tensorflow as tf

from progan_tf.metrics import fid, ms_ssim, swd

# Naive references: explicit loops, written from reference §6, sharing only the random draws.


def naive_blur(images, gain=1.0):
    k1 = np.array([1, 4, 6, 4, 1], np.float64) / 16
    kernel = np.outer(k1, k1) * gain
    n, h, w, c = images.shape
    out = np.zeros_like(images, dtype=np.float64)

    def mirror(i, size):  # d c b | a b c d | c b a
        return -i if i < 0 else (2 * (size - 1) - i if i >= size else i)

    for y in range(h):
        for x in range(w):
            for dy in range(-2, 3):
                for dx in range(-2, 3):
                    out[:, y, x] += (
                        kernel[dy + 2, dx + 2] * images[:, mirror(y + dy, h), mirror(x + dx, w)]
                    )
    return out


def naive_pyramid(images, levels):
    out = [images.astype(np.float64)]
    for _ in range(1, levels):
        down = naive_blur(out[-1])[:, ::2, ::2]
        up = np.zeros_like(out[-1])
        up[:, ::2, ::2] = down
        out[-1] = out[-1] - naive_blur(up, gain=4.0)
        out.append(down)
    return out


def naive_swd(images_a, images_b, resolution, seed):
    rng = np.random.default_rng(seed)
    levels = swd.num_levels(resolution)
    descs = []
    for images in (images_a, images_b):
        per_level = [[] for _ in range(levels)]
        for i, level in enumerate(naive_pyramid(images, levels)):
            size = level.shape[1]
            centres = rng.integers(3, size - 3, size=(len(images) * swd.PATCHES_PER_IMAGE, 2))
            for p, (cy, cx) in enumerate(centres):
                image = level[p // swd.PATCHES_PER_IMAGE]
                per_level[i].append(image[cy - 3 : cy + 4, cx - 3 : cx + 4].copy())
        descs.append([np.stack(d) for d in per_level])
    results = []
    for a, b in zip(*descs):
        flat = []
        for d in (a, b):
            for ch in range(d.shape[-1]):
                d[..., ch] = (d[..., ch] - d[..., ch].mean()) / d[..., ch].std()
            flat.append(d.reshape(len(d), -1))
        distances = []
        for _ in range(swd.DIR_REPEATS):
            dirs = rng.standard_normal((flat[0].shape[1], swd.DIRS_PER_REPEAT)).astype(np.float32)
            for j in range(swd.DIRS_PER_REPEAT):
                direction = dirs[:, j] / np.linalg.norm(dirs[:, j])
                pa, pb = np.sort(flat[0] @ direction), np.sort(flat[1] @ direction)
                distances.append(np.mean(np.abs(pa - pb)))
        results.append(1e3 * np.mean(distances))
    return results


def smooth_images(rng, n, size, channels=3, offset=0.0):
    noise = rng.random((n, size, size, channels)).astype(np.float32)
    smooth = tf.nn.avg_pool2d(noise, 3, 1, "SAME").numpy()
    return np.clip(smooth * 255 + offset, 0, 255).astype(np.uint8)


def test_swd_pyramid_levels_match_naive_filtering(rng):
    images = rng.uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
    for mine, ref in zip(swd.laplacian_pyramid(images, 2), naive_pyramid(images, 2)):
        np.testing.assert_allclose(mine, ref, atol=1e-3)
    assert swd.num_levels(128) == 4 and swd.num_levels(16) == 1 and swd.num_levels(8) == 1
    with pytest.raises(ValueError, match="at least 8x8"):
        swd.num_levels(4)


def test_swd_matches_per_patch_numpy_within_one_percent(rng):
    a, b = smooth_images(rng, 3, 32), smooth_images(rng, 3, 32, offset=20)
    mine = swd.swd([a], [b], 32, seed=5)
    ref = naive_swd(a, b, 32, seed=5)
    assert list(mine) == ["swd32", "swd16", "swd_avg"]
    np.testing.assert_allclose([mine["swd32"], mine["swd16"]], ref, rtol=0.01)
    assert mine["swd_avg"] == pytest.approx(np.mean(ref), rel=0.01)


def test_swd_identical_sets_zero_and_shift_scores_higher(rng):
    desc = swd.normalize(rng.normal(size=(500, 7, 7, 3)).astype(np.float32))
    assert swd.sliced_wasserstein(desc, desc, np.random.default_rng(0)) == 0.0
    a, a2 = smooth_images(rng, 256, 16), smooth_images(rng, 256, 16)
    # Same distribution, other samples: the noise floor. Blurred or white noise: others.
    floor = swd.swd([a], [a2], 16)["swd_avg"]
    blurred = tf.nn.avg_pool2d(a2.astype(np.float32), 3, 1, "SAME").numpy().astype(np.uint8)
    noise = rng.integers(0, 256, a.shape, dtype=np.uint8)
    shifted, far = swd.swd([a], [blurred], 16)["swd_avg"], swd.swd([a], [noise], 16)["swd_avg"]
    assert far > shifted > 2 * floor > 0, (far, shifted, floor)


def naive_ssim_and_cs(a, b, size, sigma):
    x = np.arange(size) - (size - 1) / 2
    g = np.exp(-(x**2) / (2 * sigma**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    h, w = a.shape[0] - size + 1, a.shape[1] - size + 1
    ssim, cs = [], []
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    for y in range(h):
        for x0 in range(w):
            for ch in range(a.shape[2]):
                pa, pb = a[y : y + size, x0 : x0 + size, ch], b[y : y + size, x0 : x0 + size, ch]
                mu_a, mu_b = (window * pa).sum(), (window * pb).sum()
                var_a = (window * pa * pa).sum() - mu_a**2
                var_b = (window * pb * pb).sum() - mu_b**2
                cov = (window * pa * pb).sum() - mu_a * mu_b
                c = (2 * cov + c2) / (var_a + var_b + c2)
                cs.append(c)
                ssim.append((2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1) * c)
    return np.mean(ssim), np.mean(cs)


def naive_ms_ssim(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    scales = ms_ssim.num_scales(a.shape[0])
    value = 1.0
    for i, weight in enumerate(ms_ssim.WEIGHTS[:scales]):
        size = min(11, a.shape[0])
        s, c = naive_ssim_and_cs(a, b, size, 1.5 * size / 11)
        value *= max(s if i == scales - 1 else c, 0.0) ** weight
        a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2]) / 4
        b = (b[0::2, 0::2] + b[1::2, 0::2] + b[0::2, 1::2] + b[1::2, 1::2]) / 4
    return value


def test_ms_ssim_matches_direct_computation_on_small_images(rng):
    a = smooth_images(rng, 2, 32)
    b = np.clip(a.astype(np.float32) + rng.normal(0, 25, a.shape), 0, 255).astype(np.uint8)
    mine = ms_ssim.ms_ssim(a, b).numpy()
    for i in range(2):
        assert mine[i] == pytest.approx(naive_ms_ssim(a[i], b[i]), rel=1e-4)
    assert (
        ms_ssim.num_scales(32) == 5 and ms_ssim.num_scales(16) == 4 and ms_ssim.num_scales(4) == 2
    )
    np.testing.assert_allclose(ms_ssim.ms_ssim(a, a).numpy(), 1.0, atol=1e-5)


def test_ms_ssim_equals_tensorflow_where_it_applies(rng):
    a = smooth_images(rng, 2, 192).astype(np.float32)
    b = np.clip(a + rng.normal(0, 30, a.shape), 0, 255).astype(np.float32)
    mine = ms_ssim.ms_ssim(a, b).numpy()
    np.testing.assert_allclose(mine, tf.image.ssim_multiscale(a, b, 255.0).numpy(), atol=2e-4)


def test_ms_ssim_consecutive_pairs_lower_for_varied_sets(rng):
    varied = smooth_images(rng, 16, 32)
    collapsed = np.repeat(varied[:1], 16, axis=0)
    assert ms_ssim.ms_ssim_consecutive_pairs([collapsed]) == pytest.approx(1.0, abs=1e-5)
    assert ms_ssim.ms_ssim_consecutive_pairs([varied[:8], varied[8:]]) < 0.5


def denman_beavers_sqrtm(matrix, steps=60):
    y, z = matrix.copy(), np.eye(len(matrix))
    for _ in range(steps):
        y, z = (y + np.linalg.inv(z)) / 2, (z + np.linalg.inv(y)) / 2
    return y


def test_frechet_distance_closed_forms(rng):
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.5, 2, 5), rng.uniform(0.5, 2, 5)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert fid.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(
        expected, rel=1e-10
    )
    # General (non-commuting) covariances: tr sqrtm(S1 S2) by an independent iteration.
    a, b = rng.normal(size=(6, 6)), rng.normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    expected = np.trace(c1 + c2 - 2 * denman_beavers_sqrtm(c1 @ c2))
    assert fid.frechet_distance(np.zeros(6), c1, np.zeros(6), c2) == pytest.approx(
        expected, rel=1e-8
    )
    features = rng.normal(size=(200, 6))
    assert fid.fid(features, features) == pytest.approx(0.0, abs=1e-8)
    mean, cov = fid.statistics(features)
    np.testing.assert_allclose(cov, np.cov(features.T), rtol=1e-12)
    np.testing.assert_allclose(mean, features.mean(0))


def test_swd_tiles_grayscale_to_three_channels(rng):
    # The reference's descriptors are 147-D (7 x 7 x 3) for grayscale data too.
    from progan_tf.metrics import swd as swd_lib  # noqa: PLC0415

    gray = rng.integers(0, 256, (4, 16, 16, 1)).astype(np.uint8)
    one = swd_lib.descriptors([gray], 16, np.random.default_rng(0))
    three = swd_lib.descriptors([np.repeat(gray, 3, axis=-1)], 16, np.random.default_rng(0))
    assert one[0].shape[-1] == 3
    for a, b in zip(one, three):
        np.testing.assert_array_equal(a, b)
