"""The compiled training step of one phase: one D update, one G update, the EMA (reference §3-4).

A `PhaseStep` is made at the start of every fade-in and stable phase. It owns that phase's
fresh optimizers (Adam state and step counter reset, built eagerly inside the strategy scope;
under float16 wrapped in Keras' LossScaleOptimizer, whose scale carries over between phases)
and a `tf.function` that runs `num_steps` steps per call without returning to Python: for
each step it sets alpha from the image counter, runs the replicas' D and G updates, updates
the EMA generator and counts images. Losses are averaged over the global batch; noise comes
from stateless ops seeded by (image counter, replica), so a resumed run draws the same noise.
"""

from __future__ import annotations

import itertools

import keras
import tensorflow as tf

from progan_tf import augment, losses
from progan_tf.data import fade_reals, prepare_reals
from progan_tf.options import StepOptions, parse_augment_policy
from progan_tf.schedule import Phase
from progan_tf.state import TrainState

# Every random draw of a step has a stream of its own; a draw's seed is (image count, a number
# unique to the run seed, replica and stream), and each DiffAugment call within a stream folds
# its call index into that seed, so no two draws of one step share a seed (tested).
STREAMS = {
    "d_latents": 0,
    "gp_mix": 1,
    "g_latents": 2,
    "d_augment": 3,
    "g_augment": 4,
    "d_fake_labels": 5,
    "g_fake_labels": 6,
}
MAX_REPLICAS = 2**16


def stream_seed(
    images_seen: tf.Tensor, run_seed: int, replica: tf.Tensor | int, stream: str
) -> tf.Tensor:
    """int64 [2] stateless seed of one random stream of one step and replica."""
    key = (run_seed * MAX_REPLICAS + tf.cast(replica, tf.int64)) * len(STREAMS) + STREAMS[stream]
    return tf.stack([tf.cast(images_seen, tf.int64), tf.cast(key, tf.int64)])


def augment_call_seed(seed: tf.Tensor, call: int) -> tf.Tensor:
    """The seed of the `call`-th DiffAugment call on one stream (fakes, reals, mixed images...)."""
    return tf.random.experimental.stateless_fold_in(seed, call)


STAT_NAMES = ("d_loss", "g_loss", "d_real", "d_fake", "gradient_penalty", "finite")
G_STATS = ("g_loss",)  # averaged over the steps that updated G (all of them unless d_repeats > 1)
PENALTY_STATS = ("gradient_penalty",)  # over the steps that computed it (see gp_interval)


def make_optimizer(
    options: StepOptions, learning_rate: float, loss_scale: float = 2.0**15
) -> keras.optimizers.Optimizer:
    """Adam(lr, beta1 = 0, beta2 = 0.99, eps = 1e-8) or RMSProp; under float16 mixed precision
    wrapped in Keras' LossScaleOptimizer (dynamic: halved and the step skipped on non-finite
    gradients, doubled after 2,000 finite steps) starting from `loss_scale`. bfloat16 has
    float32's exponent range and needs no loss scaling."""
    if options.optimizer == "adam":
        optimizer = keras.optimizers.Adam(
            learning_rate,
            beta_1=options.adam_beta1,
            beta_2=options.adam_beta2,
            epsilon=options.adam_epsilon,
        )
    elif options.optimizer == "rmsprop":
        optimizer = keras.optimizers.RMSprop(
            learning_rate, rho=options.adam_beta2, epsilon=options.adam_epsilon
        )
    else:
        raise ValueError(f"--config.optimizer={options.optimizer!r}; choose adam or rmsprop")
    if options.mixed_precision and options.mixed_precision_dtype == "float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=loss_scale)
    return optimizer


def _fill_none(grads, variables) -> list[tf.Tensor]:
    """Zeros for variables without a gradient (e.g. D's last bias under the penalty alone)."""
    return [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]


def _batch_size(tensor: tf.Tensor) -> int | tf.Tensor:
    """The batch size, static where the input pipeline gives it (it does: drop_remainder), so
    that the gradient functions see the same shapes in the step as in `warm_up`."""
    return tensor.shape[0] if tensor.shape[0] is not None else tf.shape(tensor)[0]


