"""What a scraper or a purifier does to a posted image before a model sees it, and world 2's
survival table (a row per transform).

Each transform maps uint8 (H, W, 3) to float32 (H', W', 3) in [0, 1]. Seeds make the noisy
ones repeatable.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

NO_TRANSFORM, JPEG_Q75 = "none", "JPEG q75"  # the transforms the goals read


def _pil(samples: np.ndarray) -> Image.Image:
    return Image.fromarray(samples, "RGB")


def _float(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), np.float32) / 255


def _encode(format_name: str, **options) -> Callable[[np.ndarray], np.ndarray]:
    def transform(samples: np.ndarray) -> np.ndarray:
        buffer = io.BytesIO()
        _pil(samples).save(buffer, format_name, **options)
        buffer.seek(0)
        return _float(Image.open(buffer))

    return transform


def down_up(samples: np.ndarray) -> np.ndarray:
    height, width = samples.shape[:2]
    small = _pil(samples).resize((width // 2, height // 2), Image.BICUBIC, reducing_gap=None)
    return _float(small.resize((width, height), Image.BICUBIC))


def resize_to(size: int) -> Callable[[np.ndarray], np.ndarray]:
    def transform(samples: np.ndarray) -> np.ndarray:
        return _float(_pil(samples).resize((size, size), Image.BICUBIC))

    return transform


def noise(sigma_255: float, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    def transform(samples: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(seed)
        noisy = samples / 255 + rng.normal(0, sigma_255 / 255, samples.shape)
        return np.clip(noisy, 0, 1).astype(np.float32)

    return transform


def blur(samples: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    return ndimage.gaussian_filter(samples / 255, sigma=(sigma, sigma, 0)).astype(np.float32)


def identity(samples: np.ndarray) -> np.ndarray:
    return samples.astype(np.float32) / 255


def transforms(resize_size: int) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """Name -> transform, in the order of the report's survival table."""
    return {
        NO_TRANSFORM: identity,
        "JPEG q95": _encode("JPEG", quality=95),
        "JPEG q85": _encode("JPEG", quality=85),
        JPEG_Q75: _encode("JPEG", quality=75),
        "WebP q80": _encode("WEBP", quality=80),
        "x0.5 down-up": down_up,
        f"resize to {resize_size}": resize_to(resize_size),
        "noise 4/255": noise(4),
        "noise 8/255": noise(8),
        "blur sigma 1": blur,
    }


@dataclass(frozen=True)
class SurvivalRow:
    """World 2's survival after one transform: the judge's accuracy on the clean images so
    transformed, and each run's success (as its JSON names them)."""

    clean_still_recognised: float
    standard: float
    robust: float
    plain_pgd: float


def survival_rows(survival: dict) -> dict[str, SurvivalRow]:
    """World 2's survival figures as rows, by transform, in the report's order."""
    return {name: SurvivalRow(**row) for name, row in survival["table"].items()}
