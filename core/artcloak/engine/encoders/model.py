"""The VAE encoder module: what a latent diffusion model "sees" of an image."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from artcloak.errors import SettingsError


class VaeEncoder(torch.nn.Module):
    """A frozen VAE used as a differentiable image encoder.

    ``forward`` maps images in [0, 1], shape (B, 3, H, W), to the latent *mean*
    (B, C, H/8, W/8), unscaled (the raw output of the encoder's moments). ``decode`` maps a
    latent mean back to images in [0, 1] to show what the model sees.
    """

    source: str
    family: str
    latent_channels: int
    train_resolution: int
    scaling_factor: float
    shift_factor: float

    def __init__(self, vae: Any, *, source: str, family: str, train_resolution: int) -> None:
        super().__init__()
        self.vae = vae
        self.vae.requires_grad_(False)
        self.source = source
        self.family = family
        self.latent_channels = int(vae.config.latent_channels)
        self.train_resolution = int(train_resolution)
        self.scaling_factor = float(vae.config.scaling_factor or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.eval()

    def train(self, mode: bool = True) -> VaeEncoder:
        """The encoder is frozen: it stays in eval mode whatever is asked."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise SettingsError(
                f"The encoder needs images shaped (batch, 3, height, width), got {tuple(images.shape)}."
            )
        x = images.to(device=self.device, dtype=self.dtype) * 2.0 - 1.0
        moments = self.vae.encoder(x)
        if getattr(self.vae, "quant_conv", None) is not None:
            moments = self.vae.quant_conv(moments)
        mean, _logvar = torch.chunk(moments, 2, dim=1)
        return mean

    def decode(self, latent_mean: Tensor) -> Tensor:
        if latent_mean.ndim != 4 or latent_mean.shape[1] != self.latent_channels:
            raise SettingsError(
                f"The decoder needs latents shaped (batch, {self.latent_channels}, h, w), "
                f"got {tuple(latent_mean.shape)}."
            )
        z = latent_mean.to(device=self.device, dtype=self.dtype)
        images = self.vae.decode(z).sample
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, family={self.family!r}, "
            f"latent_channels={self.latent_channels}, train_resolution={self.train_resolution}"
        )
