"""Plain sign-PGD in world 3, one image at a time.

On this project's 2-core CPU a TAEF2 forward+backward at 256 px costs 0.16 s for one image alone
against 0.22 s per image in a batch of eight (the activations outgrow the caches;
bench/reports/pass-cost.md), so world 3 attacks each image on its own, as artcloak's engine does
on a CPU. Each image's steps depend only
on its own loss, so the result is the batched attack's up to rounding.
"""

from __future__ import annotations

import torch
from world.pgd import sign_pgd

from .world import Probe


def per_image_pgd(
    probes: tuple[Probe, ...],
    images: torch.Tensor,
    eps: float | torch.Tensor,
    steps: int,
    random_start: torch.Generator | None = None,
) -> torch.Tensor:
    """World 2's sign-PGD (step 0.5 eps decaying to 1%) on the mean of ``probes``' latent
    distances, each divided by its start (the engine's ensemble objective; with one probe the
    same steps as the distance itself), from the original or, with ``random_start``, from a
    uniform point of the ball. ``eps``: one L-inf bound for every pixel, or a bound per pixel
    (N, 1, H, W) (a budget shaped by texture). Returns the 8-bit images."""
    found = []
    for index in range(len(images)):
        rows = [probe.row(index) for probe in probes]

        def loss(x: torch.Tensor, rows: list[Probe] = rows) -> torch.Tensor:
            return sum(p.latent_distance(x) / p.start for p in rows) / len(rows)

        restart = None
        if random_start is not None:  # each image its own stream, drawn from the run's
            seed = int(torch.randint(0, 2**62, (1,), generator=random_start))
            restart = torch.Generator().manual_seed(seed)
        one = images[index : index + 1]
        bound = eps[index : index + 1] if isinstance(eps, torch.Tensor) else eps
        found.append(sign_pgd(loss, one, bound, steps, start=0.5, random_start=restart))
    return torch.cat(found)
