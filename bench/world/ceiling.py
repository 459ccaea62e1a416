"""How far any pixel attack can get in this world at a given L-inf budget.

Two white-box attacks, neither available to artcloak (which sees only the encoder): PGD on
the encoder's latent distance to the target (artcloak's objective, 100 steps), and PGD on the
judge's own verdict through the whole VAE (encoder, decoder and judge). If even the second
fails at a budget, no encoder attack can succeed there: the VAE itself removes the change.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from .efficacy import cases, to_tensor
from .train import predict, reconstruct

BUDGETS_255 = (4, 8, 16, 32)


def pgd(
    objective: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, eps: float, steps: int
) -> torch.Tensor:
    """Sign-gradient descent on ``objective`` in the L-inf ball; the 8-bit result."""
    delta = torch.zeros_like(images)
    for step in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(objective((images + delta).clamp(0, 1)), delta)
        size = eps * (0.5 - 0.49 * step / max(1, steps - 1))
        with torch.no_grad():
            delta = (delta - size * grad.sign()).clamp(-eps, eps)
            delta = (images + delta).clamp(0, 1) - images
    return ((images + delta) * 255).round() / 255


def ceiling(world, scale) -> dict:
    vae, judge = world.vae, world.judge
    chosen = cases(scale.per_style)
    sources = to_tensor(torch.stack([torch.from_numpy(c.images(32)[0]) for c in chosen]).numpy())
    targets = torch.stack([torch.from_numpy(c.images(32)[1]) for c in chosen])
    targets = targets.permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([c.target for c in chosen])
    steps = 100 if scale.name == "full" else 40

    def mean(x: torch.Tensor) -> torch.Tensor:
        return vae.moments(x * 2 - 1)[0]

    with torch.no_grad():
        goal = mean(targets)
        start = (mean(sources) - goal).flatten(1).norm(dim=1)

    def latent_objective(x: torch.Tensor) -> torch.Tensor:
        return (mean(x) - goal).flatten(1).norm(dim=1).sum()

    def judge_objective(x: torch.Tensor) -> torch.Tensor:
        seen = (vae.decode(mean(x)).sample + 1) / 2
        return F.cross_entropy(judge(seen), labels, reduction="sum")

    def success(x: torch.Tensor) -> float:
        return float((predict(judge, reconstruct(vae, x)) == labels).float().mean())

    rows = []
    for eps in BUDGETS_255:
        on_latent = pgd(latent_objective, sources, eps / 255, steps)
        on_judge = pgd(judge_objective, sources, eps / 255, steps)
        with torch.no_grad():
            closed = 1 - (mean(on_latent) - goal).flatten(1).norm(dim=1) / start
        rows.append({
            "eps_255": eps,
            "latent_distance_closed": float(closed.mean()),
            "success_latent_attack": success(on_latent),
            "success_judge_attack": success(on_judge),
        })  # fmt: skip
    return {"images": len(chosen), "steps": steps, "rows": rows}
