"""The miniature world's models: a KL-VAE with Stable Diffusion's shape and style classifiers.

The VAE downsamples 8x to 4 latent channels, like SD's, and exposes what
``artcloak.engine.encoders.VaeEncoder`` wraps (``encoder``, ``quant_conv``, ``decode(z).sample``,
``config``), so artcloak's own engine protects against it unchanged. It is plain torch
without normalisation layers: diffusers' GroupNorm-and-attention blocks measured several times
slower to train on this 2-core CPU, and GroupNorm residual blocks reached no higher held-out
PSNR in a 300-step trial on world 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import Tensor, nn
from torch.nn import functional as F


class Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = nn.Conv2d(channels, channels, 3, padding=1)
        self.second = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.second(F.silu(self.first(F.silu(x))))


@dataclass(frozen=True)
class VaeShape:
    channels: tuple[int, int, int, int] = (16, 32, 64, 128)
    latent_channels: int = 4
    blocks: int = 1  # residual blocks per resolution


def _residuals(channels: int, count: int) -> list[nn.Module]:
    return [Residual(channels) for _ in range(count)]


class Encoder(nn.Sequential):
    def __init__(self, shape: VaeShape) -> None:
        c1, c2, c3, c4 = shape.channels
        n = shape.blocks
        super().__init__(
            nn.Conv2d(3, c1, 3, padding=1), *_residuals(c1, n),
            nn.Conv2d(c1, c2, 4, 2, 1), *_residuals(c2, n),
            nn.Conv2d(c2, c3, 4, 2, 1), *_residuals(c3, n),
            nn.Conv2d(c3, c4, 4, 2, 1), *_residuals(c4, n + 1),
            nn.SiLU(), nn.Conv2d(c4, 2 * shape.latent_channels, 3, padding=1),
        )  # fmt: skip


class Decoder(nn.Sequential):
    def __init__(self, shape: VaeShape) -> None:
        c1, c2, c3, c4 = shape.channels
        n = shape.blocks
        up = nn.Upsample(scale_factor=2, mode="nearest")
        super().__init__(
            nn.Conv2d(shape.latent_channels, c4, 3, padding=1), *_residuals(c4, n + 1),
            up, nn.Conv2d(c4, c3, 3, padding=1), *_residuals(c3, n),
            up, nn.Conv2d(c3, c2, 3, padding=1), *_residuals(c2, n),
            up, nn.Conv2d(c2, c1, 3, padding=1), *_residuals(c1, n),
            nn.SiLU(), nn.Conv2d(c1, 3, 3, padding=1),
        )  # fmt: skip


class WorldVae(nn.Module):
    """Images in [-1, 1] -> latent moments (mean, log-variance) -> images in [-1, 1]."""

    def __init__(self, shape: VaeShape = VaeShape()) -> None:
        super().__init__()
        self.shape = shape
        self.encoder = Encoder(shape)
        self.quant_conv = nn.Conv2d(2 * shape.latent_channels, 2 * shape.latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(shape.latent_channels, shape.latent_channels, 1)
        self.decoder = Decoder(shape)
        self.config = SimpleNamespace(
            latent_channels=shape.latent_channels, scaling_factor=1.0, shift_factor=0.0
        )

    def moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        mean, logvar = self.quant_conv(self.encoder(x)).chunk(2, dim=1)
        return mean, logvar.clamp(-30.0, 20.0)

    def latent_mean(self, images: Tensor) -> Tensor:
        """The encoder's latent mean of images in [0, 1]: what a latent model trains on."""
        return self.moments(images * 2 - 1)[0]

    def decode(self, z: Tensor) -> SimpleNamespace:
        return SimpleNamespace(sample=self.decoder(self.post_quant_conv(z)))


class StyleClassifier(nn.Module):
    """A small CNN over the world's images in [0, 1]; ``features`` feeds the VAE's perceptual loss."""

    def __init__(self, classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stages = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(3, w, 3, padding=1), nn.BatchNorm2d(w), nn.SiLU()),
                nn.Sequential(nn.Conv2d(w, 2 * w, 3, 2, 1), nn.BatchNorm2d(2 * w), nn.SiLU()),
                nn.Sequential(nn.Conv2d(2 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.SiLU()),
                nn.Sequential(nn.Conv2d(4 * w, 4 * w, 3, 2, 1), nn.BatchNorm2d(4 * w), nn.SiLU()),
            ]
        )
        self.head = nn.Linear(8 * w, classes)

    def features(self, images: Tensor) -> list[Tensor]:
        x = images * 2.0 - 1.0
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return out

    def forward(self, images: Tensor) -> Tensor:
        last = self.features(images)[-1]
        pooled = torch.cat([last.mean(dim=(2, 3)), last.std(dim=(2, 3))], dim=1)
        return self.head(pooled)
