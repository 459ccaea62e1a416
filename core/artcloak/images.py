"""Read and write artists' images without losing what matters to them.

Pixels come in upright (EXIF orientation applied) as float RGB in [0, 1]; bit depth, alpha,
colour profile, EXIF and text metadata travel alongside and are written back where the output
format can store them. Pillow reads the files and their metadata; 16-bit colour pixels, which
Pillow cannot hold, are decoded with OpenCV and written by the small PNG and TIFF writers here.
Writes are atomic: a file either appears complete at its path or not at all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image, ImageFile, PngImagePlugin, TiffImagePlugin, UnidentifiedImageError

from artcloak.atomic import atomic_write
from artcloak.errors import InputImageError, OutputError, SettingsError

try:  # Pillow is sometimes built without LittleCMS
    from PIL import ImageCms
except ImportError:  # pragma: no cover
    ImageCms = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
MAX_PIXELS: int = 120_000_000
MIN_SIDE = 32

XMP_KEY = "XML:com.adobe.xmp"
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP"}
_FORMAT_LIST = "PNG, JPEG, WebP, TIFF or BMP"
_EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}
# Pillow format name -> ours. MPO is how Pillow names camera JPEGs with extra (preview) images.
_PILLOW_FORMATS = {
    "PNG": "PNG",
    "JPEG": "JPEG",
    "MPO": "JPEG",
    "WEBP": "WEBP",
    "TIFF": "TIFF",
    "BMP": "BMP",
}
_RAW_PROFILE_KEYS = ("Raw profile type exif", "Raw profile type APP1")
_EXIF_PREFIX = b"Exif\x00\x00"
_EXIF_IFD, _GPS_IFD, _INTEROP_IFD, _ORIENTATION = 0x8769, 0x8825, 0xA005, 0x0112
# Descriptive IFD0 tags worth carrying between a TIFF's own tags and EXIF (never layout tags).
_EXIF_IFD0_TAGS = frozenset(
    {270, 271, 272, 274, 305, 306, 315, 33432, 0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F}
)
# Magic numbers of formats people may try, so the refusal can name them.
_OTHER_MAGIC = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"8BPS", "Photoshop (PSD)"),
    (b"\x00\x00\x01\x00", "ICO (icon)"),
    (b"\x00\x00\x02\x00", "CUR (cursor)"),
    (b"%PDF", "PDF"),
    (b"gimp xcf", "GIMP (XCF)"),
    (b"CSFCHUNK", "Clip Studio Paint"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"qoif", "QOI"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "Radiance HDR"),
    (b"DDS ", "DDS"),
)
_FTYP_BRANDS = {b"avif": "AVIF", b"avis": "AVIF", b"heic": "HEIC", b"heix": "HEIC"}
_FTYP_BRANDS.update({b"mif1": "HEIF", b"msf1": "HEIF", b"hevc": "HEIC"})


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
        scaled = np.rint(self.rgb * np.float32(self.max_value))
        return np.clip(scaled, 0, self.max_value).astype(dtype)


@dataclass
class _Pixels:
    colour: np.ndarray  # H x W x 1 (grey) or H x W x 3, uint8 / uint16
    alpha: np.ndarray | None
    bit_depth: int
    icc: bytes | None
    notices: list[str]
    keyed_alpha: bool = False  # alpha made from a transparent colour (PNG tRNS)


# --------------------------------------------------------------------------- paths


def format_for_path(path: Path) -> str:
    """The output format for a file name, from its extension."""
    fmt = _EXTENSIONS.get(Path(path).suffix.lower())
    if fmt is None:
        raise OutputError(
            f"{path} has an extension artcloak cannot write; "
            "use .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp."
        )
    return fmt


def check_output_path(source: Path | None, output: Path, *, overwrite: bool) -> None:
    """Refuse an output that is the source, exists (unless overwrite), or cannot be made."""
    output = Path(output)
    if source is not None and _same_file(Path(source), output):
        raise OutputError(
            f"{output} is the original image itself; artcloak never overwrites originals, "
            "so choose another output name."
        )
    format_for_path(output)
    folder = output.parent
    if not folder.is_dir():
        raise OutputError(
            f"The folder {folder} does not exist; create it or choose another output folder."
        )
    if output.is_dir():
        raise OutputError(f"{output} is a folder; give a file name for the protected image.")
    if os.path.lexists(output) and not overwrite:
        raise OutputError(f"{output} already exists; choose another name or allow overwriting.")


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError, RuntimeError):
        if a.resolve() == b.resolve():
            return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


# --------------------------------------------------------------------------- loading


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
        with warnings.catch_warnings(record=True) as caught:
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
    """Name a TIFF layout that Pillow refused (e.g. floating point)."""
    with contextlib.suppress(Exception), path.open("rb") as f:
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
    frames = int(getattr(im, "n_frames", 1))
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
        transparent = mode == "PA" or "transparency" in im.info
        notices.append(
            "The palette (indexed-colour) image was converted to "
            + ("RGB with an alpha channel." if transparent else "RGB.")
        )
        return im.convert("RGBA" if transparent else "RGB")
    if mode in ("L", "RGB") and "transparency" in im.info:
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


def _icc_space(icc: bytes) -> str:
    return icc[16:20].decode("latin-1").strip() if len(icc) >= 20 else ""


def _matching_icc(icc: bytes | None, greyscale: bool, path: Path) -> tuple[bytes | None, list]:
    if not icc:
        return None, []
    expected = "GRAY" if greyscale else "RGB"
    if _icc_space(icc) == expected:
        return icc, []
    logger.info("%s: colour profile space %r does not match the pixels", path, _icc_space(icc))
    return None, ["The image's colour profile did not match its pixels and was dropped."]


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


# --------------------------------------------------------------------------- writing


@dataclass
class _Output:
    """What an encoder writes: samples ready for the format, and the metadata it keeps."""

    colour: np.ndarray  # H x W x C (C = 1, 2, 3 or 4 with alpha last), uint8 / uint16
    icc: bytes | None
    exif: bytes | None
    text: dict[str, str]
    dpi: tuple[float, float] | None
    quality: int


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
        raise OutputError(
            f"Cannot write {path}: JPEG cannot store transparency and this image has an "
            "alpha channel; save it as PNG or WebP instead."
        )
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
