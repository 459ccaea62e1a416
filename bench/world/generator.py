"""A small class-conditional latent generator (flow matching on the world VAE's latents).

It stands in for a latent diffusion model: trained on latents of labelled images, then
fine-tuned on a few images under a new label, it generates latents that the VAE decodes
and the judge classifies. That is the mimicry (and poisoning) experiment in miniature.

Like the latent models mimics use, it is trained with the label dropped to a null label
(a share of the time) and sampled with classifier-free guidance. Without guidance its
samples of the flat cel style drifted toward brush texture, and a model fine-tuned on clean
cel images made the artist's style in only about two thirds of its samples (the mimicry
table's clean row in the report says what guidance makes of it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn import functional as F

GUIDANCE = 3.0  # classifier-free guidance scale of ``sample``; 1 is none
SAMPLE_STEPS = 40  # Euler steps of ``sample``


class LatentFlow(nn.Module):
    """Predicts the velocity from noise to data for latents (B, 4, h, w), a time and a label
    (``labels`` of them, and one more, ``null_label``, for no label)."""

    def __init__(self, labels: int, channels: int = 4, width: int = 96) -> None:
        super().__init__()
        self.null_label = labels
        self.embed = nn.Embedding(labels + 1, width)
        self.time = nn.Sequential(nn.Linear(1, width), nn.SiLU(), nn.Linear(width, width))
        self.inp = nn.Conv2d(channels, width, 3, padding=1)
        self.blocks = nn.ModuleList([nn.Conv2d(width, width, 3, padding=1) for _ in range(4)])
        self.out = nn.Conv2d(width, channels, 3, padding=1)

    def forward(self, z: Tensor, t: Tensor, label: Tensor) -> Tensor:
        condition = (self.embed(label) + self.time(t[:, None]))[:, :, None, None]
        h = self.inp(z)
        for block in self.blocks:
            h = h + block(F.silu(h + condition))
        return self.out(F.silu(h))


def seeded_flow(labels: int, width: int, seed: int, channels: int = 4) -> LatentFlow:
    """A LatentFlow whose initial weights come from ``seed``, not from whatever stages drew
    from torch's global generator before (so a stage rerun alone starts where a full run does)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return LatentFlow(labels=labels, channels=channels, width=width)


@dataclass(frozen=True)
class FlowRecipe:
    steps: int = 3000
    batch: int = 128
    lr: float = 2e-3
    seed: int = 0
    label_dropout: float = 0.1  # share of training pairs whose label becomes the null label


def fit(model: nn.Module, latents: Tensor, labels: Tensor, recipe: FlowRecipe) -> float:
    """Rectified-flow training of ``model`` (a LatentFlow, or any velocity model with a
    ``null_label``) on (latent, label) pairs; returns seconds taken."""
    generator = torch.Generator().manual_seed(recipe.seed)
    optimiser = torch.optim.Adam(model.parameters(), recipe.lr)
    started = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        for group in optimiser.param_groups:
            group["lr"] = recipe.lr * min(1.0, (step + 1) / 100) * (1 - step / recipe.steps)
        index = torch.randint(0, len(latents), (recipe.batch,), generator=generator)
        data, label = latents[index], labels[index]
        noise = torch.randn(data.shape, generator=generator)
        t = torch.rand(len(data), generator=generator)
        dropped = torch.rand(len(data), generator=generator) < recipe.label_dropout
        label = torch.where(dropped, model.null_label, label)
        mixed = (1 - t)[:, None, None, None] * noise + t[:, None, None, None] * data
        loss = (model(mixed, t, label) - (data - noise)).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return time.perf_counter() - started


@torch.no_grad()
def sample(
    model: nn.Module,
    label: int,
    count: int,
    seed: int,
    shape: tuple[int, ...],
    steps: int = SAMPLE_STEPS,
    guidance: float = GUIDANCE,
) -> Tensor:
    """Euler integration from noise to latents under ``label``, with classifier-free guidance
    (the velocity pushed ``guidance`` times as far from the unlabelled one as the label's)."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn((count, *shape), generator=generator)
    labels = torch.full((count,), label, dtype=torch.long)
    if guidance != 1:  # the labelled and the unlabelled velocity in one batch
        labels = torch.cat([labels, torch.full((count,), model.null_label, dtype=torch.long)])
    for i in range(steps):
        t = torch.full((len(labels),), i / steps)
        if guidance == 1:
            velocity = model(z, t, labels)
        else:
            labelled, free = model(torch.cat([z, z]), t, labels).chunk(2)
            velocity = free + guidance * (labelled - free)
        z = z + velocity / steps
    return z
