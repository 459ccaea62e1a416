"""A job's state as the page shows it: one row per image, the job's stage, time left."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import Run
from ..settings import ProtectionSettings
from .figures import ResultFigures

WAITING, RUNNING, MEASURING, DONE, FAILED, CANCELLED = (
    "waiting", "running", "measuring", "done", "failed", "cancelled",
)  # fmt: skip
QUEUED, LOADING = "queued", "loading models"
FINISHED = (DONE, FAILED, CANCELLED)


@dataclass
class ImageState:
    name: str  # the uploaded file's name
    upload: Path
    copy: Path | None = None  # the job's temporary copy
    state: str = WAITING
    step: int = 0
    total: int = 0
    message: str = ""
    result: ResultFigures | None = None


@dataclass
class Job:
    id: str
    owner: str  # the browser session that asked
    run: Run  # the settings asked for, checked when the job was submitted
    extension: str
    images: list[ImageState]
    work: Path  # temporary: removed when the job ends
    results: Path  # downloads: kept until the runner closes (or the job is old)
    state: str = QUEUED
    message: str = ""
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    zip_path: Path | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)
    chunk_seconds: list[float] = field(default_factory=list)
    chunk_size: int = 1
    chunk_started: float | None = None
    chunk_estimate: float | None = None  # the engine's estimate before the chunk's first step

    @property
    def settings(self) -> ProtectionSettings:
        return self.run.asked

    @property
    def done(self) -> bool:
        return self.state in FINISHED

    def results_ready(self) -> list[ResultFigures]:
        return [image.result for image in self.images if image.result is not None]

    def time_left(self, now: float | None = None) -> float | None:
        """Seconds until the job ends, from the pace so far; None until there is one."""
        if self.state != RUNNING or self.chunk_started is None:
            return None
        now = time.monotonic() if now is None else now
        active = [i for i in self.images if i.state in (RUNNING, MEASURING)]
        waiting = sum(i.state == WAITING for i in self.images)
        chunks_after = -(-waiting // max(1, self.chunk_size))
        elapsed = now - self.chunk_started
        steps = max((i.step for i in active), default=0)
        total = max((i.total for i in active), default=0)
        if self.chunk_seconds:
            per_chunk = sum(self.chunk_seconds) / len(self.chunk_seconds)
        elif steps >= 2 and total:
            per_chunk = elapsed / steps * total
        elif self.chunk_estimate is not None:
            per_chunk = self.chunk_estimate
        else:
            return None
        return max(0.0, per_chunk - elapsed) + per_chunk * chunks_after
