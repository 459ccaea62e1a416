"""World 2: the gallery's artworks and a KL-VAE of Stable Diffusion's shape that keeps them.

The VAE is trained once (``python bench/world/train.py``) on random 64x64 crops of 128x128
artworks (a convolutional VAE trained on crops works at full size, as SD's was trained at
256 and used at 512) and committed as a small safetensors file whose SHA-256 the bench
checks, so every bench run measures the same encoder.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .data import HELD_OUT_SEED, Dataset
from .gallery import STYLES, render
from .metrics import psnr
from .models import StyleClassifier, VaeShape, WorldVae

log = logging.getLogger("world")
CHECKPOINTS = Path(__file__).parent / "checkpoints"


def make_gallery(compositions: int, held_out: bool = False, styles=STYLES) -> Dataset:
    """``compositions`` contents, each rendered in each of ``styles`` at 128x128."""
    first = HELD_OUT_SEED if held_out else 0
    images, labels, seeds = [], [], []
    for seed in range(first, first + compositions):
        for style in styles:
            images.append(render(seed, style))
            labels.append(STYLES.index(style))
            seeds.append(seed)
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Dataset(stacked, torch.tensor(labels), torch.tensor(seeds))


@dataclass(frozen=True)
class Vae2Recipe:
    """Everything that determines the committed VAE: change any of it and retrain."""

    name: str = "vae2"
    seed: int = 0
    compositions: int = 400
    steps: int = 5000
    batch: int = 16
    crop: int = 64
    lr: float = 1e-3
    kl_weight: float = 1e-6
    feature_weight: float = 0.1
    perceptual_steps: int = 400
    shape: VaeShape = field(default_factory=lambda: VaeShape(channels=(32, 64, 128, 128)))
    snapshots: tuple[int, ...] = (1250, 2500)  # the fragility study's shorter-trained variants

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self)).encode()).hexdigest()[:12]


VARIANTS = {
    recipe.name: recipe
    for recipe in (
        Vae2Recipe(),
        Vae2Recipe(name="vae2-16ch", shape=VaeShape((32, 64, 128, 128), latent_channels=16)),
        Vae2Recipe(name="vae2-half-width", shape=VaeShape((16, 32, 64, 64)), snapshots=()),
    )
}  # fmt: skip


def random_crops(images: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """One random ``size`` crop of each image, flipped half the time."""
    limit = images.shape[-1] - size + 1
    corners = torch.randint(0, limit, (len(images), 2), generator=generator).tolist()
    crops = torch.stack(
        [im[:, y : y + size, x : x + size] for im, (y, x) in zip(images, corners, strict=True)]
    )
    return crops.flip(3) if torch.rand(1, generator=generator) < 0.5 else crops


def train_perceptual(data: Dataset, recipe: Vae2Recipe, device: torch.device) -> StyleClassifier:
    """The classifier whose features are the VAE's perceptual loss (our offline LPIPS)."""
    torch.manual_seed(recipe.seed + 1)
    generator = torch.Generator().manual_seed(recipe.seed + 1)
    model = StyleClassifier(len(STYLES), width=16).to(device)
    optimiser = torch.optim.AdamW(model.parameters(), 3e-3, weight_decay=1e-4)
    model.train()
    for step in range(recipe.perceptual_steps):
        for group in optimiser.param_groups:
            group["lr"] = 3e-3 * 0.5 * (1 + np.cos(np.pi * step / recipe.perceptual_steps))
        index = torch.randint(0, len(data), (32,), generator=generator)
        crops = random_crops(data.images[index], recipe.crop, generator)
        loss = F.cross_entropy(model(crops), data.labels[index].to(device))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model.requires_grad_(False)


def vae_loss(
    vae: WorldVae, perceptual: StyleClassifier, images: torch.Tensor, recipe: Vae2Recipe
) -> tuple[torch.Tensor, dict]:
    mean, logvar = vae.moments(images * 2 - 1)
    z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    reconstruction = (vae.decode(z).sample + 1) / 2
    pixel = (reconstruction - images).abs().mean()
    features = sum(
        (a - b).abs().mean()
        for a, b in zip(
            perceptual.features(reconstruction), perceptual.features(images), strict=True
        )
    )
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(dim=(1, 2, 3)).mean()
    total = pixel + recipe.feature_weight * features + recipe.kl_weight * kl
    parts = {"pixel": pixel, "features": features, "kl": kl}
    return total, {name: float(value.detach()) for name, value in parts.items()}


@torch.no_grad()
def held_out_psnr(vae: WorldVae, images: torch.Tensor) -> float:
    seen = ((vae.decode(vae.latent_mean(images)).sample + 1) / 2).clamp(0, 1)
    return float(psnr(seen, images).mean())


def train_vae2(
    recipe: Vae2Recipe,
    on_snapshot: Callable[[int, WorldVae], None] = lambda step, vae: None,
    report_every: int = 250,
    device: torch.device | str = "cpu",
    stop_at: int | None = None,
) -> tuple[WorldVae, dict]:
    """Perceptual classifier, then the VAE; logs held-out PSNR as it goes. Index draws stay
    on the CPU generator, so a GPU run sees the same crops in the same order. ``stop_at``
    ends the run early, on the recipe's schedule (its snapshot there is the same model)."""
    device = torch.device(device)
    started = time.perf_counter()
    data = make_gallery(recipe.compositions)
    data = Dataset(data.images.to(device), data.labels, data.seeds)
    held_out = make_gallery(4, held_out=True).images.to(device)
    perceptual = train_perceptual(data, recipe, device)
    log.info("data and perceptual classifier: %.0f s", time.perf_counter() - started)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    vae = WorldVae(recipe.shape).to(device)
    optimiser = torch.optim.Adam(vae.parameters(), recipe.lr)
    history = []
    for step in range(1, (stop_at or recipe.steps) + 1):
        warm = min(1.0, step / 100)
        for group in optimiser.param_groups:
            group["lr"] = recipe.lr * warm * 0.5 * (1 + np.cos(np.pi * step / recipe.steps))
        index = torch.randint(0, len(data), (recipe.batch,), generator=generator)
        crops = random_crops(data.images[index], recipe.crop, generator)
        loss, parts = vae_loss(vae, perceptual, crops, recipe)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimiser.step()
        if step % report_every == 0 or step == recipe.steps:
            vae.eval()
            entry = {"step": step, "seconds": round(time.perf_counter() - started),
                     **parts, "held_out_psnr": held_out_psnr(vae, held_out)}  # fmt: skip
            vae.train()
            history.append(entry)
            log.info("%s %s", recipe.name, entry)
        if step in recipe.snapshots:
            on_snapshot(step, vae)
    vae.eval()
    return vae, {"seconds": time.perf_counter() - started, "history": history}
