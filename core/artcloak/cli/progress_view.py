"""How the CLI shows progress and outcomes: tqdm bars for people, JSON lines for programs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click
from tqdm import tqdm

from .. import protocol
from ..engine import FileOutcome
from ..progress import Listener, ProgressEvent, as_protocol, duration
from ..report import report_path
from ..settings import ProtectionSettings
from .options import SETTING_OPTIONS


def listener_for(as_json: bool, files: int) -> Listener:
    return Listener(on_event=JsonEvents() if as_json else Bars(files))


class JsonEvents:
    def __call__(self, event: ProgressEvent) -> None:
        print(protocol.encode(as_protocol(event)), flush=True)


class Bars:
    """One bar per optimisation batch, with the file count in its description."""

    def __init__(self, files: int) -> None:
        self.files = files
        self.file_index = 0
        self.bar: tqdm | None = None

    def __call__(self, event: ProgressEvent) -> None:
        if event.stage == "file":
            self.file_index = event.step
            return
        if event.stage != "optimise":
            return
        if event.step == 0 or self.bar is None:
            names = ", ".join(name.rsplit("/", 1)[-1] for name in event.images)
            if event.step == 0 and event.seconds_left is not None:
                click.echo(f"artcloak: {names}: {estimate_text(event.seconds_left, event.total)}",
                           err=True)  # fmt: skip
            prefix = f"[{self.file_index}/{self.files}] " if self.files > 1 else ""
            self.bar = tqdm(total=event.total, desc=f"{prefix}{names}", unit="step", file=sys.stderr,
                            leave=False, dynamic_ncols=True)  # fmt: skip
        if event.total != self.bar.total:  # the loop stopped early: a shorter run
            self.bar.total = event.total
        self.bar.update(event.step - self.bar.n)
        if event.loss is not None:
            used = "" if event.budget_used is None else f"{event.budget_used:.0%}"
            self.bar.set_postfix(loss=f"{event.loss:.3f}", lpips_budget_used=used, refresh=False)
        if event.step == event.total:
            self.bar.close()
            self.bar = None


def estimate_text(seconds: float, steps: int) -> str:
    """What the wait will be, before step 1: an estimate from one timed encoder pass."""
    return (f"about {duration(seconds)} for at most {steps} steps (estimated from one encoder "
            "pass; the loop stops early once the protection stops improving)")  # fmt: skip


def summarise(outcomes: Sequence[FileOutcome], settings: ProtectionSettings, as_json: bool) -> int:
    """Print each outcome and a summary; the exit status: 0 if all succeeded, else 1."""
    for outcome in outcomes:
        if as_json:
            print(protocol.encode(_event(outcome)), flush=True)
        else:
            click.echo(_line(outcome, settings), err=not outcome.ok)
    failed = sum(not outcome.ok for outcome in outcomes)
    if as_json:
        summary = {"event": "summary", "done": len(outcomes) - failed, "failed": failed}
        print(protocol.encode(summary), flush=True)
    elif len(outcomes) > 1:
        click.echo(f"{len(outcomes) - failed} protected, {failed} failed.")
    return 1 if failed else 0


def _event(outcome: FileOutcome) -> dict:
    if not outcome.ok:
        return protocol.error(outcome.message, input=str(outcome.request.source))
    report = outcome.report
    return protocol.result(
        str(outcome.request.output),
        input=str(outcome.request.source),
        report=str(report_path(outcome.request.output)),
        lpips=report.measured.lpips,
        linf_255=report.measured.linf_255,
        psnr_db=report.measured.psnr_db,
        within_budget=report.measured.within_budget,
        latent=[shift.as_dict() for shift in report.latent],
        seconds=report.seconds,
        notices=outcome.notices,
    )


def _line(outcome: FileOutcome, settings: ProtectionSettings) -> str:
    if not outcome.ok:
        source = outcome.request.source
        message = outcome.said(SETTING_OPTIONS)
        named = str(source) in message or source.name in message
        return f"failed: {message}" if named else f"failed: {source}: {message}"
    report = outcome.report
    measured = report.measured
    budget = settings.budget()
    closed = ", ".join(f"{shift.distance_closed:.0%}" for shift in report.latent)
    notices = "".join(f"\n  note: {notice}" for notice in outcome.notices)
    return (
        f"protected: {outcome.request.output}  LPIPS {measured.lpips:.4f} (<= {budget.lpips:g}), "
        f"L-inf {measured.linf_255:g}/255 (<= {budget.eps_255:g}), "
        f"latent distance to target closed {closed}, {report.seconds:.1f} s{notices}"
    )
