"""Step rules that read the latent residual, tried in ``bench/step_rule_trials.py``.

The loss is the squared norm of the residual: the encoder's latent at the perturbed image minus
the target latents. Each pass computes it on the way to the gradient, so a rule can keep it at
no cost: the residuals of two points give the encoder's Jacobian times the step between them (a
secant), and with it a Gauss-Newton model of the loss along and across past steps. These rules
use that model to choose where to step from and how far; ``LatentTap`` keeps the encoder's last
output for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from artcloak.engine.optimize import SignStep


class LatentTap:
    """The attacked encoder, keeping its last output (detached) for the rules."""

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encoder = encoder
        self.downscale = getattr(encoder, "downscale", 8)
        self.last: torch.Tensor | None = None

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        latent = self.encoder(images)
        self.last = latent.detach()
        return latent


@dataclass
class Residual:
    """The residual at the point the last gradient was taken: the tap's last latent (the
    loop's pass at the rule's ``delta``) minus the target latents."""

    tap: LatentTap
    goal: torch.Tensor

    def __call__(self) -> torch.Tensor:
        return self.tap.last - self.goal


def per_image(values: torch.Tensor) -> torch.Tensor:
    """(B,) values shaped to scale (B, C, H, W) tensors image by image."""
    return values.view(-1, 1, 1, 1)


def dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) each image's dot product."""
    return (a * b).flatten(1).sum(1)


def best_multiple(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """(B,) the multiple of the last step that the secant model puts lowest: the residual
    is linear along the step, ``before`` at 0 and ``after`` at 1."""
    change = after - before
    return -dot(before, change) / dot(change, change).clamp_min(1e-30)


@dataclass
class SecantCorrection(SignStep):
    """Before each step, back to the best multiple (in [0, 2]) of the last step on the secant
    model, the gradient interpolated alike; then SignStep's step from there."""

    residual: Callable[[], torch.Tensor] | None = None
    last: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        residual = self.residual()
        if step > 0 and self.last is not None:
            before, gradient_before, residual_before = self.last
            multiple = per_image(best_multiple(residual_before, residual).clamp(0, 2))
            delta = before + multiple * (delta - before)
            grad = gradient_before + multiple * (grad - gradient_before)
            residual = residual_before + multiple * (residual - residual_before)
        self.last = (delta, grad, residual)
        return super().__call__(delta, grad, loss, step, total, eps)


@dataclass
class SecantSizes(SignStep):
    """As SignStep, each image's steps scaled after every step by that step's best multiple
    on the secant model (clipped to [``least``, ``most``]), the point left where it is."""

    residual: Callable[[], torch.Tensor] | None = None
    least: float = 0.5
    most: float = 1.5
    last_residual: torch.Tensor | None = field(default=None, repr=False)
    multiples: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        residual = self.residual()
        if step == 0 or self.last_residual is None:
            self.multiples = torch.ones(len(delta), device=delta.device)
        else:
            best = best_multiple(self.last_residual, residual).clamp(self.least, self.most)
            self.multiples = self.multiples * best
        self.last_residual = residual
        self.update(grad, loss, step)
        sizes = self.step_sizes(step, total, eps) * self.multiples
        return delta - per_image(sizes) * self.velocity.sign()


@dataclass
class AndersonMixing(SignStep):
    """Anderson mixing on the residuals: before each step, to the affine combination of the
    last ``memory`` + 1 points whose combined residual is smallest (ridge ``ridge`` on the
    normal equations, weights clipped to +-``largest``), the gradient combined alike."""

    residual: Callable[[], torch.Tensor] | None = None
    memory: int = 3
    ridge: float = 1e-3
    largest: float = 2.0
    points: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = field(
        default_factory=list, repr=False
    )

    def __call__(self, delta, grad, loss, step, total, eps):
        self.points = [*self.points, (delta, grad, self.residual())][-(self.memory + 1) :]
        if len(self.points) > 1:
            delta, grad = self.mixed()
        return super().__call__(delta, grad, loss, step, total, eps)

    def mixed(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The mixed point and its gradient."""
        changes = [
            [after[part] - before[part] for part in range(3)]
            for before, after in zip(self.points, self.points[1:], strict=False)
        ]
        residual = self.points[-1][2].flatten(1)
        columns = torch.stack([change[2].flatten(1) for change in changes], 2)  # (B, n, m)
        normal = columns.transpose(1, 2) @ columns
        size = normal.diagonal(dim1=1, dim2=2).mean(1).view(-1, 1, 1)
        normal = normal + self.ridge * size * torch.eye(normal.shape[-1], device=normal.device)
        weights = torch.linalg.solve(normal, columns.transpose(1, 2) @ residual.unsqueeze(2))
        weights = weights.squeeze(2).clamp(-self.largest, self.largest)  # (B, m)
        delta, grad = self.points[-1][0], self.points[-1][1]
        for index, (move, gradient_change, _) in enumerate(changes):
            delta = delta - per_image(weights[:, index]) * move
            grad = grad - per_image(weights[:, index]) * gradient_change
        return delta, grad


@dataclass
class RegionCuts(SignStep):
    """As SignStep, and the steps in each region of ``tile`` x ``tile`` latent pixels cut
    (``cut``) where the residual's energy over that region rose."""

    residual: Callable[[], torch.Tensor] | None = None
    tile: int = 8
    energy: torch.Tensor | None = field(default=None, repr=False)
    region_scales: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        residual = self.residual()
        tile = min(self.tile, *residual.shape[-2:])
        energy = F.avg_pool2d(residual.square().sum(1, keepdim=True), tile, ceil_mode=True)
        if step == 0 or self.energy is None:
            self.region_scales = torch.ones_like(energy)
        else:
            rose = energy > self.energy
            self.region_scales = torch.where(
                rose, self.region_scales * self.cut, self.region_scales
            )
        self.energy = energy
        self.update(grad, loss, step)
        regions = F.interpolate(self.region_scales, size=delta.shape[-2:], mode="nearest")
        sizes = per_image(self.step_sizes(step, total, eps)) * regions
        return delta - sizes * self.direction()

    def direction(self) -> torch.Tensor:
        return self.velocity.sign()
