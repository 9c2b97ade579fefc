"""The authors' released networks (`karras2018iclr-*.pkl`) as progan_tf networks and runs.

A release pickle holds `(G, D, Gs)`, three `tfutil.Network` objects whose pickled state is
`{version, name, static_kwargs, build_module_src, build_func_name, variables}`, `variables`
being (name, numpy array) pairs. Unpickling it as the release does would rebuild a TF1 graph
from the embedded source; `load_pickle` instead reads it with a restricted unpickler that turns
each Network into a plain `NetworkState` record, allows only numpy's array-rebuilding globals
(numpy 1.x wrote them under `numpy.core.multiarray`) and refuses any other global by name:
nothing in the file is executed.

`build_networks` then makes the matching `Generator` / `Discriminator` from `static_kwargs` and
copies every variable in. The release differs from progan_tf's layout in three places, each
re-arranged exactly (tests compare against a numpy forward pass written from the release's
network definitions):
- NCHW vs NHWC where a tensor is flattened or reshaped: G's 4x4 dense output is reshaped to
  [nf, 4, 4], D's dense0 input flattened from [nf, 4, 4]; their weight columns / rows are
  permuted to NHWC order.
- `fused_scale=True` (the default): G's `Conv0_up` is a stride-2 transposed convolution whose
  3x3 weight [k, k, out, in] is summed into a 4x4 kernel. It equals nearest upsampling then a
  3x3 convolution whose kernel is the weight flipped in both spatial axes with its channel axes
  swapped. D's `Conv1_down` (stride-2 convolution of the same summed kernel / 4) equals a 3x3
  convolution with the weight as it is, then 2x2 average pooling.
- Equalized learning rate: the release stores N(0, 1) weights and multiplies by
  gain / sqrt(fan_in) at run time, as progan_tf does, with the same gains and fan-ins, so raw
  values copy over unchanged.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import os
import pickle
from typing import Any

import numpy as np
import tensorflow as tf

from progan_tf import files, plan
from progan_tf.torch_archive import UNPICKLING_ERRORS
from progan_tf.networks import Architecture, Discriminator, Generator
from progan_tf.schedule import Schedule

# Globals a release pickle may name, and what they resolve to here.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("_codecs", "encode"): (
        "_codecs",
        "encode",
    ),  # bytes in protocol-2 pickles: str -> bytes, nothing else
}

# static_kwargs the import understands, with the only values progan_tf's networks compute.
_FIXED_KWARGS = {
    "fmap_decay": 1.0,
    "normalize_latents": True,
    "use_wscale": True,
    "use_pixelnorm": True,
    "use_leakyrelu": True,
}
_FREE_KWARGS = {
    "num_channels",
    "resolution",
    "label_size",
    "fmap_base",
    "fmap_max",
    "latent_size",
    "pixelnorm_epsilon",
    "fused_scale",
    "structure",
    "mbstd_group_size",
    "dtype",
}


class OfficialImportError(ValueError):
    """A release pickle that cannot be imported; the message lists what is wrong."""


@dataclasses.dataclass
class NetworkState:
    """The pickled state of one `tfutil.Network` of the release, as plain data."""

    version: int = 0
    name: str = ""
    static_kwargs: dict = dataclasses.field(default_factory=dict)
    build_module_src: str = ""  # kept as text, never executed
    build_func_name: str = ""
    variables: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:
        unknown = set(state) - {
            "version",
            "name",
            "static_kwargs",
            "build_module_src",
            "build_func_name",
            "variables",
        }
        if unknown:
            raise OfficialImportError(f"tfutil.Network state has unknown fields {sorted(unknown)}")
        self.version = int(state.get("version", 0))
        self.name = str(state.get("name", ""))
        self.static_kwargs = dict(state.get("static_kwargs", {}))
        for key, value in self.static_kwargs.items():  # the release's are all plain values
            if not isinstance(value, (bool, int, float, str, type(None), np.generic)):
                raise OfficialImportError(
                    f"static_kwargs[{str(key)[:40]!r}] is a {type(value).__name__}; a release "
                    "pickle's settings are plain numbers and strings"
                )
        self.build_module_src = str(state.get("build_module_src", ""))
        self.build_func_name = str(state.get("build_func_name", ""))
        self.variables = {
            str(name): np.asarray(value).view(np.ndarray)
            for name, value in state.get("variables", [])
        }


class _BoundedArray(np.ndarray):
    """The arrays of one load: each is sized before its memory is taken, against what is left of
    the load's budget, so that a small hostile file cannot ask for more memory than its own size
    justifies (a release pickle's arrays hold its raw bytes: about the file's size in all)."""

    remaining = [0]  # bytes; each load makes a subclass with its own budget

    def __setstate__(self, state):
        shape, dtype = state[-4], state[-3]  # (version,) shape, dtype, is_fortran, raw data
        dtype = np.dtype(dtype)
        if dtype.hasobject:
            raise OfficialImportError(
                "the pickle holds an array of Python objects; a release pickle holds numbers"
            )
        size = math.prod(int(n) for n in shape) * dtype.itemsize
        if size > self.remaining[0]:
            raise OfficialImportError(
                f"the pickle's arrays ask for more memory ({size:,} bytes more) than a release "
                "pickle of its size holds; refusing it"
            )
        self.remaining[0] -= size
        super().__setstate__(state)


class _ReleaseUnpickler(pickle.Unpickler):
    """Resolves `tfutil.Network` to NetworkState and numpy's array globals (arrays and scalars
    within a memory budget of twice the file's size); refuses the rest."""

    MAX_SCALAR_BYTES = 16  # a release pickle's scalars: numbers (float64, int64, bool)

    def __init__(self, file, *, budget: int, **kwargs):
        super().__init__(file, **kwargs)
        self.array_type = type("_Arrays", (_BoundedArray,), {"remaining": [int(budget)]})

    def _bounded_scalar(self, dtype, *args):
        """numpy's scalar reconstructor, for numbers only: a scalar of a huge void dtype
        (`V1000000000`) would take that memory from a few bytes of pickle."""
        dtype = np.dtype(dtype)
        if dtype.hasobject or dtype.itemsize > self.MAX_SCALAR_BYTES:
            raise OfficialImportError(
                f"the pickle holds a scalar of type {str(dtype)[:40]} ({dtype.itemsize:,} bytes); "
                "a release pickle's scalars are numbers"
            )
        return np._core.multiarray.scalar(dtype, *args)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("tfutil", "Network"):
            return NetworkState
        if (module, name) == ("numpy", "ndarray"):
            return self.array_type
        if (module, name) in _NUMPY_GLOBALS:
            target_module, target = _NUMPY_GLOBALS[(module, name)]
            if target == "scalar":
                return self._bounded_scalar
            return getattr(__import__(target_module, fromlist=[target]), target)
        raise OfficialImportError(
            f"the pickle names the global {module}.{name}, which a ProGAN release pickle does not "
            "hold; "
            "refusing to load it (nothing in the file was run)"
        )


