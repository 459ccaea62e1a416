"""Tiny autoencoders (TAESD, TAESDXL, TAESD3, TAEF1, TAEF2, TAESana): real encoders at a
fraction of a full VAE's cost, mapping into the same latent spaces (madebyollin/taesd's
architecture, written here from its description).

The published weights are the state dicts of plain ``torch.nn.Sequential`` models, one file
for the encoder and one for the decoder (keys ``0.weight``, ``1.conv.0.weight``, ...); some
files hold both under ``encoder.``/``decoder.`` (diffusers' AutoencoderTiny adds ``layers.``).
The layout of each family is fixed; which modules carry a bias or a pool is read from the keys.
Encoders take RGB in [0, 1] and return the latent itself (no mean/log-variance pair).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

WIDTH = 64


@dataclass(frozen=True)
class TaeFamily:
    """One tiny-autoencoder family: its latent space and the shape of its encoder."""

    name: str
    latent_channels: int
    downscale: int  # pixels per latent cell along each side
    train_resolution: int  # the shorter side its parent model family trains at
    parent: str  # the full model family whose latent space this one maps into


TAE_FAMILIES: dict[str, TaeFamily] = {
    f.name: f
    for f in (
        TaeFamily("taesd", 4, 8, 512, "sd1"),
        TaeFamily("taesdxl", 4, 8, 1024, "sdxl"),
        TaeFamily("taesd3", 16, 8, 1024, "sd3"),
        TaeFamily("taef1", 16, 8, 1024, "flux"),
        TaeFamily("taef2", 32, 8, 1024, "flux2"),
        TaeFamily("taesana", 32, 32, 1024, "sana"),
    )
}


def conv(a: int, b: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(a, b, 3, stride=stride, padding=1, bias=bias)


class Clamp(nn.Module):
    """Soft clamp of decoder input latents to about +-3."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x / 3) * 3


class Pool(nn.Sequential):
    """TAEF2's channel mixer at the lowest resolution: 1x1 up to 4x width, GroupNorm, ReLU, down."""

    def __init__(self, width: int) -> None:
        super().__init__(
            nn.Conv2d(width, 4 * width, 1, bias=False),
            nn.GroupNorm(4, 4 * width),
            nn.ReLU(),
            nn.Conv2d(4 * width, width, 1, bias=False),
        )


class Block(nn.Module):
    """Three 3x3 convolutions with a skip; TAEF2's lowest blocks first add a pooled mix."""

    def __init__(self, a: int, b: int, *, pool: bool = False) -> None:
        super().__init__()
        self.pool = Pool(a) if pool else None
        self.conv = nn.Sequential(conv(a, b), nn.ReLU(), conv(b, b), nn.ReLU(), conv(b, b))
        self.skip = nn.Conv2d(a, b, 1, bias=False) if a != b else nn.Identity()
        self.fuse = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def _has(keys: Mapping | set, name: str) -> bool:
    return name in keys


def _stage(keys, first: int, count: int) -> list[nn.Module]:
    """``count`` Blocks at Sequential indices ``first``, ``first + 1``, ..."""
    return [
        Block(WIDTH, WIDTH, pool=_has(keys, f"{first + i}.pool.0.weight")) for i in range(count)
    ]


def build_encoder(family: TaeFamily, keys) -> nn.Sequential:
    """An untrained encoder of ``family`` whose optional parts follow the weights' ``keys``."""
    out = family.latent_channels
    if family.downscale == 32:
        layers: list[nn.Module] = [
            conv(3, 32, stride=2), nn.ReLU(), conv(32, WIDTH, stride=2), nn.ReLU(), *_stage(keys, 4, 1)
        ]  # fmt: skip
    else:
        layers = [conv(3, WIDTH), *_stage(keys, 1, 1)]
    for _ in range(3):
        index = len(layers)
        layers.append(conv(WIDTH, WIDTH, stride=2, bias=_has(keys, f"{index}.bias")))
        layers.extend(_stage(keys, index + 1, 3))
    layers.append(conv(WIDTH, out))
    return nn.Sequential(*layers)


def build_decoder(family: TaeFamily, keys) -> nn.Sequential:
    """An untrained decoder of ``family`` (8x families only) following the weights' ``keys``."""
    layers: list[nn.Module] = [Clamp(), conv(family.latent_channels, WIDTH), nn.ReLU()]
    for _ in range(3):
        layers.extend(_stage(keys, len(layers), 3))
        layers.append(nn.Upsample(scale_factor=2))
        layers.append(conv(WIDTH, WIDTH, bias=_has(keys, f"{len(layers)}.bias")))
    layers.extend(_stage(keys, len(layers), 1))
    layers.append(conv(WIDTH, 3))
    return nn.Sequential(*layers)


class TinyAutoencoder(nn.Module):
    """A tiny autoencoder's encoder and, when its weights were given, its decoder."""

    def __init__(self, family: TaeFamily, encoder: nn.Sequential, decoder: nn.Sequential | None):
        super().__init__()
        self.family = family
        self.encoder = encoder
        self.decoder = decoder

    @property
    def latent_channels(self) -> int:
        return self.family.latent_channels

    def encode(self, images: Tensor) -> Tensor:
        """Images in [0, 1] -> latents."""
        return self.encoder(images)

    def decode(self, latents: Tensor) -> Tensor:
        """Latents -> images in about [0, 1] (not clamped)."""
        if self.decoder is None:
            raise RuntimeError("This tiny autoencoder was loaded without its decoder.")
        return self.decoder(latents)
