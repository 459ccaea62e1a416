"""The encoder modules: what a latent diffusion model "sees" of an image."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from artcloak.errors import ModelLoadError, SettingsError


class VaeEncoder(torch.nn.Module):
    """A frozen VAE used as a differentiable image encoder.

    ``forward`` maps images in [0, 1], shape (B, 3, H, W), to the latent *mean*
    (B, C, H/d, W/d) with ``d = downscale`` (8 for every shipped family), unscaled (the raw
    output of the encoder's moments). For FLUX.2 this is the 32-channel mean before the
    pipeline's 2x2 patchify and batch norm. ``decode`` maps a latent mean back to images in
    [0, 1] to show what the model sees.
    """

    source: str
    family: str
    latent_channels: int
    train_resolution: int
    scaling_factor: float
    shift_factor: float
    downscale: int

    def __init__(self, vae: Any, *, source: str, family: str, train_resolution: int) -> None:
        super().__init__()
        config = vae.config
        self._setup(vae, source, family, train_resolution)
        self.latent_channels = int(config.latent_channels)
        self.scaling_factor = float(getattr(config, "scaling_factor", None) or 1.0)
        self.shift_factor = float(getattr(config, "shift_factor", None) or 0.0)
        # One 2x downsampling between consecutive blocks; 8x for configs that do not say (SD's).
        blocks = getattr(config, "block_out_channels", None)
        self.downscale = 2 ** (len(blocks) - 1) if blocks else 8

    def _setup(self, vae: Any, source: str, family: str, train_resolution: int) -> None:
        # Channels-last weights, the same arithmetic in another order: on this project's 2-core
        # CPU a full-size SD VAE encoder's forward+backward at 512 px took 7.1 s instead of 9.0 s
        # (paired, bench/speed.py), TAEF2's at 256 px 0.16 s instead of 0.23 s (pass_cost.py).
        self.vae = vae.to(memory_format=torch.channels_last)
        self.vae.requires_grad_(False)
        self.source = source
        self.family = family
        self.train_resolution = int(train_resolution)
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

    @property
    def has_decoder(self) -> bool:
        """Whether ``decode`` can show what the model sees (a decoder was loaded)."""
        return getattr(self.vae, "decoder", None) is not None

    def _images(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise SettingsError(
                f"The encoder needs images shaped (batch, 3, height, width), got {tuple(images.shape)}."
            )
        return images.to(device=self.device, dtype=self.dtype)

    def _latents(self, latent: Tensor) -> Tensor:
        if not self.has_decoder:
            raise ModelLoadError(self._no_decoder_message())
        if latent.ndim != 4 or latent.shape[1] != self.latent_channels:
            raise SettingsError(
                f"The decoder needs latents shaped (batch, {self.latent_channels}, h, w), "
                f"got {tuple(latent.shape)}."
            )
        return latent.to(device=self.device, dtype=self.dtype)

    def _no_decoder_message(self) -> str:
        return (
            f"The encoder {self.source} was loaded without its decoder, so what the model sees "
            "cannot be shown; load the full VAE."
        )

    def forward(self, images: Tensor) -> Tensor:
        x = self._images(images) * 2.0 - 1.0
        moments = self.vae.encoder(x)
        if getattr(self.vae, "quant_conv", None) is not None:
            moments = self.vae.quant_conv(moments)
        mean, _logvar = torch.chunk(moments, 2, dim=1)
        return mean

    def decode(self, latent_mean: Tensor) -> Tensor:
        images = self.vae.decode(self._latents(latent_mean)).sample
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, family={self.family!r}, "
            f"latent_channels={self.latent_channels}, train_resolution={self.train_resolution}"
        )


class TaeEncoder(VaeEncoder):
    """A frozen tiny autoencoder (TAESD, TAEF2, ...) used as a differentiable image encoder.

    Same interface as :class:`VaeEncoder`: ``forward`` maps images in [0, 1] to the latent
    (which a tiny autoencoder outputs directly, with no mean/log-variance pair), ``decode``
    maps latents back to images in [0, 1] where the decoder was loaded. ``vae`` is the
    :class:`~artcloak.engine.encoders.tae.TinyAutoencoder` (``vae.encoder``, ``vae.decoder``).
    """

    def __init__(self, vae: Any, *, source: str, family: str, train_resolution: int) -> None:
        torch.nn.Module.__init__(self)
        self._setup(vae, source, family, train_resolution)
        self.latent_channels = int(vae.family.latent_channels)
        self.scaling_factor = 1.0
        self.shift_factor = 0.0
        self.downscale = int(vae.family.downscale)

    def _no_decoder_message(self) -> str:
        if self.downscale != 8:
            return (
                f"The tiny autoencoder {self.source} ({self.family}) has no decoder artcloak can "
                "load, so what the model sees cannot be shown; add an encoder that has one "
                "(for example taef2) to see it."
            )
        return (
            f"The tiny autoencoder {self.source} was loaded without its decoder, so what the "
            "model sees cannot be shown; put its decoder beside it (decoder.safetensors next "
            "to encoder.safetensors) and load it again."
        )

    def forward(self, images: Tensor) -> Tensor:
        return self.vae.encoder(self._images(images))

    def decode(self, latent: Tensor) -> Tensor:
        return self.vae.decoder(self._latents(latent)).clamp(0.0, 1.0)
