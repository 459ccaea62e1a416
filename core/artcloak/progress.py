"""Progress reporting and cancellation: how long work talks to its host."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
