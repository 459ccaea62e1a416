"""Load artists' images upright, refusing clearly what cannot be protected."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
import sys
import tempfile
import threading
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, TiffImagePlugin, UnidentifiedImageError

from artcloak.errors import InputImageError

try:  # Pillow is sometimes built without LittleCMS
    from PIL import ImageCms
except ImportError:  # pragma: no cover
    ImageCms = None  # type: ignore[assignment]

from .deep import _orient, _orientation, _wide_pixels
from .formats import (
    _FORMAT_LIST,
    _FTYP_BRANDS,
    _OTHER_MAGIC,
    _PILLOW_FORMATS,
    MIN_SIDE,
    SUPPORTED_FORMATS,
)
from .loaded import LoadedImage, _Pixels
from .metadata import _icc_space, _read_dpi, _read_exif, _read_text

logger = logging.getLogger(__name__)


MAX_PIXELS: int = 120_000_000

_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")


def load_image(path: str | Path) -> LoadedImage:
    """Read an image file upright, with its metadata; InputImageError when it cannot be used."""
    path = Path(path)
    _check_file(path)
    with _reading(path):
        im = _open(path)
    with im, _reading(path):
        fmt = _PILLOW_FORMATS.get(im.format or "")
        if fmt is None:
            raise InputImageError(_unidentified(path))
        _check_frames(im, path, fmt)
        _check_size(im.size, path)
        wide = _wants_wide_decoder(im, path, fmt)
        # Pillow turns TIFFs upright while loading and drops the tag. Other formats may only
        # be asked for EXIF after loading: PNG's getexif() would decode (and hide errors).
        tiff_orientation = _orientation(im) if fmt == "TIFF" else None
        im.load()
        pending = _orientation(im)  # still to be applied to Pillow's pixels
        orientation = pending if tiff_orientation is None else tiff_orientation
        pixels = _pillow_pixels(im, path, fmt)
        if wide:
            grey_alpha = fmt == "PNG" and _png_ihdr(path)[1] == 4
            pixels = _wide_pixels(path, pixels, grey_alpha, orientation)
        exif, exif_notices = _read_exif(im, fmt, orientation)
        text = _read_text(im, fmt)
        dpi = _read_dpi(im)
    colour = _orient(pixels.colour, pending)
    alpha = None if pixels.alpha is None else _orient(pixels.alpha, pending)
    if dpi is not None and pending >= 5:
        dpi = (dpi[1], dpi[0])
    greyscale = colour.shape[2] == 1
    icc, icc_notices = _matching_icc(pixels.icc, greyscale, path)
    max_value = 65535 if pixels.bit_depth == 16 else 255
    rgb = colour.astype(np.float32) / np.float32(max_value)
    if greyscale:
        rgb = np.repeat(rgb, 3, axis=2)
    return LoadedImage(
        path=path,
        rgb=rgb,
        alpha=alpha,
        bit_depth=pixels.bit_depth,
        greyscale=greyscale,
        format=fmt,
        icc_profile=icc,
        exif=exif,
        text=text,
        notices=pixels.notices + icc_notices + exif_notices,
        dpi=dpi,
    )


def has_transparency(path: str | Path) -> bool:
    """Whether the image at ``path`` loads with an alpha channel, from its header alone;
    False when it cannot be read (loading it says why)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(path) as im:
                return _transparent(im)
    except Exception:  # noqa: BLE001 - any unreadable file is the loader's to refuse
        return False


def _transparent(im: Image.Image) -> bool:
    """An alpha channel, or a transparent colour that loading turns into one."""
    return im.mode in _ALPHA_MODES or (im.mode in ("P", "L", "RGB") and "transparency" in im.info)


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise InputImageError(f"{path} is a folder, not an image file; choose an image file.")
    if not path.exists():
        raise InputImageError(f"{path} does not exist; check the file name and folder.")
    if not path.is_file():
        raise InputImageError(f"{path} is not a regular file; choose an image file.")
    try:
        with path.open("rb") as f:
            head = f.read(1)
    except PermissionError as e:
        raise InputImageError(
            f"{path} cannot be read (permission denied); check the file's permissions."
        ) from e
    except OSError as e:
        raise InputImageError(f"{path} cannot be read ({e.strerror or e}).") from e
    if not head:
        raise InputImageError(f"{path} is empty (0 bytes); export or download the image again.")


