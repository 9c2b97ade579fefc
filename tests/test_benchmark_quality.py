"""benchmarks/quality.py's label fidelity: the nearest class of each class's fakes."""

import os
import sys
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "benchmarks"))

import quality  # noqa: E402

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 40, 220]], np.uint8)  # classes 0, 1, 2


def coloured(colour: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` 32x32 images of one colour on white, a square of random size and place."""
    out = np.full((count, 32, 32, 3), 255, np.uint8)
    for image in out:
        size = rng.integers(10, 24)
        y, x = rng.integers(0, 32 - size, 2)
        image[y : y + size, x : x + size] = colour
    return out


def test_thumbnail_statistics_are_the_mean_and_spread_of_box_filtered_thumbnails(rng):
    images = rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    thumbs = np.zeros((5, 16, 16, 3))
    for i in range(16):
        for j in range(16):
            thumbs[:, i, j] = images[:, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean(axis=(1, 2))
    thumbs = thumbs.reshape(5, -1) / 255
    mean, spread = quality.thumbnail_statistics(images)
    np.testing.assert_allclose(mean, thumbs.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(spread, thumbs.std(axis=0), atol=1e-6)


def test_label_fidelity_names_the_class_each_class_s_fakes_look_like(rng):
    classes = np.repeat(np.arange(3), 40)
    reals = np.concatenate([coloured(COLOURS[c], 40, rng) for c in range(3)])
    drawn_as = [0, 1, 0]  # the generator draws class 2 in class 0's colour

    def generate(latents, labels):
        return coloured(COLOURS[drawn_as[labels[0]]], len(latents), rng)

    run = types.SimpleNamespace(
        generator=types.SimpleNamespace(arch=types.SimpleNamespace(num_labels=3, latent_size=4)),
        generate=generate,
    )
    result = quality.label_fidelity(run, reals, classes, seed=0, per_class=16)
    assert result == {"fakes": [0, 1, 0], "reals": [0, 1, 2]}
    assert quality.followed(result["fakes"]) == "2/3"
    assert quality.followed([0, None, 2]) == "2/2"  # a class too small to split is left out
