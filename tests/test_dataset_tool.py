"""tools/dataset_tool.py on a messy folder: every kind of input, bad files reported by name."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from progan_tf import data, dataset_io

from conftest import ROOT as REPOSITORY  # noqa: E402
from conftest import assert_no_tensorflow_log, cli_env  # noqa: E402

ROOT = Path(REPOSITORY)
TOOL = [sys.executable, str(ROOT / "tools" / "dataset_tool.py")]


def run_tool(*args, check=True):
    env = {**cli_env(), "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([*TOOL, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and result.returncode:
        raise AssertionError(result.stdout + result.stderr)
    assert_no_tensorflow_log(result.stderr)
    return result


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """Returns (folder, {name: expected uint8 [16, 16, 3] or None when not checkable})."""
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    expected = {}
    rgb = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "rgb.png")
    expected["rgb.png"] = rgb
    rgba = rng.integers(0, 256, (16, 16, 4), dtype=np.uint8)
    rgba[:8, :, 3] = 0
    Image.fromarray(rgba).save(root / "sub" / "rgba.png")
    a = rgba[..., 3:].astype(float) / 255
    expected["rgba.png"] = np.rint(rgba[..., :3] * a + 255 * (1 - a)).astype(np.uint8)
    gray = rng.integers(0, 256, (16, 16), dtype=np.uint8)
    Image.fromarray(gray).save(root / "gray.png")
    expected["gray.png"] = np.repeat(gray[..., None], 3, axis=-1)
    deep = rng.integers(0, 65536, (16, 16)).astype(np.uint16)
    Image.fromarray(deep).save(root / "deep16.png")
    expected["deep16.png"] = np.repeat(
        np.rint(deep / 257.0).astype(np.uint8)[..., None], 3, axis=-1
    )
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).convert("CMYK").save(
        root / "cmyk.jpg"
    )
    expected["cmyk.jpg"] = None
    Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(root / "wide.bmp")
    expected["wide.bmp"] = None
    Image.fromarray(rng.integers(0, 256, (3, 3, 3), dtype=np.uint8)).save(root / "tiny.webp")
    expected["tiny.webp"] = None
    Image.fromarray(rgb).convert("P").save(root / "palette.gif")
    expected["palette.gif"] = None
    # Bad files.
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(
        root / "truncated.jpg", quality=95
    )
    payload = (root / "truncated.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(payload[: len(payload) // 2])
    (root / "empty.png").write_bytes(b"")
    (root / "notes.png").write_text("this is not an image\n")
    (root / "readme.txt").write_text("ignored: not an image extension\n")
    return root, expected


@pytest.fixture(scope="module")
def messy_dataset(messy_folder, tmp_path_factory):
    folder, _ = messy_folder
    dest = tmp_path_factory.mktemp("out") / "messy"
    result = run_tool(
        "create_from_images",
        f"--source={folder}",
        f"--dest={dest}",
        "--resolution=16",
        "--workers=2",
    )
    return dest, result


def test_bad_files_are_skipped_and_listed_by_name(messy_dataset):
    dest, result = messy_dataset
    assert result.returncode == 0
    for name in ("truncated.jpg", "empty.png", "notes.png"):
        assert name in result.stdout
    meta = json.loads((dest / "dataset.json").read_text())
    assert sorted(Path(s["file"]).name for s in meta["skipped"]) == [
        "empty.png",
        "notes.png",
        "truncated.jpg",
    ]
    assert meta["num_images"] == 8
    assert any(Path(p).name == "tiny.webp" for p in meta["upscaled"])


def test_good_images_land_at_every_level_with_the_right_pixels(messy_folder, messy_dataset):
    _, expected = messy_folder
    dest, _ = messy_dataset
    info = data.load_info(dest)
    levels = {r: np.concatenate([b for b, _ in data.iterate_level(info, r)]) for r in (4, 8, 16)}
    assert all(len(images) == 8 for images in levels.values())
    top = levels[16]
    for name, want in expected.items():
        if want is not None:
            distance = np.abs(top.astype(int) - want).max(axis=(1, 2, 3))
            assert distance.min() <= 1, name
    for high, low in ((16, 8), (8, 4)):  # level k = box filter of level k+1, within rounding
        boxed = levels[high].astype(float).reshape(8, low, 2, low, 2, 3).mean(axis=(2, 4))
        assert np.abs(boxed - levels[low]).max() <= 1.0


def test_default_resolution_is_the_largest_the_images_support(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for i, size in enumerate([(40, 40), (70, 33), (100, 90)]):
        Image.new("RGB", size, (i * 50, 0, 0)).save(src / f"{i}.png")
    result = run_tool(
        "create_from_images", f"--source={src}", f"--dest={tmp_path / 'out'}", "--workers=1"
    )
    assert json.loads((tmp_path / "out" / "dataset.json").read_text())["resolution"] == 32
    assert "1.png" in result.stderr  # says which image limits it (a diagnostic: stderr)


def test_empty_folder_and_existing_dest_are_clear_errors(tmp_path, messy_dataset):
    (tmp_path / "empty").mkdir()
    result = run_tool(
        "create_from_images",
        f"--source={tmp_path / 'empty'}",
        f"--dest={tmp_path / 'x'}",
        check=False,
    )
    assert result.returncode == 1 and "no image files" in result.stderr
    only_bad = tmp_path / "bad"
    only_bad.mkdir()
    (only_bad / "a.png").write_text("nope")
    result = run_tool(
        "create_from_images", f"--source={only_bad}", f"--dest={tmp_path / 'y'}", check=False
    )
    assert result.returncode == 1 and "a.png" in result.stderr
    assert not (tmp_path / "y").exists()
    dest, _ = messy_dataset
    result = run_tool("create_from_images", f"--source={only_bad}", f"--dest={dest}", check=False)
    assert result.returncode == 1 and "exists" in result.stderr


def test_ctrl_c_mid_conversion_leaves_an_existing_dataset_as_it_was(tmp_path):
    rng = np.random.default_rng(1)
    source = tmp_path / "many"
    source.mkdir()
    for i in range(160):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
            source / f"{i:03d}.png"
        )
    dest = tmp_path / "ds"
    run_tool("create_from_images", f"--source={source}", f"--dest={dest}", "--resolution=8")
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    proc = subprocess.Popen(
        [*TOOL, "create_from_images", f"--source={source}", f"--dest={dest}", "--overwrite"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**cli_env(), "CUDA_VISIBLE_DEVICES": ""},
    )
    seen = ""
    while "64/160" not in seen:  # the progress bar: a third of the images decoded
        char = proc.stdout.read(1)
        assert char, seen[-2000:]
        seen += char
    proc.send_signal(signal.SIGINT)
    seen += proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, seen[-2000:]
    assert f"interrupted; --dest={dest}: nothing was written to it" in seen
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds", "many"]  # no temporary left


def test_info_extract_and_grid(messy_dataset, tmp_path):
    dest, _ = messy_dataset
    assert "16x16" in run_tool("info", f"--data_dir={dest}").stdout
    run_tool("extract", f"--data_dir={dest}", f"--dest={tmp_path / 'png'}", "--resolution=8")
    assert len(list((tmp_path / "png").glob("*.png"))) == 8
    # deprecated spellings
    old = run_tool("grid", f"--source={dest}", f"--out={tmp_path / 'grid.png'}", "--num=4")
    assert "--source is deprecated" in old.stderr and "--num is deprecated" in old.stderr
    assert "grid of 4 images" in old.stdout
    assert Image.open(tmp_path / "grid.png").size == (32, 32)  # 4 images -> 2x2 tiles of 16


def test_cifar10_and_mnist_converters(tmp_path, rng):
    cifar = tmp_path / "cifar-10-batches-bin"
    cifar.mkdir()
    records = []
    for i in range(1, 6):
        batch = rng.integers(0, 256, (4, 3073), dtype=np.uint8)
        batch[:, 0] = rng.integers(0, 10, 4)
        batch.tofile(cifar / f"data_batch_{i}.bin")
        records.append(batch)
    run_tool("create_cifar10", f"--source={cifar}", f"--dest={tmp_path / 'c10'}")
    info = data.load_info(tmp_path / "c10")
    assert (info.num_images, info.num_labels, info.resolution) == (20, 10, 32)
    images, labels = next(data.iterate_level(info, 32, batch_size=20))
    raw = np.concatenate(records)
    want = raw[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    for image, label in zip(images, labels.argmax(1)):
        match = np.flatnonzero((want == image).all(axis=(1, 2, 3)))
        assert len(match) == 1 and raw[match[0], 0] == label

    mnist = tmp_path / "mnist"
    mnist.mkdir()
    digits = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    import gzip

    with gzip.open(mnist / "train-images-idx3-ubyte.gz", "wb") as f:
        f.write(
            bytes([0, 0, 8, 3])
            + b"".join(int(v).to_bytes(4, "big") for v in (5, 28, 28))
            + digits.tobytes()
        )
    with gzip.open(mnist / "train-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + bytes([3, 1, 4, 1, 5]))
    run_tool("create_mnist", f"--source={mnist}", f"--dest={tmp_path / 'mn'}")
    info = data.load_info(tmp_path / "mn")
    assert (info.channels, info.resolution, info.num_images) == (1, 32, 5)
    images, _ = next(data.iterate_level(info, 32, batch_size=5))
    want = np.pad(digits, [(0, 0), (2, 2), (2, 2)])
    assert sorted(i.tobytes() for i in images[..., 0]) == sorted(w.tobytes() for w in want)


def test_load_image_modes_directly(tmp_path):
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(tmp_path / "clear.png")
    np.testing.assert_array_equal(dataset_io.load_image(tmp_path / "clear.png", 4, 3), 255)
    Image.new("RGB", (8, 4), (1, 2, 3)).save(tmp_path / "wide.png")
    with pytest.raises(dataset_io.ImageError, match="wide.png.*not square"):
        dataset_io.load_image(tmp_path / "wide.png", 4, 3, crop="none")
    padded = dataset_io.load_image(tmp_path / "wide.png", 8, 1, crop="pad")
    assert padded[0, 0, 0] == 0 and padded[4, 4, 0] == Image.new("RGB", (1, 1), (1, 2, 3)).convert(
        "L"
    ).getpixel((0, 0))


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\nshowpage\n"


def _a_dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_plain_raster_formats_are_read_and_no_outside_program_runs(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin  # noqa: PLC0415

    from progan_tf import convert  # noqa: PLC0415

    ran = []
    monkeypatch.setattr(EpsImagePlugin, "Ghostscript", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(EpsImagePlugin, "has_ghostscript", lambda: True)
    (tmp_path / "a.eps").write_bytes(EPS)
    (tmp_path / "b.ps").write_bytes(EPS)
    (tmp_path / "c.pdf").write_bytes(b"%PDF-1.4\n")
    (tmp_path / "disguised.png").write_bytes(EPS)  # an EPS file under a raster name
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    assert [p.name for p in convert._image_files(tmp_path)] == ["disguised.png", "ok.png"]
    with pytest.raises(dataset_io.ImageError, match="disguised.png"):
        dataset_io.image_size(tmp_path / "disguised.png")
    with pytest.raises(dataset_io.ImageError, match="disguised.png"):
        dataset_io.load_image(tmp_path / "disguised.png", 4, 3)
    assert ran == []
    assert dataset_io.load_image(tmp_path / "ok.png", 4, 3).shape == (4, 4, 3)


def test_a_decode_that_runs_too_long_is_stopped():
    import time  # noqa: PLC0415

    from progan_tf import convert  # noqa: PLC0415

    start = time.monotonic()
    with pytest.raises(TimeoutError, match="took over 1 s"), convert._time_limit(1):
        time.sleep(5)
    assert time.monotonic() - start < 3


def test_a_conversion_is_synced_before_it_replaces_the_old_dataset(tmp_path, monkeypatch):
    from progan_tf import files  # noqa: PLC0415

    events = []
    monkeypatch.setattr(files, "fsync_tree", lambda p: events.append(("sync", Path(p).name)))
    monkeypatch.setattr(files, "fsync_path", lambda p: events.append(("sync dir", Path(p).name)))
    real_rename = Path.rename
    monkeypatch.setattr(
        Path,
        "rename",
        lambda self, to: (events.append(("rename", self.name)), real_rename(self, to))[1],
    )
    images = np.zeros((2, 4, 4, 3), np.uint8)
    dataset_io.write_arrays(tmp_path / "ds", images, None, name="ds")
    events.clear()
    dataset_io.write_arrays(tmp_path / "ds", images + 1, None, name="ds", overwrite=True)
    partial = f".ds.partial-{os.getpid()}"
    assert events == [
        ("sync", partial),  # every record and dataset.json
        ("rename", "ds"),  # the old one aside
        ("rename", partial),  # the new one in place
        ("sync dir", tmp_path.name),  # both renames on disk before the old one goes
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds"]


def test_an_interrupted_replace_is_recovered_and_leftovers_of_dead_runs_go(tmp_path):
    images = np.zeros((2, 4, 4, 3), np.uint8)
    dataset_io.write_arrays(tmp_path / "ds", images, None, name="ds")
    dead = _a_dead_pid()
    # power lost between "old one aside" and "new one in place": only the backup is left
    (tmp_path / "ds").rename(tmp_path / f".ds.old-{dead}")
    (tmp_path / f".ds.partial-{dead}").mkdir()
    (tmp_path / f".ds.partial-{dead}" / "half.tfrecords").write_bytes(b"x")
    (tmp_path / f".ds.partial-{os.getppid()}").mkdir()  # a live process's: kept
    dataset_io.recover_interrupted_replace(tmp_path / "ds")
    assert data.load_info(tmp_path / "ds").num_images == 2  # the old dataset is back
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".ds.partial-{os.getppid()}",
        "ds",
    ]


def test_a_symlinked_dest_is_replaced_where_it_points(tmp_path):
    images = np.zeros((2, 4, 4, 3), np.uint8)
    (tmp_path / "disk").mkdir()
    dataset_io.write_arrays(tmp_path / "disk" / "ds", images, None, name="ds")
    (tmp_path / "link").symlink_to(tmp_path / "disk" / "ds")
    dataset_io.write_arrays(
        tmp_path / "link", np.ones((3, 4, 4, 3), np.uint8), None, name="ds", overwrite=True
    )
    assert (tmp_path / "link").is_symlink()
    assert data.load_info(tmp_path / "link").num_images == 3
    assert sorted(p.name for p in (tmp_path / "disk").iterdir()) == ["ds"]


def test_extract_overwrites_only_its_own_pngs(messy_dataset, tmp_path):
    dest, _ = messy_dataset
    out = tmp_path / "png"
    run_tool("extract", f"--data_dir={dest}", f"--dest={out}", "--resolution=8")
    run_tool("extract", f"--data_dir={dest}", f"--dest={out}", "--resolution=4", "--overwrite")
    assert Image.open(out / "00000000.png").size == (4, 4)
    (out / "notes.txt").write_text("mine")
    result = run_tool("extract", f"--data_dir={dest}", f"--dest={out}", "--overwrite", check=False)
    assert result.returncode == 1 and "notes.txt, which extract did not write" in result.stderr
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["png"]


def test_an_image_over_max_pixels_is_never_decoded_for_its_header(tmp_path, monkeypatch):
    from PIL import PngImagePlugin  # noqa: PLC0415

    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    decoded = []
    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", lambda self: decoded.append(1))
    assert dataset_io.image_size(tmp_path / "big.png", max_pixels=10_000) == (400, 300)
    assert decoded == []  # (without the limit Pillow loads a PNG to look for its EXIF)
