"""Generator and discriminator of the paper's Table 2, as per-stage Keras models sharing layers.

`Generator` and `Discriminator` own one set of layers for every resolution from 4x4 to the
final one and hand out, for each stage, a *stable* model and a *fade-in* model (§2, Figure 2)
that compute at the stage's own resolution. All models of one network share those layers, so
training any stage trains the others; the network object itself (its layers) is what is
checkpointed.

`python -m progan_tf.networks --resolution=1024` prints Table 2 layer by layer.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from progan_tf import layers as L
from progan_tf.options import NORMALIZATIONS, Architecture  # noqa: F401 - re-exported

LEAKY_SLOPE = 0.2


def generate_images(model: keras.Model, latents, labels=None, *, batch_size: int) -> np.ndarray:
    """uint8 [N, R, R, C] images of a generator stage model for float32 latents [N, L] (and
    one-hot labels [N, num_labels] if conditional), run `batch_size` at a time: a grid of 64 at
    1024x1024 needs one chunk's activations, not 64 images' (the release generates its grids in
    per-GPU minibatches)."""
    from progan_tf.data import to_uint8  # noqa: PLC0415

    batch_size = max(1, int(batch_size))
    out = []
    for start in range(0, len(latents), batch_size):
        z = tf.constant(latents[start : start + batch_size], tf.float32)
        inputs = (
            z
            if labels is None
            else [z, tf.constant(labels[start : start + batch_size], tf.float32)]
        )
        out.append(to_uint8(model(inputs, training=False)).numpy())
    return np.concatenate(out)


def _lrelu(name: str) -> keras.layers.Layer:
    return keras.layers.LeakyReLU(LEAKY_SLOPE, name=name)


class _Network:
    """Per-stage model cache shared by G and D."""

    def __init__(self, arch: Architecture, alpha: keras.Variable | None):
        self.arch = arch
        if alpha is None:
            alpha = keras.Variable(0.0, trainable=False, dtype="float32", name="alpha")
        self.alpha = alpha
        self._models: dict[tuple[int, bool], keras.Model] = {}

    def stage_model(self, resolution: int, fade: bool = False) -> keras.Model:
        """The model of one stage; `fade=True` blends in `resolution` from `resolution // 2`."""
        if resolution not in self.arch.stages:
            raise ValueError(f"resolution {resolution} is not one of {self.arch.stages}")
        if fade and (resolution == 4 or not self.arch.progressive):
            raise ValueError(f"the {resolution}x{resolution} stage has no fade-in")
        key = (resolution, fade)
        if key not in self._models:
            self._models[key] = self._build(resolution, fade)
        return self._models[key]

    def build_all(self) -> None:
        """Builds every stage model, so that every layer has its variables."""
        for r in self.arch.stages:
            self.stage_model(r, fade=r > 4 and self.arch.progressive)

    def non_trainable_state(self) -> list:
        """Batch normalisation's moving statistics (empty without normalization="batch_layer"):
        not trained, but part of what the network computes at inference."""
        return [v for layer in self.layers() for v in layer.non_trainable_weights]

    def layers(self) -> list[keras.layers.Layer]:
        """Every block and toRGB/fromRGB of every stage, by resolution."""
        raise NotImplementedError

    @property
    def variables(self) -> list:
        """All weights of all stages (trainable ones; alpha is not included)."""
        return [v for layer in self.layers() for v in layer.trainable_weights]

    def count_params(self) -> int:
        """Trainable parameters of every stage, all toRGB/fromRGB included."""
        return sum(math.prod(v.shape) for v in self.variables)

    def checkpoint(self) -> tf.train.Checkpoint:
        """A trackable holding every layer under its name, for `tf.train.Checkpoint`."""
        return tf.train.Checkpoint(**{layer.name: layer for layer in self.layers()})

    def copy_weights_from(self, other: "_Network") -> None:
        """Sets this network's weights to `other`'s (same architecture)."""
        for mine, theirs in zip(self.variables, other.variables, strict=True):
            mine.assign(theirs)

    def _build(self, resolution: int, fade: bool) -> keras.Model:
        raise NotImplementedError


class Generator(_Network):
    """G of Table 2: latent (+ one-hot labels) -> images in [-1, 1], [N, R, R, C]."""

    def __init__(self, arch: Architecture, alpha: keras.Variable | None = None, name: str = "g"):
        super().__init__(arch, alpha)
        self.name = name
        self.blocks = {r: self._block(r) for r in arch.resolutions}
        self.to_rgb = {
            r: L.EqualizedConv2D(
                arch.channels,
                1,
                gain=1.0,
                equalized=arch.equalized_lr,
                name=f"{name}_torgb_{r}x{r}",
            )
            for r in arch.stages
        }
        self.build_all()

    def layers(self) -> list[keras.layers.Layer]:
        return [*self.blocks.values(), *self.to_rgb.values()]

    def _block(self, r: int) -> keras.Sequential:
        a, nf, n = self.arch, self.arch.num_features(r), f"{self.name}_{r}x{r}"

        def conv(filters: int, name: str) -> L.EqualizedConv2D:
            return L.EqualizedConv2D(filters, 3, equalized=a.equalized_lr, name=f"{n}_{name}")

        def activate(i: int) -> list[keras.layers.Layer]:  # [batch norm] -> (l)relu -> [pixel norm]
            layers = (
                [keras.layers.BatchNormalization(name=f"{n}_batchnorm{i}")]
                if a.normalization == "batch_layer"
                else []
            )
            layers.append(
                _lrelu(f"{n}_lrelu{i}")
                if a.g_leaky_relu
                else keras.layers.ReLU(name=f"{n}_relu{i}")
            )
            if a.pixel_norm:
                layers.append(L.PixelNormalization(a.pixelnorm_epsilon, name=f"{n}_pixelnorm{i}"))
            return layers

        if r == 4:
            return keras.Sequential(
                [
                    keras.Input((a.latent_size + a.num_labels,)),
                    *(
                        [L.PixelNormalization(a.pixelnorm_epsilon, name=f"{n}_latent_pixelnorm")]
                        if a.normalize_latents
                        else []
                    ),
                    L.EqualizedDense(
                        16 * nf,
                        gain=L.SQRT2 / 4,
                        use_bias=False,
                        equalized=a.equalized_lr,
                        name=f"{n}_dense",
                    ),
                    keras.layers.Reshape((4, 4, nf), name=f"{n}_reshape"),
                    L.Bias(name=f"{n}_dense_bias"),
                    *activate(0),
                    conv(nf, "conv"),
                    *activate(1),
                ],
                name=n,
            )
        prev = r // 2
        return keras.Sequential(
            [
                keras.Input((prev, prev, a.num_features(prev))),
                L.upsample(name=f"{n}_upsample"),
                conv(nf, "conv0"),
                *activate(0),
                conv(nf, "conv1"),
                *activate(1),
            ],
            name=n,
        )

    def inputs(self) -> list[keras.KerasTensor]:
        """[latents [N, latent_size]] or, conditional, [latents, labels [N, num_labels]]."""
        latents = keras.Input((self.arch.latent_size,), name="latents")
        if not self.arch.num_labels:
            return [latents]
        return [latents, keras.Input((self.arch.num_labels,), name="labels")]

    def _build(self, resolution: int, fade: bool) -> keras.Model:
        inputs = self.inputs()
        x = inputs[0] if len(inputs) == 1 else keras.layers.Concatenate()(inputs)
        last = resolution // 2 if fade else resolution
        for r in self.arch.resolutions:
            if r > last:
                break
            x = self.blocks[r](x)

        def to_rgb(r: int, features):  # linear (Table 2), or tanh in the WGAN-GP baseline (A.2)
            rgb = self.to_rgb[r](features)
            if not self.arch.g_tanh:
                return rgb
            return keras.layers.Activation("tanh", name=f"tanh_{r}x{r}")(rgb)

        if fade:
            old = L.upsample()(to_rgb(last, x))
            new = to_rgb(resolution, self.blocks[resolution](x))
            images = L.WeightedSum(self.alpha, name="fade")([old, new])
        else:
            images = to_rgb(resolution, x)
        suffix = "fade" if fade else "stable"
        inputs = inputs[0] if len(inputs) == 1 else inputs
        return keras.Model(inputs, images, name=f"{self.name}_{resolution}x{resolution}_{suffix}")


class Discriminator(_Network):
    """D of Table 2: images [N, R, R, C] -> [N, 1 + num_labels] (score, then label logits)."""

    def __init__(self, arch: Architecture, alpha: keras.Variable | None = None, name: str = "d"):
        super().__init__(arch, alpha)
        self.name = name
        self.from_rgb = {r: self._from_rgb(r) for r in arch.stages}
        self.blocks = {r: self._block(r) for r in arch.resolutions}
        self.build_all()

    def layers(self) -> list[keras.layers.Layer]:
        return [*self.from_rgb.values(), *self.blocks.values()]

    def _from_rgb(self, r: int) -> keras.Sequential:
        n = f"{self.name}_fromrgb_{r}x{r}"
        return keras.Sequential(
            [
                keras.Input((r, r, self.arch.channels)),
                L.EqualizedConv2D(
                    self.arch.num_features(r), 1, equalized=self.arch.equalized_lr, name=f"{n}_conv"
                ),
                _lrelu(f"{n}_lrelu"),
            ],
            name=n,
        )

    def _block(self, r: int) -> keras.Sequential:
        a, nf, n = self.arch, self.arch.num_features(r), f"{self.name}_{r}x{r}"
        eq = a.equalized_lr

        def norm(
            i: int,
        ) -> list[keras.layers.Layer]:  # before the activation, as in the WGAN-GP baseline
            return (
                [L.LayerNormalization(name=f"{n}_layernorm{i}")]
                if a.normalization == "batch_layer"
                else []
            )

        if r == 4:
            mbstd = (
                [L.MinibatchStdev(a.mbstd_group_size, name=f"{n}_mbstd")]
                if a.mbstd_group_size > 1
                else []
            )
            return keras.Sequential(
                [
                    keras.Input((4, 4, nf)),
                    *mbstd,
                    L.EqualizedConv2D(nf, 3, equalized=eq, name=f"{n}_conv"),
                    *norm(0),
                    _lrelu(f"{n}_lrelu0"),
                    keras.layers.Flatten(name=f"{n}_flatten"),
                    L.EqualizedDense(
                        a.num_features(2), equalized=eq, name=f"{n}_dense0"
                    ),  # nf(0) = 512; Table 2's "Conv 4x4"
                    *norm(1),
                    _lrelu(f"{n}_lrelu1"),
                    L.EqualizedDense(1 + a.num_labels, gain=1.0, equalized=eq, name=f"{n}_dense1"),
                ],
                name=n,
            )
        # The reference fuses conv1 with the pool: conv -> avgpool -> bias -> lrelu. Pooling is
        # linear, so conv (with bias) -> avgpool -> lrelu is the same function. Its unfused
        # variant (fused_scale=False) pools after the activation, which is another function.
        pool, act = L.downsample(name=f"{n}_downsample"), _lrelu(f"{n}_lrelu1")
        return keras.Sequential(
            [
                keras.Input((r, r, nf)),
                L.EqualizedConv2D(nf, 3, equalized=eq, name=f"{n}_conv0"),
                *norm(0),
                _lrelu(f"{n}_lrelu0"),
                L.EqualizedConv2D(a.num_features(r // 2), 3, equalized=eq, name=f"{n}_conv1"),
                *((pool, *norm(1), act) if a.fused_scale else (*norm(1), act, pool)),
            ],
            name=n,
        )

    def _build(self, resolution: int, fade: bool) -> keras.Model:
        images = keras.Input((resolution, resolution, self.arch.channels), name="images")
        x = self.blocks[resolution](self.from_rgb[resolution](images))
        if fade:
            old = self.from_rgb[resolution // 2](L.downsample()(images))
            x = L.WeightedSum(self.alpha, name="fade")([old, x])
        for r in reversed(self.arch.resolutions):
            if r < resolution:
                x = self.blocks[r](x)
        suffix = "fade" if fade else "stable"
        return keras.Model(images, x, name=f"{self.name}_{resolution}x{resolution}_{suffix}")


def table(network: Generator | Discriminator) -> list[tuple[str, tuple, int]]:
    """Rows (layer name, output shape without batch, trainable parameters) in data-flow order."""
    is_g = isinstance(network, Generator)
    order = network.arch.resolutions if is_g else list(reversed(network.arch.resolutions))
    rows = []
    for r in order:
        rgb = network.to_rgb if is_g else network.from_rgb
        groups = (
            [network.blocks[r]] if is_g else [*([rgb[r]] if r in rgb else []), network.blocks[r]]
        )
        if is_g and r in rgb:
            groups.append(rgb[r])
        for group in groups:
            for layer in getattr(group, "layers", [group]):
                params = sum(math.prod(w.shape) for w in layer.trainable_weights)
                if layer is group:  # toRGB, called in several models: no single output
                    nf = network.arch.num_features(r)
                    shape = layer.compute_output_shape((None, r, r, nf))
                else:
                    shape = layer.output.shape
                rows.append((layer.name, tuple(shape[1:]), params))
    return rows


def _print_table(network: Generator | Discriminator, title: str) -> None:
    print(f"{title:<34}{'output shape':<20}{'parameters':>12}")
    for name, shape, params in table(network):
        print(f"{name:<34}{' x '.join(map(str, shape)):<20}{params:>12,}")
    print()


def main(argv):
    del argv
    from absl import flags

    f = flags.FLAGS
    arch = Architecture(
        resolution=f.resolution,
        channels=f.channels,
        num_labels=f.num_labels,
        latent_size=f.latent_size,
        fmap_base=f.fmap_base,
        fmap_max=f.fmap_max,
        mbstd_group_size=f.mbstd_group_size,
    )
    generator, discriminator = Generator(arch), Discriminator(arch)
    _print_table(generator, "Generator")
    _print_table(discriminator, "Discriminator")
    print(f"G parameters: {generator.count_params()}")
    print(f"D parameters: {discriminator.count_params()}")


if __name__ == "__main__":
    from absl import app, flags

    flags.DEFINE_integer("resolution", 1024, "Final resolution, a power of two from 4 to 1024.")
    flags.DEFINE_integer("channels", 3, "Image channels: 1 or 3.")
    flags.DEFINE_integer("num_labels", 0, "Number of classes for a conditional model (0: none).")
    flags.DEFINE_integer("latent_size", 512, "Size of the latent vector z.")
    flags.DEFINE_integer(
        "fmap_base", 8192, "Feature-map base: nf(s) = min(fmap_base // 2**s, fmap_max)."
    )
    flags.DEFINE_integer("fmap_max", 512, "Largest number of feature maps in a block.")
    flags.DEFINE_integer("mbstd_group_size", 4, "Minibatch-stddev group size (<= 1: off).")
    app.run(main)