def _all_finite(tensors) -> tf.Tensor:
    return tf.reduce_all([tf.reduce_all(tf.math.is_finite(t)) for t in tensors])


def apply_if_finite(optimizer: keras.optimizers.Optimizer, grads, variables, loss) -> tf.Tensor:
    """Replica context: applies each replica's `grads` (Keras all-reduces them), or, if any
    replica's gradients or loss are not finite, skips the step on every replica (reference §4).
    Returns that decision, the same on all replicas.

    A LossScaleOptimizer makes the decision itself (and halves its scale), but from the first
    replica's gradients only, so a non-finite step elsewhere is made visible there. Otherwise
    the branch is taken in cross-replica context, as Keras does it: a replica-context cond
    cannot hold the optimizer's merge_call. (Strategies without merge_call, i.e. a replica
    function compiled whole by XLA on GPUs, do not occur here: XLA compiles the gradients only.)
    """
    context = tf.distribute.get_replica_context()
    local_ok = tf.logical_and(tf.math.is_finite(tf.cast(loss, tf.float32)), _all_finite(grads))
    failures = context.all_reduce(tf.distribute.ReduceOp.SUM, 1.0 - tf.cast(local_ok, tf.float32))
    finite = tf.equal(failures, 0.0)
    if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
        grads = [grads[0] + tf.where(finite, 0.0, float("nan")), *grads[1:]]
        optimizer.apply(grads, variables)
        return finite

    def cross_replica(strategy, finite, grads):
        tf.cond(
            strategy.experimental_local_results(finite)[0],
            lambda: strategy.extended.call_for_each_replica(
                optimizer.apply, args=(grads, variables)
            ),
            lambda: None,
        )

    context.merge_call(cross_replica, args=(finite, grads))
    return finite


def update_ema(strategy: tf.distribute.Strategy, pairs, beta: float) -> None:
    """`G_ema = lerp(G, G_ema, beta)` for each (EMA variable, G variable) pair (beta 0: a copy),
    cross-replica context. Each device updates its own copy of the EMA from its own copy of G
    (identical on every replica after the all-reduced step), so nothing is broadcast, as the
    optimizers update their slots."""

    def lerp(ema_value, value):
        return ema_value.assign(value + (ema_value - value) * beta)

    for ema_var, var in pairs:
        strategy.extended.update(_tf_variable(ema_var), lerp, args=(_tf_variable(var),))


def _tf_variable(variable):
    """The TensorFlow variable behind a Keras one (a MirroredVariable under a strategy)."""
    return (
        getattr(variable, "value", variable) if isinstance(variable, keras.Variable) else variable
    )


def reset_optimizer(optimizer: keras.optimizers.Optimizer, learning_rate: float) -> None:
    """Puts a built optimizer back in the state of a freshly built one at `learning_rate`: step
    counters and moments zero. Under float16 the loss scale is kept, as a new phase's
    optimizers start from the last one's scale."""
    keep = (
        {id(optimizer.dynamic_scale)}
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        else set()
    )
    for o in (optimizer, getattr(optimizer, "inner_optimizer", None)):
        if o is not None and isinstance(o._learning_rate, keras.Variable):
            keep.add(id(o._learning_rate))
    for variable in optimizer.variables:
        if id(variable) not in keep:
            variable.assign(tf.zeros(variable.shape, variable.dtype))
    optimizer.learning_rate = learning_rate


def loss_scale_of(optimizer: keras.optimizers.Optimizer) -> tf.Tensor | float:
    """The optimizer's current loss scale: its variable's value under mixed precision, else 1."""
    return (
        optimizer.dynamic_scale.value
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        else 1.0
    )


