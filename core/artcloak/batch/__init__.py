"""``artcloak batch``: protect a whole archive, in-process or on a Ray cluster.

``run_batch`` plans the run (inputs, mirrored outputs, what is already done), protects the rest
in chunks of images that share a working size, and returns a summary; ``command.batch`` is the
CLI around it. Ray is imported only when a run asks for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from ..report import write_json
from ..settings import ModelSettings, ProtectionSettings
from .outcome import ItemOutcome, Summary, failed
from .plan import SUMMARY_NAME, Plan, chunks, make_plan

__all__ = ["ItemOutcome", "Plan", "Summary", "make_plan", "run_batch"]


def run_batch(
    src: Path,
    dest: Path,
    settings: ProtectionSettings,
    models: ModelSettings,
    *,
    output_format: str | None = None,
    redo: bool = False,
    batch_size: int | None = None,
    ray_address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float | None = None,
    progress: Callable[[Plan], Callable[[ItemOutcome], None]] | None = None,
    on_ready: Callable[[object], None] | None = None,
) -> Summary:
    """Protect every input of SRC not already done into DEST; ``ray_address`` None runs
    in-process, "local" starts a Ray instance here, else it is the cluster's address.
    ``progress(plan)`` makes the per-outcome callback; ``on_ready(runner)`` is called once
    the models are loaded (tests use it to reach the workers)."""
    from ..engine import Run
    from .run import remove_stale_temporaries

    run = Run(settings)
    if ray_address is not None:
        from .ray_runner import import_ray

        import_ray()
    plan = make_plan(src, dest, settings, models, output_format, redo)
    dest.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(plan.todo)
    summary = Summary(total=plan.total, skipped=len(plan.skipped))
    # Outputs that cannot be written were refused before any model loads.
    summary.outcomes.extend(failed(refused.item, refused.reason) for refused in plan.refused)
    told = Told(plan, summary, progress, on_ready)
    if plan.todo and ray_address is None:
        _run_in_process(plan, run, models, batch_size, summary, told)
    elif plan.todo:
        _run_on_ray(plan, run, models, summary, told, ray_address, batch_size, workers,
                    cpus_per_worker)  # fmt: skip
    else:
        told.ready(None)
    remove_stale_temporaries(plan.todo)
    write_json(dest / SUMMARY_NAME, json.loads(json.dumps(summary.as_dict())))
    return summary


class Told:
    """The run's outcomes as they come, into the summary and, once the models are loaded, to
    the progress callback (the refused first) and ``on_ready``."""

    def __init__(self, plan: Plan, summary: Summary, progress, on_ready) -> None:
        self.plan, self.summary = plan, summary
        self.progress, self.on_ready = progress, on_ready
        self.observers: list[Callable[[ItemOutcome], None]] = []

    def ready(self, runner: object) -> None:
        """Models are loaded: the clock and the progress bar start now (and show the refused)."""
        if self.on_ready:
            self.on_ready(runner)
        if self.progress:
            self.observers.append(self.progress(self.plan))
            for outcome in self.summary.outcomes:
                self.observers[-1](outcome)

    def record(self, outcome: ItemOutcome) -> None:
        self.summary.outcomes.append(outcome)
        for observe in self.observers:
            observe(outcome)


def _run_in_process(plan, run, models, batch_size, summary: Summary, told: Told) -> None:
    from .run import ChunkProtector, Clock, run_local

    protector = ChunkProtector(models, run.with_sources(_sources(plan)), plan.run_key, batch_size)
    told.ready(protector)
    clock = Clock()
    run_local(
        chunks(plan.todo, protector.engine.batch_size, protector.resolution), protector,
        told.record,
    )  # fmt: skip
    summary.seconds = clock.seconds()


def _run_on_ray(plan, run, models, summary: Summary, told: Told, address, batch_size, workers,
                cpus_per_worker) -> None:  # fmt: skip
    from .ray_runner import RayRunner
    from .run import Clock

    runner = RayRunner(address, models, run.with_sources(_sources(plan)), plan.run_key,
                       batch_size, workers, cpus_per_worker)  # fmt: skip
    try:
        runner.start()
        summary.runner = f"Ray, {runner.shape.describe() if runner.shape else ''}"
        told.ready(runner)
        clock = Clock()
        runner.run(chunks(plan.todo, runner.batch_size, runner.resolution), told.record)
        summary.seconds = clock.seconds()
    finally:
        runner.stop()


def _sources(plan: Plan) -> list[Path]:
    return [item.source for item in (*plan.todo, *plan.skipped)]
