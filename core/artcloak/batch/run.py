"""The work of a batch run, shared by the in-process and the Ray runners.

``load_chunk`` reads a chunk of inputs (a CPU task on Ray); ``ChunkProtector`` protects what
was read, writes each output and its report atomically and says how each input ended. The
report carries a ``batch`` section (the run's settings and the input's size and mtime) so that
a later run can tell which outputs are still valid.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..engine.files import finish
from ..engine.protect import Engine, ImageJob
from ..errors import ArtcloakError
from ..report import report_path, write_json
from ..settings import FileRequest, ModelSettings, OutputSettings, ProtectionSettings
from .outcome import ItemOutcome, failed
from .plan import Item
from .read import Loaded, load_chunk

# DEST belongs to the run: outputs that are not done are replaced, originals never.
WRITE = OutputSettings(overwrite=True, write_report=False)


@dataclass
class Job:
    loaded: Loaded
    job: ImageJob


class ChunkProtector:
    """An engine (models loaded once) that protects chunks and writes their outputs."""

    def __init__(
        self,
        models: ModelSettings,
        settings: ProtectionSettings,
        run_key: dict,
        batch_size: int | None = None,
        label: str = "in-process",
        sources: Sequence[Path] = (),
    ) -> None:
        """``sources``: every input of the run, for targets chosen per run (``--style auto``)."""
        from ..engine.targets.resolve import resolve_run_target

        self.engine = Engine(models, batch_size=batch_size)
        self.engine.load_models()
        self.settings = resolve_run_target(self.engine, settings, list(sources))
        self.run_key = run_key
        self.worker = f"{label}: {self.engine.device} on {socket.gethostname()}"

    @property
    def resolution(self) -> int:
        return self.engine.resolution(self.settings)

    def protect(self, loaded: Sequence[Loaded | ItemOutcome]) -> list[ItemOutcome]:
        entries = [self._own_target(entry) for entry in loaded]
        ready = [entry for entry in entries if isinstance(entry, Job)]
        try:
            results = self.engine.protect([entry.job for entry in ready], self.settings)
        except ArtcloakError as error:
            results = None
            reason = str(error)
        except Exception as error:  # noqa: BLE001 - one chunk's crash (e.g. out of memory) is its own
            results = None
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
        outcomes: dict[int, ItemOutcome] = {}
        for index, entry in enumerate(ready):
            if results is None:
                outcomes[id(entry)] = failed(entry.loaded.item, reason, self.worker)
            else:
                outcomes[id(entry)] = self._finish(entry, results[index])
        return [
            entry if isinstance(entry, ItemOutcome) else outcomes[id(entry)] for entry in entries
        ]

    def _own_target(self, entry: Loaded | ItemOutcome) -> Job | ItemOutcome:
        """The image as a job, with its own target where the run's target asks for one."""
        from ..engine.targets.resolve import image_target

        if isinstance(entry, ItemOutcome):
            return entry
        image = entry.image
        job = ImageJob(name=str(entry.item.source), colour=image.colour_samples(),
                       max_value=image.max_value, grey=image.greyscale)  # fmt: skip
        try:
            job.target = image_target(self.engine, self.settings, job.colour, job.max_value)
        except ArtcloakError as error:
            return failed(entry.item, str(error), self.worker)
        return Job(entry, job)

    def _finish(self, entry: Job, result) -> ItemOutcome:
        item = entry.loaded.item
        request = FileRequest(item.source, item.output)
        settings = entry.job.settings(self.settings)
        done = finish(self.engine, request, entry.loaded.image, result, settings, WRITE)
        if not done.ok:
            return failed(item, done.message, self.worker)
        report = done.report or {}
        report["batch"] = {
            "run": self.run_key,
            "source": entry.loaded.stamp,
            "relative": item.relative,
        }
        try:
            write_json(report_path(item.output), report)
        except ArtcloakError as error:  # no output without its report
            with contextlib.suppress(OSError):
                item.output.unlink()
            return failed(item, str(error), self.worker)
        measured = report["measured"]
        return ItemOutcome(
            item.relative,
            str(item.output),
            ok=True,
            worker=self.worker,
            lpips=measured["lpips"],
            linf_255=measured["linf_255"],
            within_budget=measured["within_budget"],
        )


def run_local(
    chunks: Sequence[Sequence[Item]],
    protector: ChunkProtector,
    on_outcome: Callable[[ItemOutcome], None],
) -> None:
    """Protect the chunks one after another in this process."""
    for chunk in chunks:
        for outcome in protector.protect(load_chunk(chunk)):
            on_outcome(outcome)


def remove_stale_temporaries(items: Sequence[Item]) -> int:
    """Remove temporary files an interrupted write left beside these outputs (see atomic.py)."""
    removed = 0
    folders: dict[Path, set[str]] = {}
    for item in items:
        names = folders.setdefault(item.output.parent, set())
        names.update({item.output.name, report_path(item.output).name})
    for folder, names in folders.items():
        with contextlib.suppress(OSError):
            for entry in os.scandir(folder):
                match = re.fullmatch(r"\.(.+)\.[0-9a-f]{8}\.tmp", entry.name)
                if match and match.group(1) in names:
                    with contextlib.suppress(OSError):
                        os.unlink(entry.path)
                        removed += 1
    return removed


class Clock:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started
