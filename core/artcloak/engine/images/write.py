"""Write images atomically in the format the output path asks for, keeping their metadata."""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, PngImagePlugin

from artcloak.atomic import atomic_write
from artcloak.errors import ALLOW_REPLACING, OutputError, SettingsError

from .formats import (
    _FORMAT_ALIASES,
    _FORMAT_LIST,
    _FORMAT_NAMES,
    EXTENSIONS,
    SUPPORTED_FORMATS,
    XMP_KEY,
)
from .loaded import LoadedImage, _Output
from .metadata import _icc_space
from .png16 import _write_png16
from .read import has_transparency
from .tiff import _encode_tiff

# --------------------------------------------------------------------------- paths


def format_for_path(path: Path) -> str:
    """The output format for a file name, from its extension."""
    fmt = EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputError(
            f"{path} has an extension artcloak cannot write; "
            "use .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp."
        )
    return fmt


def check_output_path(
    source: Path | None, output: Path, *, overwrite: bool, format: str | None = None
) -> None:
    """Refuse an output that is the source, exists (unless overwrite), cannot be made (no
    folder, or one that cannot be written to), or cannot store the source (``format``: the
    output's, else its extension's)."""
    output = Path(output)
    if source is not None and _same_file(Path(source), output):
        raise OutputError(
            f"{output} is the original image itself; artcloak never overwrites originals, "
            "so choose another output name."
        )
    fmt = _normalise_format(format, output)
    if source is not None:
        check_output_fits(Path(source), fmt)
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(
            f"The folder {folder} does not exist; create it or choose another output folder."
        )
    if not os.access(folder, os.W_OK):  # a read-only disk or folder: say so before any work
        raise OutputError(
            f"The folder {folder} cannot be written to (a read-only disk, or no permission); "
            "choose another output folder."
        )
    if output.is_dir():
        raise OutputError(f"{output} is a folder; give a file name for the protected image.")
    if os.path.lexists(output) and not overwrite:
        raise OutputError(
            f"{output} already exists; choose another name, or allow replacing it.",
            named=(ALLOW_REPLACING,),
        )


def check_output_fits(source: Path, format: str) -> None:
    """Refuse, from the source's header alone (so before any work), an output ``format``
    ("jpeg", "JPG", "PNG", ...) that cannot store the image: transparency in a JPEG. A source
    that cannot be read passes here (loading it says why); ``write_image`` checks again."""
    fmt = format.upper()
    if _FORMAT_ALIASES.get(fmt, fmt) == "JPEG" and has_transparency(source):
        raise OutputError(_no_transparency(source))


def _no_transparency(image: Path | str) -> str:
    return f"{image} has transparency, which JPEG cannot store; write it as PNG or WebP instead."


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        if a.resolve() == b.resolve():
            return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------- writing


def write_image(
    path: str | Path,
    like: LoadedImage,
    colour: np.ndarray,
    *,
    format: str | None = None,
    quality: int = 95,
) -> list[str]:
    """Write ``colour`` (samples at like.bit_depth) with like's alpha and metadata, atomically.

    ``quality`` (1-100) applies to JPEG and WebP; WebP at 100 is written lossless.
    Returns notices about anything the format could not keep.
    """
    path = Path(path)
    fmt = _normalise_format(format, path)
    if not 1 <= int(quality) <= 100:
        raise SettingsError(f"The output quality must be between 1 and 100, not {quality}.")
    _check_samples(like, colour)
    if like.path is not None and _same_file(like.path, path):
        raise OutputError(
            f"{path} is the original image itself; artcloak never overwrites originals, "
            "so choose another output name."
        )
    if fmt == "JPEG" and like.alpha is not None:
        raise OutputError(_no_transparency(like.path or "The image"))
    notices: list[str] = []
    output = _prepare(like, colour, fmt, int(quality), notices)
    atomic_write(path, lambda f: _ENCODERS[fmt](f, output))
    return notices


