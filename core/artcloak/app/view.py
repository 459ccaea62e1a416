"""What the page says about a job and its results, as HTML/Markdown text (no UI library)."""

from __future__ import annotations

import html

from ..progress import duration
from .figures import ResultFigures
from .state import CANCELLED, DONE, FAILED, LOADING, MEASURING, QUEUED, RUNNING, Job

STATE_WORDS = {
    "waiting": "waiting",
    RUNNING: "protecting",
    MEASURING: "measuring",
    DONE: "done",
    FAILED: "failed",
    CANCELLED: "cancelled",
}


def message_html(text: str, kind: str = "error") -> str:
    return (
        f'<div class="artcloak-status" data-state="{kind}"><p class="artcloak-{kind}">'
        f"{html.escape(text)}</p></div>"
    )


def status_html(job: Job, position: int, now: float | None = None) -> str:
    """The job's state, the queue ahead of it, time left, and one progress row per image."""
    head = _headline(job, position, now)
    rows = "".join(_row(image) for image in job.images)
    return (
        f'<div class="artcloak-status" data-state="{html.escape(job.state)}" '
        f'data-job="{job.id}"><p class="artcloak-headline">{html.escape(head)}</p>'
        f'<table class="artcloak-images">{rows}</table></div>'
    )


def _headline(job: Job, position: int, now: float | None) -> str:
    if job.state == QUEUED:
        ahead = "1 job" if position == 1 else f"{position} jobs"
        return f"In the queue: {ahead} ahead of this one (one job at a time on this device)."
    if job.state == LOADING:
        return "Loading the models (once per start)…"
    if job.state == RUNNING:
        done = sum(image.state in (DONE, FAILED) for image in job.images)
        left = job.time_left(now)
        eta = f"; about {duration(left)} left" if left is not None else "; estimating time left"
        return f"Protecting: {done} of {len(job.images)} finished{eta}."
    if job.state == CANCELLED:
        kept = len(job.results_ready())
        return f"Cancelled. {kept} finished before that." if kept else "Cancelled."
    return job.message


def _row(image) -> str:
    state = STATE_WORDS.get(image.state, image.state)
    fraction = image.step / image.total if image.total else (1.0 if image.state == DONE else 0.0)
    bar = f'<progress max="1" value="{fraction:.3f}"></progress>'
    steps = f"{image.step}/{image.total} steps" if image.state == RUNNING and image.total else ""
    note = (
        f'<span class="artcloak-error">{html.escape(image.message)}</span>' if image.message else ""
    )
    return (
        f'<tr data-state="{html.escape(image.state)}"><td>{html.escape(image.name)}</td>'
        f"<td>{bar}</td><td>{state} {steps}</td><td>{note}</td></tr>"
    )


def figures_markdown(result: ResultFigures) -> str:
    """The measured budget and what survives, for one result."""
    measured = result.measured
    held = "holds" if measured.within_budget else "does NOT hold"
    psnr = measured.psnr_db
    lines = [
        f"**Budget** {result.budget}: {held} on the written file. Measured LPIPS "
        f"{measured.lpips:.4f}, L-inf {measured.linf_255:g}/255"
        + (f", PSNR {psnr:.1f} dB." if psnr is not None else "."),
        "",
        "| What the model sees of the protected file | distance to the target closed |",
        "|---|---|",
        f"| as written | {_share(result.toward_target)} |",
        *(f"| after {label} | {_share(value)} |" for label, value in result.survival.items()),
        "",
        f"Change magnified {result.amplification:.0f}x (grey = unchanged). "
        f"Reconstructions by {result.encoder}.",
    ]
    lines += [f"- {note}" for note in result.notices]
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"
