"""The PyTorch reference's training step, timed like benchmarks/train_step.py times ours.

    python -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    git clone https://github.com/facebookresearch/pytorch_GAN_zoo /tmp/gan_zoo
    /tmp/torchvenv/bin/python benchmarks/pytorch_reference.py --gan_zoo=/tmp/gan_zoo \\
        --resolutions=4,8,16,32,64,128

pytorch_GAN_zoo's `ProgressiveGAN` at the paper's widths (latent 512, 512 feature maps up to
32x32, 256 at 64x64, 128 at 128x128), WGAN-GP (lambda 10) with the drift term (epsilon 0.001),
minibatch stddev on, Adam (0, 0.99), stable phase (alpha 0 in its convention: no blending):
one call of its `optimizeParameters` is one D and one G update with the penalty and the
generator average, the step ours times. Random reals in [-1, 1]; one warm-up step, then
`--steps` timed steps. Needs only torch and numpy; not part of the test suite or requirements.txt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--gan_zoo", required=True, help="a checkout of facebookresearch/pytorch_GAN_zoo"
    )
    parser.add_argument("--resolutions", default="16,32")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.gan_zoo, "models", "progressive_gan.py")):
        parser.error(f"--gan_zoo={args.gan_zoo}: no models/progressive_gan.py there")
    sys.path.insert(0, args.gan_zoo)
    import torch  # noqa: PLC0415

    from models.progressive_gan import ProgressiveGAN  # noqa: PLC0415

    # Its optimizers pass betas=[0, 0.99]; torch >= 2.4 refuses an int beside a float. The
    # same Adam with (0.0, 0.99):
    def adam(net):
        return torch.optim.Adam(
            [p for p in net.parameters() if p.requires_grad], betas=(0.0, 0.99), lr=gan_config_lr
        )

    gan_config_lr = 0.001
    ProgressiveGAN.getOptimizerD = lambda self: adam(self.netD)
    ProgressiveGAN.getOptimizerG = lambda self: adam(self.netG)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for resolution in [int(r) for r in args.resolutions.split(",") if r]:
        gan = ProgressiveGAN(
            dimLatentVector=512,
            depthScale0=512,
            miniBatchStdDev=True,
            lossMode="WGANGP",
            lambdaGP=10.0,
            epsilonD=0.001,
            useGPU=False,
            baseLearningRate=gan_config_lr,
        )
        size = 4
        while size < resolution:
            size *= 2
            gan.addScale(min(512, 8192 * 2 // size))  # the paper's widths: 256 at 64, 128 at 128
        # Its updateAlpha reaches for avgG.module, which exists only under DataParallel (GPUs):
        for net in (gan.getOriginalG(), gan.getOriginalD(), gan.getOriginalAvgG()):
            net.setNewAlpha(0.0)
        reals = torch.rand(args.batch, 3, resolution, resolution) * 2 - 1
        gan.optimizeParameters(reals)  # warm-up
        start = time.perf_counter()
        for _ in range(args.steps):
            gan.optimizeParameters(reals)
        seconds = time.perf_counter() - start
        print(
            f"pytorch_GAN_zoo paper width {resolution}x{resolution} batch {args.batch}: "
            f"{args.steps * args.batch / seconds:.2f} img/s",
            flush=True,
        )


if __name__ == "__main__":
    main()