def _normalise_format(format: str | None, path: Path) -> str:
    if format is None:
        return format_for_path(path)
    fmt = _FORMAT_ALIASES.get(format.upper(), format.upper())
    if fmt not in SUPPORTED_FORMATS:
        raise OutputError(f"Cannot write {path} as {format}; artcloak writes {_FORMAT_LIST} files.")
    return fmt


def _check_samples(like: LoadedImage, colour: np.ndarray) -> None:
    width, height = like.size
    dtype = np.uint16 if like.bit_depth == 16 else np.uint8
    if colour.shape != (height, width, 3) or colour.dtype != dtype:
        raise ValueError(
            f"colour must be {np.dtype(dtype).name} samples of shape {(height, width, 3)}, "
            f"got {colour.dtype} {colour.shape}"
        )


def _prepare(
    like: LoadedImage, colour: np.ndarray, fmt: str, quality: int, notices: list[str]
) -> _Output:
    samples, grey_as_rgb = _samples_for(like, colour, fmt, notices)
    name = _FORMAT_NAMES[fmt]
    icc, exif, text = like.icc_profile, like.exif, _text_for(fmt, like.text)
    lost = [_field_name(key) for key in like.text if key not in text]
    lost = [f"the text fields ({', '.join(lost)})"] if lost else []
    if icc and grey_as_rgb and _icc_space(icc) == "GRAY":
        icc = None
        notices.append(f"{name} has no greyscale mode, so the grey colour profile was left out.")
    if fmt == "JPEG":
        exif, text = _fit_jpeg_markers(exif, text, notices)
    if fmt == "BMP":
        lost = ["the colour profile"] * bool(icc) + ["the EXIF data"] * bool(exif) + lost
        icc = exif = None
    if lost:
        what = ", ".join(lost[:-1]) + " and " + lost[-1] if len(lost) > 1 else lost[0]
        plural = len(lost) > 1 or lost[0].startswith("the text")
        notices.append(
            f"{name} cannot store {what}; {'they were' if plural else 'it was'} left out."
        )
    return _Output(samples, icc, exif, text, like.dpi, quality)


def _samples_for(
    like: LoadedImage, colour: np.ndarray, fmt: str, notices: list[str]
) -> tuple[np.ndarray, bool]:
    """Samples laid out for the format (H x W x C, alpha last), and whether grey became RGB."""
    channels = colour[..., :1] if like.greyscale else colour
    alpha = like.alpha
    if like.bit_depth == 16 and fmt not in ("PNG", "TIFF"):
        channels, alpha = _to_8bit(channels), None if alpha is None else _to_8bit(alpha)
        notices.append(
            f"{_FORMAT_NAMES[fmt]} stores 8 bits per channel; "
            "the 16-bit image was written at 8 bits."
        )
    # WebP has no grey mode, BMP no grey+alpha, and 16-bit grey+alpha TIFFs are rarely readable
    # (neither Pillow nor OpenCV reads them): write those as RGB with equal channels.
    grey_as_rgb = like.greyscale and (
        fmt == "WEBP"
        or (alpha is not None and (fmt == "BMP" or (fmt, like.bit_depth) == ("TIFF", 16)))
    )
    if grey_as_rgb:
        channels = np.repeat(channels, 3, axis=2)
    if alpha is not None:
        channels = np.concatenate([channels, alpha[..., None]], axis=2)
    return np.ascontiguousarray(channels), grey_as_rgb


def _field_name(key: str) -> str:
    return "XMP" if key == XMP_KEY else key


