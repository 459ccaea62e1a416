"""EXIF, XMP, text and resolution metadata read from images, with orientation made upright."""

from __future__ import annotations

import contextlib
import logging
import re
import struct

from PIL import Image

from .formats import (
    _EXIF_IFD,
    _EXIF_IFD0_TAGS,
    _EXIF_PREFIX,
    _GPS_IFD,
    _ORIENTATION,
    _RAW_PROFILE_KEYS,
    XMP_KEY,
)

logger = logging.getLogger(__name__)


def _read_exif(im: Image.Image, fmt: str, orientation: int) -> tuple[bytes | None, list[str]]:
    """Raw EXIF with Orientation set to 1 and no thumbnail (it would show the unprotected art)."""
    try:
        if fmt == "TIFF":
            return _exif_from_tiff(im, orientation), []
        raw = im.info.get("exif")
        if raw:
            raw = raw if raw.startswith(_EXIF_PREFIX) else _EXIF_PREFIX + raw
            return _reset_orientation(raw), []
        if any(key in im.info for key in _RAW_PROFILE_KEYS):
            exif = im.getexif()
            if _ORIENTATION in exif:
                exif[_ORIENTATION] = 1
            return exif.tobytes(), []
    except Exception:  # EXIF in the wild is often broken; the pixels matter more
        logger.info("unreadable EXIF", exc_info=True)
        return None, ["The image's EXIF metadata could not be read and was left out."]
    return None, []


def _exif_from_tiff(im: Image.Image, orientation: int) -> bytes | None:
    exif = im.getexif()
    for tag in list(exif):
        if tag not in _EXIF_IFD0_TAGS and tag not in (_EXIF_IFD, _GPS_IFD):
            del exif[tag]
    if _ORIENTATION in exif or orientation != 1:
        exif[_ORIENTATION] = 1
    return exif.tobytes() if len(exif) else None


def _reset_orientation(raw: bytes) -> bytes:
    patched = _patch_exif(raw)
    if patched is not None:
        return patched
    exif = Image.Exif()
    exif.load(raw)
    if _ORIENTATION in exif:
        exif[_ORIENTATION] = 1
    return exif.tobytes()


def _patch_exif(raw: bytes) -> bytes | None:
    """Set Orientation to 1 and unlink IFD1 (the thumbnail) in place; None if malformed."""
    data = bytearray(raw)
    start = len(_EXIF_PREFIX)
    order = {b"II": "<", b"MM": ">"}.get(bytes(data[start : start + 2]))
    try:
        if order is None or struct.unpack_from(order + "H", data, start + 2)[0] != 42:
            return None
        ifd0 = start + struct.unpack_from(order + "I", data, start + 4)[0]
        (count,) = struct.unpack_from(order + "H", data, ifd0)
        for entry in range(ifd0 + 2, ifd0 + 2 + 12 * count, 12):
            tag, kind, n = struct.unpack_from(order + "HHI", data, entry)
            if tag == _ORIENTATION and n == 1 and kind in (3, 4):
                struct.pack_into(order + ("H" if kind == 3 else "I"), data, entry + 8, 1)
        struct.pack_into(order + "I", data, ifd0 + 2 + 12 * count, 0)
    except struct.error:
        return None
    return bytes(data)


def _read_text(im: Image.Image, fmt: str) -> dict[str, str]:
    text: dict[str, str] = {}
    if fmt == "PNG":
        text = {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
        for key in _RAW_PROFILE_KEYS:
            text.pop(key, None)
    xmp = im.info.get("xmp")
    if fmt == "TIFF" and not xmp:
        xmp = im.tag_v2.get(700)  # type: ignore[attr-defined]
    if isinstance(xmp, bytes):
        with contextlib.suppress(UnicodeDecodeError):
            text.setdefault(XMP_KEY, xmp.decode("utf-8").rstrip("\x00"))
    comment = im.info.get("comment")
    if fmt == "JPEG" and comment:
        if isinstance(comment, bytes):
            comment = comment.decode("utf-8", errors="replace")
        text.setdefault("Comment", comment)
    if XMP_KEY in text:
        text[XMP_KEY] = _upright_xmp(text[XMP_KEY])
    return text


def _upright_xmp(xmp: str) -> str:
    xmp = re.sub(r"(tiff:Orientation\s*=\s*[\"'])\d([\"'])", r"\g<1>1\g<2>", xmp)
    return re.sub(r"(<tiff:Orientation>\s*)\d(\s*</tiff:Orientation>)", r"\g<1>1\g<2>", xmp)


def _read_dpi(im: Image.Image) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    with contextlib.suppress(TypeError, ValueError):
        x, y = float(dpi[0]), float(dpi[1])
        if 0 < x < 1e6 and 0 < y < 1e6:
            return round(x, 2), round(y, 2)
    return None


def _icc_space(icc: bytes) -> str:
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else ""
