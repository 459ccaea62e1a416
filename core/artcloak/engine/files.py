"""Protect image files: load, protect in batches, guarantee, write atomically, report.

Each file ends with exactly one written output plus its report, or one failure with a
reason; a bad file never stops the others, and the original is never touched.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtcloakError, InputImageError
from ..progress import SILENT, Listener, ProgressEvent
from ..report import report_path, settings_section, stamp, write_json
from ..settings import FileRequest, Mode, OutputSettings, ProtectionSettings
from .images import LoadedImage, check_output_path, format_for_path, load_image, write_image
from .protect import Engine, Failed, ImageJob, Protected
from .targets import check_target, describe_target
from .targets.resolve import image_target, resolve_run_target

log = logging.getLogger(__name__)

LOSSLESS_FORMATS = {".png": "PNG", ".tif": "TIFF", ".tiff": "TIFF", ".bmp": "BMP"}
LOSSY_FORMATS = ("JPEG", "WEBP")
SUFFIXES = {Mode.CLOAK: "cloaked", Mode.SHADE: "shaded"}


@dataclass
class FileOutcome:
    request: FileRequest
    ok: bool
    message: str = ""
    report: dict | None = None
    notices: list[str] = field(default_factory=list)


def default_output(
    source: Path, mode: Mode, folder: Path | None = None, extension: str | None = None
) -> Path:
    """``art.png`` -> ``art-cloaked.png`` beside it (or in ``folder``); lossy inputs -> PNG."""
    if extension is None:
        extension = source.suffix.lower() if source.suffix.lower() in LOSSLESS_FORMATS else ".png"
    name = f"{source.stem}-{SUFFIXES[mode]}{extension}"
    return (folder or source.parent) / name


def protect_files(
    engine: Engine,
    requests: Sequence[FileRequest],
    settings: ProtectionSettings,
    output: OutputSettings | None = None,
    listener: Listener = SILENT,
) -> list[FileOutcome]:
    """Protect each file; outcomes in request order. Cancelled propagates."""
    output = output or OutputSettings()
    if not settings.target.concept:  # a concept's anchors are generated first, then checked
        settings.check()
    check_target(settings.target, settings.mode)
    engine.load_models()
    settings = resolve_run_target(engine, settings, [request.source for request in requests])
    settings.check()
    outcomes: list[FileOutcome] = []
    size = engine.batch_size
    for start in range(0, len(requests), size):
        chunk = requests[start : start + size]
        listener.emit(ProgressEvent("file", start + 1, len(requests), message=str(chunk[0].source)))
        outcomes.extend(_protect_chunk(engine, chunk, settings, output, listener))
    return outcomes


def _protect_chunk(engine, requests, settings, output, listener) -> list[FileOutcome]:
    prepared: list[tuple[int, LoadedImage, ImageJob]] = []
    outcomes: dict[int, FileOutcome] = {}
    for index, request in enumerate(requests):
        try:
            image, job = prepare(request, output)
            job.target = image_target(engine, settings, job.colour, job.max_value)
            prepared.append((index, image, job))
        except ArtcloakError as error:
            outcomes[index] = FileOutcome(request, ok=False, message=str(error))
    results = engine.protect([job for _, _, job in prepared], settings, listener)
    for (index, image, job), result in zip(prepared, results, strict=True):
        outcomes[index] = finish(engine, requests[index], image, result, job.settings(settings),
                                 output)  # fmt: skip
    return [outcomes[index] for index in range(len(requests))]


def prepare(request: FileRequest, output: OutputSettings) -> tuple[LoadedImage, ImageJob]:
    """Check the output path and read the image (and its keep mask) into a job."""
    check_output_path(request.source, request.output, overwrite=output.overwrite)
    image = load_image(request.source)
    free = None if request.keep_mask is None else ~load_keep_mask(request.keep_mask, image.size)
    job = ImageJob(
        name=str(request.source),
        colour=image.colour_samples(),
        max_value=image.max_value,
        free=free,
        grey=image.greyscale,
    )
    return image, job


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
    result: Protected | Failed,
    settings: ProtectionSettings,
    output: OutputSettings,
) -> FileOutcome:
    """Write the protected image and its report, or record the failure."""
    if isinstance(result, Failed):
        return FileOutcome(request, ok=False, message=result.message)
    try:
        notices = write_image(
            request.output, image, result.colour, format=output.format, quality=output.jpeg_quality
        )
        report = build_report(engine, request, image, result, settings)
        report["notices"] = image.notices + notices
        if report["output_format"] in LOSSY_FORMATS:
            report["after_reencoding"] = reencoding_cost(engine, request.output, image, settings)
        if output.write_report:
            write_json(report_path(request.output), report)
    except ArtcloakError as error:
        return FileOutcome(request, ok=False, message=str(error))
    return FileOutcome(request, ok=True, report=report, notices=report["notices"])


def build_report(
    engine: Engine,
    request: FileRequest,
    image: LoadedImage,
    result: Protected,
    settings: ProtectionSettings,
) -> dict:
    width, height = image.size
    return {
        **stamp(),
        "source": str(request.source),
        "output": str(request.output),
        "output_format": format_for_path(request.output),
        "image": {"width": width, "height": height, "bit_depth": image.bit_depth},
        "target": describe_target(settings.target, settings.mode),
        "settings": settings_section(settings),
        "models": engine.describe(),
        "keep_mask": None if request.keep_mask is None else str(request.keep_mask),
        "working_size": list(result.working_size),
        "measured": {
            **result.measured.as_dict(),
            "within_budget": result.measured.within(settings.budget()),
            "perturbation_kept": round(result.scale, 4),
        },
        "latent": result.latent,
        "encoder_passes": result.encoder_passes,
        "seconds": round(result.seconds, 3),
    }


def reencoding_cost(engine: Engine, written: Path, image: LoadedImage, settings) -> list[dict]:
    """The latent figures of the file as written (after lossy re-encoding)."""
    reread = load_image(written)
    return engine.latent_figures(image.rgb, reread.rgb, 1, settings)