def load_pickle(
    data: bytes, source: str = "the pickle"
) -> tuple[NetworkState, NetworkState, NetworkState]:
    """(G, D, Gs) states from the bytes of a release pickle, without executing anything in it."""
    try:
        networks = _ReleaseUnpickler(
            io.BytesIO(data), encoding="latin1", budget=2 * len(data)
        ).load()
    except OfficialImportError as error:
        raise OfficialImportError(f"{source}: {error}") from None
    except UNPICKLING_ERRORS as error:
        raise OfficialImportError(
            f"{source} is not a readable ProGAN release pickle "
            f"({type(error).__name__}: {str(error)[:200]})"
        ) from None
    if not (
        isinstance(networks, tuple)
        and len(networks) == 3
        and all(isinstance(n, NetworkState) for n in networks)
    ):
        raise OfficialImportError(f"{source} does not hold the release's (G, D, Gs) networks")
    return networks


def architecture_kwargs(g: NetworkState, d: NetworkState) -> dict:
    """progan_tf Architecture arguments (and `fused_scale`) from the networks' static_kwargs;
    OfficialImportError listing every kwarg that is unknown or has a value progan_tf lacks."""
    problems = []
    for state, builder in ((g, "G_paper"), (d, "D_paper")):
        if state.build_func_name not in (builder, f"networks.{builder}"):
            problems.append(
                f"{state.name}: build function {state.build_func_name!r}, expected {builder}"
            )
        for key, value in state.static_kwargs.items():
            if key in _FIXED_KWARGS:
                if value != _FIXED_KWARGS[key]:
                    problems.append(
                        f"{state.name}.{key}={value!r} (only {_FIXED_KWARGS[key]!r} is supported)"
                    )
            elif key not in _FREE_KWARGS:
                problems.append(f"{state.name}.{key}={value!r} (unknown)")
    kw = {**d.static_kwargs, **g.static_kwargs}
    if kw.get("dtype", "float32") != "float32":
        problems.append(f"dtype={kw['dtype']!r} (weights are float32; only float32 is supported)")
    fmap_base, fmap_max = int(kw.get("fmap_base", 8192)), int(kw.get("fmap_max", 512))
    for key in ("num_channels", "resolution", "label_size", "fmap_base", "fmap_max", "fused_scale"):
        if (
            key in g.static_kwargs
            and key in d.static_kwargs
            and g.static_kwargs[key] != d.static_kwargs[key]
        ):
            problems.append(
                f"G and D disagree on {key}: {g.static_kwargs[key]!r} vs {d.static_kwargs[key]!r}"
            )
    if problems:
        raise OfficialImportError("cannot import these networks: " + "; ".join(problems))
    latent_size = g.static_kwargs.get("latent_size") or min(fmap_base, fmap_max)
    return {
        "resolution": int(kw.get("resolution", 32)),
        "channels": int(kw.get("num_channels", 1)),
        "num_labels": int(kw.get("label_size", 0)),
        "latent_size": int(latent_size),
        "fmap_base": fmap_base,
        "fmap_max": fmap_max,
        "mbstd_group_size": int(d.static_kwargs.get("mbstd_group_size", 4)),
        "pixelnorm_epsilon": float(g.static_kwargs.get("pixelnorm_epsilon", 1e-8)),
        "fused_scale": bool(kw.get("fused_scale", True)),
    }


