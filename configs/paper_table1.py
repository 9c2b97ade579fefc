"""The rows of the paper's Table 1 in miniature: 32x32 on the bundled emoji, one command per row.

    python -m progan_tf.train --config=configs/paper_table1.py:a --run_dir=runs/table1-a
    python benchmarks/paper_table1.py --rows=abcdefg --seeds=0,1      # every row, SWD and MS-SSIM

Each row adds one change to the row before it, as in the paper (§6.1, Table 1):

    a  the WGAN-GP baseline (Gulrajani et al. 2017) as the paper's A.2 sets it: non-progressive,
       minibatch 64, batch norm, ReLU and a tanh output in G, layer norm in D, z as drawn, Adam
       lr 1e-4 / beta2 0.9, 5 D steps per G step, no drift term
    b  + progressive growing
    c  + small minibatch: 64 -> 16
    d  + revised training parameters: no batch / layer norm, Adam lr 0.001 / beta2 0.99, one D
       step per G step, the drift term (epsilon_drift 0.001); leaky ReLU and a linear output in
       G, z normalised
    e  + minibatch stddev (the paper's e; its e*, Salimans' minibatch discrimination, is not built)
    f  + equalized learning rate
    g  + pixelwise feature normalisation: the paper's full method

Every row has the same image budget and the demo's narrow networks, unconditional (the
paper's CelebA and LSUN rows are). Where and why the miniature differs from the paper, and the
results: docs/paper_table1.md.
"""

from progan_tf.config import get_config as defaults

ROWS = "abcdefg"


def get_config(row: str = "g"):
    if row not in tuple(ROWS):
        raise ValueError(
            f"--config=configs/paper_table1.py:{row}: the row is one of {', '.join(ROWS)}"
        )
    c = defaults()
    # The demo's networks and speed settings (configs/demo_32.py), without its labels.
    c.latent_size = 128
    c.fmap_base = 256
    c.fmap_max = 32
    c.conditional = False
    c.class_balance = 0.0
    c.mirror_augment = True
    c.ema_beta = 0.99  # the demo's: the paper's 0.999 averages over most of so short a run
    c.strategy = "one_device"
    c.xla = True
    c.compile_ahead = True
    c.carry_fade_step = True
    c.steps_per_call = 25
    # The budget: 64 kimg for every row. Growing rows reach 32x32 at 48 kimg (8-kimg phases), so
    # three quarters of the run grows (the paper's 128x128 runs, with A.2's 600k-image phases,
    # reach 128x128 at 6.0M of 10M images: 60 %).
    c.total_kimg = 64.0
    c.lod_training_kimg = 8.0
    c.lod_transition_kimg = 8.0
    c.tick_kimg = 4.0
    c.snapshot_kimg = 16.0
    c.checkpoint_kimg = 16.0
    c.minibatch_preset = ""
    c.minibatch_dict = {}

    # (a) the WGAN-GP baseline, then each row's change in turn
    c.progressive = False
    c.minibatch_default = 64
    c.normalization = "batch_layer"
    c.learning_rate = 1e-4  # Gulrajani et al.'s Adam: alpha 1e-4, beta1 0, beta2 0.9, n_critic 5
    c.adam_beta2 = 0.9
    c.d_repeats = 5
    c.drift_weight = 0.0
    c.mbstd_group_size = 0
    c.equalized_lr = False
    c.pixel_norm = False
    # ReLU in G, tanh on its output, z as drawn (A.2; the release's use_leakyrelu and
    # normalize_latents, its Theano code's tanh_at_end)
    c.g_leaky_relu = False
    c.g_tanh = True
    c.normalize_latents = False
    if row >= "b":
        c.progressive = True
    if row >= "c":
        c.minibatch_default = 16
    if row >= "d":  # the paper's training parameters (§A.1)
        c.normalization = "none"
        c.learning_rate = 0.001
        c.adam_beta2 = 0.99
        c.d_repeats = 1
        c.drift_weight = 0.001
        c.g_leaky_relu = True
        c.g_tanh = False
        c.normalize_latents = True
    if row >= "e":
        c.mbstd_group_size = 4
    if row >= "f":
        c.equalized_lr = True
    if row >= "g":
        c.pixel_norm = True
    return c
