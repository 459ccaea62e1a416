"""Visibility figures: PSNR and SSIM (Gaussian window, as Wang et al. 2004), per image."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) in dB, for (N, 3, H, W) images in [0, 1]."""
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(1e-10)
    return -10 * torch.log10(mse)


def _window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N,) mean SSIM over the three channels, for images in [0, 1]."""
    window = _window()
    pad = window.shape[-1] // 2

    def blur(x):
        return F.conv2d(F.pad(x, [pad] * 4, mode="reflect"), window, groups=3)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )
    return value.flatten(1).mean(1)
