"""One protection run: the seam every host shares (CLI, worker, app, batch, ComfyUI).

A ``Run`` is what the user asked for, checked: its settings and target are checked once, when
it is made, before any model loads, so a host refuses bad input by making its run. It then
makes the target concrete once, when the first usable image needs it (models load then), and
protects images in memory (``protect_images``) or files on disk (``protect_files``). The engine
(the loaded models) is given to each call, so a run can be made, and refused, before there is one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ArtcloakError
from ..progress import SILENT, Listener, ProgressEvent
from ..settings import FileRequest, OutputSettings, ProtectionSettings
from .image_files import FileOutcome, ReadFile, finish, read_file, refuse_output
from .jobs import Failed, ImageJob, ImageResult, check_originals
from .protect import Engine
from .targets import check_target


class Run:
    """The settings a host asked for, checked once; ``sources``: the run's files (for targets
    chosen per run, ``--style auto``)."""

    def __init__(self, settings: ProtectionSettings, sources: Sequence[Path] = ()) -> None:
        settings.check()
        check_target(settings.target, settings.mode)
        self.asked = settings
        self.sources = list(sources)
        self._resolved: tuple[Engine, ProtectionSettings] | None = None

    def with_sources(self, sources: Sequence[Path]) -> Run:
        """This run (not checked again) over ``sources``, its target not yet made concrete."""
        other = copy.copy(self)
        other.sources, other._resolved = list(sources), None
        return other

    def resolve(self, engine: Engine, listener: Listener = SILENT) -> ProtectionSettings:
        """The settings with the run's target made concrete (concept anchors generated, the
        auto style chosen, or the textures when no diffusion model can be had), once per
        engine; loads the models, saying "load" to ``listener`` when they load now."""
        if self._resolved is None or self._resolved[0] is not engine:
            listener.emit(ProgressEvent("load", 0, 1, message="Loading models"))
            self._resolved = engine, engine.prepare_run(self.asked, self.sources)
        return self._resolved[1]

    def protect_images(
        self, engine: Engine, jobs: Sequence[ImageJob], listener: Listener = SILENT
    ) -> list[ImageResult | Failed]:
        """Protect images in memory; results in the same order, a Failed for each one that
        could not be. A job's own target (``ImageJob.target``) is checked here."""
        check_originals(jobs)
        for target in {id(job.target): job.target for job in jobs if job.target}.values():
            check_target(target, self.asked.mode)
        settings = self.resolve(engine, listener)
        return engine.protect_checked(jobs, settings, listener)

    def protect_files(
        self,
        engine: Engine,
        files: Sequence[ReadFile | FileOutcome],
        output: OutputSettings,
        listener: Listener = SILENT,
        report_sections: Callable[[ReadFile], dict] | None = None,
    ) -> list[FileOutcome]:
        """Protect files read with ``read_file``, writing each output and its report; outcomes
        in the order of ``files`` (``report_sections`` adds sections to a report). Models load
        here, and only when some file is usable."""
        if not any(isinstance(entry, ReadFile) for entry in files):
            return [entry for entry in files if isinstance(entry, FileOutcome)]
        settings = self.resolve(engine, listener)
        jobs: dict[int, tuple[ReadFile, ImageJob]] = {}
        outcomes: dict[int, FileOutcome] = {}
        for index, entry in enumerate(files):
            if isinstance(entry, FileOutcome):
                outcomes[index] = entry
                continue
            try:
                jobs[index] = entry, file_job(engine, entry, settings)
            except ArtcloakError as error:
                outcomes[index] = FileOutcome.refused(entry.request, error)
        results = engine.protect_checked([job for _, job in jobs.values()], settings, listener)
        for (index, (read, job)), result in zip(jobs.items(), results, strict=True):
            sections = report_sections(read) if report_sections else {}
            outcomes[index] = finish(engine, read.request, read.image, result,
                                     job.settings(settings), output, sections)  # fmt: skip
        return [outcomes[index] for index in range(len(files))]


def file_job(engine: Engine, entry: ReadFile, settings: ProtectionSettings) -> ImageJob:
    """The in-memory job for a file read, with its own target where the run asks for one."""
    image = entry.image
    job = ImageJob(name=str(entry.request.source), colour=image.colour_samples(),
                   max_value=image.max_value, free=entry.free, grey=image.greyscale)  # fmt: skip
    job.target = engine.image_target(settings, job.colour, job.max_value)
    return job


def protect_files(
    engine: Engine,
    requests: Sequence[FileRequest],
    run: Run,
    output: OutputSettings | None = None,
    listener: Listener = SILENT,
) -> list[FileOutcome]:
    """``run`` over files: each file protected, written and reported; outcomes in request
    order. Cancelled propagates.

    Every output is checked first (path, and whether its format can store the image, from the
    file's header), so an output that cannot be written is refused before any model loads;
    each chunk's files are then read before anything is loaded for them, so a run whose
    inputs are all unusable says so without loading a model."""
    output = output or OutputSettings()
    outcomes = {index: refused for index, request in enumerate(requests)
                if (refused := refuse_output(request, output)) is not None}  # fmt: skip
    todo = [index for index in range(len(requests)) if index not in outcomes]
    run = run.with_sources([requests[index].source for index in todo])
    size = engine.batch_size
    for start in range(0, len(todo), size):
        chunk = [requests[index] for index in todo[start : start + size]]
        listener.emit(ProgressEvent("file", todo[start] + 1, len(requests),
                                    message=str(chunk[0].source)))  # fmt: skip
        read = [read_file(request, output) for request in chunk]
        done = run.protect_files(engine, read, output, listener)
        outcomes.update(zip(todo[start : start + size], done, strict=True))
    return [outcomes[index] for index in range(len(requests))]
