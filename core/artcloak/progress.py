"""Progress reporting and cancellation: how long work talks to its host."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol
from .errors import Cancelled


@dataclass(frozen=True)
class ProgressEvent:
    """One step of work. ``step`` counts from 1 to ``total`` within ``stage``."""

    stage: str  # "load", "optimise", "verify", "write"
    step: int
    total: int
    message: str = ""
    loss: float | None = None
    budget_used: float | None = None  # LPIPS of the model's view / its bound (max over the batch)
    seconds_left: float | None = None  # optimise: to the end of the schedule (at step 0, estimated)
    images: tuple[str, ...] = ()


@dataclass
class Listener:
    """What a host passes in: a callback for events and a cancel check, both optional."""

    on_event: Callable[[ProgressEvent], None] | None = None
    should_cancel: Callable[[], bool] | None = None

    def emit(self, event: ProgressEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def check_cancel(self) -> None:
        if self.should_cancel is not None and self.should_cancel():
            raise Cancelled()


SILENT = Listener()


def duration(seconds: float) -> str:
    """A wait as people say it: 40 s, 6 min 05 s, 2 h 10 min."""
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes, rest = divmod(round(seconds), 60)
    return (
        f"{minutes} min {rest:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"
    )


def as_protocol(event: ProgressEvent) -> dict:
    """The event as the worker protocol's ``progress`` line (for plugins and ``--json``)."""
    figures = {"loss": event.loss, "budget_used": event.budget_used}
    extra = {name: round(value, 6) for name, value in figures.items() if value is not None}
    if event.seconds_left is not None:
        extra["seconds_left"] = round(event.seconds_left, 1)
    return protocol.progress(event.stage, event.step, event.total, event.message, **extra)
