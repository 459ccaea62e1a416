"""The Krita document side: which documents can be protected, and the flattened image
written losslessly to a temporary PNG through Krita's own exporter. Nothing here changes
the document.
"""

from __future__ import annotations

import os
import shutil

from . import client
from .client import PluginError

SUPPORTED_DEPTHS = {"U8": "8-bit integer", "U16": "16-bit integer"}
MODEL_NAMES = {
    "RGBA": "RGB/Alpha",
    "CMYKA": "CMYK/Alpha",
    "GRAYA": "Grayscale/Alpha",
    "LABA": "L*a*b*/Alpha",
    "XYZA": "XYZ/Alpha",
    "YCbCrA": "YCbCr/Alpha",
}
DEPTH_NAMES = {**SUPPORTED_DEPTHS, "F16": "16-bit float", "F32": "32-bit float"}
TEMP_PREFIX = "artcloak-krita-"


def check_document(document) -> None:
    """Refuse, with what to do about it, anything but RGB/Alpha 8- or 16-bit integer."""
    if document is None:
        raise PluginError("Open the image to protect first: there is no active document.")
    model, depth = document.colorModel(), document.colorDepth()
    if model == "RGBA" and depth in SUPPORTED_DEPTHS:
        if document.width() <= 0 or document.height() <= 0:
            raise PluginError("The document is empty.")
        return
    have = f"{MODEL_NAMES.get(model, model)}, {DEPTH_NAMES.get(depth, depth)}"
    raise PluginError(
        f"artcloak protects RGB/Alpha images of 8-bit or 16-bit integer depth; this document "
        f"is {have}. Convert a copy with Image > Convert Image Color Space… to RGB/Alpha, "
        "8-bit or 16-bit integer (then undo, or close the copy, after exporting)."
    )


def png_options(info_object_class):
    """Lossless PNG with alpha, no metadata of Krita's own, the colour profile kept."""
    info = info_object_class()
    for name, value in (
        ("alpha", True),
        ("compression", 1),  # zlib level: fast; PNG is lossless at every level
        ("indexed", False),
        ("interlaced", False),
        ("forceSRGB", False),
        ("saveSRGBProfile", False),
        ("storeMetaData", False),
        ("storeAuthor", False),
    ):
        info.setProperty(name, value)
    return info


def make_temp_folder() -> str:
    return client.private_temp_folder(TEMP_PREFIX)


def remove_temp_folder(folder: str | None) -> None:
    if folder:
        shutil.rmtree(folder, ignore_errors=True)


def export_flattened(document, folder: str, info_object_class) -> str:
    """Write the visible layers of ``document``, flattened, with alpha, to ``folder``/input.png.

    Krita's exporter works on a copy of the image projection: the document, its layers,
    file name and modified flag are left alone. Batch mode keeps the PNG options dialog
    from opening; the previous mode is restored.
    """
    path = os.path.join(folder, "input.png")
    document.waitForDone()
    batch = document.batchmode()
    document.setBatchmode(True)
    try:
        ok = document.exportImage(path, png_options(info_object_class))
    finally:
        document.setBatchmode(batch)
    if not ok or not os.path.isfile(path) or os.path.getsize(path) == 0:
        raise PluginError(
            "Krita could not export the image to a temporary PNG file "
            f"({folder}); check the free disk space and try again."
        )
    return path


def export_to_temp(document, info_object_class) -> tuple[str, str]:
    """A new temporary folder and the flattened PNG in it; on failure nothing is left."""
    folder = make_temp_folder()
    try:
        return folder, export_flattened(document, folder, info_object_class)
    except BaseException:
        remove_temp_folder(folder)
        raise