def check_sizes(arch, g: NetworkState, d: NetworkState, gs: NetworkState, source: str) -> None:
    """OfficialImportError unless each network's arrays hold the parameters its static_kwargs
    describe (Table 2's counts for `arch`): checked before any network is built, so that kwargs
    asking for huge networks cost nothing."""
    expected = {
        "G": plan.generator_parameters(arch),
        "D": plan.discriminator_parameters(arch),
        "Gs": plan.generator_parameters(arch),
    }
    for state, key in ((g, "G"), (d, "D"), (gs, "Gs")):
        held = sum(int(np.size(v)) for name, v in state.variables.items() if name != "lod")
        if held != expected[key]:
            raise OfficialImportError(
                f"{source}: {key}'s settings (resolution {arch.resolution}, fmap_base "
                f"{arch.fmap_base}, fmap_max {arch.fmap_max}, latent_size {arch.latent_size}) "
                f"describe {expected[key]:,} weights, and its arrays hold {held:,}"
            )


def _nchw_rows(weight: np.ndarray, channels: int) -> np.ndarray:
    """Rows of a dense weight indexed by an NCHW flatten of [C, 4, 4] -> NHWC flatten order."""
    return weight.reshape(channels, 4, 4, -1).transpose(1, 2, 0, 3).reshape(16 * channels, -1)


def _nchw_columns(weight: np.ndarray, channels: int) -> np.ndarray:
    """Columns of a dense weight whose output is reshaped to NCHW [C, 4, 4] -> NHWC order."""
    return weight.reshape(-1, channels, 4, 4).transpose(0, 2, 3, 1).reshape(-1, 16 * channels)


