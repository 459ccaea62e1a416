"""Plain sign-gradient PGD: the baseline every artcloak figure in the benches is compared with."""

from __future__ import annotations

from collections.abc import Callable

import torch


def sign_pgd(
    per_image_loss: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    eps: float,
    steps: int,
    start: float = 1.0,
    end: float = 0.01,
    on_step: Callable[[torch.Tensor], None] | None = None,
    random_start: torch.Generator | None = None,
    schedule_steps: int | None = None,
) -> torch.Tensor:
    """Minimise the per-image losses in the L-inf ball of ``eps`` around ``images`` (and
    [0, 1]), step size decaying linearly from ``start * eps`` to ``end * eps``; ``on_step``
    sees each step's losses; with ``random_start`` the search starts at a uniform point of the
    ball drawn from that generator (a restart). The step size decays over ``schedule_steps``
    (default ``steps``): a timing run takes the first ``steps`` steps of a longer schedule.
    Returns the 8-bit result, as a file would hold it."""
    schedule = steps if schedule_steps is None else schedule_steps
    delta = torch.zeros_like(images)
    if random_start is not None:
        delta = (torch.rand(images.shape, generator=random_start) * 2 - 1) * eps
        delta = (images + delta).clamp(0, 1) - images
    for step in range(steps):
        delta.requires_grad_(True)
        losses = per_image_loss((images + delta).clamp(0, 1))
        (grad,) = torch.autograd.grad(losses.sum(), delta)
        size = eps * (start + (end - start) * step / max(1, schedule - 1))
        with torch.no_grad():
            delta = (delta - size * grad.sign()).clamp(-eps, eps)
            delta = (images + delta).clamp(0, 1) - images
        if on_step is not None:
            on_step(losses.detach())
    return ((images + delta) * 255).round() / 255
