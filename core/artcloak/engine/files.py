"""Protect image files: load, protect in batches, guarantee, write atomically, report.

Each file ends with exactly one written output plus its report, or one failure with a
reason; a bad file never stops the others, and the original is never touched.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ArtcloakError, InputImageError, Named, say
from ..progress import SILENT, Listener, ProgressEvent
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
from .protect import Engine, Failed, ImageJob, Protected
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


def protect_files(
    engine: Engine,
    requests: Sequence[FileRequest],
    settings: ProtectionSettings,
    output: OutputSettings | None = None,
    listener: Listener = SILENT,
) -> list[FileOutcome]:
    """Protect each file; outcomes in request order. Cancelled propagates.

    Every output is checked first (path, and whether its format can store the image, from the
    file's header), so an output that cannot be written is refused before any model loads;
    each chunk's files are then read before anything is loaded for them, so a run whose inputs
    are all unusable says so without loading a model."""
    output = output or OutputSettings()
    outcomes = {index: refused for index, request in enumerate(requests)
                if (refused := refuse_output(request, output)) is not None}  # fmt: skip
    todo = [index for index in range(len(requests)) if index not in outcomes]
    run = FileRun(engine, settings, [requests[index].source for index in todo])
    size = engine.batch_size
    for start in range(0, len(todo), size):
        chunk = [requests[index] for index in todo[start : start + size]]
        listener.emit(ProgressEvent("file", todo[start] + 1, len(requests),
                                    message=str(chunk[0].source)))  # fmt: skip
        done = run.protect([read_file(request, output) for request in chunk], output, listener)
        outcomes.update(zip(todo[start : start + size], done, strict=True))
    return [outcomes[index] for index in range(len(requests))]


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


class FileRun:
    """One run over files, the seam every file host shares (CLI, worker, app, batch): the
    run's target is made concrete once, when the first usable file needs it (models load
    then), and each chunk of read files is protected, written and reported."""

    def __init__(
        self, engine: Engine, settings: ProtectionSettings, sources: Sequence[Path] = ()
    ) -> None:
        engine.check_settings(settings)
        self.engine = engine
        self._asked = settings
        self._sources = list(sources)
        self._settings: ProtectionSettings | None = None

    @property
    def settings(self) -> ProtectionSettings:
        """The run's settings with their target resolved (loads the models on first use)."""
        return self.resolve()

    def resolve(self, listener: Listener = SILENT) -> ProtectionSettings:
        """``settings``, saying "load" to ``listener`` when the models load now."""
        if self._settings is None:
            listener.emit(ProgressEvent("load", 0, 1, message="Loading models"))
            self._settings = self.engine.prepare_run(self._asked, self._sources)
        return self._settings

    def protect(
        self,
        files: Sequence[ReadFile | FileOutcome],
        output: OutputSettings,
        listener: Listener = SILENT,
        report_sections: Callable[[ReadFile], dict] | None = None,
    ) -> list[FileOutcome]:
        """Outcomes in the order of ``files``; ``report_sections`` adds sections to a report.
        Models load here, and only when some file is usable."""
        if not any(isinstance(entry, ReadFile) for entry in files):
            return [entry for entry in files if isinstance(entry, FileOutcome)]
        settings = self.resolve(listener)
        jobs: list[tuple[ReadFile, ImageJob]] = []
        outcomes: dict[int, FileOutcome] = {}
        for index, entry in enumerate(files):
            if isinstance(entry, FileOutcome):
                outcomes[index] = entry
                continue
            try:
                jobs.append((entry, self._job(entry, settings)))
            except ArtcloakError as error:
                outcomes[index] = FileOutcome.refused(entry.request, error)
        results = self.engine.protect([job for _, job in jobs], settings, listener) if jobs else []
        done = iter(zip(jobs, results, strict=True))
        for index in range(len(files)):
            if index not in outcomes:
                (read, job), result = next(done)
                sections = report_sections(read) if report_sections else {}
                outcomes[index] = finish(self.engine, read.request, read.image, result,
                                         job.settings(settings), output, sections)  # fmt: skip
        return [outcomes[index] for index in range(len(files))]

    def _job(self, entry: ReadFile, settings: ProtectionSettings) -> ImageJob:
        image = entry.image
        job = ImageJob(name=str(entry.request.source), colour=image.colour_samples(),
                       max_value=image.max_value, free=entry.free, grey=image.greyscale)  # fmt: skip
        job.target = self.engine.image_target(settings, job.colour, job.max_value)
        return job


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
    result: Protected,
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
        measured={
            **result.measured.as_dict(),
            "within_budget": result.measured.within(settings.budget()),
            "perturbation_kept": round(result.scale, 4),
        },
        latent=result.latent,
        encoder_passes=result.encoder_passes,
        seconds=round(result.seconds, 3),
    )
