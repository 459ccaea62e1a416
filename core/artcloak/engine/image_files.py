"""Image files in a run: outputs checked, inputs read, each protected image written
atomically with its report (``run.Run`` drives them).

Each file ends with exactly one written output plus its report, or one failure with a
reason; a bad file never stops the others, and the original is never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtcloakError, InputImageError, Named, say
from ..report import report_path, settings_section, stamp, write_json
from ..results import ImageFacts, Report
from ..settings import OUTPUT_SUFFIXES, FileRequest, Mode, OutputSettings, ProtectionSettings
from .as_written import measure_as_written
from .images import (
    LOSSLESS_EXTENSIONS,
    LOSSY_FORMATS,
    LoadedImage,
    check_output_path,
    format_for_path,
    load_image,
    write_image,
)
from .protect import Engine, Failed, ImageResult
from .targets import describe_target

log = logging.getLogger(__name__)

SUFFIXES = OUTPUT_SUFFIXES


@dataclass
class FileOutcome:
    request: FileRequest
    ok: bool
    message: str = ""
    report: Report | None = None
    notices: list[str] = field(default_factory=list)
    named: tuple[Named, ...] = ()  # the settings ``message`` names (errors.Named)

    @classmethod
    def refused(cls, request: FileRequest, error: ArtcloakError) -> FileOutcome:
        return cls(request, ok=False, message=str(error), named=error.named)

    def said(self, names: Mapping[str, str]) -> str:
        """The message in a host's own terms for the settings it names."""
        return say(self.message, self.named, names)


def default_output(
    source: Path, mode: Mode, folder: Path | None = None, extension: str | None = None
) -> Path:
    """``art.png`` -> ``art-cloaked.png`` beside it (or in ``folder``); lossy inputs -> PNG."""
    if extension is None:
        extension = (
            source.suffix.lower() if source.suffix.lower() in LOSSLESS_EXTENSIONS else ".png"
        )
    name = f"{source.stem}-{SUFFIXES[mode]}{extension}"
    return (folder or source.parent) / name


def refuse_output(request: FileRequest, output: OutputSettings) -> FileOutcome | None:
    """A failed outcome for an output that cannot be written (checked without reading pixels),
    else None."""
    try:
        check_output_path(request.source, request.output, overwrite=output.overwrite,
                          format=output.format)  # fmt: skip
    except ArtcloakError as error:
        return FileOutcome.refused(request, error)
    return None


@dataclass
class ReadFile:
    """An input read and checked, ready to protect."""

    request: FileRequest
    image: LoadedImage
    free: np.ndarray | None = None  # bool H x W, True where change is allowed


def read_file(request: FileRequest, output: OutputSettings) -> ReadFile | FileOutcome:
    """Check the output path (and that its format can store the image) and read the image (and
    its keep mask); a failed outcome for a file that cannot be used."""
    try:
        check_output_path(request.source, request.output, overwrite=output.overwrite,
                          format=output.format)  # fmt: skip
        image = load_image(request.source)
        mask = request.keep_mask
        free = None if mask is None else ~load_keep_mask(mask, image.size)
    except ArtcloakError as error:
        return FileOutcome.refused(request, error)
    return ReadFile(request, image, free)


def load_keep_mask(path: Path, size: tuple[int, int]) -> np.ndarray:
    """Bool H x W, True where the mask is light (those pixels are left bit-exact)."""
    mask = load_image(path)
    if mask.size != size:
        raise InputImageError(
            f"The keep mask {path} is {mask.size[0]}x{mask.size[1]} but the image is "
            f"{size[0]}x{size[1]}; they must be the same size."
        )
    return mask.rgb.mean(axis=2) > 0.5


def finish(
    engine: Engine,
    request: FileRequest,
    image: LoadedImage,
    result: ImageResult | Failed,
    settings: ProtectionSettings,
    output: OutputSettings,
    sections: dict | None = None,
) -> FileOutcome:
    """Write the protected image and its report (with extra ``sections``), or record the
    failure. An output whose report cannot be written is removed: never one without the other."""
    if isinstance(result, Failed):
        return FileOutcome(request, ok=False, message=result.message)
    try:
        notices = write_image(
            request.output, image, result.colour, format=output.format, quality=output.jpeg_quality
        )
    except ArtcloakError as error:
        return FileOutcome.refused(request, error)
    try:
        report = build_report(engine, request, image, result, settings)
        report.notices = image.notices + notices
        report.sections = sections or {}
        if report.output_format in LOSSY_FORMATS:
            over = measure_as_written(engine, report, request.output, image, settings)
            report.notices += [over] if over else []
        if output.write_report:
            write_json(report_path(request.output), report.as_dict())
    except ArtcloakError as error:
        with contextlib.suppress(OSError):
            request.output.unlink()
        return FileOutcome.refused(request, error)
    return FileOutcome(request, ok=True, report=report, notices=report.notices)


def build_report(
    engine: Engine,
    request: FileRequest,
    image: LoadedImage,
    result: ImageResult,
    settings: ProtectionSettings,
) -> Report:
    width, height = image.size
    return Report(
        **stamp(),
        source=str(request.source),
        output=str(request.output),
        output_format=format_for_path(request.output),
        image=ImageFacts(width, height, image.bit_depth),
        target=describe_target(settings.target, settings.mode),
        settings=settings_section(settings),
        models=engine.describe(),
        keep_mask=None if request.keep_mask is None else str(request.keep_mask),
        working_size=list(result.working_size),
        measured=result.measured,
        latent=result.latent,
        encoder_passes=result.encoder_passes,
        seconds=round(result.seconds, 3),
    )
