"""What stops mimicry: the artist's images protected in each way the issue asks about.

Every artcloak row has plain sign-PGD on the same latent pull at the same TAEF2 passes beside
it: the flat 8/255 box (artcloak's default preset), a texture-shaped box at each one's flat
PSNR (``shaped.py``), the flat 16/255 box (artcloak's high preset), and the nearest reachable
target style (``reachable.py``). Each set keeps what the report needs to measure it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from artcloak.settings import MAX_EPS, Intensity
from world.metrics import psnr

from . import shaped
from .mimicry import TARGET_STYLE, artist_cases
from .reachable import Candidate
from .stages import artcloak, plain_pgd, settings_at
from .world import World3

ARTCLOAK, PGD = "artcloak", "plain PGD"


@dataclass
class TrainingSet:
    """The artist's images as one training set of the mimic."""

    name: str
    images: torch.Tensor  # (N, 3, S, S) 8-bit values in [0, 1]
    method: str  # artcloak, plain PGD, a surrogate objective, or none
    budget: str  # what bounded the change, in words
    target_style: int  # the style the change pulls toward (index in STYLES)
    passes: int | None = None  # TAEF2 passes per image
    seconds_per_image: float | None = None
    same_images_as: str | None = None  # another set made the same images: not trained again


def flat_pair(artist: World3, intensity: Intensity, suffix: str = "") -> list[TrainingSet]:
    """artcloak's ``intensity`` preset (flat box) and plain PGD at its eps and passes."""
    settings = settings_at(artist, intensity=intensity)
    eps_255 = settings.budget().eps_255
    ours = artcloak(artist, settings)
    theirs = plain_pgd(artist, artist.probe(), eps_255 / 255, ours.passes)
    style = artist.cases[0].target_style
    budget = f"flat {eps_255:g}/255"
    return [
        TrainingSet(f"{ARTCLOAK}{suffix}", ours.images, ARTCLOAK, budget, style, ours.passes,
                    ours.seconds),
        TrainingSet(f"{PGD}{suffix}", theirs.images, PGD, budget, style, theirs.passes,
                    theirs.seconds),
    ]  # fmt: skip


def texture_pair(
    artist: World3, flat: list[TrainingSet], intensity: Intensity, suffix: str = ""
) -> tuple[list[TrainingSet], dict[str, shaped.Calibration]]:
    """artcloak ``--adaptive`` at ``intensity`` and plain PGD under the same shares, each with
    eps scaled until its PSNR is its ``flat`` row's; the calibration of each, by set name."""
    ours_flat, theirs_flat = flat
    sources, probe = artist.sources, artist.probe()
    eps_255 = settings_at(artist, intensity=intensity).budget().eps_255

    def ours_at(scaled_255: float):
        bounded = min(round(scaled_255, 3), MAX_EPS * 255)  # the most the product accepts
        settings = settings_at(artist, intensity=intensity, adaptive=True, eps_255=bounded)
        return artcloak(artist, settings)

    flat_db = {s.name: float(psnr(s.images, sources).mean()) for s in flat}
    _, ours = shaped.matched(lambda e: ours_at(e).images, sources, eps_255, flat_db[ours_flat.name])
    final = ours_at(ours.eps_255)  # the memo's second run
    passes = final.passes  # plain PGD at the shaped run's passes (it may stop early)

    def theirs_at(scaled_255: float) -> torch.Tensor:
        return shaped.shaped_pgd(probe, sources, round(scaled_255, 3), passes)

    started = time.perf_counter()
    pgd_images, theirs = shaped.matched(theirs_at, sources, eps_255, flat_db[theirs_flat.name])
    pgd_seconds = (time.perf_counter() - started) / 2 / len(sources)  # two runs of as many steps
    budget = f"at flat {eps_255:g}/255's PSNR"
    sets = [
        TrainingSet(f"{ARTCLOAK}, texture-shaped{suffix}", final.images, ARTCLOAK,
                    _shaped(ours, budget), TARGET_STYLE, final.passes, final.seconds),
        TrainingSet(f"{PGD}, texture-shaped{suffix}", pgd_images, PGD, _shaped(theirs, budget),
                    TARGET_STYLE, passes, pgd_seconds),
    ]  # fmt: skip
    return sets, {sets[0].name: ours, sets[1].name: theirs}


def _shaped(shape: shaped.Calibration, budget: str) -> str:
    return (f"texture-shaped, {shape.flat_colour_eps_255:.1f}-{shape.eps_255:.1f}/255 "
            f"({budget})")  # fmt: skip


def nearest_pair(artist: World3, chosen: Candidate) -> list[TrainingSet]:
    """The flat 8/255 pair toward the nearest reachable target style; where that style is the
    fixed target, the fixed target's sets again, marked as the same images."""
    toward = replace(artist, cases=artist_cases(len(artist.cases), chosen.index))
    pair = flat_pair(toward, Intensity.DEFAULT, f", nearest reachable target ({chosen.style})")
    if chosen.index == TARGET_STYLE:
        for made, fixed in zip(pair, (ARTCLOAK, PGD), strict=True):
            made.same_images_as = fixed
    return pair
