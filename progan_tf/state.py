"""The training state: everything a checkpoint holds and the training loop changes, in one
object the trainer creates and hands down.

G, D and the EMA generator; alpha (the fade-in blend, one variable the models read); the number
of real images shown; the input stream's position after the last batch (epoch, records read);
the non-finite-step counters; and the `tf.train.Checkpoint` made of them. Each phase's
optimizers attach to that checkpoint when the phase starts (`attach_optimizers`), so a
checkpoint always holds the current phase's slots. The names in the checkpoint are the ones
every run so far has written (`generator`, `discriminator`, `ema_generator`, `images_seen`,
`data_position`, the counters' names, `g_optimizer`, `d_optimizer`).
"""

from __future__ import annotations

import tensorflow as tf

from progan_tf.networks import Architecture, Discriminator, Generator

COUNTERS = ("consecutive_nonfinite", "nonfinite_total")


class TrainState:
    """Made under `strategy`'s scope (mirrored variables on every replica). Creation order is
    fixed, so that the same seed gives the same initial weights."""

    def __init__(self, arch: Architecture, strategy: tf.distribute.Strategy):
        self.arch = arch
        with strategy.scope():
            self.alpha = tf.Variable(1.0, trainable=False, dtype=tf.float32, name="alpha")
            self.generator = Generator(arch, self.alpha)
            self.discriminator = Discriminator(arch, self.alpha, name="d")
            self.ema = Generator(arch, self.alpha, name="g_ema")
            self.ema.copy_weights_from(self.generator)
            self.images_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="images_seen")
            # (epoch, records read) of the current resolution's input stream, after the step's
            # last batch
            self.data_position = tf.Variable(
                [0, 0], dtype=tf.int64, trainable=False, name="data_position"
            )
            self.counters = {
                name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
                for name in COUNTERS
            }
        self.checkpoint = tf.train.Checkpoint(
            generator=self.generator.checkpoint(),
            discriminator=self.discriminator.checkpoint(),
            ema_generator=self.ema.checkpoint(),
            images_seen=self.images_seen,
            data_position=self.data_position,
            **self.counters,
        )

    @property
    def seen(self) -> int:
        """Real images shown to D so far."""
        return int(self.images_seen.numpy())

    def networks_checkpoint(self) -> tf.train.Checkpoint:
        """The networks alone, under the checkpoint's names (to check a checkpoint fits them
        before anything else is read)."""
        return tf.train.Checkpoint(
            generator=self.generator.checkpoint(),
            discriminator=self.discriminator.checkpoint(),
            ema_generator=self.ema.checkpoint(),
        )

    def attach_optimizers(
        self, g_optimizer: tf.keras.optimizers.Optimizer, d_optimizer: tf.keras.optimizers.Optimizer
    ) -> None:
        """The current phase's optimizers, saved in every checkpoint from now on."""
        self.checkpoint.g_optimizer = g_optimizer
        self.checkpoint.d_optimizer = d_optimizer

    def restart_stream(self) -> None:
        """A new resolution (or a fine-tune on new data) reads its level from its first record."""
        self.data_position.assign([0, 0])
