"""How a batch run shows itself: one bar over all files (or JSON events), then a summary."""

from __future__ import annotations

import sys
import time

import click
from tqdm import tqdm

from .. import protocol
from .outcome import ItemOutcome, Summary


class BatchProgress:
    """Called with each outcome; a tqdm bar with throughput and time left, or JSON lines."""

    def __init__(self, total: int, skipped: int, as_json: bool, quiet: bool = False) -> None:
        self.total, self.count, self.as_json = total, skipped, as_json
        self.skipped = skipped
        self.started = time.perf_counter()
        self.bar = None
        if not as_json and not quiet:
            self.bar = tqdm(total=total, initial=skipped, unit="img", desc="protecting",
                            file=sys.stderr, dynamic_ncols=True, smoothing=0.1)  # fmt: skip

    def __call__(self, outcome: ItemOutcome) -> None:
        self.count += 1
        if self.bar is not None:
            self.bar.update(1)
            if not outcome.ok:
                self.bar.write(f"failed: {outcome.relative}: {outcome.message}", file=sys.stderr)
        if self.as_json:
            elapsed = time.perf_counter() - self.started
            rate = (self.count - self.skipped) / elapsed if elapsed > 0 else 0.0
            left = (self.total - self.count) / rate if rate > 0 else None
            extra = {"images_per_second": round(rate, 4)}
            if left is not None:
                extra["seconds_left"] = round(left, 1)
            line = protocol.progress("file", self.count, self.total, outcome.relative, **extra)
            print(protocol.encode(line), flush=True)
            print(protocol.encode(_event(outcome)), flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _event(outcome: ItemOutcome) -> dict:
    if not outcome.ok:
        return protocol.error(outcome.message, input=outcome.relative, output=outcome.output)
    return protocol.result(
        outcome.output,
        input=outcome.relative,
        lpips=outcome.lpips,
        linf_255=outcome.linf_255,
        within_budget=outcome.within_budget,
        worker=outcome.worker,
    )


def show_summary(summary: Summary, as_json: bool) -> int:
    """Print the summary; the exit status: 1 if anything failed, else 0."""
    figures = summary.as_dict()
    if as_json:
        print(protocol.encode({"event": "summary", **figures}), flush=True)
    else:
        click.echo(
            f"{figures['done']} protected, {figures['skipped']} skipped (already done), "
            f"{figures['failed']} failed, of {figures['total']}; "
            f"{figures['images_per_second']:.3g} images/s over {figures['seconds']:.1f} s "
            f"({summary.runner})."
        )
        for worker, count in figures["per_worker"].items():
            click.echo(f"  {worker}: {count} ({count / max(1, figures['done']):.0%})")
        for failure in figures["failures"]:
            click.echo(f"  failed: {failure['input']}: {failure['reason']}", err=True)
    return 1 if figures["failed"] else 0
