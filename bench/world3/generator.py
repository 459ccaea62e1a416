"""World 3's mimic: a small class-conditional U-Net for flow matching on TAEF2's latents.

World 2's ``LatentFlow`` (six convolutions at one scale) is enough for 4-channel latents of a
from-scratch VAE, but on TAEF2's 32-channel latents its samples were blurred colour fields that
the style judge read as the artist's style in only about a quarter of cases even after
fine-tuning on the artist's clean images: no valid control. Two scales below the latent's
(16 -> 8 -> 4 at 128 px) give it the whole picture, and it trains with world 2's ``fit``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class _Block(nn.Module):
    """A residual block whose middle is shifted by the condition (time and label)."""

    def __init__(self, width: int, condition: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(8, width)
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.shift = nn.Linear(condition, width)
        self.norm2 = nn.GroupNorm(8, width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, h: Tensor, condition: Tensor) -> Tensor:
        x = self.conv1(F.silu(self.norm1(h))) + self.shift(condition)[:, :, None, None]
        return h + self.conv2(F.silu(self.norm2(x)))


class LatentUNet(nn.Module):
    """Predicts the velocity from noise to data for latents (B, channels, h, w), h and w
    multiples of 4, a time and a label (``labels`` of them, and ``null_label`` for none)."""

    def __init__(self, labels: int, channels: int, width: int = 48) -> None:
        super().__init__()
        self.null_label = labels
        condition = 4 * width
        self.embed = nn.Embedding(labels + 1, condition)
        self.time = nn.Sequential(
            nn.Linear(1, condition), nn.SiLU(), nn.Linear(condition, condition)
        )
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.fine = _Block(width, condition)
        self.down1 = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.middle = _Block(2 * width, condition)
        self.down2 = nn.Conv2d(2 * width, 4 * width, 3, stride=2, padding=1)
        self.coarse = nn.ModuleList([_Block(4 * width, condition) for _ in range(2)])
        self.up2 = nn.ConvTranspose2d(4 * width, 2 * width, 4, stride=2, padding=1)
        self.middle_up = _Block(2 * width, condition)
        self.up1 = nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1)
        self.fine_up = _Block(width, condition)
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z: Tensor, t: Tensor, label: Tensor) -> Tensor:
        condition = F.silu(self.embed(label) + self.time(t[:, None]))
        fine = self.fine(self.inp(z), condition)
        middle = self.middle(self.down1(fine), condition)
        h = self.down2(middle)
        for block in self.coarse:
            h = block(h, condition)
        h = self.middle_up(self.up2(h) + middle, condition)
        h = self.fine_up(self.up1(h) + fine, condition)
        return self.out(F.silu(h))


def seeded_unet(labels: int, channels: int, seed: int) -> LatentUNet:
    """A LatentUNet whose initial weights come from ``seed`` alone."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LatentUNet(labels, channels)
