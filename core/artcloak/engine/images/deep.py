"""16-bit colour pixels, which Pillow cannot hold, decoded with OpenCV and cross-checked."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from artcloak.errors import InputImageError

from .formats import _ORIENTATION
from .loaded import _Pixels

logger = logging.getLogger(__name__)


def _wide_pixels(path: Path, narrow: _Pixels, grey_alpha: bool, orientation: int) -> _Pixels:
    """16-bit colour samples via OpenCV, checked against Pillow's 8-bit decoding."""
    try:
        import cv2
    except ImportError:
        logger.warning("opencv-python-headless is missing; reading %s at 8 bits", path)
        narrow.notices.append("The 16-bit image was read at 8 bits per channel.")
        return narrow
    with _quiet_opencv(cv2):
        decoded = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None or decoded.dtype != np.uint16 or decoded.ndim != 3:
        raise InputImageError(_unreliable(path))
    if decoded.shape[2] not in (3, 4):
        raise InputImageError(_unreliable(path))
    # Use OpenCV's samples in whichever orientation Pillow's decoding is in.
    candidates = [decoded] if orientation == 1 else [decoded, _orient(decoded, orientation)]
    grey = narrow.colour.shape[2] == 1 or grey_alpha
    for candidate in candidates:
        wide = _split_bgra(candidate, grey, narrow)
        if _agrees(wide, narrow):
            return wide
    raise InputImageError(_unreliable(path))


def _split_bgra(decoded: np.ndarray, grey: bool, narrow: _Pixels) -> _Pixels:
    colour = np.ascontiguousarray(decoded[..., :1] if grey else decoded[..., 2::-1])
    alpha = np.ascontiguousarray(decoded[..., 3]) if decoded.shape[2] == 4 else None
    return _Pixels(colour, alpha, 16, narrow.icc, narrow.notices)


def _agrees(wide: _Pixels, narrow: _Pixels) -> bool:
    """True when the 16-bit samples' high bytes are Pillow's 8-bit samples."""
    channels = wide.colour.shape[2]
    expected = narrow.colour[..., :channels]
    if wide.colour.shape != expected.shape or not np.array_equal(wide.colour >> 8, expected):
        return False
    if wide.alpha is None or narrow.alpha is None or narrow.keyed_alpha:
        return True  # Pillow matches a 16-bit transparent colour against 8-bit samples
    return np.array_equal(wide.alpha >> 8, narrow.alpha)


def _unreliable(path: Path) -> str:
    return (
        f"{path} could not be decoded reliably at 16 bits per channel; "
        "save it again as a 16-bit PNG."
    )


@contextlib.contextmanager
def _quiet_opencv(cv2: Any) -> Iterator[None]:
    """Keep OpenCV's libtiff/libpng warnings off stderr while decoding."""
    log = getattr(getattr(cv2, "utils", None), "logging", None)
    try:
        level = log.getLogLevel()
        log.setLogLevel(log.LOG_LEVEL_ERROR)
    except AttributeError:
        yield
        return
    try:
        yield
    finally:
        log.setLogLevel(level)


def _orientation(im: Image.Image) -> int:
    with contextlib.suppress(Exception):
        value = int(im.getexif().get(_ORIENTATION, 1))
        if 1 <= value <= 8:
            return value
    return 1


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (as Pillow's exif_transpose does) to H x W (x C) samples."""
    if orientation == 2:
        array = array[:, ::-1]
    elif orientation == 3:
        array = array[::-1, ::-1]
    elif orientation == 4:
        array = array[::-1]
    elif orientation == 5:
        array = np.swapaxes(array, 0, 1)
    elif orientation == 6:
        array = np.rot90(array, -1)
    elif orientation == 7:
        array = np.swapaxes(array[::-1, ::-1], 0, 1)
    elif orientation == 8:
        array = np.rot90(array, 1)
    return np.ascontiguousarray(array)
