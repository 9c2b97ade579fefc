"""Image-set metrics (reference §6): sliced Wasserstein distance, MS-SSIM, FID."""
