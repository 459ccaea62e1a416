"""Targets chosen for reachability: the target style nearest the artist's artworks in TAEF2's
latent space, among the styles that still flip the judge.

Each candidate is every other style, rendered on the artist's own compositions (the target
artcloak's catalogue would make: the same artwork in another style). A candidate flips the
judge when the judge reads TAEF2's reconstruction of its images as not the artist's style
(at least ``FLIPS`` of them): a latent that reached it would read as another style. Of those,
the one whose latents lie nearest the artworks' (mean L2 distance in TAEF2's latent space) is
the nearest reachable target; an attack closes a larger share of a shorter distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from world.gallery import STYLES

from .mimicry import ARTIST_STYLE, artist_cases
from .world import World3

FLIPS = 0.9  # share of a candidate's images the judge must read as not the artist's style


@dataclass(frozen=True)
class Candidate:
    """One target style for the artist's artworks."""

    style: str
    index: int  # in STYLES
    latent_distance: float  # mean over the artworks, in TAEF2's latent space
    flips: float  # share of its images the judge reads as not the artist's style


def candidates(artist: World3) -> list[Candidate]:
    """Every style but the artist's as a target for ``artist``'s cases, nearest first."""
    out = []
    with torch.no_grad():
        start = artist.attacked(artist.sources)
        for index, style in enumerate(STYLES):
            if index == ARTIST_STYLE:
                continue
            toward = replace(artist, cases=artist_cases(len(artist.cases), index))
            goal = artist.attacked(toward.targets)
            distance = float((goal - start).flatten(1).norm(dim=1).mean())
            flips = float((toward.verdicts(toward.targets) != ARTIST_STYLE).float().mean())
            out.append(Candidate(style, index, distance, flips))
    return sorted(out, key=lambda candidate: candidate.latent_distance)


def nearest(found: list[Candidate]) -> Candidate:
    """The nearest candidate that flips the judge."""
    return next(candidate for candidate in found if candidate.flips >= FLIPS)
