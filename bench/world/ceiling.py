"""How far any pixel attack can get in this world at a given L-inf budget.

Two white-box attacks, neither available to artcloak (which sees only the encoder): PGD on
the encoder's latent distance to the target (artcloak's objective, 100 steps), and PGD on the
judge's own verdict through the whole VAE (encoder, decoder and judge). If even the second
fails at a budget, no encoder attack can succeed there: the VAE itself removes the change.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from .art import SIZE
from .efficacy import cases, to_tensor
from .pgd import sign_pgd
from .train import predict, reconstruct

BUDGETS_255 = (4, 8, 16, 32)


def ceiling(world, scale) -> dict:
    vae, judge = world.vae, world.judge
    chosen = cases(scale.per_style)
    pairs = [case.images(SIZE) for case in chosen]
    sources = to_tensor(np.stack([source for source, _ in pairs]))
    targets = to_tensor(np.stack([target for _, target in pairs]))
    labels = torch.tensor([c.target for c in chosen])
    steps = 100 if scale.name == "full" else 40

    with torch.no_grad():
        goal = vae.latent_mean(targets)
        start = (vae.latent_mean(sources) - goal).flatten(1).norm(dim=1)

    def latent_distance(x: torch.Tensor) -> torch.Tensor:
        return (vae.latent_mean(x) - goal).flatten(1).norm(dim=1)

    def judge_loss(x: torch.Tensor) -> torch.Tensor:
        seen = (vae.decode(vae.latent_mean(x)).sample + 1) / 2
        return F.cross_entropy(judge(seen), labels, reduction="none")

    def success(x: torch.Tensor) -> float:
        return float((predict(judge, reconstruct(vae, x)) == labels).float().mean())

    rows = []
    for eps in BUDGETS_255:
        on_latent = sign_pgd(latent_distance, sources, eps / 255, steps, start=0.5)
        on_judge = sign_pgd(judge_loss, sources, eps / 255, steps, start=0.5)
        with torch.no_grad():
            closed = 1 - latent_distance(on_latent) / start
        rows.append({
            "eps_255": eps,
            "latent_distance_closed": float(closed.mean()),
            "success_latent_attack": success(on_latent),
            "success_judge_attack": success(on_judge),
        })  # fmt: skip
    return {"images": len(chosen), "steps": steps, "rows": rows}
