"""Objectives through the mimic's learning (issue "What stops mimicry"), in world 3.

The mimicry stage (``mimicry.py``) fine-tunes latent generators on one artist's artworks and
asks the style judge how many of their samples are still in the artist's style. Pulling
TAEF2's latents toward another style's (artcloak's objective, and plain PGD's) leaves most of
them there. The objectives here aim at what the mimic learns instead, with a *surrogate*
generator: the mimic's recipe with a seed of its own (the protector does not have the
mimic's weights), pre-trained on the same public gallery.

- ``mimic loss``: make the artworks hard to learn. Maximise the surrogate's flow-matching
  loss on the protected latents (the denoiser loss of Anti-DreamBooth and Mist, with the
  latent generator standing in for a diffusion U-Net), with the null label (the mimic's
  label is unknown when the artist protects).
- ``mimic loss, fine-tuned surrogate``: the same, against a surrogate that keeps fine-tuning on
  the artworks as they are being protected (ASPL's alternation): every few steps it takes a
  few fine-tuning steps of its own on the current protected latents under a new label, and the
  perturbation maximises its loss under that label.
- ``toward the target in the mimic's eyes``: minimise the surrogate's loss on the protected
  latents under the target style's label, so they sit where a generator expects that style.

Each is sign-PGD at 8/255 with the same number of TAEF2 passes as artcloak's default preset
(the surrogate's passes are cheap beside them and are counted apart).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from world.generator import FlowRecipe, fit

DRAWS = 4  # (time, noise) draws per image and step: the loss of one draw is too noisy
REFRESH_EVERY = 5  # perturbation steps between the fine-tuned surrogate's updates ...
REFRESH_STEPS = 10  # ... and its fine-tuning steps each time
SURROGATE_SEED = 100  # a seed no mimic generator uses (they use 0, 1, ...)


@dataclass
class Surrogate:
    """The protector's generator and the scale it works at (latents / ``norm``)."""

    model: torch.nn.Module
    norm: float
    encode: Callable[[Tensor], Tensor]  # images in [0, 1] -> TAEF2 latents


def flow_loss(model, latents: Tensor, label: int, generator: torch.Generator) -> Tensor:
    """(N,) the flow-matching loss of ``latents`` under ``label``, over DRAWS draws each."""
    count = len(latents)
    data = latents.repeat(DRAWS, 1, 1, 1)
    noise = torch.randn(data.shape, generator=generator)
    t = torch.rand(len(data), generator=generator)
    mixed = (1 - t)[:, None, None, None] * noise + t[:, None, None, None] * data
    labels = torch.full((len(data),), label, dtype=torch.long)
    error = (model(mixed, t, labels) - (data - noise)).pow(2).flatten(1).mean(1)
    return error.view(DRAWS, count).mean(0)


def _sign_steps(
    images: Tensor,
    eps: float,
    steps: int,
    loss: Callable[[Tensor, int], Tensor],
    between: Callable[[Tensor, int], None] | None = None,
) -> Tensor:
    """Sign-PGD minimising ``loss(images, step)`` (step 0.5 eps decaying to 1%, as plain PGD
    does in the bench); ``between`` sees the current images after each step. 8-bit result."""
    delta = torch.zeros_like(images)
    for step in range(steps):
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss((images + delta).clamp(0, 1), step).sum(), delta)
        size = eps * (0.5 + (0.01 - 0.5) * step / max(1, steps - 1))
        with torch.no_grad():
            delta = (delta - size * grad.sign()).clamp(-eps, eps)
            delta = (images + delta).clamp(0, 1) - images
        if between is not None:
            between(((images + delta) * 255).round() / 255, step)
    return ((images + delta) * 255).round() / 255


def hard_to_learn(surrogate: Surrogate, images: Tensor, eps: float, steps: int) -> Tensor:
    """Maximise the surrogate's loss under the null label."""
    model = copy.deepcopy(surrogate.model).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)

    def loss(x: Tensor, step: int) -> Tensor:
        latents = surrogate.encode(x) / surrogate.norm
        return -flow_loss(model, latents, model.null_label, generator)

    return _sign_steps(images, eps, steps, loss)


def hard_to_learn_fine_tuned(
    surrogate: Surrogate, images: Tensor, eps: float, steps: int, lr: float
) -> Tensor:
    """Maximise the loss of a surrogate that fine-tunes on the images as they are protected."""
    model = copy.deepcopy(surrogate.model)
    label = model.null_label - 1  # the one label the pre-training left unused: the mimic's
    generator = torch.Generator().manual_seed(0)

    def loss(x: Tensor, step: int) -> Tensor:
        model.eval().requires_grad_(False)
        return -flow_loss(model, surrogate.encode(x) / surrogate.norm, label, generator)

    def fine_tune(current: Tensor, step: int) -> None:
        if (step + 1) % REFRESH_EVERY:
            return
        model.requires_grad_(True)
        with torch.no_grad():
            latents = surrogate.encode(current) / surrogate.norm
        labels = torch.full((len(latents),), label)
        recipe = FlowRecipe(steps=REFRESH_STEPS, batch=len(latents), lr=lr, seed=step)
        fit(model, latents, labels, recipe)

    return _sign_steps(images, eps, steps, loss, between=fine_tune)


def toward_target_label(
    surrogate: Surrogate, images: Tensor, eps: float, steps: int, target_label: int
) -> Tensor:
    """Minimise the surrogate's loss under the target style's label."""
    model = copy.deepcopy(surrogate.model).eval().requires_grad_(False)
    generator = torch.Generator().manual_seed(0)

    def loss(x: Tensor, step: int) -> Tensor:
        latents = surrogate.encode(x) / surrogate.norm
        return flow_loss(model, latents, target_label, generator)

    return _sign_steps(images, eps, steps, loss)
