"""Jobs: a queue and one worker thread per device, so the page stays responsive.

The queue is fair between page sessions (``owner``): the worker takes the waiting job of the
session that has had the fewest jobs started, the oldest first among equals, so one visitor's
ten jobs do not make everyone else wait behind them; how many jobs may wait is bounded.

Every job runs through the core's one file pipeline (``engine.Run`` on an ``Engine`` loaded
once). Uploads are copied into the job's temporary folder, which is removed when the job ends;
the protected files, their reports and previews stay in the job's results folder (for download)
until the runner closes, which removes everything it made. Originals are only read.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter, deque
from collections.abc import Sequence
from pathlib import Path

from ..engine import SUFFIXES, Engine, Run, check_output_fits, read_file
from ..errors import ArtcloakError, Cancelled
from ..progress import Listener, ProgressEvent
from ..report import report_path
from ..settings import FileRequest, OutputSettings, ProtectionSettings
from .figures import ResultFigures, result_figures
from .limits import Limits, check_upload
from .state import (  # noqa: F401  (the states, for callers of this module)
    CANCELLED,
    DONE,
    FAILED,
    FINISHED,
    LOADING,
    MEASURING,
    QUEUED,
    RUNNING,
    WAITING,
    ImageState,
    Job,
)

log = logging.getLogger(__name__)


class JobRunner:
    """One worker thread taking jobs in order; the engine's models are loaded once."""

    def __init__(
        self,
        engine: Engine,
        limits: Limits | None = None,
        root: Path | None = None,
        resolution: int | None = None,
        keep_jobs: int = 20,
    ) -> None:
        self.engine = engine
        self.limits = limits or Limits()
        self.resolution = resolution
        self.keep_jobs = keep_jobs
        self.root = Path(root or tempfile.mkdtemp(prefix="artcloak-app-"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}
        self.current: Job | None = None
        self.models_error: str | None = None
        self._queue: deque[Job] = deque()
        self._started: Counter[str] = Counter()  # jobs started, per owner
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="artcloak-app-worker", daemon=True)
        self._thread.start()

    def submit(
        self,
        uploads: Sequence[Path],
        settings: ProtectionSettings,
        extension: str = ".png",
        owner: str = "",
    ) -> Job:
        """Queue a job; SettingsError/TargetError/OutputError (with the page's message) when it
        cannot run."""
        if self._closed:
            raise ArtcloakError("The app is stopping; no new jobs are taken.")
        if not uploads:
            raise ArtcloakError("Drop one or more images first.")
        if len(uploads) > self.limits.max_files:
            raise ArtcloakError(f"This page takes up to {self.limits.max_files} images at a time.")
        run = Run(settings)
        images = [ImageState(name=_display_name(Path(p)), upload=Path(p)) for p in uploads]
        _check_outputs_fit(images, extension)
        job_id = uuid.uuid4().hex[:12]
        job = Job(job_id, owner, run, extension, images,
                  work=self.root / "work" / job_id, results=self.root / "results" / job_id)  # fmt: skip
        with self._wake:
            self._check_room(owner)
            self.jobs[job_id] = job
            self._queue.append(job)
            self._forget_old()
            self._wake.notify()
        return job

    def _check_room(self, owner: str) -> None:
        waiting = sum(job.owner == owner for job in self._queue)
        if waiting >= self.limits.max_waiting_per_session:
            raise ArtcloakError(
                f"You have {waiting} jobs waiting; this page queues up to "
                f"{self.limits.max_waiting_per_session} per visitor. Wait for one to start, or "
                "put more images in one job."
            )
        if len(self._queue) >= self.limits.max_waiting_jobs:
            raise ArtcloakError(
                f"The queue is full ({len(self._queue)} jobs waiting); try again in a while."
            )

    def position(self, job: Job) -> int:
        """How many jobs run or wait before this one (0 when it runs or has ended)."""
        with self._wake:
            if job.state != QUEUED:
                return 0
            order = self._order()
            ahead = order.index(job) if job in order else 0
            return ahead + (self.current is not None)

    def _order(self) -> list[Job]:
        """The waiting jobs in the order the worker will take them (see the module's note)."""
        started, waiting, order = Counter(self._started), list(self._queue), []
        while waiting:
            job = min(waiting, key=lambda each: started[each.owner])  # the oldest among equals
            waiting.remove(job)
            started[job.owner] += 1
            order.append(job)
        return order

    def cancel(self, job_id: str) -> None:
        job = self.jobs.get(job_id)
        if job is None or job.done:
            return
        job.cancel_event.set()
        with self._wake:
            if job in self._queue:
                self._queue.remove(job)
                self._end(job, CANCELLED, "Cancelled before it started.")

    def cancel_owner(self, owner: str) -> None:
        for job in list(self.jobs.values()):
            if job.owner == owner:
                self.cancel(job.id)

    def close(self, timeout: float = 30.0) -> None:
        """Cancel everything, stop the worker and remove every file the runner made."""
        with self._wake:
            self._closed = True
            self._wake.notify_all()
        for job in list(self.jobs.values()):
            self.cancel(job.id)
        self._thread.join(timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    # The worker thread.

    def _work(self) -> None:
        try:
            self.engine.load_models()  # now, so the first job does not wait for it
        except Exception as error:  # said again, on the page, by the first job
            self.models_error = str(error)
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self.current = self._order()[0]
                self._queue.remove(job)
                self._started[job.owner] += 1
            try:
                self._run(job)
            finally:
                self.current = None

    def _run(self, job: Job) -> None:
        job.started = time.monotonic()
        job.state = LOADING
        try:
            job.work.mkdir(parents=True, exist_ok=True)
            job.results.mkdir(parents=True, exist_ok=True)
            self.engine.load_models()
            job.state = RUNNING
            staged = self._stage(job)
            run = job.run.with_sources([request.source for _, request in staged])
            size = max(1, self.engine.batch_size)
            job.chunk_size = size
            for start in range(0, len(staged), size):
                self._protect_chunk(job, run, staged[start : start + size])
            failed = sum(image.state == FAILED for image in job.images)
            done = len(job.images) - failed
            message = f"{done} protected" + (f", {failed} failed" if failed else "") + "."
            self._end(job, DONE if done else FAILED, message)
        except Cancelled:
            self._end(job, CANCELLED, "Cancelled.")
        except ArtcloakError as error:
            self._end(job, FAILED, str(error))
        except Exception as error:  # a bug: say so on the page, keep serving
            log.exception("job %s failed", job.id)
            self._end(job, FAILED, f"Unexpected error ({type(error).__name__}: {error}).")

    def _stage(self, job: Job) -> list[tuple[ImageState, FileRequest]]:
        """Check each upload and copy it into the job's folder (the upload itself is only read)."""
        staged, taken = [], set()
        for index, image in enumerate(job.images):
            try:
                check_upload(image.upload, self.limits, image.name)
                copy = image.copy = job.work / str(index) / _safe_name(image.name)
                copy.parent.mkdir(parents=True)
                shutil.copyfile(image.upload, copy)
            except (ArtcloakError, OSError) as error:
                image.state, image.message = FAILED, _message(error, image)
                continue
            output = job.results / _output_name(image.name, job, taken)
            staged.append((image, FileRequest(copy, output)))
        return staged

    def _protect_chunk(
        self, job: Job, run: Run, chunk: list[tuple[ImageState, FileRequest]]
    ) -> None:
        if job.cancel_event.is_set():
            raise Cancelled()
        by_source = {str(request.source): image for image, request in chunk}
        for image, _ in chunk:
            image.state, image.total = RUNNING, job.settings.effort().steps
        job.chunk_started = time.monotonic()

        def on_event(event: ProgressEvent) -> None:
            if event.stage == "optimise" and event.step == 0:
                job.chunk_estimate = event.seconds_left
            if event.stage == "optimise":
                for name in event.images:
                    if name in by_source:
                        by_source[name].step, by_source[name].total = event.step, event.total

        listener = Listener(on_event=on_event, should_cancel=job.cancel_event.is_set)
        requests = [request for _, request in chunk]
        output = OutputSettings(write_report=True)
        try:
            read = [read_file(request, output) for request in requests]
            outcomes = run.protect_files(self.engine, read, output, listener)
        except Cancelled:
            for image, _ in chunk:
                image.state = CANCELLED
            raise
        for (image, request), outcome in zip(chunk, outcomes, strict=True):
            if not outcome.ok:
                image.state, image.message = FAILED, _message(outcome.message, image)
                continue
            image.state, image.step = MEASURING, image.total
            listener.check_cancel()
            image.result = result_figures(self.engine, job.settings, image.name, request.source,
                                          request.output, outcome.report,
                                          job.results / "previews" / request.output.stem)  # fmt: skip
            image.state = DONE
        job.chunk_seconds.append(time.monotonic() - job.chunk_started)

    def _end(self, job: Job, state: str, message: str) -> None:
        for image in job.images:
            if image.state not in (DONE, FAILED):
                image.state = CANCELLED if state == CANCELLED else FAILED
                image.message = image.message or ("" if state == CANCELLED else message)
        results = job.results_ready()
        if results:
            job.zip_path = _zip(results, job.results / "artcloak-protected.zip")
        shutil.rmtree(job.work, ignore_errors=True)
        job.message, job.finished, job.state = message, time.monotonic(), state

    def _forget_old(self) -> None:
        """Remove the results of the oldest finished jobs beyond ``keep_jobs``."""
        finished = [job for job in self.jobs.values() if job.done]
        for job in finished[: max(0, len(self.jobs) - self.keep_jobs)]:
            shutil.rmtree(job.results, ignore_errors=True)
            del self.jobs[job.id]


def _zip(results: list[ResultFigures], path: Path) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for result in results:
            archive.write(result.output, result.output.name)
            report = report_path(result.output)
            if report.exists():
                archive.write(report, report.name)
    return path


def _check_outputs_fit(images: Sequence[ImageState], extension: str) -> None:
    """Refuse the job, before it waits for anything, when an upload cannot be written in the
    chosen format (transparency in a JPEG); the message names the upload."""
    for image in images:
        try:
            check_output_fits(image.upload, extension.lstrip("."))
        except ArtcloakError as error:
            raise type(error)(_message(error, image)) from None


def _display_name(upload: Path) -> str:
    return upload.name or "image"


def _safe_name(name: str) -> str:
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = "".join(c if c.isalnum() or c in "._- " else "_" for c in name)
    cleaned = cleaned.lstrip(".- ").rstrip(". ")  # no hidden file, nothing read as an option
    return cleaned[:120] or "image"


def _output_name(name: str, job: Job, taken: set[str]) -> str:
    stem = Path(_safe_name(name)).stem or "image"
    base = f"{stem}-{SUFFIXES[job.settings.mode]}"
    candidate, number = f"{base}{job.extension}", 1
    while candidate.lower() in taken:
        number += 1
        candidate = f"{base}-{number}{job.extension}"
    taken.add(candidate.lower())
    return candidate


def _message(error: Exception | str, image: ImageState) -> str:
    """The core's message, naming the upload rather than the job's temporary copy."""
    if isinstance(error, OSError):
        return f"{image.name} cannot be read ({error.strerror or error})."
    text = str(error)
    for path in (image.copy, image.upload):
        if path is not None:
            text = text.replace(str(path), image.name)
    return text
