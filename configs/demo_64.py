"""Demo at 64x64: the bundled Twemoji emoji at 64x64 (progan_tf/demo_data/emoji64), 4x4 -> 64x64,
the 32x32 demo's narrow networks with one more stage, conditional on the 10 emoji classes.
Time and quality measured in benchmarks/results/quality_log.md ("The 64×64 demo").

    python -m progan_tf.train --config=configs/demo_64.py
    python -m progan_tf.train --config=configs/demo_64.py --data_dir=DIR   # another 64x64 set

What the 32x32 demo's comments say of each setting holds here (configs/demo_32.py); this file
says only what differs. Not a quality run: widths are 1/32 to 1/64 of the paper's.
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
EMOJI64 = os.path.join(os.path.dirname(HERE), "progan_tf", "demo_data", "emoji64")


def demo_32():
    spec = importlib.util.spec_from_file_location("demo_32", os.path.join(HERE, "demo_32.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config()


def get_config():
    c = demo_32()
    c.data_dir = EMOJI64  # --data_dir overrides
    # The 32x32 demo's widths (32 feature maps up to 16x16, 16 at 32x32) and 8 at 64x64: the
    # 64x64 convolutions then cost what the 32x32 ones do (4x the pixels, 1/4 the channel pairs).
    c.fmap_base = 256
    c.fmap_max = 32
    # 16-kimg phases, as the 32x32 demo's: 64x64 fades in from 112 kimg and is stable from 128
    # kimg on, for 208 kimg; the stages below 64x64 get twice the images of the 8-kimg phases
    # and 168 kimg this recipe had before. In about the same minutes, more classes followed and
    # a lower SWD, within the seeds' spread (docs/quality.md; the runs in
    # benchmarks/results/quality_log.md, "The 64×64 demo, issue 48"). 208 rather than 224
    # kimg: the same SWD and classes on both seeds measured, 18-24.5 minutes on a 2-core Intel
    # Xeon with AVX-512 (docs/performance.md).
    c.lod_training_kimg = 16.0
    c.lod_transition_kimg = 16.0
    c.total_kimg = 208.0
    # The penalty on every D step: every 8th (the 32x32 demo's) was faster here but its SWD
    # fell outside the seeds' spread (benchmarks/results/quality_log.md, "The 64×64 demo").
    c.gp_interval = 1
    # G's AC-GAN label term weighted 10 in the phases up to 32x32 and 1 (the release's) at
    # 64x64; D's stays 1. The class is set while the image is coarse, and the 64x64 stages learn
    # detail without the term pulling them. Weight 1 throughout followed 6-7 of the 10 classes;
    # 10 throughout all 10 at a cost in SWD at 64x64; this, 8-9 of 10 at weight 1's SWD
    # (docs/quality.md; the log's "The 64×64 demo, issue 48" sections).
    c.g_label_weight = 10.0
    c.g_label_weight_max_resolution = 32
    return c
