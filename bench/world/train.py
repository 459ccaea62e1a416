"""Training the world's models from scratch, cached on disk by everything that determines them."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.nn import functional as F

from .data import Dataset
from .models import StyleClassifier, VaeShape, WorldVae

log = logging.getLogger("world")
CACHE = Path("bench/cache/world")


@dataclass(frozen=True)
class ClassifierRecipe:
    seed: int
    steps: int = 600
    batch: int = 64
    width: int = 32
    lr: float = 3e-3


@dataclass(frozen=True)
class VaeRecipe:
    seed: int = 0
    steps: int = 3000
    batch: int = 32
    lr: float = 2e-3
    kl_weight: float = 1e-6
    feature_weight: float = 0.3
    shape: VaeShape = VaeShape()


def cached(kind: str, recipe, data_key: str, build: Callable[[], tuple[torch.nn.Module, dict]]):
    """Load the model trained by ``recipe`` on ``data_key`` or train and save it."""
    key = hashlib.sha256(json.dumps([kind, asdict(recipe), data_key]).encode()).hexdigest()[:12]
    path = CACHE / f"{kind}-{key}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=False)
        return saved["model"], saved["meta"] | {"cached": True}
    model, meta = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save({"model": model, "meta": meta}, temporary)
    temporary.replace(path)
    return model, meta | {"cached": False}


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and small translations: what a style label must not depend on."""
    if torch.rand(1, generator=generator) < 0.5:
        images = images.flip(3)
    shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
    return images.roll(shifts=shift, dims=(2, 3))


def _schedule(step: int, steps: int, lr: float) -> float:
    warm = min(1.0, (step + 1) / 50)
    return lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))


def train_classifier(data: Dataset, recipe: ClassifierRecipe, classes: int):
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = StyleClassifier(classes, recipe.width)
    optimiser = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=1e-4)
    started = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        for group in optimiser.param_groups:
            group["lr"] = _schedule(step, recipe.steps, recipe.lr)
        index = torch.randint(0, len(data), (recipe.batch,), generator=generator)
        images = _augment(data.images[index], generator)
        loss = F.cross_entropy(model(images), data.labels[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model, {"seconds": time.perf_counter() - started, "final_loss": float(loss.detach())}


def vae_loss(vae: WorldVae, perceptual: StyleClassifier, images: torch.Tensor, recipe: VaeRecipe):
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
    figures = {
        "pixel": float(pixel.detach()),
        "features": float(features.detach()),
        "kl": float(kl.detach()),
    }
    return total, figures


def train_vae(data: Dataset, perceptual: StyleClassifier, recipe: VaeRecipe, report_every=250):
    """L1 + the perceptual classifier's feature distance (our LPIPS) + a small KL term."""
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    vae = WorldVae(recipe.shape)
    perceptual.requires_grad_(False)
    optimiser = torch.optim.Adam(vae.parameters(), recipe.lr)
    started = time.perf_counter()
    history = []
    for step in range(recipe.steps):
        for group in optimiser.param_groups:
            group["lr"] = _schedule(step, recipe.steps, recipe.lr)
        index = torch.randint(0, len(data), (recipe.batch,), generator=generator)
        loss, parts = vae_loss(vae, perceptual, _augment(data.images[index], generator), recipe)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        optimiser.step()
        if step % report_every == 0 or step == recipe.steps - 1:
            elapsed = time.perf_counter() - started
            history.append({"step": step, "seconds": round(elapsed, 1), **parts})
            log.info("vae step %d/%d %.0fs %s", step, recipe.steps, elapsed, parts)
    vae.eval()
    return vae, {"seconds": time.perf_counter() - started, "history": history}


@torch.no_grad()
def reconstruct(vae: WorldVae, images: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """The model's view: decode(encoder mean), in [0, 1]."""
    out = []
    for start in range(0, len(images), chunk):
        mean = vae.latent_mean(images[start : start + chunk])
        out.append(((vae.decode(mean).sample + 1) / 2).clamp(0, 1))
    return torch.cat(out)


@torch.no_grad()
def predict(classifier: StyleClassifier, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    return torch.cat(
        [classifier(images[s : s + chunk]).argmax(1) for s in range(0, len(images), chunk)]
    )