class PhaseStep:
    """One phase's optimizers and its compiled training step (`train`: runs n steps per call)."""

    def __init__(
        self,
        *,
        strategy: tf.distribute.Strategy,
        state: TrainState,
        phase: Phase,
        options: StepOptions,
        with_position: bool = False,
        loss_scales: tuple[float, float] = (2.0**15, 2.0**15),
        fade_graph: bool | None = None,
    ):
        """`with_position`: the iterator yields (images, labels, stream position) and the step
        stores the latest position of the local replicas in `state.data_position` (for an
        exact resume); else (images, labels).
        `fade_graph`: train the stage's fade-in model (default: if `phase` is a fade-in). A
        stable phase run on it has alpha 1, where the blend passes the new branch alone and
        the old one gets zero gradients; `continue_into` then carries the compiled step from
        the fade-in into the stable phase that follows it."""
        self.strategy, self.phase, self.options = strategy, phase, options
        self.fade_graph = phase.fade if fade_graph is None else fade_graph
        if phase.fade and not self.fade_graph:
            raise ValueError(f"{phase.name} needs the fade-in model")
        generator, discriminator, ema = state.generator, state.discriminator, state.ema
        self.data_position = state.data_position if with_position else None
        self.images_seen, self.counters = state.images_seen, state.counters
        self.alpha = generator.alpha
        self.g_model = generator.stage_model(phase.resolution, self.fade_graph)
        self.d_model = discriminator.stage_model(phase.resolution, self.fade_graph)
        ema_model = ema.stage_model(phase.resolution, self.fade_graph)
        self.g_vars = self.g_model.trainable_variables
        self.d_vars = self.d_model.trainable_variables
        self.ema_pairs = list(zip(ema_model.trainable_variables, self.g_vars, strict=True))
        # batch norm's moving statistics (normalization="batch_layer"): averaged with the same
        # beta as the weights, so the EMA generator's statistics follow its own weights' time
        # scale instead of the raw generator's latest ones
        self.ema_statistics = list(
            zip(ema.non_trainable_state(), generator.non_trainable_state(), strict=True)
        )
        self.latent_size = generator.arch.latent_size
        self.num_labels = generator.arch.num_labels
        self.conditional = self.num_labels > 0
        self.d_loss_fn, self.g_loss_fn = losses.LOSSES[options.loss]
        final = generator.arch.resolution
        self.gradient_scale = phase.resolution / final if options.gp_scale == "official" else 1.0
        self.augment_ops = parse_augment_policy(options.augment_policy)
        with strategy.scope():
            self.g_optimizer = make_optimizer(options, phase.learning_rate, loss_scales[0])
            self.d_optimizer = make_optimizer(options, phase.learning_rate, loss_scales[1])
            self.g_optimizer.build(self.g_vars)
            self.d_optimizer.build(self.d_vars)
        # Plain graph code, the loop an explicit tf.while_loop: no AutoGraph conversion (one
        # benchmark run here failed tracing with AutoGraph calling a converted method in place
        # of another; not reproduced since, and conversion is not needed).
        jit = options.xla or None
        self._d_grads = tf.function(self._d_grads_fn, jit_compile=jit, autograph=False)
        self._g_grads = tf.function(self._g_grads_fn, jit_compile=jit, autograph=False)
        self._train_fn = tf.function(self._train_chunk, autograph=False)

    def continue_into(self, phase: Phase) -> None:
        """Moves this fade-in's step on to the stable phase after it (same resolution, batch
        and model) without a new trace or compile: the optimizers are reset in place to a fresh
        pair's state, as at every phase start. The compiled step's alpha ramp has ended, so it
        holds alpha at 1."""
        if not (
            self.phase.fade
            and not phase.fade
            and phase.resolution == self.phase.resolution
            and phase.global_batch_size == self.phase.global_batch_size
            and phase.start_images == self.phase.end_images
        ):
            raise ValueError(f"{self.phase.name} cannot continue into {phase.name}")
        self.phase = phase
        with self.strategy.scope():
            reset_optimizer(self.g_optimizer, phase.learning_rate)
            reset_optimizer(self.d_optimizer, phase.learning_rate)

    def warm_up(self, channels: int, label_width: int) -> None:
        """Traces and XLA-compiles the step's gradient functions (D's and G's; D's without the
        penalty too under gp_interval > 1) ahead of the step's first call (e.g. in a thread
        while the previous phase trains), on zeros of the shapes the step gives them; changes
        no state. Called from a graph, as the step calls them, so that the step finds them in
        XLA's cache (an eager call is cached under other attributes)."""
        batch = self.phase.global_batch_size // self.strategy.num_replicas_in_sync
        r = self.phase.resolution

        def both(reals, labels, latents, mix, seed):
            d_args = (reals, labels, labels, latents, mix, seed)
            d = [self.strategy.run(self._d_grads, args=d_args)]
            if self.options.gp_interval > 1:  # and the D steps without the penalty
                d.append(self.strategy.run(self._d_grads, args=(*d_args, False)))
            g = self.strategy.run(self._g_grads, args=(labels, latents, seed))
            return tf.nest.map_structure(
                lambda t: tf.reduce_sum(tf.cast(t, tf.float32)), ([x[1] for x in d], g[1])
            )

        zeros = (
            tf.zeros([batch, r, r, channels]),
            tf.zeros([batch, label_width]),
            tf.zeros([batch, self.latent_size]),
            tf.zeros([batch, 1, 1, 1]),
            tf.zeros([2], tf.int64),
        )
        with self.strategy.scope():
            tf.function(both, autograph=False)(*zeros)

    # Per replica ----------------------------------------------------------------------------
    def _seed(self, stream: str) -> tf.Tensor:
        """int64 [2] seed of one random stream (STREAMS) of this step and replica: a function of
        the image count, so a resumed run draws what the uninterrupted one would have."""
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return stream_seed(self.images_seen.read_value(), self.options.seed, replica, stream)

    def _noise(self, shape, stream: str) -> tf.Tensor:
        seed = self._seed(stream)
        return (
            tf.random.stateless_uniform(shape, seed)
            if stream == "gp_mix"
            else tf.random.stateless_normal(shape, seed)
        )

    def _fake_labels(self, labels, stream: str):
        """The classes G draws for this batch: the reals' (fake_labels="data", the official
        setup) or each class equally often ("uniform", seeded, as BigGAN samples them), so that
        a class with few images gets as many of G's updates as any other."""
        if not self.conditional or self.options.fake_labels == "data":
            return labels
        classes = tf.random.stateless_uniform(
            [_batch_size(labels)], self._seed(stream), 0, self.num_labels, dtype=tf.int32
        )
        return tf.one_hot(classes, self.num_labels, dtype=labels.dtype)

    def _generate(self, latents, labels):
        return self.g_model([latents, labels] if self.conditional else latents, training=True)

    def _discriminator(self, augment_seed):
        """D as the loss sees it: behind the augmentation, a new draw at every call."""
        if not self.augment_ops:
            return lambda x: self.d_model(x, training=True)
        calls = itertools.count()
        p = self.options.augment_probability

        def d(images):
            seed = augment_call_seed(augment_seed, next(calls))
            return self.d_model(augment.augment(images, self.augment_ops, seed, p), training=True)

        return d

    def set_loss_scales(self, loss_scales: tuple[float, float]) -> None:
        """Starts float16 loss scaling from these (G, D) scales (the last phase's)."""
        with self.strategy.scope():
            for optimizer, scale in zip(
                (self.g_optimizer, self.d_optimizer), loss_scales, strict=True
            ):
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    optimizer.dynamic_scale.assign(scale)

    @property
    def loss_scales(self) -> tuple[float, float]:
        """(G, D) loss scales now, for the next phase's optimizers to start from."""
        # convert_to_tensor: under MirroredStrategy the scale's value is a MirroredVariable
        return tuple(
            float(tf.convert_to_tensor(loss_scale_of(o)))
            for o in (self.g_optimizer, self.d_optimizer)
        )

    def _d_grads_fn(self, reals, labels, fake_labels, latents, mix, augment_seed, penalty=True):
        """D's gradients, loss and per-batch statistics; `penalty` (a Python bool: one compiled
        function each) whether this step computes the penalty, then weighted x gp_interval."""
        o, global_batch = self.options, self.phase.global_batch_size
        fakes = tf.cast(self._generate(latents, fake_labels), reals.dtype)  # float32, as the reals
        loss_scale = loss_scale_of(self.d_optimizer)
        kwargs = {
            "loss_scale": loss_scale,
            "gradient_scale": self.gradient_scale,
            "fake_labels": fake_labels if self.conditional else None,
            "penalty": penalty,
            "label_weight": o.label_weight,
        }
        if o.loss == "wgan_gp":
            kwargs.update(gp_weight=o.gp_weight * o.gp_interval, drift_weight=o.drift_weight)
        else:
            kwargs.update(r1_gamma=o.r1_gamma * o.gp_interval)
        with tf.GradientTape() as tape:
            d = self._discriminator(augment_seed)
            per_example, terms = self.d_loss_fn(
                d, reals, fakes, mix, labels if self.conditional else None, **kwargs
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = loss * loss_scale
        grads = tape.gradient(scaled, self.d_vars)
        stats = {
            k: tf.nn.compute_average_loss(v, global_batch_size=global_batch)
            for k, v in terms.items()
        }
        stats.setdefault("gradient_penalty", tf.constant(0.0))  # not computed: not averaged in
        return grads, loss, stats

    def _g_grads_fn(self, labels, latents, augment_seed):
        global_batch = self.phase.global_batch_size
        with tf.GradientTape() as tape:
            fakes = self._generate(latents, labels)
            d = self._discriminator(augment_seed)
            per_example, _ = self.g_loss_fn(
                d,
                fakes,
                labels if self.conditional else None,
                label_weight=self.options.generator_label_weight(self.phase.resolution),
            )
            loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
            scaled = loss * loss_scale_of(self.g_optimizer)
        return tape.gradient(scaled, self.g_vars), loss

    def _d_replica(self, reals, labels, flips=None):
        reals = prepare_reals(reals, flips)
        batch = _batch_size(reals)
        if self.fade_graph:
            reals = fade_reals(reals, self.alpha)
        latents = self._noise([batch, self.latent_size], "d_latents")
        mix = self._noise([batch, 1, 1, 1], "gp_mix")
        args = (
            reals,
            labels,
            self._fake_labels(labels, "d_fake_labels"),
            latents,
            mix,
            self._seed("d_augment"),
        )
        due = self._penalty_due()
        if due is True:
            grads, loss, stats = self._d_grads(*args)
        else:
            grads, loss, stats = tf.cond(
                due, lambda: self._d_grads(*args), lambda: self._d_grads(*args, False)
            )
        stats["penalty_step"] = tf.cast(due, tf.float32)
        finite = apply_if_finite(
            self.d_optimizer, _fill_none(grads, self.d_vars), self.d_vars, loss
        )
        return loss, stats, finite

    def _g_replica(self, labels):
        batch = _batch_size(labels)
        labels = self._fake_labels(labels, "g_fake_labels")
        grads, loss = self._g_grads(
            labels, self._noise([batch, self.latent_size], "g_latents"), self._seed("g_augment")
        )
        finite = apply_if_finite(
            self.g_optimizer, _fill_none(grads, self.g_vars), self.g_vars, loss
        )
        return loss, finite

    # Cross replica -------------------------------------------------------------------------
    def set_alpha(self) -> None:
        """Sets the fade's alpha from the image count: the one place alpha is written. The
        step calls it at each step's start; the phase runner when the count has moved outside
        a step (a phase's start, a resume, after a call), so that samples and metrics between
        calls see the alpha of the count. 0 -> 1 over a fade-in, 1 in a stable phase."""
        if not self.phase.fade:
            self.alpha.assign(1.0)
            return
        # In int64 first: a float32 image count is inexact past 2**24 images.
        done = self.images_seen.read_value() - self.phase.start_images
        progress = tf.cast(done, tf.float32) / float(
            self.phase.end_images - self.phase.start_images
        )
        self.alpha.assign(tf.clip_by_value(progress, 0.0, 1.0))

    def _penalty_due(self) -> tf.Tensor | bool:
        """Whether this D step computes the penalty: every `gp_interval`-th step, those whose
        image count before the step is a multiple of gp_interval batches (a function of the
        count, so a resumed run penalises the steps the uninterrupted one would have)."""
        interval = self.options.gp_interval
        if interval == 1:
            return True
        d_steps = self.images_seen.read_value() // self.phase.global_batch_size
        return tf.equal(d_steps % interval, 0)

    def _g_due(self) -> tf.Tensor | bool:
        """Whether this step ends with a G update: after every `d_repeats`-th D step of the
        phase (the release's D_repeats loop), counted from the phase's first image."""
        repeats = self.options.d_repeats
        if repeats == 1:
            return True
        d_steps = (
            self.images_seen.read_value() - self.phase.start_images
        ) // self.phase.global_batch_size
        return tf.equal(d_steps % repeats, repeats - 1)

    def train(self, iterator, num_steps: tf.Tensor) -> dict[str, tf.Tensor]:
        """Runs `num_steps` (an int64 tensor: one trace for any count) steps from `iterator`
        in one compiled call; returns the call's statistics (`_train_chunk`)."""
        return self._train_fn(iterator, num_steps)

    def tracing_count(self) -> int:
        """How many times `train` was traced (once per phase: the step count is a tensor)."""
        return self._train_fn.experimental_get_tracing_count()

    def _train_chunk(self, iterator, num_steps: tf.Tensor) -> dict[str, tf.Tensor]:
        """Runs `num_steps` steps; returns each statistic's mean over the applied (finite) steps
        (NaN if there were none; g_loss over the steps that updated G, gradient_penalty over
        those that computed it) and, as `finite`, the fraction of steps applied."""
        beta = self.options.ema_beta
        first = self.strategy.experimental_local_results

        def g_update(labels):
            g_loss, g_ok = self.strategy.run(self._g_replica, args=(labels,))
            return (
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, g_loss, axis=None),
                first(g_ok)[0],
                tf.constant(1.0),
            )

        def step(i, totals):
            self.set_alpha()
            batch = next(iterator)
            # uint8 images (and a flip seed if mirrored) from the stream: floats on the device
            reals, labels = batch[0], batch[1]
            flips = batch[3] if len(batch) > 3 else None
            if self.data_position is not None:
                # The local replicas take consecutive batches of one input pipeline: the stream has
                # read up to the latest (epoch, records read) among them, not replica 0's.
                positions = tf.stack(first(batch[2]))  # [local replicas, 2]
                self.data_position.assign(
                    positions[tf.argmax(positions[:, 0] * 2**40 + positions[:, 1])]
                )
            due = self._g_due()
            d_args = (reals, labels) if flips is None else (reals, labels, flips)
            d_loss, d_stats, d_ok = self.strategy.run(self._d_replica, args=d_args)
            penalty_step = first(d_stats.pop("penalty_step"))[0]  # the same on every replica
            if due is True:
                g_loss, g_ok, g_step = g_update(labels)
            else:  # D-only steps in between
                g_loss, g_ok, g_step = tf.cond(
                    due,
                    lambda: g_update(labels),
                    lambda: (tf.constant(0.0), tf.constant(True), tf.constant(0.0)),
                )
            sums = {"d_loss": d_loss, **d_stats}
            stats = {
                k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in sums.items()
            }
            stats["g_loss"] = g_loss
            ok = tf.logical_and(first(d_ok)[0], g_ok)  # the same on every replica
            stats["finite"] = tf.cast(ok, tf.float32)
            update_ema(self.strategy, self.ema_pairs, beta)
            update_ema(self.strategy, self.ema_statistics, beta)
            self.images_seen.assign_add(self.phase.global_batch_size)
            bad = tf.cast(tf.logical_not(ok), tf.int64)
            consecutive = self.counters["consecutive_nonfinite"]
            consecutive.assign((consecutive + 1) * bad)
            self.counters["nonfinite_total"].assign_add(bad)
            applied = tf.cast(ok, tf.float32)
            totals = {
                k: totals[k]
                + (stats[k] if k == "finite" else tf.where(ok, tf.cast(stats[k], tf.float32), 0.0))
                for k in STAT_NAMES
            } | {
                "g_steps": totals["g_steps"] + applied * g_step,
                "gp_steps": totals["gp_steps"] + applied * penalty_step,
            }
            return i + 1, totals

        zeros = {name: tf.constant(0.0) for name in (*STAT_NAMES, "g_steps", "gp_steps")}
        _, totals = tf.while_loop(
            lambda i, _: i < num_steps, step, (tf.constant(0, tf.int64), zeros)
        )
        applied, g_steps, gp_steps = (totals.pop(k) for k in ("finite", "g_steps", "gp_steps"))
        means = {
            k: tf.where(n > 0, v / tf.maximum(n, 1.0), float("nan"))
            for k, v in totals.items()
            for n in [g_steps if k in G_STATS else gp_steps if k in PENALTY_STATS else applied]
        }
        means["finite"] = applied / tf.cast(num_steps, tf.float32)
        return means