def _to_8bit(samples: np.ndarray) -> np.ndarray:
    return ((samples.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _text_for(fmt: str, text: dict[str, str]) -> dict[str, str]:
    if fmt == "PNG":
        return {k: v for k, v in text.items() if _png_key(k)}
    keep = {"JPEG": (XMP_KEY, "Comment"), "WEBP": (XMP_KEY,), "TIFF": (XMP_KEY,)}.get(fmt, ())
    return {k: v for k, v in text.items() if k in keep}


def _png_key(key: str) -> bool:
    try:
        return 1 <= len(key.encode("latin-1")) <= 79
    except UnicodeEncodeError:
        return False


def _fit_jpeg_markers(
    exif: bytes | None, text: dict[str, str], notices: list[str]
) -> tuple[bytes | None, dict[str, str]]:
    if exif and len(exif) > 65533:
        notices.append("The EXIF data is too large for JPEG and was left out.")
        exif = None
    if XMP_KEY in text and len(text[XMP_KEY].encode("utf-8")) > 65502:
        text = {k: v for k, v in text.items() if k != XMP_KEY}
        notices.append("The XMP metadata is too large for JPEG and was left out.")
    return exif, text


# --------------------------------------------------------------------------- encoders


def _pillow_image(samples: np.ndarray) -> Image.Image:
    return Image.fromarray(samples[..., 0] if samples.shape[2] == 1 else samples)


def _encode_png(f: IO[bytes], out: _Output) -> None:
    if out.colour.dtype == np.uint16:
        _write_png16(f, out)
        return
    info = PngImagePlugin.PngInfo()
    for key, value in out.text.items():
        if key == XMP_KEY:
            info.add_itxt(key, value)
        else:
            info.add_text(key, value)
    params: dict[str, Any] = {"pnginfo": info}
    if out.icc:
        params["icc_profile"] = out.icc
    if out.exif:
        params["exif"] = out.exif
    if out.dpi:
        params["dpi"] = out.dpi
    _pillow_image(out.colour).save(f, "PNG", **params)


def _encode_jpeg(f: IO[bytes], out: _Output) -> None:
    params: dict[str, Any] = {"quality": out.quality, "subsampling": 0, "optimize": True}
    params.update(_common_params(out))
    if "Comment" in out.text:
        params["comment"] = out.text["Comment"]
    _pillow_image(out.colour).save(f, "JPEG", **params)


def _encode_webp(f: IO[bytes], out: _Output) -> None:
    params: dict[str, Any] = {"exact": True, "method": 4}
    if out.quality >= 100:
        params.update(lossless=True, quality=100)
    else:
        params.update(quality=out.quality, alpha_quality=100)
    params.update(_common_params(out))
    params.pop("dpi", None)
    _pillow_image(out.colour).save(f, "WEBP", **params)


def _common_params(out: _Output) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if out.icc:
        params["icc_profile"] = out.icc
    if out.exif:
        params["exif"] = out.exif
    if XMP_KEY in out.text:
        params["xmp"] = out.text[XMP_KEY].encode("utf-8")
    if out.dpi:
        params["dpi"] = out.dpi
    return params


def _encode_bmp(f: IO[bytes], out: _Output) -> None:
    if out.colour.shape[2] == 4:
        _write_bmp_rgba(f, out)
        return
    params = {"dpi": out.dpi} if out.dpi else {}
    _pillow_image(out.colour).save(f, "BMP", **params)


def _write_bmp_rgba(f: IO[bytes], out: _Output) -> None:
    """A 32-bit BMP with an alpha channel (BITMAPV4HEADER with bit-field masks)."""
    height, width, _ = out.colour.shape
    pixels = out.colour[::-1][..., [2, 1, 0, 3]].tobytes()  # bottom-up BGRA
    x, y = (round(d / 0.0254) for d in out.dpi) if out.dpi else (2835, 2835)
    header = struct.pack(
        "<IiiHHIIiiII4I4s36s12s",
        108,
        width,
        height,
        1,
        32,
        3,  # BI_BITFIELDS
        len(pixels),
        x,
        y,
        0,
        0,
        0x00FF0000,
        0x0000FF00,
        0x000000FF,
        0xFF000000,
        b"BGRs",  # LCS_sRGB
        b"",
        b"",
    )
    f.write(b"BM" + struct.pack("<IHHI", 14 + len(header) + len(pixels), 0, 0, 14 + len(header)))
    f.write(header)
    f.write(pixels)


_ENCODERS: dict[str, Callable[[IO[bytes], _Output], None]] = {
    "PNG": _encode_png,
    "JPEG": _encode_jpeg,
    "WEBP": _encode_webp,
    "TIFF": _encode_tiff,
    "BMP": _encode_bmp,
}
