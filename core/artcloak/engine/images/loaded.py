"""What a loaded image carries, and what an encoder is given to write."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class LoadedImage:
    """An upright image with everything needed to write it back faithfully."""

    path: Path | None
    rgb: np.ndarray  # float32, H x W x 3, in [0, 1]
    alpha: np.ndarray | None  # uint8 / uint16, H x W, untouched
    bit_depth: int  # 8 or 16
    greyscale: bool
    format: str
    icc_profile: bytes | None = None
    exif: bytes | None = None  # starts with b"Exif\0\0"; Orientation is 1
    text: dict[str, str] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    dpi: tuple[float, float] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])

    @property
    def max_value(self) -> int:
        """Largest sample value at this bit depth: 255 or 65535."""
        return 65535 if self.bit_depth == 16 else 255

    def colour_samples(self) -> np.ndarray:
        """Integer samples H x W x 3 at ``bit_depth`` (uint8 or uint16)."""
        dtype = np.uint16 if self.bit_depth == 16 else np.uint8
        scaled = self.rgb * np.float32(self.max_value)
        np.rint(scaled, out=scaled)  # in place: a 4096x4096 image's float array is 200 MB
        np.clip(scaled, 0, self.max_value, out=scaled)
        return scaled.astype(dtype)


@dataclass
class _Pixels:
    colour: np.ndarray  # H x W x 1 (grey) or H x W x 3, uint8 / uint16
    alpha: np.ndarray | None
    bit_depth: int
    icc: bytes | None
    notices: list[str]
    keyed_alpha: bool = False  # alpha made from a transparent colour (PNG tRNS)


@dataclass
class _Output:
    """What an encoder writes: samples ready for the format, and the metadata it keeps."""

    colour: np.ndarray  # H x W x C (C = 1, 2, 3 or 4 with alpha last), uint8 / uint16
    icc: bytes | None
    exif: bytes | None
    text: dict[str, str]
    dpi: tuple[float, float] | None
    quality: int
