"""A small PNG writer for 16-bit colour samples, which Pillow cannot write."""

from __future__ import annotations

import contextlib
import struct
import zlib
from typing import IO

import numpy as np

from .formats import _EXIF_PREFIX, XMP_KEY
from .loaded import _Output


def _png_chunk(f: IO[bytes], kind: bytes, data: bytes) -> None:
    f.write(struct.pack(">I", len(data)) + kind + data)
    f.write(struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def _write_png16(f: IO[bytes], out: _Output) -> None:
    """A 16-bit PNG (grey, grey+alpha, RGB, RGBA) with iCCP, pHYs, text and eXIf chunks."""
    height, width, channels = out.colour.shape
    colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    f.write(b"\x89PNG\r\n\x1a\n")
    _png_chunk(f, b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))
    if out.icc:
        _png_chunk(f, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(out.icc))
    if out.dpi:
        x, y = (round(d / 0.0254) for d in out.dpi)
        _png_chunk(f, b"pHYs", struct.pack(">IIB", x, y, 1))
    for key, value in out.text.items():
        _png_text_chunk(f, key, value)
    if out.exif:
        exif = out.exif[len(_EXIF_PREFIX) :] if out.exif.startswith(_EXIF_PREFIX) else out.exif
        _png_chunk(f, b"eXIf", exif)
    rows = out.colour.astype(">u2").view(np.uint8).reshape(height, width * channels * 2)
    compressor = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    block = max(1, (4 << 20) // rows.shape[1])
    for top in range(0, height, block):
        part = rows[top : top + block]
        if top:
            prior = rows[top - 1 : top - 1 + part.shape[0]]
        else:
            prior = np.vstack([np.zeros_like(part[:1]), part[:-1]])
        filtered = np.empty((part.shape[0], part.shape[1] + 1), np.uint8)
        filtered[:, 0] = 2  # the "Up" filter: byte minus the byte above
        np.subtract(part, prior, out=filtered[:, 1:])
        data = compressor.compress(filtered.tobytes())
        if data:
            _png_chunk(f, b"IDAT", data)
    _png_chunk(f, b"IDAT", compressor.flush())
    _png_chunk(f, b"IEND", b"")


def _png_text_chunk(f: IO[bytes], key: str, value: str) -> None:
    name = key.encode("latin-1")
    if key != XMP_KEY:
        with contextlib.suppress(UnicodeEncodeError):
            _png_chunk(f, b"tEXt", name + b"\x00" + value.encode("latin-1"))
            return
    _png_chunk(f, b"iTXt", name + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))
