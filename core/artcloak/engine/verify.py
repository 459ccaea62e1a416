"""Measure a protected image against its original: the budget used, the latent shift,
and how much of the shift survives what scrapers do (JPEG, downscaling).

``verify_files`` measures files (``artcloak verify``); ``verify_images`` the same figures of
images in memory (ComfyUI's Verify node); ``model_view`` is what the model sees of an image."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import InputImageError, ModelLoadError
from ..settings import ProtectionSettings
from .budget import measure_rgb
from .images import load_image
from .protect import Engine

Degradation = Callable[[np.ndarray], np.ndarray]  # float H x W x 3 in [0, 1] -> same


def jpeg(quality: int) -> Degradation:
    def apply(rgb: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        Image.fromarray(_to_8bit(rgb)).save(buffer, format="JPEG", quality=quality)
        return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255

    return apply


def downscale(factor: float) -> Degradation:
    def apply(rgb: np.ndarray) -> np.ndarray:
        height, width = rgb.shape[:2]
        size = max(8, round(width * factor)), max(8, round(height * factor))
        small = Image.fromarray(_to_8bit(rgb)).resize(size, Image.Resampling.LANCZOS)
        return np.asarray(small, dtype=np.float32) / 255

    return apply


def _to_8bit(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)


DEGRADATIONS: dict[str, Degradation] = {
    "jpeg_q90": jpeg(90),
    "jpeg_q75": jpeg(75),
    "downscale_0.5": downscale(0.5),
}


def verify_files(
    engine: Engine,
    original_path: Path,
    protected_path: Path,
    settings: ProtectionSettings,
    toward_target: bool,
) -> dict:
    """Figures of a protected file against its original (see module docstring)."""
    original, protected = load_image(original_path), load_image(protected_path)
    if original.size != protected.size:
        raise InputImageError(
            f"{protected_path} is {protected.size[0]}x{protected.size[1]} but {original_path} is "
            f"{original.size[0]}x{original.size[1]}: compare an image with its own protected copy."
        )
    figures = verify_images(
        engine, original.rgb, protected.rgb, original.max_value, settings, toward_target
    )
    return {
        "original": str(original_path),
        "protected": str(protected_path),
        **figures,
        "models": engine.describe(),
    }


def verify_images(
    engine: Engine,
    original: np.ndarray,
    protected: np.ndarray,
    max_value: int,
    settings: ProtectionSettings,
    toward_target: bool,
) -> dict:
    """Figures of a protected image against its original, both in memory (float H x W x 3 in
    [0, 1]): the budget measured on their samples at ``max_value`` (255 for 8-bit, 65535 for
    16-bit), the latent shift (toward the settings' target with ``toward_target``) and how
    much of it survives each of DEGRADATIONS."""
    if original.shape != protected.shape:
        raise InputImageError(
            f"The protected image is {_size(protected)} but the original is {_size(original)}: "
            "compare an image with its own protected copy."
        )
    figures = measure_rgb(engine.lpips, original, protected, max_value)
    survival = {
        name: engine.latent_figures(degrade(original), degrade(protected), 1, settings,
                                    toward_target=toward_target)
        for name, degrade in DEGRADATIONS.items()
    }  # fmt: skip
    latent = engine.latent_figures(original, protected, 1, settings, toward_target=toward_target)
    return {
        "measured": figures.figures(settings.budget()).as_dict(),
        "budget": settings.budget().describe(),
        "latent": [shift.as_dict() for shift in latent],
        "after": {name: [shift.as_dict() for shift in shifts] for name, shifts in survival.items()},
    }


def model_view(engine: Engine, rgb: np.ndarray, settings: ProtectionSettings) -> np.ndarray:
    """What the first encoder with a decoder sees of an image (float H x W x 3 in [0, 1]): the
    decoder's reconstruction of its latent, at the working size, as float H' x W' x 3.
    Raises ModelLoadError when no encoder has a decoder (a tiny autoencoder loaded alone, or
    an engine made without ``decoders``)."""
    index = viewing_encoder(engine)
    if index is None:
        raise ModelLoadError(
            "No encoder was loaded with a decoder, so what the model sees cannot be shown: an "
            "engine loads decoders when made with Engine(..., decoders=True), and a tiny "
            "autoencoder's decoder from beside its encoder (decoder.safetensors next to "
            "encoder.safetensors)."
        )
    encoder = engine.encoders[index]
    latent = engine.encode_view(rgb, 1, settings)[index]
    with torch.no_grad():
        decoded = encoder.decode(latent.unsqueeze(0))[0].float()
    return decoded.permute(1, 2, 0).cpu().numpy()


def viewing_encoder(engine: Engine) -> int | None:
    """The index of the first encoder that can decode (show what the model sees), or None."""
    for index, encoder in enumerate(engine.encoders):
        if getattr(encoder, "has_decoder", True):
            return index
    return None


def _size(rgb: np.ndarray) -> str:
    return f"{rgb.shape[1]}x{rgb.shape[0]}"
