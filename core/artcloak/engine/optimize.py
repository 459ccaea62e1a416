"""The one optimisation loop for cloak and shade, over a batch of images.

Every image in a batch shares the working size and keeps its own target latents,
free-pixel mask, greyscale tie, random start and resize round trip. The loss is the
encoder-latent distance to the target, normalised per image and per encoder by its
starting value (so encoders of an ensemble count equally), plus a penalty on LPIPS
above the budget. A ``StepRule`` turns the gradient into the next perturbation; the
projection onto the budget is the same for every rule.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Protocol

import torch

from ..errors import TargetError
from ..progress import SILENT, Listener, ProgressEvent
from ..settings import Budget, Effort, Precision
from .resizing import resize
from .robust import random_transform

LPIPS_PENALTY_WEIGHT = 30.0  # as in Glaze's penalty method: latent loss + 30 * max(LPIPS - p, 0)
RANDOM_START = 0.5  # the random start is uniform in +-RANDOM_START * eps
# Working pixels, about two latent cells of an 8x encoder. On TAEF2 at 15 passes, 9, 17 and 33 px
# all closed more than a start toward the target's pixels: `python bench/step_rule_trials.py`.
# At 512 px, 33 px (17 px's share of a 256 px image) and 65 px closed no more than 17 px, nor did adding
# half or a quarter of the blurred difference (the target's colours) to the detail.
DETAIL_BLUR = 17
LPIPS_NEAR = 0.5  # LPIPS at or above this share of its bound is evaluated every step
PLATEAU_TOLERANCE = 3e-4  # a relative fall in the latent loss smaller than this is a plateau
# A target whose latent is this close to the image's (a share of the target latent's size) is
# the image itself to the encoder: there is no distance to close.
SAME_LATENT = 1e-3


class StepRule(Protocol):
    def __call__(
        self,
        delta: torch.Tensor,
        grad: torch.Tensor,
        loss: torch.Tensor,
        step: int,
        total: int,
        eps: float,
    ) -> torch.Tensor: ...


@dataclass
class SignStep:
    """Sign steps along a running sum of each image's gradients, each divided by its mean
    absolute value (MI-FGSM's momentum; ``decay`` 0 is plain sign-gradient descent), the step
    size decaying linearly from start*eps to end*eps. An image whose latent loss (``loss``, at
    ``delta``) rose since its last step takes steps ``cut`` times as large from then on (1:
    never cut). One rule per run: it keeps the sum and the cuts."""

    # The defaults held against over fifty rules and schedules tried on TAEF2 at 15 passes and
    # 8/255, each against the same ceilings: the few that closed a little more at 256 or 512 px
    # did not also on the held-out artworks, or left a worse worst image. `python
    # bench/step_rule_trials.py` holds and runs them (its docstring lists the older ones); the
    # README's world-3 section gives the figures. With the first step at 0.75 eps an
    # image now and then overshoots (its loss rises); the cut keeps it from overshooting again.
    # `python bench/step_rules.py` measures the rule against the ceiling.
    decay: float = 0.5
    start: float = 0.75
    end: float = 0.05
    cut: float = 0.5
    velocity: torch.Tensor | None = field(default=None, repr=False)
    scales: torch.Tensor | None = field(default=None, repr=False)  # (B,) each image's cuts
    last_loss: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        sizes = self.step_sizes(step, total, eps)
        return delta - sizes.view(-1, *([1] * (grad.dim() - 1))) * self.velocity.sign()

    def update(self, grad: torch.Tensor, loss: torch.Tensor, step: int) -> None:
        """Add the normalised gradient to the momentum; cut where the loss rose."""
        scale = grad.abs().flatten(1).mean(1).clamp_min(1e-20)
        normalised = grad / scale.view(-1, *([1] * (grad.dim() - 1)))
        fresh = step == 0 or self.velocity is None or self.velocity.shape != grad.shape
        if fresh:
            self.velocity, self.scales = normalised, torch.ones_like(scale)
        else:
            self.velocity = self.decay * self.velocity + normalised
            rose = loss.to(scale) > self.last_loss
            self.scales = torch.where(rose, self.scales * self.cut, self.scales)
        self.last_loss = loss.detach().to(scale)

    def step_sizes(self, step: int, total: int, eps: float) -> torch.Tensor:
        """(B,) each image's step at ``step`` of ``total``: the schedule times its cuts."""
        fraction = step / max(1, total - 1)
        return eps * (self.start + (self.end - self.start) * fraction) * self.scales


@dataclass
class Batch:
    """Working-resolution tensors of the images optimised together."""

    base: torch.Tensor  # (B, 3, h, w): the model's view of each original
    targets: list[torch.Tensor]  # per encoder: (B, C, h', w') target latent means
    free: torch.Tensor  # (B, 1, h, w): 1 where change is allowed
    grey: torch.Tensor  # (B,) bool: keep the three channels equal
    rows: torch.Tensor  # (B, 1, h, h) and cols (B, 1, w, w): the full-resolution round trip
    cols: torch.Tensor
    seeds: list[int]
    shares: torch.Tensor | None = None  # (B, 1, h, w): share of eps per pixel; None = all
    robust: bool = False  # show the encoder each step through a random scraper transform
    # Per image, a (3, h, w) perturbation to start from (an already protected image minus its
    # original, at the working size), or None for the random start; None: random for all.
    starts: list[torch.Tensor | None] | None = None
    # (B, 3, h, w): the pixels each image's random start is moved toward (the product's:
    # its target's detail, ``target_detail``). None: the random start alone.
    toward: torch.Tensor | None = None
    # Per encoder, (B, C, h', w'): the originals' latents (fp32) where the engine has them
    # already; None: the loop encodes the originals for the loss's unit.
    base_latents: list[torch.Tensor] | None = None

    def bound(self, eps: float) -> torch.Tensor | float:
        """The L-inf bound per pixel (a tensor) or for all pixels (a number)."""
        return eps if self.shares is None else eps * self.shares

    def view(self, delta: torch.Tensor) -> torch.Tensor:
        """What the model sees of the protected images."""
        return (self.base + self.rows @ (delta * self.free) @ self.cols).clamp(0, 1)


@dataclass
class Outcome:
    delta: torch.Tensor  # (B, 3, h, w) working-resolution perturbations
    losses: list[float]  # mean loss per step
    encoder_passes: int


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for encoder passes, or None for plain fp32."""
    if precision is Precision.FP32:
        return None
    if precision is Precision.BF16:
        return torch.bfloat16
    if precision is Precision.FP16:
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    # CPU: bf16 convolutions without native bf16 units measured ~400x slower than fp32 here.
    return torch.bfloat16 if cpu_has_bf16_tiles() else None


def cpu_has_bf16_tiles() -> bool:
    """Has this CPU AMX tiles (bf16 matrix units, Intel Xeon since Sapphire Rapids)? There a
    full-size SD VAE pass in bf16 took a third of fp32's time (`python bench/precision.py`)."""
    supported = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(supported is not None and supported())


def latent_distances(encoders, targets, view: torch.Tensor, dtype) -> list[torch.Tensor]:
    """Per encoder, the squared latent distance of each image to its target latent: (B,)
    each. The encoder sees the view resized to give a latent of its target's size."""
    distances = []
    for encoder, target in zip(encoders, targets, strict=True):
        with _autocast(view.device, dtype):
            latent = encoder(resize(view, input_size(encoder, target.shape[-2:])))
        distances.append(squared_distance(latent, target))
    return distances


def squared_distance(latents: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,): each latent's squared distance to its target, in fp32."""
    return (latents.float() - targets).pow(2).flatten(1).sum(1)


def input_size(encoder, latent_size) -> tuple[int, int]:
    """The image size at which ``encoder`` gives a latent of ``latent_size`` (height, width):
    times its downscale (8, or 32 for TAESana)."""
    scale = int(getattr(encoder, "downscale", 8))
    return latent_size[0] * scale, latent_size[1] * scale


def _checked(distances: list[torch.Tensor], targets) -> list[torch.Tensor]:
    """The originals' distances to ``targets``, the losses' unit; TargetError where a target
    is the image itself to an encoder."""
    for distance, target in zip(distances, targets, strict=True):
        size = target.float().pow(2).flatten(1).sum(1)
        if bool((distance <= SAME_LATENT**2 * size).any()):
            raise TargetError(
                "The target looks like the image itself to the encoder (their latents are the "
                "same), so there is nothing to move toward: choose another style or other "
                "anchor images."
            )
    return [distance.clamp_min(1e-12) for distance in distances]


def _autocast(device: torch.device, dtype):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def project(delta: torch.Tensor, batch: Batch, eps: float) -> torch.Tensor:
    """Onto the budget box, the free pixels, equal channels for greyscale, and [0, 1]."""
    bound = batch.bound(eps)
    if isinstance(bound, torch.Tensor):
        delta = torch.minimum(torch.maximum(delta, -bound), bound) * batch.free
    else:
        delta = delta.clamp(-bound, bound) * batch.free
    tied = delta.mean(dim=1, keepdim=True).expand_as(delta)
    delta = torch.where(batch.grey.view(-1, 1, 1, 1), tied, delta)
    return (batch.base + delta).clamp(0, 1) - batch.base


def random_start(batch: Batch, eps: float) -> torch.Tensor:
    """Per-image uniform start from each image's own seed, the same on every device."""
    starts = []
    for seed in batch.seeds:
        generator = torch.Generator().manual_seed(seed)
        shape = batch.base.shape[1:]
        starts.append((torch.rand(shape, generator=generator) * 2 - 1) * RANDOM_START * eps)
    return project(torch.stack(starts).to(batch.base.device), batch, eps)


def target_detail(
    bases: torch.Tensor, targets: torch.Tensor, blur: int = DETAIL_BLUR
) -> torch.Tensor:
    """(B, 3, h, w): each base plus its target's detail, what the start moves toward: the
    target's difference from the base less that difference box-blurred over ``blur`` (odd)
    working pixels. An eps box carries a target's texture, not its colours."""
    difference = targets - bases
    return bases + difference - box_blur(difference, blur)


def box_blur(images: torch.Tensor, size: int) -> torch.Tensor:
    """A ``size`` x ``size`` box blur (odd ``size``), the edges repeated."""
    padded = torch.nn.functional.pad(images, (size // 2,) * 4, mode="replicate")
    rows = torch.nn.functional.avg_pool2d(padded, (1, size), stride=1)
    return torch.nn.functional.avg_pool2d(rows, (size, 1), stride=1)


def start_delta(batch: Batch, eps: float) -> torch.Tensor:
    """The first perturbation: each image's given start (``batch.starts``) projected onto the
    budget, or its random start moved toward ``batch.toward``."""
    delta = random_start(batch, eps)
    if batch.toward is not None:
        delta = project(delta + (batch.toward - batch.base), batch, eps)
    if batch.starts is None:
        return delta
    given = [
        d if start is None else start.to(d) for d, start in zip(delta, batch.starts, strict=True)
    ]
    return project(torch.stack(given), batch, eps)


def optimise(
    batch: Batch,
    encoders,
    lpips_model,
    budget: Budget,
    effort: Effort,
    precision: Precision = Precision.AUTO,
    rule: StepRule | None = None,
    listener: Listener = SILENT,
    names: tuple[str, ...] = (),
) -> Outcome:
    """Find perturbations that pull each image's latents toward its target within budget.

    The loop runs ``effort.steps`` steps, or fewer: once the latent loss stops falling
    (``effort.patience``; never with ``batch.robust``) the schedule is cut to a short cool-down
    of shrinking steps."""
    # Seen through a new random transform each step, the loss rises and falls with the
    # transform, so no plateau can be read from it (on TAEF2, --robust stopped after 16 passes)
    # and no rise means an overshoot.
    rule = rule or (SignStep(cut=1.0) if batch.robust else SignStep())
    patience = None if batch.robust else effort.patience
    dtype = autocast_dtype(precision, batch.base.device)
    objective = Objective(batch, encoders, lpips_model, budget, effort, dtype)
    unit = objective.unit()
    delta, horizon = start_delta(batch, budget.eps), effort.steps
    if lpips_model is not None:  # the start's share of the bound, before the timed first pass
        with torch.no_grad():
            objective.perceptual(batch.view(delta))
    objective.warm_up(delta)
    losses, latent_losses = [], []
    step, winding_down, timed = 0, False, time.perf_counter()
    while step < horizon:
        listener.check_cancel()
        grad, loss, latent_loss = objective.gradient(delta, step, unit)
        if step == 0:  # one pass measured: the estimate before step 1
            left = (time.perf_counter() - timed) * (horizon - 1)
            listener.emit(ProgressEvent("optimise", 0, horizon, images=names, seconds_left=left))
        latent_losses.append(float(latent_loss.mean()))
        with torch.no_grad():
            stepped = rule(delta.detach(), grad, latent_loss, step, horizon, budget.eps)
            delta = project(stepped, batch, budget.eps)
        losses.append(float(loss.detach().mean()))
        step += 1
        if not winding_down and plateaued(latent_losses, patience):
            horizon, winding_down = min(horizon, step + effort.cool_down), True
        left = (time.perf_counter() - timed) / step * (horizon - step)
        used = objective.budget_used
        listener.emit(ProgressEvent("optimise", step, horizon, loss=losses[-1], images=names,
                                    budget_used=used, seconds_left=left))  # fmt: skip
    passes = step * len(encoders)
    return Outcome(delta=delta.detach(), losses=losses, encoder_passes=passes)


@dataclass
class Objective:
    """What each step minimises: the mean over encoders of the latent distance to the targets
    (in units of the originals' distance), plus a penalty past the LPIPS bound, measured every
    ``effort.lpips_every`` steps and every step once near it (``budget_used``: the last share
    of the bound measured)."""

    batch: Batch
    encoders: list
    lpips_model: object | None
    budget: Budget
    effort: Effort
    dtype: torch.dtype | None
    budget_used: float | None = None

    def unit(self) -> list[torch.Tensor]:
        """The originals' distances to the targets, per encoder (B,): the losses' unit, checked.
        From ``batch.base_latents``, or a forward without gradients before the first pass."""
        batch = self.batch
        if batch.base_latents is not None:
            pairs = zip(batch.base_latents, batch.targets, strict=True)
            distances = [squared_distance(latents, targets) for latents, targets in pairs]
        else:
            with torch.no_grad():
                distances = latent_distances(self.encoders, batch.targets, batch.base, self.dtype)
        return _checked(distances, batch.targets)

    def warm_up(self, delta: torch.Tensor) -> None:
        """A forward and backward of each encoder at half its working size, before the timed
        first pass. The first pass at a size carries one-off costs, and the estimate shown before
        step 1 multiplies its time by the passes left (bench/estimate.py, TAEF2 at 256 px: 1.14-1.40
        times the loop's time without this). At a quarter of a pass it takes most of them."""
        view = self.batch.view(delta.detach())
        for encoder, target in zip(self.encoders, self.batch.targets, strict=True):
            half = [max(1, side // 2) for side in target.shape[-2:]]
            small = resize(view, input_size(encoder, half)).requires_grad_(True)
            with _autocast(small.device, self.dtype):
                latent = encoder(small)
            torch.autograd.grad(latent.float().square().sum(), small)

    def gradient(
        self, delta: torch.Tensor, step: int, unit: list
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The loss's gradient at ``delta``, the loss per image and its latent part per image."""
        delta = delta.detach().requires_grad_(True)
        loss, latent_loss = self(delta, step, unit)
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        return grad, loss, latent_loss

    def __call__(
        self, delta: torch.Tensor, step: int, unit: list
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The loss per image (B,), and its latent part (B,)."""
        batch = self.batch
        view = batch.view(delta)
        seen = random_transform(batch.seeds[0], step)[1](view) if batch.robust else view
        distances = latent_distances(self.encoders, batch.targets, seen, self.dtype)
        loss = sum(d / u for d, u in zip(distances, unit, strict=True)) / len(self.encoders)
        latent_loss = loss.detach()
        if self.lpips_model is not None and lpips_due(step, self.effort, self.budget_used):
            perceptual = self.perceptual(view)
            loss = loss + LPIPS_PENALTY_WEIGHT * (perceptual - self.budget.lpips).clamp_min(0)
        return loss, latent_loss

    def perceptual(self, view: torch.Tensor) -> torch.Tensor:
        """LPIPS of each view against its original (B,); ``budget_used`` from it."""
        perceptual = self.lpips_model(view, self.batch.base, normalize=True).flatten()
        self.budget_used = float(perceptual.detach().max()) / self.budget.lpips
        return perceptual


def lpips_due(step: int, effort: Effort, budget_used: float | None) -> bool:
    """LPIPS every ``effort.lpips_every`` steps after the first, and every step once it nears
    its bound. The first pass is the encoders' alone: it is timed for the estimate shown before
    step 1, which an LPIPS pass of every few would make too long (bench/estimate.py, TAEF2 at 512
    px: 1.16-1.20 times the loop's time with LPIPS in the first pass, 1.02-1.07 without)."""
    near = budget_used is not None and budget_used >= LPIPS_NEAR
    return step > 0 and (near or step % effort.lpips_every == 0)


def plateaued(latent_losses: list[float], patience: int | None) -> bool:
    """Has the latent loss fallen by less than PLATEAU_TOLERANCE over ``patience`` steps?"""
    if patience is None or len(latent_losses) < 2 * patience:
        return False
    before, now = latent_losses[-patience - 1], latent_losses[-1]
    return before - now < PLATEAU_TOLERANCE * abs(before)
