"""The sets of the artist's images that world 2's mimicry stage fine-tunes a generator on. Each
set's label is the key of its figures in the report's JSON and its row in the report: the
experiment and the report both take it from here, so neither can lose a set to a misspelling."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Protection(Enum):
    NONE = "none"
    ARTCLOAK = "artcloak"  # artcloak's engine at the preset of the set's budget
    PLAIN_PGD = "plain PGD"  # sign-PGD with as many encoder passes as artcloak at that budget


@dataclass(frozen=True)
class TrainingSet:
    label: str
    protection: Protection
    eps_255: int  # the protection's L-inf budget (/255); 0 for the clean images


CLEAN = TrainingSet("clean", Protection.NONE, 0)
CLOAKED = TrainingSet("cloaked", Protection.ARTCLOAK, 8)
# In this order the experiment protects them: artcloak's set before plain PGD's at its budget.
MIMICRY_SETS: tuple[TrainingSet, ...] = (
    CLEAN,
    CLOAKED,
    TrainingSet("plain PGD", Protection.PLAIN_PGD, 8),
    TrainingSet("cloaked, high (16/255)", Protection.ARTCLOAK, 16),
    TrainingSet("plain PGD, 16/255", Protection.PLAIN_PGD, 16),
)
