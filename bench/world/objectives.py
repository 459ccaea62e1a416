"""Which loss moves what the model sees furthest for the same budget and the same passes?

Every objective runs in one loop (plain sign-PGD, 8/255, the same steps, from the original)
on the ceiling's images, and is judged the same way: latent distance closed toward the target
style, the judge's verdict on decode(mean), and on decode(a sampled latent).

- latent L2 toward the target: artcloak's objective; Mist's textural loss is this loss with a
  texture image as the target.
- latent statistics: each latent channel's mean and spread pulled to the target's (style as
  statistics, as in Gatys et al.'s Gram losses, here on the latent).
- latent variance (LA/LE-style, 2025): push the posterior's log-variance up, so sampled
  latents are noise; untargeted.
- decoded reconstruction: the decoder's output pulled to the target image in pixels (needs
  the decoder as well as the encoder; PhotoGuard's heavier attack goes further still).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from .efficacy import Probe, cases
from .pgd import sign_pgd

log = logging.getLogger("world")
EPS = 8 / 255


def objectives(probe: Probe) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    vae = probe.vae
    goal_mean = probe.goal.mean(dim=(2, 3))
    goal_spread = probe.goal.std(dim=(2, 3))

    def latent_l2(x):
        return probe.latent_distance(x)

    def latent_statistics(x):
        latent = vae.latent_mean(x)
        mean_gap = (latent.mean(dim=(2, 3)) - goal_mean).pow(2).sum(1)
        spread_gap = (latent.std(dim=(2, 3)) - goal_spread).pow(2).sum(1)
        return mean_gap + spread_gap

    def latent_variance(x):
        return -vae.moments(x * 2 - 1)[1].flatten(1).mean(1)

    def decoded_reconstruction(x):
        seen = (vae.decode(vae.latent_mean(x)).sample + 1) / 2
        return (seen - probe.targets).pow(2).flatten(1).sum(1)

    return {
        "latent L2 toward the target (artcloak; Mist's textural loss)": latent_l2,
        "latent statistics (per-channel mean and spread)": latent_statistics,
        "latent variance up (LA/LE-style, untargeted)": latent_variance,
        "decoded reconstruction toward the target (pixels)": decoded_reconstruction,
    }


def compare_objectives(world, scale) -> dict:
    probe = Probe(world.vae, world.judge, cases(scale.ceiling_per_style))
    rows = {}
    for name, loss in objectives(probe).items():
        found = sign_pgd(loss, probe.sources, EPS, scale.objective_steps)
        row = probe.summary(found)
        row["success_sampled_view"] = float(
            (probe.verdicts(found, sampled=True) == probe.labels).float().mean()
        )
        rows[name] = row
        log.info("objective %s: %s", name, row)
    return {"images": len(probe.cases), "steps": scale.objective_steps, "rows": rows}