@contextlib.contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Strict decoding: no truncated images, no stray warnings, Pillow errors as InputImageError."""
    truncated_before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings(record=True) as caught, _c_stderr_to_log(path):
            warnings.simplefilter("always")
            # MAX_PIXELS, checked on the header size, is the limit; Pillow's lower default
            # warning threshold would refuse images that artcloak accepts.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
        for warning in caught:
            logger.info("%s: %s", path, warning.message)
    except InputImageError:
        raise
    except Image.DecompressionBombError as e:
        raise InputImageError(_too_large(path, pixels=_bomb_pixels(e))) from e
    except MemoryError as e:
        raise InputImageError(
            f"{path} is too large to load in this computer's memory; scale it down and try again."
        ) from e
    except UnidentifiedImageError as e:
        raise InputImageError(_unidentified(path)) from e
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error) as e:
        logger.debug("decoding %s failed", path, exc_info=True)
        if "truncated" in str(e).lower() or isinstance(e, EOFError):
            raise InputImageError(
                f"{path} is incomplete (the file is cut short); export or download it again."
            ) from e
        raise InputImageError(
            f"{path} is damaged and its pixels cannot be decoded; export or download it again."
        ) from e
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = truncated_before


_c_stderr_lock = threading.Lock()
_c_stderr_users = 0
_c_stderr_saved: tuple[int, Any] | None = None  # the real fd 2, and the capture file


@contextlib.contextmanager
def _c_stderr_to_log(path: Path) -> Iterator[None]:
    """While decoding, what libtiff, libpng and OpenCV print straight to fd 2 about a damaged
    file goes to the log instead, so that the person sees artcloak's one line. Shared by
    threads decoding at once: the first in redirects, the last out restores and logs."""
    global _c_stderr_users, _c_stderr_saved
    with _c_stderr_lock:
        if _c_stderr_users == 0:
            capture = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the last one out
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except (OSError, ValueError, AttributeError):  # no usable fd 2 (e.g. a GUI host)
                capture.close()
                saved = None
            _c_stderr_saved = None if saved is None else (saved, capture)
        _c_stderr_users += 1
    try:
        yield
    finally:
        with _c_stderr_lock:
            _c_stderr_users -= 1
            if _c_stderr_users == 0 and _c_stderr_saved is not None:
                saved, capture = _c_stderr_saved
                _c_stderr_saved = None
                os.dup2(saved, 2)
                os.close(saved)
                capture.seek(0)
                said = capture.read().decode("utf-8", "replace").strip()
                capture.close()
                if said:
                    logger.info("%s: decoder messages: %s", path, said)


def _open(path: Path) -> Image.Image:
    return Image.open(path, formats=list(SUPPORTED_FORMATS))  # JPEG also yields MPO


def _too_large(path: Path, size: tuple[int, int] | None = None, pixels: int = 0) -> str:
    if size:
        what = f"is {size[0]} x {size[1]} pixels"
    elif pixels:
        what = f"has {pixels / 1e6:.0f} million pixels"
    else:
        what = "has too many pixels"
    limit = f"{MAX_PIXELS // 1_000_000} million pixels"
    return f"{path} {what}, more than artcloak's limit of {limit}; scale it down and try again."


def _bomb_pixels(error: Exception) -> int:
    match = re.search(r"\((\d+) pixels\)", str(error))
    return int(match[1]) if match else 0


def _unidentified(path: Path) -> str:
    try:
        with path.open("rb") as f:
            head = f.read(128)
    except OSError:
        head = b""
    if head.startswith((b"II*\x00", b"MM\x00*")):
        kind = _tiff_kind(path)
        if kind:
            return (
                f"{path} is a {kind}, which artcloak cannot read; "
                "export it as an 8-bit or 16-bit RGB or greyscale image."
            )
    name = _other_format_name(head)
    if name:
        return (
            f"{path} is in {name} format, which artcloak does not support; "
            f"save it as {_FORMAT_LIST} first."
        )
    return f"{path} is not an image artcloak can read; use a {_FORMAT_LIST} file."


def _other_format_name(head: bytes) -> str | None:
    for magic, name in _OTHER_MAGIC:
        if head.startswith(magic):
            return name
    if head[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(head[8:12])
    if head.startswith(b"PK\x03\x04") and b"application/x-krita" in head:
        return "Krita (KRA)"
    if head.startswith(b"PK\x03\x04") and b"image/openraster" in head:
        return "OpenRaster (ORA)"
    if b"<svg" in head.lower():
        return "SVG"
    return None


def _tiff_kind(path: Path) -> str | None:
    """Name a TIFF layout that Pillow refused (e.g. floating point); None when the header
    itself is damaged (Pillow's warnings about it are errors here, not noise on stderr)."""
    with contextlib.suppress(Exception), warnings.catch_warnings(), path.open("rb") as f:
        warnings.simplefilter("error")
        ifd = TiffImagePlugin.ImageFileDirectory_v2(f.read(8))
        f.seek(ifd.next)
        ifd.load(f)
        bits = _as_tuple(ifd.get(258, (1,)))
        sample_format = _as_tuple(ifd.get(339, (1,)))[0]
        if sample_format == 3:
            return f"{bits[0]}-bit floating-point TIFF"
        return f"TIFF with {bits[0]}-bit samples in {ifd.get(277, 1)} channels"
    return None


def _as_tuple(value: Any) -> tuple[Any, ...]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _check_frames(im: Image.Image, path: Path, fmt: str) -> None:
    try:
        frames = int(getattr(im, "n_frames", 1))
    except (TypeError, KeyError) as e:  # Pillow, on a TIFF whose next-page pointer is garbage
        raise InputImageError(
            f"{path} is damaged (its list of pages cannot be read); export or download it again."
        ) from e
    if frames <= 1 or fmt == "JPEG":  # an MPO's extra images are previews/depth maps
        return
    if fmt == "TIFF":
        raise InputImageError(
            f"{path} has {frames} pages; artcloak protects single-page images, "
            "so save the page you want as its own file."
        )
    raise InputImageError(
        f"{path} is animated ({frames} frames); artcloak protects still images only, "
        "so export a single frame as PNG or JPEG."
    )


def _check_size(size: tuple[int, int], path: Path) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise InputImageError(_too_large(path, size))
    if min(width, height) < MIN_SIDE:
        raise InputImageError(
            f"{path} is only {width} x {height} pixels; "
            f"images need at least {MIN_SIDE} pixels on each side."
        )


def _png_ihdr(path: Path) -> tuple[int, int]:
    """(bit depth, colour type) from a PNG header."""
    with path.open("rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise SyntaxError("broken PNG header")
    return head[24], head[25]


def _wants_wide_decoder(im: Image.Image, path: Path, fmt: str) -> bool:
    """True for 16-bit colour files, whose samples Pillow would cut to 8 bits."""
    if fmt == "PNG":
        depth, colour_type = _png_ihdr(path)
        return depth == 16 and colour_type in (2, 4, 6)
    if fmt != "TIFF":
        return False
    tags = im.tag_v2  # type: ignore[attr-defined]
    bits = _as_tuple(tags.get(258, (1,)))
    if max(bits) != 16 or tags.get(262) != 2:
        return False
    if tags.get(284, 1) == 2:
        raise InputImageError(
            f"{path} is a 16-bit TIFF with separate colour planes, which artcloak cannot read "
            "reliably; save it again with interleaved (RGBRGB) pixel order."
        )
    if 1 in _as_tuple(tags.get(338, ())):
        raise InputImageError(
            f"{path} is a 16-bit TIFF with premultiplied alpha, which artcloak does not "
            "support; save it again with unassociated (straight) alpha or as PNG."
        )
    return True


def _pillow_pixels(im: Image.Image, path: Path, fmt: str) -> _Pixels:
    """Pixels as Pillow decodes them, converted to grey / RGB with optional alpha."""
    notices: list[str] = []
    icc = im.info.get("icc_profile") or None
    keyed = im.mode in ("L", "RGB") and "transparency" in im.info
    im = _refuse_or_convert(im, path, notices)
    if im.mode == "CMYK":
        if fmt == "TIFF" and max(_as_tuple(im.tag_v2.get(258, (8,)))) == 16:  # type: ignore[attr-defined]
            notices.append("The 16-bit CMYK image was read at 8 bits per channel.")
        im, icc, notice = _cmyk_to_rgb(im, icc)
        notices.append(notice)
    mode = im.mode
    array = np.asarray(im)
    if mode in ("I", "I;16", "I;16L", "I;16B", "I;16N"):
        if array.dtype.kind == "i" and (array.min() < 0 or array.max() > 65535):
            raise InputImageError(_deep_samples(path, "integer"))
        return _Pixels(array.astype(np.uint16)[..., None], None, 16, icc, notices)
    if mode == "L":
        return _Pixels(array[..., None], None, 8, icc, notices)
    if mode == "LA":
        return _Pixels(array[..., :1].copy(), array[..., 1].copy(), 8, icc, notices)
    if mode == "RGB":
        return _Pixels(array, None, 8, icc, notices)
    if mode == "RGBA":
        return _Pixels(array[..., :3].copy(), array[..., 3].copy(), 8, icc, notices, keyed)
    raise InputImageError(
        f"{path} uses the {mode} colour mode, which artcloak does not support; "
        "convert it to RGB first."
    )


def _refuse_or_convert(im: Image.Image, path: Path, notices: list[str]) -> Image.Image:
    mode = im.mode
    if mode == "F":
        raise InputImageError(_deep_samples(path, "floating-point"))
    if mode == "I" and im.format != "PNG":
        raise InputImageError(_deep_samples(path, "integer"))
    if mode == "1":
        notices.append("The 1-bit black-and-white image was converted to 8-bit greyscale.")
        return im.convert("L")
    if mode in ("P", "PA"):
        transparent = _transparent(im)
        notices.append(
            "The palette (indexed-colour) image was converted to "
            + ("RGB with an alpha channel." if transparent else "RGB.")
        )
        return im.convert("RGBA" if transparent else "RGB")
    if mode in ("L", "RGB") and _transparent(im):
        notices.append("The image's transparent colour was turned into an alpha channel.")
        return im.convert(mode + "A")
    if mode in ("RGBa", "La"):
        notices.append("The premultiplied alpha was converted to straight alpha.")
        return im.convert(mode.upper())
    if mode in ("RGBX", "YCbCr"):
        return im.convert("RGB")
    return im


def _deep_samples(path: Path, kind: str) -> str:
    return (
        f"{path} holds 32-bit {kind} samples, which artcloak does not support; "
        "export it as an 8-bit or 16-bit image."
    )


def _cmyk_to_rgb(im: Image.Image, icc: bytes | None) -> tuple[Image.Image, None, str]:
    if icc and ImageCms is not None and _icc_space(icc) == "CMYK":
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            converted = ImageCms.profileToProfile(im, source, srgb, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            logger.info("could not convert CMYK with its profile", exc_info=True)
        else:
            if converted is not None:
                return (
                    converted,
                    None,
                    "CMYK image converted to RGB (sRGB) with its colour profile; "
                    "the CMYK colour profile was dropped.",
                )
    if icc:
        notice = "CMYK image converted to RGB; its CMYK colour profile was dropped."
        return im.convert("RGB"), None, notice
    return im.convert("RGB"), None, "CMYK image converted to RGB."


def _matching_icc(icc: bytes | None, greyscale: bool, path: Path) -> tuple[bytes | None, list]:
    if not icc:
        return None, []
    expected = "GRAY" if greyscale else "RGB"
    if _icc_space(icc) == expected:
        return icc, []
    logger.info("%s: colour profile space %r does not match the pixels", path, _icc_space(icc))
    return None, ["The image's colour profile did not match its pixels and was dropped."]
