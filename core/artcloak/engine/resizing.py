"""Resizing between the artwork's full resolution and the encoder's working resolution.

The perturbation is optimised at working resolution and applied to the full image
upsampled bilinearly (a convex combination, so the L-inf bound carries over). What a
scraper's model sees is the protected full image downsampled again. Both resizes are
linear and separable, so "upsample then downsample" is two small matrices per image
and the loop never touches full-resolution pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_ASPECT = 4  # a working image is at most this many times the training side long


def working_size(width: int, height: int, train_resolution: int) -> tuple[int, int]:
    """(w, h) the encoder works at: shorter side at the training resolution (never upscaled),
    longer side capped at MAX_ASPECT times it, both multiples of 8."""
    scale = min(1.0, train_resolution / min(width, height))
    scale = min(scale, MAX_ASPECT * train_resolution / max(width, height))
    return _multiple_of_8(width * scale), _multiple_of_8(height * scale)


def _multiple_of_8(length: float) -> int:
    return max(8, int(round(length / 8)) * 8)


def resize(images: torch.Tensor, size_hw: tuple[int, int]) -> torch.Tensor:
    """Differentiable antialiased bilinear resize of (B, C, H, W) images."""
    if tuple(images.shape[-2:]) == tuple(size_hw):
        return images
    shrinking = size_hw[0] < images.shape[-2] or size_hw[1] < images.shape[-1]
    return F.interpolate(
        images, size=size_hw, mode="bilinear", align_corners=False, antialias=shrinking
    )


def _resize_matrix(source: int, target: int) -> torch.Tensor:
    """(target x source) matrix M with M @ v == resize(v) for a 1-D signal v."""
    # Along the width of 1-pixel-high images: PyTorch's antialiased resize of
    # 1-pixel-wide images is not the 1-D restriction of its 2-D resize.
    basis = torch.eye(source).reshape(source, 1, 1, source)
    columns = resize(basis, (1, target)).reshape(source, target)
    return columns.T.contiguous()


@dataclass
class RoundTrip:
    """The working-resolution view of a full-resolution perturbation: rows @ d @ cols."""

    rows: torch.Tensor  # (h, h)
    cols: torch.Tensor  # (w, w), already transposed for right-multiplication

    @classmethod
    def between(cls, full_hw: tuple[int, int], work_hw: tuple[int, int]) -> RoundTrip:
        rows = _resize_matrix(full_hw[0], work_hw[0]) @ _resize_matrix(work_hw[0], full_hw[0])
        cols = _resize_matrix(full_hw[1], work_hw[1]) @ _resize_matrix(work_hw[1], full_hw[1])
        return cls(rows=rows, cols=cols.T.contiguous())

    def to(self, device: torch.device) -> RoundTrip:
        return RoundTrip(self.rows.to(device), self.cols.to(device))

    def __call__(self, delta: torch.Tensor) -> torch.Tensor:
        """delta (C, h, w) at working resolution -> what the model sees of it."""
        return self.rows @ delta @ self.cols


def upsample(delta: torch.Tensor, full_hw: tuple[int, int]) -> torch.Tensor:
    """A working-resolution perturbation (C, h, w) at full resolution (C, H, W)."""
    return resize(delta.unsqueeze(0), full_hw).squeeze(0)


def shrink_keep_mask(free: torch.Tensor, work_hw: tuple[int, int]) -> torch.Tensor:
    """Working-resolution map of where change is allowed: only where the whole
    footprint of a working pixel is free (so kept regions are not bled into)."""
    shrunk = resize(free.float().reshape(1, 1, *free.shape[-2:]), work_hw)
    return (shrunk >= 0.999).float().reshape(1, *work_hw)
