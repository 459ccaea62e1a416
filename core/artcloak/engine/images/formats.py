"""The image formats artcloak reads and writes, and the magic numbers of those it refuses."""

from __future__ import annotations

SUPPORTED_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
MIN_SIDE = 32

XMP_KEY = "XML:com.adobe.xmp"
_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP"}
_FORMAT_LIST = "PNG, JPEG, WebP, TIFF or BMP"


def display_name(fmt: str) -> str:
    """How people write a format's name (WebP, not WEBP)."""
    return _FORMAT_NAMES.get(fmt, fmt)


# The one table of file extensions: what each reads as, what each format is written as.
EXTENSIONS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".bmp": "BMP",
}
IMAGE_EXTENSIONS = frozenset(EXTENSIONS)
LOSSY_FORMATS = ("JPEG", "WEBP")
LOSSLESS_EXTENSIONS = frozenset(ext for ext, fmt in EXTENSIONS.items() if fmt not in LOSSY_FORMATS)
# --format choices -> the extension written
FORMAT_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
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