def generator_weights(state: NetworkState, arch, fused: bool) -> dict[str, np.ndarray]:
    """progan_tf layer-weight path (`layer name/weight name`) -> value, for a Generator "g"."""
    take, out = _Variables(state), {}
    final = int(math.log2(arch.resolution))
    for r in arch.resolutions:
        nf, n = arch.num_features(r), f"g_{r}x{r}"
        if r == 4:
            out[f"{n}_dense/kernel"] = _nchw_columns(take("4x4/Dense/weight"), nf)
            out[f"{n}_dense_bias/bias"] = take("4x4/Dense/bias")
            out[f"{n}_conv/kernel"], out[f"{n}_conv/bias"] = (
                take("4x4/Conv/weight"),
                take("4x4/Conv/bias"),
            )
        else:
            if fused:  # [k, k, out, in] of a transposed conv -> flipped, channels swapped
                weight = take(f"{r}x{r}/Conv0_up/weight")
                out[f"{n}_conv0/kernel"] = weight[::-1, ::-1].transpose(0, 1, 3, 2)
                out[f"{n}_conv0/bias"] = take(f"{r}x{r}/Conv0_up/bias")
            else:
                out[f"{n}_conv0/kernel"], out[f"{n}_conv0/bias"] = (
                    take(f"{r}x{r}/Conv0/weight"),
                    take(f"{r}x{r}/Conv0/bias"),
                )
            out[f"{n}_conv1/kernel"], out[f"{n}_conv1/bias"] = (
                take(f"{r}x{r}/Conv1/weight"),
                take(f"{r}x{r}/Conv1/bias"),
            )
        lod = final - int(math.log2(r))
        out[f"g_torgb_{r}x{r}/kernel"] = take(f"ToRGB_lod{lod}/weight")
        out[f"g_torgb_{r}x{r}/bias"] = take(f"ToRGB_lod{lod}/bias")
    take.check_all_used()
    return out


def discriminator_weights(state: NetworkState, arch, fused: bool) -> dict[str, np.ndarray]:
    """progan_tf layer-weight path -> value, for a Discriminator named "d"."""
    take, out = _Variables(state), {}
    final = int(math.log2(arch.resolution))
    for r in arch.resolutions:
        n, lod = f"d_{r}x{r}", final - int(math.log2(r))
        out[f"d_fromrgb_{r}x{r}_conv/kernel"] = take(f"FromRGB_lod{lod}/weight")
        out[f"d_fromrgb_{r}x{r}_conv/bias"] = take(f"FromRGB_lod{lod}/bias")
        if r == 4:
            out[f"{n}_conv/kernel"], out[f"{n}_conv/bias"] = (
                take("4x4/Conv/weight"),
                take("4x4/Conv/bias"),
            )
            out[f"{n}_dense0/kernel"] = _nchw_rows(take("4x4/Dense0/weight"), arch.num_features(4))
            out[f"{n}_dense0/bias"] = take("4x4/Dense0/bias")
            out[f"{n}_dense1/kernel"], out[f"{n}_dense1/bias"] = (
                take("4x4/Dense1/weight"),
                take("4x4/Dense1/bias"),
            )
        else:
            out[f"{n}_conv0/kernel"], out[f"{n}_conv0/bias"] = (
                take(f"{r}x{r}/Conv0/weight"),
                take(f"{r}x{r}/Conv0/bias"),
            )
            # same kernel, pooled after
            second = f"{r}x{r}/Conv1_down" if fused else f"{r}x{r}/Conv1"
            out[f"{n}_conv1/kernel"], out[f"{n}_conv1/bias"] = (
                take(f"{second}/weight"),
                take(f"{second}/bias"),
            )
    take.check_all_used()
    return out


class _Variables:
    """A network's variables handed out by name; afterwards, every one must have been taken."""

    def __init__(self, state: NetworkState):
        self.state, self.used = state, set()

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.state.variables:
            raise OfficialImportError(f"{self.state.name}: variable {name} is missing")
        self.used.add(name)
        return self.state.variables[name]

    def check_all_used(self) -> None:
        # lod: the release's fade state
        left = sorted(set(self.state.variables) - self.used - {"lod"})
        if left:
            raise OfficialImportError(
                f"{self.state.name}: variables with no place in progan_tf's network: {left}"
            )


