"""Read and write artists' images without losing what matters to them.

Pixels come in upright (EXIF orientation applied) as float RGB in [0, 1]; bit depth, alpha,
colour profile, EXIF and text metadata travel alongside and are written back where the output
format can store them. Pillow reads the files and their metadata; 16-bit colour pixels, which
Pillow cannot hold, are decoded with OpenCV and written by the small PNG and TIFF writers here.
Writes are atomic: a file either appears complete at its path or not at all.
"""

from .formats import (
    FORMAT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    LOSSLESS_EXTENSIONS,
    LOSSY_FORMATS,
    MIN_SIDE,
    SUPPORTED_FORMATS,
    XMP_KEY,
)
from .loaded import LoadedImage
from .read import MAX_PIXELS, has_transparency, load_image
from .write import check_output_fits, check_output_path, format_for_path, write_image

__all__ = [
    "FORMAT_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "LOSSLESS_EXTENSIONS",
    "LOSSY_FORMATS",
    "MAX_PIXELS",
    "MIN_SIDE",
    "SUPPORTED_FORMATS",
    "XMP_KEY",
    "LoadedImage",
    "check_output_fits",
    "check_output_path",
    "format_for_path",
    "has_transparency",
    "load_image",
    "write_image",
]
