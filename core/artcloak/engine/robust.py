"""Expectation over transformation: what scrapers do to an image, made differentiable.

With robust optimisation each step shows the encoder the protected image through one
transform drawn at random (resize down and up, a JPEG approximation, blur, noise or none),
so the perturbation that comes out survives them better. Draws come from a generator
seeded by the image seed and the step: the same seed gives the same result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

# The JPEG standard's luminance and chrominance quantisation tables (ITU T.81, Annex K).
_LUMA = [
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
]  # fmt: skip
_CHROMA = [
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99, 47, 66, 99, 99, 99, 99, 99, 99,
] + [99] * 32  # fmt: skip


def _dct_matrix() -> Tensor:
    k = torch.arange(8, dtype=torch.float32)
    matrix = torch.cos((2 * k[None, :] + 1) * k[:, None] * math.pi / 16) * math.sqrt(2 / 8)
    matrix[0] /= math.sqrt(2)
    return matrix


_DCT = _dct_matrix()
_LUMA_TABLE = torch.tensor(_LUMA, dtype=torch.float32)
_CHROMA_TABLE = torch.tensor(_CHROMA, dtype=torch.float32)


def _quality_scale(quality: float) -> float:
    """libjpeg's mapping from quality (1-100) to a table scale."""
    return (5000 / quality if quality < 50 else 200 - 2 * quality) / 100


def _round_through(x: Tensor) -> Tensor:
    """Rounding forward, identity backward (a straight-through estimator)."""
    return x + (torch.round(x) - x).detach()


def jpeg_like(images: Tensor, quality: float) -> Tensor:
    """JPEG's lossy steps, differentiably: YCbCr, 4:2:0 chroma, 8x8 DCT, quantisation."""
    height, width = images.shape[-2:]
    pad_h, pad_w = (-height) % 16, (-width) % 16
    x = F.pad(images, (0, pad_w, 0, pad_h), mode="replicate") * 255
    r, g, b = x.unbind(1)
    luma = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    cb, cr = (F.avg_pool2d(c.unsqueeze(1), 2).squeeze(1) for c in (cb, cr))
    scale = _quality_scale(quality)
    luma = _quantise_blocks(luma - 128, _LUMA_TABLE, scale) + 128
    cb, cr = (_quantise_blocks(c, _CHROMA_TABLE, scale) for c in (cb, cr))
    cb, cr = (
        F.interpolate(c.unsqueeze(1), scale_factor=2, mode="nearest").squeeze(1) for c in (cb, cr)
    )
    r = luma + 1.402 * cr
    g = luma - 0.344136 * cb - 0.714136 * cr
    b = luma + 1.772 * cb
    out = torch.stack([r, g, b], dim=1) / 255
    return out[..., :height, :width].clamp(0, 1)


def _quantise_blocks(channel: Tensor, table: Tensor, scale: float) -> Tensor:
    batch, height, width = channel.shape
    dct = _DCT.to(channel)
    steps = (table.to(channel) * scale).clamp(1, 255).view(8, 8)
    blocks = channel.reshape(batch, height // 8, 8, width // 8, 8).transpose(2, 3)
    coefficients = dct @ blocks @ dct.T
    coefficients = _round_through(coefficients / steps) * steps
    blocks = dct.T @ coefficients @ dct
    return blocks.transpose(2, 3).reshape(batch, height, width)


def down_up(images: Tensor, factor: float) -> Tensor:
    height, width = images.shape[-2:]
    small = (max(8, round(height * factor)), max(8, round(width * factor)))
    down = F.interpolate(images, size=small, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(height, width), mode="bilinear", align_corners=False)


def gaussian_blur(images: Tensor, sigma: float) -> Tensor:
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).view(1, 1, 1, -1).expand(3, 1, 1, -1)
    padded = F.pad(images, (radius, radius, 0, 0), mode="replicate")
    images = F.conv2d(padded, kernel, groups=3)
    padded = F.pad(images, (0, 0, radius, radius), mode="replicate")
    return F.conv2d(padded, kernel.transpose(2, 3), groups=3)


Transform = Callable[[Tensor], Tensor]


def random_transform(seed: int, step: int) -> tuple[str, Transform]:
    """One transform for this step: its name and the function."""
    generator = torch.Generator().manual_seed(seed * 100_003 + step)
    kind = int(torch.randint(0, 5, (1,), generator=generator))
    u = float(torch.rand(1, generator=generator))
    if kind == 0:
        return "none", lambda x: x
    if kind == 1:
        factor = 0.5 + 0.4 * u
        return f"down-up x{factor:.2f}", lambda x: down_up(x, factor)
    if kind == 2:
        quality = 60 + 35 * u
        return f"jpeg q{quality:.0f}", lambda x: jpeg_like(x, quality)
    if kind == 3:
        sigma = 0.5 + 0.7 * u
        return f"blur {sigma:.2f}", lambda x: gaussian_blur(x, sigma)
    sigma = (2 + 6 * u) / 255
    noise_generator = torch.Generator().manual_seed(seed * 7919 + step)

    def add_noise(x: Tensor) -> Tensor:
        noise = torch.randn(x.shape, generator=noise_generator).to(x)
        return (x + sigma * noise).clamp(0, 1)

    return f"noise {sigma * 255:.1f}/255", add_noise