def assign(network, weights: dict[str, np.ndarray]) -> None:
    """Copies `weights` (layer name/weight name -> value) into `network`'s layers; every weight
    of the network must be given, with its exact shape."""
    targets = {}
    for group in network.layers():
        for layer in getattr(group, "layers", [group]):
            for weight in layer.weights:
                targets[f"{layer.name}/{weight.name.split('/')[-1].split(':')[0]}"] = weight
    missing, extra = sorted(set(targets) - set(weights)), sorted(set(weights) - set(targets))
    if missing or extra:
        raise OfficialImportError(
            f"weights do not match the network: missing {missing}, unexpected {extra}"
        )
    for key, value in weights.items():
        if tuple(targets[key].shape) != value.shape:
            raise OfficialImportError(
                f"{key}: shape {value.shape} in the pickle, {tuple(targets[key].shape)} here"
            )
        targets[key].assign(value.astype(np.float32))


def import_pickle(
    pkl_path: str, run_dir: str, *, stable_kimg: float = 600.0, fade_kimg: float = 600.0
) -> str:
    """Writes `run_dir` from the release pickle at `pkl_path`; returns the checkpoint path.
    `run_dir` must not exist yet (nothing of the user's is overwritten)."""
    if os.path.exists(run_dir):
        raise ValueError(f"--run_dir={run_dir} exists; choose a new directory")
    try:
        with open(pkl_path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise ValueError(f"--pkl={pkl_path}: {error.strerror}") from None
    g_state, d_state, gs_state = load_pickle(raw, pkl_path)
    kwargs = architecture_kwargs(g_state, d_state)
    fused = kwargs["fused_scale"]
    try:
        arch = Architecture(**kwargs)
    except (ValueError, TypeError) as error:
        raise OfficialImportError(f"{pkl_path}: {error}") from None
    check_sizes(arch, g_state, d_state, gs_state, pkl_path)
    alpha = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="alpha")
    generator, discriminator, ema = (
        Generator(arch, alpha),
        Discriminator(arch, alpha, name="d"),
        Generator(arch, alpha, name="g_ema"),
    )
    assign(generator, generator_weights(g_state, arch, fused))
    assign(discriminator, discriminator_weights(d_state, arch, fused))
    ema_weights = {
        k.replace("g_", "g_ema_", 1): v for k, v in generator_weights(gs_state, arch, fused).items()
    }
    assign(ema, ema_weights)

    schedule = Schedule(
        final_resolution=arch.resolution, stable_kimg=stable_kimg, fade_kimg=fade_kimg
    )
    # final stable phase
    images_seen = (schedule.num_stages - 1) * (schedule.stable_images + schedule.fade_images)
    checkpoint = tf.train.Checkpoint(
        generator=generator.checkpoint(),
        discriminator=discriminator.checkpoint(),
        ema_generator=ema.checkpoint(),
        images_seen=tf.Variable(images_seen, dtype=tf.int64),
        data_position=tf.Variable([0, 0], dtype=tf.int64),
        consecutive_nonfinite=tf.Variable(0, dtype=tf.int64),
        nonfinite_total=tf.Variable(0, dtype=tf.int64),
    )
    with files.atomic_output(run_dir, directory=True) as tmp:
        os.makedirs(os.path.join(tmp, "samples"))
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(tmp, "checkpoints"), max_to_keep=3
        )
        path = manager.save(checkpoint_number=images_seen)
        info = {
            "architecture": dataclasses.asdict(arch),
            "stable_kimg": stable_kimg,
            "fade_kimg": fade_kimg,
            "dataset": "",
            "label_names": [],
            "imported_from": os.path.abspath(pkl_path),
        }
        files.write_text(os.path.join(tmp, "run.json"), json.dumps(info, indent=2) + "\n")
        config = {
            "resolution": arch.resolution,
            "latent_size": arch.latent_size,
            "fmap_base": arch.fmap_base,
            "fmap_max": arch.fmap_max,
            "mbstd_group_size": arch.mbstd_group_size,
            "conditional": arch.num_labels > 0,
            "mixed_precision": False,
            "gp_scale": "official",
            "lod_training_kimg": stable_kimg,
            "lod_transition_kimg": fade_kimg,
            # weights only: train fine-tunes it under any settings but the networks' (resume)
            "imported_from": os.path.abspath(pkl_path),
        }
        files.write_text(
            os.path.join(tmp, "config.json"), json.dumps(config, indent=2, sort_keys=True) + "\n"
        )
    return os.path.join(run_dir, "checkpoints", os.path.basename(path))
