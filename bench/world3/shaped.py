"""Budgets shaped by what people see: more change in texture, less on flat colour, at the
flat box's PSNR.

artcloak's ``--adaptive`` gives each pixel a share of eps (``budget_shares``: a quarter on flat
colour, all of it where the local contrast is high). At the same eps that only takes change
away; here eps itself is scaled up until the shaped perturbation costs as much PSNR as the
flat box did, so texture may take more than eps while flat colour keeps less. The scale starts
where a perturbation on the corners of both boxes would cost the same (the flat eps over the
root mean square of the shares) and is corrected once by the PSNR the first run measured
(PSNR falls 20 dB per tenfold change); the report gives the PSNR each run reached.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from artcloak.engine.masking import budget_shares
from world.metrics import psnr

from .pgd import per_image_pgd
from .world import Probe


@dataclass
class Calibration:
    """How a texture-shaped run was matched to a flat run's PSNR."""

    eps_255: float  # the scaled eps: the bound in the most textured pixels
    flat_colour_eps_255: float  # the bound on perfectly flat colour
    psnr_db: float  # what the run reached
    wanted_psnr_db: float  # the flat run's


def first_scale(sources: torch.Tensor) -> float:
    """The eps multiplier at which a shaped box's corners cost as much as the flat box's."""
    shares = budget_shares(sources)
    return float(shares.pow(2).mean().rsqrt())


def matched(
    make: Callable[[float], torch.Tensor], sources: torch.Tensor, eps_255: float, psnr_db: float
) -> tuple[torch.Tensor, Calibration]:
    """``make(scaled_eps_255)`` (the protected images under a shaped budget of that eps) run at
    the first scale and again at the scale corrected by the PSNR it reached: the second run's
    images and how they were matched."""
    scale = first_scale(sources)
    first = make(eps_255 * scale)
    reached = float(psnr(first, sources).mean())
    scale *= 10 ** ((reached - psnr_db) / 20)
    images = make(eps_255 * scale)
    floor = float(budget_shares(torch.ones(1, 3, 8, 8)).min())
    reached = float(psnr(images, sources).mean())
    return images, Calibration(eps_255 * scale, eps_255 * scale * floor, reached, psnr_db)


def shaped_pgd(probe: Probe, sources: torch.Tensor, eps_255: float, steps: int) -> torch.Tensor:
    """Plain sign-PGD on the latent distance with each pixel bounded by its share of
    ``eps_255`` (the shares artcloak's ``--adaptive`` uses)."""
    bound = budget_shares(sources) * (eps_255 / 255)
    return per_image_pgd((probe,), sources, bound, steps)
