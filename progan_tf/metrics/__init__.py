"""Image-set metrics (SPEC §6): sliced Wasserstein distance, MS-SSIM, FID."""
