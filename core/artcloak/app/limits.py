"""What the page accepts: upload size, pixel count (the decompression-bomb guard), file count."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..errors import InputImageError


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = 100.0
    max_megapixels: float = 50.0
    max_files: int = 100
    # The queue: jobs waiting at once, in all and per page session (a browser tab), so one
    # visitor cannot fill it; the worker takes them in turn, session by session.
    max_waiting_jobs: int = 50
    max_waiting_per_session: int = 5

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1_000_000)


def check_upload(path: Path, limits: Limits, name: str | None = None) -> None:
    """Refuse, with one clear sentence, a file over the limits. Only the header is read, so a
    decompression bomb is refused before any pixel is decoded; unreadable files are left to
    the image loader, whose messages say what is wrong with them."""
    name = name or path.name
    size = path.stat().st_size
    if size > limits.max_upload_bytes:
        raise InputImageError(
            f"{name} is {size / 1024 / 1024:.1f} MB; this page takes files up to "
            f"{limits.max_upload_mb:g} MB."
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as image:
                width, height = image.size
    except Image.DecompressionBombError:
        raise InputImageError(_too_many(name, None, limits)) from None
    except Exception:
        return  # not an image Pillow knows: the loader says why
    if width * height > limits.max_pixels:
        raise InputImageError(_too_many(name, (width, height), limits))


def _too_many(name: str, size: tuple[int, int] | None, limits: Limits) -> str:
    dimensions = f" ({size[0]} x {size[1]})" if size else ""
    return (
        f"{name}{dimensions} has more pixels than this page takes ({limits.max_megapixels:g} "
        "million); scale it down first, or start the app with a higher --max-megapixels."
    )
