"""How each input of a batch ended, and the run's summary (plain data, no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .plan import Item


@dataclass
class ItemOutcome:
    """How one input ended: written (ok) or failed with a reason."""

    relative: str
    output: str
    ok: bool
    message: str = ""
    worker: str = ""
    lpips: float | None = None
    linf_255: float | None = None
    within_budget: bool | None = None


def failed(item: Item, message: str, worker: str = "") -> ItemOutcome:
    return ItemOutcome(item.relative, str(item.output), ok=False, message=message, worker=worker)


@dataclass
class Summary:
    """What a run did, for people (the closing lines) and programs (artcloak-batch.json)."""

    total: int
    skipped: int
    outcomes: list[ItemOutcome] = field(default_factory=list)
    seconds: float = 0.0
    runner: str = "in-process"

    @property
    def done(self) -> int:
        return sum(outcome.ok for outcome in self.outcomes)

    @property
    def failures(self) -> list[ItemOutcome]:
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def images_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def per_worker(self) -> dict[str, int]:
        shares: dict[str, int] = {}
        for outcome in self.outcomes:
            if outcome.ok:
                shares[outcome.worker] = shares.get(outcome.worker, 0) + 1
        return dict(sorted(shares.items()))

    def as_dict(self) -> dict:
        return {
            "runner": self.runner,
            "total": self.total,
            "done": self.done,
            "skipped": self.skipped,
            "failed": len(self.failures),
            "failures": [{"input": f.relative, "reason": f.message} for f in self.failures],
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 4),
            "per_worker": self.per_worker(),
        }
