"""Measure a protected image against its original: the budget used, the latent shift,
and how much of the shift survives what scrapers do (JPEG, downscaling)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import InputImageError
from ..settings import ProtectionSettings
from .budget import measure
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
    maximum = original.max_value
    protected_samples = np.rint(protected.rgb * maximum).astype(np.int64)
    figures = measure(engine.lpips, original.colour_samples(), protected_samples, maximum)
    survival = {
        name: engine.latent_figures(degrade(original.rgb), degrade(protected.rgb), 1, settings,
                                    toward_target=toward_target)
        for name, degrade in DEGRADATIONS.items()
    }  # fmt: skip
    return {
        "original": str(original_path),
        "protected": str(protected_path),
        "measured": {**figures.as_dict(), "within_budget": figures.within(settings.budget())},
        "budget": settings.budget().describe(),
        "latent": engine.latent_figures(
            original.rgb, protected.rgb, 1, settings, toward_target=toward_target
        ),
        "after": survival,
        "models": engine.describe(),
    }
