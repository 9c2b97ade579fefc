"""Demo: the bundled Twemoji emoji, 4x4 -> 32x32, narrow networks, conditional on the 10
emoji classes with rare classes shown as often as common ones, 240 kimg. How long it takes on
which CPU, and what it reaches: docs/quality.md.

    python -m progan_tf.train                            # this config is the default
    python -m progan_tf.train --config.total_kimg=160    # shorter, draws less sharply

Expected by the end (samples/fakes000240.png, one row per class): hearts in the Hearts row
(`generate --label=4`: a sheet of them), striped flags in the Flags row, yellow faces with
eyes and mouths in the Smileys and People rows. Not a quality run: widths are 1/16 to 1/32 of
the paper's and it shows 240k images instead of 12M.

Each setting below was chosen by a measured A/B run; the comments say what it does and why,
the measurements are in docs/quality.md and docs/performance.md.
"""

from progan_tf.config import get_config as defaults


def get_config():
    c = defaults()
    c.latent_size = 128
    c.fmap_base = 256  # 32 feature maps up to 16x16, 16 at 32x32 (the paper: 512)
    c.fmap_max = 32
    c.minibatch_preset = ""
    # The paper's batch, 16: twice the updates per image of 32, sharper results in the same time;
    # 32 at 4x4 and 8x8, where a step costs little more than its fixed overhead.
    c.minibatch_default = 16
    c.minibatch_dict = {"4": 32, "8": 32}
    # Three times the paper's 0.001: a run this short gains from larger steps
    # (benchmarks/results/quality_log.md, "Ablations at the retuned recipe"). The paper's
    # presets keep 0.001.
    c.learning_rate = 0.003
    # 16-kimg phases: 32x32 is reached at 96 kimg and trained stable for the rest (144 kimg),
    # where most of the quality is made. Against 8-kimg phases the same SWD, with the hearts,
    # in fewer minutes (32x32 steps are the dearest); much longer phases would leave too little
    # of the budget at 32x32 (benchmarks/results/quality_log.md, "16-kimg phases").
    c.lod_training_kimg = 16.0
    c.lod_transition_kimg = 16.0
    c.total_kimg = 240.0
    # `conditional` is left unset: it follows the dataset. The emoji's 10 classes are used
    # (one-hot into G, AC-GAN head on D; grids have one row per class); a dataset without labels
    # trains unconditionally, with no flag to add.
    # Every class about equally often (each of the 25 hearts 15 times per epoch): without it
    # hearts are too rare for G to learn them; it costs some SWD over the other classes
    # (benchmarks/results/quality_log.md, "Hearts"). Ignored for a dataset without labels.
    c.class_balance = 1.0
    c.mirror_augment = True
    # The gradient penalty on every 8th D step only, weighted x8 (StyleGAN2's lazy
    # regularization): 7 D steps in 8 skip the penalty's pass through D and its double
    # backward, the largest part of the step that can go, and SWD stayed within the two seeds'
    # spread (benchmarks/results/quality_log.md, "The penalty on every 8th D step"). The
    # paper's presets keep 1.
    c.gp_interval = 8
    # The paper's 0.999 averages over ~16 kimg at this batch: most of a demo phase, so the
    # EMA would still hold much of the random initial weights. 0.99: a half-life of ~1 kimg.
    c.ema_beta = 0.99
    c.tick_kimg = 4.0
    c.snapshot_kimg = 16.0
    c.checkpoint_kimg = 16.0
    c.grid_size = 64
    c.steps_per_call = 25
    # 8x8 and 16x16 stable go on with their fade-in's compiled step: the compile saved per
    # resolution outweighed the fade-in model's slightly slower steps (measured at 8-kimg
    # phases; benchmarks/results/performance_log.md, "Stable phases on the fade-in's
    # compiled step").
    c.carry_fade_step = True
    # The next phase's step compiles in a thread while this one trains, so no phase waits for
    # its first step's compile (benchmarks/results/performance_log.md, "Compiling the next
    # phase's step ahead").
    c.compile_ahead = True
    c.strategy = "one_device"
    # XLA fuses the narrow networks' many small ops (benchmarks/results/performance_log.md,
    # "XLA on or off")
    c.xla = True
    return c
