"""What a protection is asked (``ImageJob``) and what it returns (``ImageResult`` or
``Failed``), and the checks of jobs made before any model loads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import InputImageError
from ..results import BudgetFigures, LatentShift
from ..settings import ProtectionSettings, Target
from .targets import check_target


@dataclass
class ImageJob:
    """One image to protect, in memory."""

    name: str
    colour: np.ndarray  # integer samples H x W x 3 (uint8 or uint16)
    max_value: int = 255
    free: np.ndarray | None = None  # bool H x W, True where change is allowed; None = everywhere
    grey: bool = False  # the three channels are equal and must stay so
    target: Target | None = None  # this image's own target, instead of the settings' one
    # The image before any protection, when ``colour`` is already protected (a chain of
    # protections): the run starts from colour - original, and the budget is measured and
    # guaranteed against the original, so the chain as a whole keeps one budget. None: the
    # budget is measured against ``colour`` itself.
    original: np.ndarray | None = None

    @property
    def size(self) -> tuple[int, int]:
        return self.colour.shape[1], self.colour.shape[0]

    @property
    def before(self) -> np.ndarray:
        """The samples the budget is measured against: the original, or the image itself."""
        return self.colour if self.original is None else self.original

    def settings(self, shared: ProtectionSettings) -> ProtectionSettings:
        """The settings this image is protected with: the shared ones, with its own target."""
        return shared if self.target is None else replace(shared, target=self.target)


@dataclass
class ImageResult:
    """One image protected in memory: its samples, and what was measured of them."""

    name: str
    colour: np.ndarray  # integer samples, within budget
    measured: BudgetFigures  # against the original; perturbation_kept: the share kept
    latent: list[LatentShift]  # per encoder: how far the model's view moved toward the target
    working_size: tuple[int, int]
    encoder_passes: int
    seconds: float
    losses: list[float] = field(default_factory=list)  # the loss at each step

    def as_dict(self) -> dict:
        """The figures as JSON (without the samples and the losses)."""
        return {
            "name": self.name,
            "measured": self.measured.as_dict(),
            "latent": [shift.as_dict() for shift in self.latent],
            "working_size": list(self.working_size),
            "encoder_passes": self.encoder_passes,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Failed:
    name: str
    message: str


def check_jobs(jobs: Sequence[ImageJob], settings: ProtectionSettings) -> None:
    """Check the settings every job will actually use (its own target or the shared one)."""
    check_originals(jobs)
    used = {id(job.target): job.settings(settings) for job in jobs} if jobs else {0: settings}
    for own in used.values():
        own.check()
        check_target(own.target, own.mode)


def check_originals(jobs: Sequence[ImageJob]) -> None:
    """Each job's original (a chain of protections) matches its image."""
    for job in jobs:
        original = job.original
        if original is not None and (
            original.shape != job.colour.shape or original.dtype != job.colour.dtype
        ):
            raise InputImageError(
                f"{job.name}: the original ({original.shape[1]}x{original.shape[0]}, "
                f"{original.dtype}) does not match the image ({job.colour.shape[1]}x"
                f"{job.colour.shape[0]}, {job.colour.dtype}): give each image its own original."
            )
