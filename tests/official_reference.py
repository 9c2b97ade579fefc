"""The release's G_paper / D_paper at lod 0, written in numpy from its networks.py (NCHW), and
release-format pickles: the independent side of test_official.py. Nothing here uses progan_tf."""

import pickle
import sys
import types

import numpy as np

SQRT2 = np.sqrt(2.0)


def nf(stage, fmap_base, fmap_max):
    return min(int(fmap_base / 2.0**stage), fmap_max)


def wscale(weight, gain=SQRT2, fan_in=None):
    fan_in = np.prod(weight.shape[:-1]) if fan_in is None else fan_in
    return weight * (gain / np.sqrt(fan_in))


def lrelu(x):
    return np.maximum(x * 0.2, x)


def pixel_norm(x, eps=1e-8):
    return x / np.sqrt(np.mean(x**2, axis=1, keepdims=True) + eps)


def conv_same(x, w, stride=1):
    """NCHW conv, weight [k, k, in, out], TF 'SAME' padding."""
    k, n, h = w.shape[0], x.shape[0], x.shape[2]
    out_h = -(-h // stride)
    pad = max((out_h - 1) * stride + k - h, 0)
    lo = pad // 2
    xp = np.pad(x, [(0, 0), (0, 0), (lo, pad - lo), (lo, pad - lo)])
    out = np.zeros((n, w.shape[3], out_h, out_h))
    for i in range(k):
        for j in range(k):
            patch = xp[:, :, i : i + stride * out_h : stride, j : j + stride * out_h : stride]
            out += np.einsum("nchw,co->nohw", patch, w[i, j])
    return out


def conv_transpose_same_stride2(x, w):
    """NCHW transposed conv, weight [k, k, out, in], stride 2, 'SAME': the gradient of conv_same."""
    k, n, h = w.shape[0], x.shape[0], x.shape[2]
    out_size = 2 * h
    pad = max((h - 1) * 2 + k - out_size, 0)
    lo = pad // 2
    out = np.zeros((n, w.shape[2], out_size + pad, out_size + pad))
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + 2 * h : 2, j : j + 2 * h : 2] += np.einsum(
                "nchw,oc->nohw", x, w[i, j]
            )
    return out[:, :, lo : lo + out_size, lo : lo + out_size]


