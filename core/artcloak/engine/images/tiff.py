"""The TIFF writer: 8- and 16-bit samples with their ICC profile, EXIF and text tags."""

from __future__ import annotations

import contextlib
import logging
import zlib
from typing import IO, Any

import numpy as np
from PIL import Image, TiffImagePlugin

from .formats import _EXIF_IFD, _EXIF_IFD0_TAGS, _GPS_IFD, _INTEROP_IFD, XMP_KEY
from .loaded import _Output

logger = logging.getLogger(__name__)


def _encode_tiff(f: IO[bytes], out: _Output) -> None:
    """A Deflate-compressed TIFF with horizontal prediction, at 8 or 16 bits."""
    height, width, channels = out.colour.shape
    samples = out.colour
    rows_per_strip = max(1, min(height, (256 << 10) // (width * channels * samples.itemsize)))
    strips = []
    for top in range(0, height, rows_per_strip):
        part = samples[top : top + rows_per_strip]
        predicted = part.copy()
        np.subtract(part[:, 1:], part[:, :-1], out=predicted[:, 1:])
        compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
        data = predicted.astype(predicted.dtype.newbyteorder("<")).tobytes()
        strips.append(compressor.compress(data) + compressor.flush())
    offsets = np.cumsum([0] + [len(s) for s in strips[:-1]])
    ifd = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
    _tiff_exif_tags(ifd, out.exif)
    ifd[256], ifd[257] = width, height
    ifd[258] = (samples.itemsize * 8,) * channels
    ifd[259] = 8  # Adobe Deflate
    ifd[262] = 1 if channels <= 2 else 2  # min-is-black grey, or RGB
    ifd[273] = tuple(int(o) for o in offsets)  # made absolute by the IFD writer
    ifd[277] = channels
    ifd[278] = rows_per_strip
    ifd[279] = tuple(len(s) for s in strips)
    ifd[284] = 1
    ifd[317] = 2  # horizontal differencing
    if channels in (2, 4):
        ifd[338] = (2,)  # unassociated (straight) alpha
    if out.dpi:
        ifd[282], ifd[283], ifd[296] = out.dpi[0], out.dpi[1], 2
    if out.icc:
        ifd[34675] = out.icc
    if XMP_KEY in out.text:
        ifd[700] = out.text[XMP_KEY].encode("utf-8")
    ifd.save(f)
    for strip in strips:
        f.write(strip)


def _tiff_exif_tags(ifd: TiffImagePlugin.ImageFileDirectory_v2, exif_bytes: bytes | None) -> None:
    """Copy descriptive EXIF tags into a TIFF's IFD0, skipping any that cannot be written."""
    if not exif_bytes:
        return
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
        items = list(exif.items())
    except Exception:  # broken EXIF must not stop the pixels from being written
        logger.info("EXIF could not be read for the TIFF", exc_info=True)
        return
    for tag, value in items:
        if tag in (_EXIF_IFD, _GPS_IFD):
            with contextlib.suppress(Exception):
                value = {k: v for k, v in exif.get_ifd(tag).items() if k != _INTEROP_IFD}
        elif tag not in _EXIF_IFD0_TAGS:
            continue
        if value and _tiff_tag_writable(tag, value):
            ifd[tag] = value


def _tiff_tag_writable(tag: int, value: Any) -> bool:
    try:
        probe = TiffImagePlugin.ImageFileDirectory_v2(prefix=b"II")
        probe[tag] = value
        probe.tobytes(8)
    except Exception:
        logger.info("EXIF tag %s cannot be written into a TIFF", tag, exc_info=True)
        return False
    return True
