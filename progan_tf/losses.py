"""GAN losses (reference §3): WGAN-GP with drift (the paper's, default) and logistic with R1.

Every function returns per-example losses [N] (float32) and a dict of per-example terms for
logging; the trainer averages them over the *global* batch. Conditional models (AC-GAN) add
the softmax cross-entropy of D's label logits against the one-hot labels: the reals' own, and
for the fakes the classes G drew them from (the reals' of the batch with fake_labels="data",
the official way, or uniform draws with "uniform"), weighted by `label_weight` (the release's
`cond_weight`, 1 by default) in both D's and G's loss.
"""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

Discriminator = Callable[[tf.Tensor], tf.Tensor]  # images [N, H, W, C] -> [N, 1 + num_labels]


def _split(outputs: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    outputs = tf.cast(outputs, tf.float32)
    return outputs[:, 0], outputs[:, 1:]  # score [N], label logits [N, num_labels]


def _label_loss(
    logits: tf.Tensor, labels: tf.Tensor | None, weight: float = 1.0
) -> tf.Tensor | float:
    if labels is None:
        return 0.0
    return weight * tf.nn.softmax_cross_entropy_with_logits(
        labels=tf.cast(labels, tf.float32), logits=logits
    )


def _input_gradient_sq_norm(
    discriminator: Discriminator, images: tf.Tensor, loss_scale: float, gradient_scale: float = 1.0
) -> tf.Tensor:
    """||gradient_scale * d sum(D(x)) / dx||^2 per example, [N]. D runs inside the tape
    (second-order safe). `gradient_scale` = s / R gives the norm the official release measures
    (module docstring)."""
    images = tf.convert_to_tensor(images)
    with tf.GradientTape() as tape:
        tape.watch(images)
        score, _ = _split(discriminator(images))
        total = tf.reduce_sum(score) * loss_scale  # loss scaling keeps float16 grads in range
    grads = tf.cast(tape.gradient(total, images), tf.float32) * (gradient_scale / loss_scale)
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])


def wgan_gp_discriminator(
    discriminator: Discriminator,
    reals: tf.Tensor,
    fakes: tf.Tensor,
    mix: tf.Tensor,
    labels: tf.Tensor | None = None,
    *,
    fake_labels: tf.Tensor | None = None,
    gp_weight: float = 10.0,
    gp_target: float = 1.0,
    drift_weight: float = 1e-3,
    gradient_scale: float = 1.0,
    loss_scale: float = 1.0,
    penalty: bool = True,
    label_weight: float = 1.0,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """`D(fake) - D(real) + gp_weight * (gradient_scale * ||grad D(x_hat)|| - 1)^2
    + drift_weight * D(real)^2`.

    x_hat = real + mix * (fake - real), with `mix` [N, 1, 1, 1] drawn from U[0, 1].
    `penalty=False` leaves the penalty term out (and D's pass over x_hat with it): the D steps
    between two penalised ones under lazy regularization (`gp_interval`).
    """
    real_score, real_logits = _split(discriminator(reals))
    fake_score, fake_logits = _split(discriminator(fakes))
    terms = {"d_real": real_score, "d_fake": fake_score}
    loss = fake_score - real_score
    if penalty:
        mixed = reals + tf.cast(mix, reals.dtype) * (fakes - reals)
        norm = tf.sqrt(
            _input_gradient_sq_norm(discriminator, mixed, loss_scale, gradient_scale) + 1e-12
        )
        terms["gradient_penalty"] = tf.square(norm - gp_target)
        loss += gp_weight * terms["gradient_penalty"]
    loss += drift_weight * tf.square(real_score)
    loss += _label_loss(real_logits, labels, label_weight) + _label_loss(
        fake_logits, labels if fake_labels is None else fake_labels, label_weight
    )
    return loss, terms


def wgan_generator(
    discriminator: Discriminator,
    fakes: tf.Tensor,
    labels: tf.Tensor | None = None,
    *,
    label_weight: float = 1.0,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """`-D(G(z))` (+ label cross-entropy)."""
    fake_score, fake_logits = _split(discriminator(fakes))
    return -fake_score + _label_loss(fake_logits, labels, label_weight), {"d_fake": fake_score}


def logistic_r1_discriminator(
    discriminator: Discriminator,
    reals: tf.Tensor,
    fakes: tf.Tensor,
    mix: tf.Tensor,
    labels: tf.Tensor | None = None,
    *,
    fake_labels: tf.Tensor | None = None,
    r1_gamma: float = 10.0,
    gradient_scale: float = 1.0,
    loss_scale: float = 1.0,
    penalty: bool = True,
    label_weight: float = 1.0,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """`softplus(D(fake)) + softplus(-D(real)) + r1_gamma/2 * ||gradient_scale * grad D(real)||^2`.
    `mix` unused; `penalty=False` leaves the R1 term out."""
    del mix
    real_score, real_logits = _split(discriminator(reals))
    fake_score, fake_logits = _split(discriminator(fakes))
    terms = {"d_real": real_score, "d_fake": fake_score}
    loss = tf.nn.softplus(fake_score) + tf.nn.softplus(-real_score)
    if penalty:
        terms["gradient_penalty"] = _input_gradient_sq_norm(
            discriminator, reals, loss_scale, gradient_scale
        )
        loss += 0.5 * r1_gamma * terms["gradient_penalty"]
    loss += _label_loss(real_logits, labels, label_weight) + _label_loss(
        fake_logits, labels if fake_labels is None else fake_labels, label_weight
    )
    return loss, terms


def logistic_generator(
    discriminator: Discriminator,
    fakes: tf.Tensor,
    labels: tf.Tensor | None = None,
    *,
    label_weight: float = 1.0,
) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """Non-saturating `softplus(-D(G(z)))` (+ label cross-entropy)."""
    fake_score, fake_logits = _split(discriminator(fakes))
    return tf.nn.softplus(-fake_score) + _label_loss(fake_logits, labels, label_weight), {
        "d_fake": fake_score
    }


LOSSES = {  # config name -> (discriminator loss, generator loss)
    "wgan_gp": (wgan_gp_discriminator, wgan_generator),
    "logistic_r1": (logistic_r1_discriminator, logistic_generator),
}
