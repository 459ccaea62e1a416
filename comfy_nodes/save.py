"""artcloak Save Protected: PNGs that say nothing about how they were made.

ComfyUI's Save Image writes the whole workflow into every PNG (the ``prompt`` and
``workflow`` text chunks): for a protected image that is the node ``artcloak.Cloak``, its
settings and seed, and the input image's name: everything a scraper needs to skip the file
or to undo the protection. This node writes the 8-bit samples the budget was measured on,
and no text, time, profile or other chunk at all. Files go into ComfyUI's output folder,
named as Save Image names them (``folder_paths.get_save_image_path``), each written to a
temporary file, flushed, and then given its name in one step that fails if the name is
taken: a reader never sees half a file, and no existing file is ever replaced.
"""

from __future__ import annotations

import contextlib
import errno
import io as bytes_io
import json
import os
import tempfile
from pathlib import Path

import numpy as np
from artcloak.errors import OutputError, SettingsError
from comfy_api.latest import io
from PIL import Image

from . import convert
from .plumbing import CATEGORY

DEFAULT_PREFIX = "artwork"
COMPRESS_LEVEL = 4  # as ComfyUI's Save Image
_NO_LINKS = (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)

SAVE_TOOLTIP = (
    "Saves PNGs with no metadata at all. ComfyUI's Save Image writes the workflow into every "
    "PNG (artcloak's node, settings, seed and input names): that tells a scraper the image "
    "is protected and how. (ComfyUI's --disable-metadata switches that off for every node.)"
)


def png_bytes(samples: np.ndarray, grey: bool = False) -> bytes:
    """uint8 H x W x 3 samples -> a PNG with the image chunks only (IHDR, IDAT, IEND)."""
    picture = Image.fromarray(np.ascontiguousarray(samples[..., 0] if grey else samples))
    buffer = bytes_io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=COMPRESS_LEVEL)
    return buffer.getvalue()


def write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` as a new file at ``path``, atomically: a temporary file beside it,
    flushed to disk, then linked to ``path``, which fails if ``path`` exists. Returns False
    (and writes nothing) when ``path`` is taken. Where the folder allows no hard links, the
    name is claimed first (exclusive create) and the finished file renamed over the claim."""
    temp = None
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return False
            os.replace(temp, path)
            temp = None
        return True
    except OSError as error:
        raise OutputError(
            f"Could not write {path}: {error.strerror or error}; check ComfyUI's output folder."
        ) from error
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)


def _save_numbered(
    folder: Path, name: str, counter: int, suffix: str, data: bytes
) -> tuple[str, int]:
    """``{name}_{counter:05}_{suffix}`` with the first free counter from ``counter`` on."""
    for _ in range(100_000):
        filename = f"{name}_{counter:05}_{suffix}"
        if not os.path.lexists(folder / filename) and write_new(folder / filename, data):
            return filename, counter
        counter += 1
    raise OutputError(f"No free file name for {name} in {folder}; choose another filename_prefix.")


def _report_text(report: str, files: list[str]) -> str:
    """The report, with the names of the files it is about when it is artcloak's JSON."""
    try:
        parsed = json.loads(report)
    except ValueError:
        return report
    if not isinstance(parsed, dict):
        return report
    return json.dumps({"saved_as": files, **parsed}, indent=2) + "\n"


class SaveProtected(io.ComfyNode):
    """Save protected images as metadata-free PNGs; the report only when asked for."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.SaveProtected",
            display_name="artcloak Save Protected",
            category=CATEGORY,
            description=SAVE_TOOLTIP + " Files are never overwritten.",
            is_output_node=True,
            inputs=[
                io.Image.Input(
                    "images",
                    tooltip="The protected image(s) (artcloak Cloak or Shade), saved as the "
                    "8-bit samples the budget was measured on.",
                ),
                io.String.Input(
                    "filename_prefix", default=DEFAULT_PREFIX,
                    tooltip="Files are <prefix>_00001_.png in ComfyUI's output folder (a "
                    "subfolder may lead: 'portfolio/artwork'). The name is posted with the "
                    "file: keep 'artcloak' and 'protected' out of it.",
                ),
                io.Boolean.Input(
                    "save_report", default=False, optional=True,
                    tooltip="Also save the connected report as <file>.json beside the first "
                    "PNG. Off by default: the report (settings, seed, models) is for you, "
                    "never for posting, and it is never put inside the image.",
                ),
                io.String.Input(
                    "report", optional=True, force_input=True,
                    tooltip="artcloak Cloak's or Shade's report, saved only when save_report "
                    "is on.",
                ),
            ],
            outputs=[],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, images, filename_prefix=DEFAULT_PREFIX, save_report=False, report=None
    ) -> io.NodeOutput:
        import folder_paths  # ComfyUI's: its output folder and Save Image's naming

        if save_report and not (report or "").strip():
            raise SettingsError(
                "save_report is on but no report is connected: connect artcloak Cloak's or "
                "Shade's report output, or turn save_report off."
            )
        samples, grey = convert.to_samples(images, "image")
        height, width = samples[0].shape[:2]
        output = folder_paths.get_output_directory()
        folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
            filename_prefix, output, width, height
        )
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        saved = []
        for number, sample in enumerate(samples):
            numbered = name.replace("%batch_num%", str(number))
            filename, counter = _save_numbered(
                folder, numbered, counter, ".png", png_bytes(sample, grey)
            )
            saved.append({"filename": filename, "subfolder": subfolder, "type": "output"})
            counter += 1
        if save_report:
            files = [item["filename"] for item in saved]
            data = _report_text(report, files).encode("utf-8")
            stem = Path(files[0]).stem
            if not write_new(folder / f"{stem}.json", data):  # taken: the next free name
                _save_numbered(folder, f"{stem}report", 1, ".json", data)
        return io.NodeOutput(ui={"images": saved})


NODES: list[type[io.ComfyNode]] = [SaveProtected]