def fused_kernel(w, scale=1.0):
    w = np.pad(w, [(1, 1), (1, 1), (0, 0), (0, 0)])
    return (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * scale


def upscale(x):
    return x.repeat(2, axis=2).repeat(2, axis=3)


def downscale(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def minibatch_stddev(x, group_size):
    g = min(group_size, x.shape[0])
    s = x.shape
    y = x.reshape(g, -1, *s[1:])
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt((y**2).mean(axis=0) + 1e-8).mean(axis=(1, 2, 3), keepdims=True)  # [M, 1, 1, 1]
    y = np.tile(y, [g, 1, s[2], s[3]])
    return np.concatenate([x, y], axis=1)


def generator(v, latents, labels, *, resolution, fmap_base, fmap_max, fused, eps=1e-8):
    x = np.concatenate([latents, labels], axis=1)
    x = pixel_norm(x, eps)
    f = lambda s: nf(s, fmap_base, fmap_max)  # noqa: E731
    x = x @ wscale(v["4x4/Dense/weight"], SQRT2 / 4)
    x = x.reshape(-1, f(1), 4, 4) + v["4x4/Dense/bias"].reshape(1, -1, 1, 1)
    x = pixel_norm(lrelu(x), eps)
    x = pixel_norm(
        lrelu(conv_same(x, wscale(v["4x4/Conv/weight"])) + v["4x4/Conv/bias"].reshape(1, -1, 1, 1)),
        eps,
    )
    final = int(np.log2(resolution))
    for res in range(3, final + 1):
        name = f"{2**res}x{2**res}"
        if fused:
            w = v[f"{name}/Conv0_up/weight"]
            w = fused_kernel(wscale(w, fan_in=9 * w.shape[3]))
            x = conv_transpose_same_stride2(x, w) + v[f"{name}/Conv0_up/bias"].reshape(1, -1, 1, 1)
        else:
            x = conv_same(upscale(x), wscale(v[f"{name}/Conv0/weight"])) + v[
                f"{name}/Conv0/bias"
            ].reshape(1, -1, 1, 1)
        x = pixel_norm(lrelu(x), eps)
        x = conv_same(x, wscale(v[f"{name}/Conv1/weight"])) + v[f"{name}/Conv1/bias"].reshape(
            1, -1, 1, 1
        )
        x = pixel_norm(lrelu(x), eps)
    return conv_same(x, wscale(v["ToRGB_lod0/weight"], 1.0)) + v["ToRGB_lod0/bias"].reshape(
        1, -1, 1, 1
    )


def discriminator(v, images, *, resolution, mbstd_group_size, fused):
    final = int(np.log2(resolution))
    x = lrelu(
        conv_same(images, wscale(v["FromRGB_lod0/weight"]))
        + v["FromRGB_lod0/bias"].reshape(1, -1, 1, 1)
    )
    for res in range(final, 2, -1):
        name = f"{2**res}x{2**res}"
        x = lrelu(
            conv_same(x, wscale(v[f"{name}/Conv0/weight"]))
            + v[f"{name}/Conv0/bias"].reshape(1, -1, 1, 1)
        )
        if fused:
            w = fused_kernel(wscale(v[f"{name}/Conv1_down/weight"]), 0.25)
            x = lrelu(conv_same(x, w, stride=2) + v[f"{name}/Conv1_down/bias"].reshape(1, -1, 1, 1))
        else:
            x = lrelu(
                conv_same(x, wscale(v[f"{name}/Conv1/weight"]))
                + v[f"{name}/Conv1/bias"].reshape(1, -1, 1, 1)
            )
            x = downscale(x)
    if mbstd_group_size > 1:
        x = minibatch_stddev(x, mbstd_group_size)
    x = lrelu(conv_same(x, wscale(v["4x4/Conv/weight"])) + v["4x4/Conv/bias"].reshape(1, -1, 1, 1))
    x = x.reshape(x.shape[0], -1)  # NCHW flatten
    x = lrelu(x @ wscale(v["4x4/Dense0/weight"]) + v["4x4/Dense0/bias"])
    return x @ wscale(v["4x4/Dense1/weight"], 1.0) + v["4x4/Dense1/bias"]


def variables(
    kind, rng, *, resolution, channels, label_size, fmap_base, fmap_max, latent_size, fused, mbstd
):
    """Random values with the release's variable names and shapes for G_paper or D_paper."""
    f = lambda s: nf(s, fmap_base, fmap_max)  # noqa: E731
    final = int(np.log2(resolution))
    shapes = {"lod": ()}
    if kind == "G":
        shapes.update(
            {
                "4x4/Dense/weight": (latent_size + label_size, f(1) * 16),
                "4x4/Dense/bias": (f(1),),
                "4x4/Conv/weight": (3, 3, f(1), f(1)),
                "4x4/Conv/bias": (f(1),),
            }
        )
        for res in range(3, final + 1):
            name = f"{2**res}x{2**res}"
            if fused:
                shapes[f"{name}/Conv0_up/weight"], shapes[f"{name}/Conv0_up/bias"] = (
                    (3, 3, f(res - 1), f(res - 2)),
                    (f(res - 1),),
                )
            else:
                shapes[f"{name}/Conv0/weight"], shapes[f"{name}/Conv0/bias"] = (
                    (3, 3, f(res - 2), f(res - 1)),
                    (f(res - 1),),
                )
            shapes[f"{name}/Conv1/weight"], shapes[f"{name}/Conv1/bias"] = (
                (3, 3, f(res - 1), f(res - 1)),
                (f(res - 1),),
            )
        for res in range(2, final + 1):
            shapes[f"ToRGB_lod{final - res}/weight"], shapes[f"ToRGB_lod{final - res}/bias"] = (
                (1, 1, f(res - 1), channels),
                (channels,),
            )
    else:
        for res in range(2, final + 1):
            shapes[f"FromRGB_lod{final - res}/weight"], shapes[f"FromRGB_lod{final - res}/bias"] = (
                (1, 1, channels, f(res - 1)),
                (f(res - 1),),
            )
        for res in range(3, final + 1):
            name = f"{2**res}x{2**res}"
            shapes[f"{name}/Conv0/weight"], shapes[f"{name}/Conv0/bias"] = (
                (3, 3, f(res - 1), f(res - 1)),
                (f(res - 1),),
            )
            second = "Conv1_down" if fused else "Conv1"
            shapes[f"{name}/{second}/weight"], shapes[f"{name}/{second}/bias"] = (
                (3, 3, f(res - 1), f(res - 2)),
                (f(res - 2),),
            )
        extra = 1 if mbstd > 1 else 0
        shapes.update(
            {
                "4x4/Conv/weight": (3, 3, f(1) + extra, f(1)),
                "4x4/Conv/bias": (f(1),),
                "4x4/Dense0/weight": (f(1) * 16, f(0)),
                "4x4/Dense0/bias": (f(0),),
                "4x4/Dense1/weight": (f(0), 1 + label_size),
                "4x4/Dense1/bias": (1 + label_size,),
            }
        )
    values = {
        name: rng.standard_normal(shape).astype(np.float32)
        * (0.2 if name.endswith("bias") else 1.0)
        for name, shape in shapes.items()
    }
    values["lod"] = np.float32(0.0)
    return values


def release_pickle(states, protocol: int = 4) -> bytes:
    """Pickles (G, D, Gs) as the release does: instances of a class `tfutil.Network` whose state is
    the release's dictionary."""
    module = types.ModuleType("tfutil")

    class Network:
        def __init__(self, state):
            self._state = state

        def __getstate__(self):
            return self._state

    Network.__module__, Network.__qualname__ = "tfutil", "Network"
    module.Network = Network
    sys.modules["tfutil"] = module
    try:
        # the release: HIGHEST_PROTOCOL, 4
        return pickle.dumps(tuple(Network(s) for s in states), protocol=protocol)
    finally:
        del sys.modules["tfutil"]


def network_state(name, build_func_name, static_kwargs, values):
    return {
        "version": 2,
        "name": name,
        "static_kwargs": static_kwargs,
        "build_module_src": "raise SystemExit('ran')\n",
        "build_func_name": build_func_name,
        "variables": list(values.items()),
    }


def celebahq_states(rng, resolution: int = 1024):
    """(G, D, Gs) states of the release's CelebA-HQ networks (paper widths, fused layers, random
    weights): a real-size pickle, about 264 MB at 1024."""
    sizes = dict(resolution=resolution, channels=3, label_size=0, fmap_base=8192, fmap_max=512)
    common = dict(num_channels=3, resolution=resolution, label_size=0, fmap_base=8192, fmap_max=512)
    extra = dict(latent_size=512, fused=True, mbstd=4)
    g_kwargs = {**common, "latent_size": 512}
    return [
        network_state("G", "networks.G_paper", g_kwargs, variables("G", rng, **sizes, **extra)),
        network_state(
            "D",
            "networks.D_paper",
            {**common, "mbstd_group_size": 4},
            variables("D", rng, **sizes, **extra),
        ),
        network_state("Gs", "networks.G_paper", g_kwargs, variables("G", rng, **sizes, **extra)),
    ]
