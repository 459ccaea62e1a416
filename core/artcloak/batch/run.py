"""The work of a batch run, shared by the in-process and the Ray runners.

``load_chunk`` reads a chunk of inputs (a CPU task on Ray); ``ChunkProtector`` hands what was
read to the engine's file pipeline (``engine.Run``: protect, write each output and its
report atomically) and says how each input ended. The
report carries a ``batch`` section (the run's settings and the input's size and mtime) so that
a later run can tell which outputs are still valid.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..atomic import temporaries
from ..cli.options import SETTING_OPTIONS
from ..engine import Engine, FileOutcome, ReadFile, Run
from ..errors import ArtcloakError
from ..report import report_path
from ..settings import FileRequest, ModelSettings, OutputSettings
from .outcome import ItemOutcome, failed
from .plan import Item
from .read import Loaded, load_chunk

# DEST belongs to the run: outputs that are not done are replaced, originals never.
WRITE = OutputSettings(overwrite=True)


class ChunkProtector:
    """The engine's file pipeline (models loaded once) for chunks a batch has read; says how
    each input ended, with the batch section in each report."""

    def __init__(
        self,
        models: ModelSettings,
        run: Run,
        run_key: dict,
        batch_size: int | None = None,
        label: str = "in-process",
    ) -> None:
        """``run``: the batch's run, over every input (for targets chosen per run, ``--style
        auto``)."""
        self.engine = Engine(models, batch_size=batch_size)
        self.run = run
        self.settings = run.resolve(self.engine)  # loads the models: a worker is ready when built
        self.run_key = run_key
        self.worker = f"{label}: {self.engine.device} on {socket.gethostname()}"

    @property
    def resolution(self) -> int:
        return self.engine.resolution(self.settings)

    def protect(self, loaded: Sequence[Loaded | ItemOutcome]) -> list[ItemOutcome]:
        read = [entry for entry in loaded if isinstance(entry, Loaded)]
        files = [ReadFile(FileRequest(entry.item.source, entry.item.output), entry.image)
                 for entry in read]  # fmt: skip
        stamps = {id(file): entry for file, entry in zip(files, read, strict=True)}

        def batch_section(file: ReadFile) -> dict:
            entry = stamps[id(file)]
            return {"batch": {"run": self.run_key, "source": entry.stamp,
                              "relative": entry.item.relative}}  # fmt: skip

        try:
            outcomes = self.run.protect_files(
                self.engine, files, WRITE, report_sections=batch_section
            )
        except ArtcloakError as error:
            outcomes = [FileOutcome.refused(file.request, error) for file in files]
        except Exception as error:  # noqa: BLE001 - one chunk's crash (e.g. out of memory) is its own
            reason = f"{type(error).__name__}: {error}".splitlines()[0]
            outcomes = [FileOutcome(file.request, ok=False, message=reason) for file in files]
        ended = iter(zip(read, outcomes, strict=True))
        return [
            entry if isinstance(entry, ItemOutcome) else self._outcome(*next(ended))
            for entry in loaded
        ]

    def _outcome(self, entry: Loaded, done: FileOutcome) -> ItemOutcome:
        item = entry.item
        if not done.ok:
            return failed(item, done.said(SETTING_OPTIONS), self.worker)  # the CLI's words
        measured = done.report.measured
        return ItemOutcome(
            item.relative,
            str(item.output),
            ok=True,
            worker=self.worker,
            lpips=measured.lpips,
            linf_255=measured.linf_255,
            within_budget=measured.within_budget,
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
        for temp, _ in temporaries(folder, names):
            with contextlib.suppress(OSError):
                temp.unlink()
                removed += 1
    return removed


class Clock:
    def __init__(self) -> None:
        self.started = time.perf_counter()

    def seconds(self) -> float:
        return time.perf_counter() - self.started
