"""Cloak the world's held-out artworks with artcloak's own engine and judge what the model sees.

Success: the judge classifier labels the VAE reconstruction of the protected image (what a
latent diffusion model trains on) as the target style. The judge is a second classifier,
trained with its own seed, never used in training the VAE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from artcloak.engine.encoders.model import VaeEncoder
from artcloak.engine.protect import Engine, ImageJob, Protected
from artcloak.settings import Intensity, ModelSettings, ProtectionSettings, Target

from .art import SIZE, STYLES, compose, render
from .data import HELD_OUT_SEED
from .metrics import psnr, ssim
from .models import StyleClassifier, WorldVae
from .train import predict, reconstruct


@dataclass(frozen=True)
class Case:
    seed: int
    source: int  # style index
    target: int  # style index; -1 for the built-in texture target

    def images(self, size: int) -> tuple[np.ndarray, np.ndarray | None]:
        composition = compose(self.seed, size)
        source = render(composition, STYLES[self.source])
        target = None if self.target < 0 else render(composition, STYLES[self.target])
        return (source * 255).round().astype(np.uint8), target


def cases(per_style: int, texture: bool = False) -> list[Case]:
    """Each held-out artwork toward another style, target styles rotating over the others."""
    out = []
    for source in range(len(STYLES)):
        for k in range(per_style):
            seed = HELD_OUT_SEED + 500 + source * 1000 + k
            target = -1 if texture else (source + 1 + k % (len(STYLES) - 1)) % len(STYLES)
            out.append(Case(seed, source, target))
    return out


def make_engine(vae: WorldVae, batch_size: int = 16) -> Engine:
    encoder = VaeEncoder(vae, source="world-vae", family="world", train_resolution=SIZE)
    models = ModelSettings(device="cpu", lpips_random_backbone=True)
    return Engine(models, batch_size=batch_size, encoders=[encoder])


@dataclass
class Cloaked:
    cases: list[Case]
    originals: np.ndarray  # (N, H, W, 3) uint8
    protected: np.ndarray  # (N, H, W, 3) uint8
    results: list[Protected]
    seconds: float


def cloak(
    engine: Engine,
    chosen: list[Case],
    settings: ProtectionSettings,
    size: int = SIZE,
    texture: str = "weave",
) -> Cloaked:
    jobs, originals = [], []
    for index, case in enumerate(chosen):
        source, target_image = case.images(size)
        target = Target(style=texture) if target_image is None else Target(images=(target_image,))
        jobs.append(ImageJob(name=str(index), colour=source, target=target))
        originals.append(source)
    started = time.perf_counter()
    results = engine.protect(jobs, settings)
    seconds = time.perf_counter() - started
    failed = [r for r in results if not isinstance(r, Protected)]
    if failed:
        raise RuntimeError(f"{len(failed)} images failed: {failed[0]}")
    protected = np.stack([r.colour for r in results])
    return Cloaked(chosen, np.stack(originals), protected, results, seconds)


def to_tensor(samples: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 or float [0, 1] -> (N, 3, H, W) float."""
    array = samples.astype(np.float32) / (255 if samples.dtype == np.uint8 else 1)
    return torch.from_numpy(array).permute(0, 3, 1, 2).contiguous()


def model_labels(
    vae: WorldVae,
    judge: StyleClassifier,
    samples: np.ndarray,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    purify: bool = False,
) -> torch.Tensor:
    """The judge's label of what the model sees of each (transformed) image."""
    views = np.stack([transform(s) for s in samples]) if transform else samples
    images = to_tensor(views)
    if purify:  # a VAE round trip before the model sees it
        images = reconstruct(vae, images)
    return predict(judge, reconstruct(vae, images))


def success_rate(cloaked: Cloaked, labels: torch.Tensor) -> float:
    """Share labelled as the target style, or for texture targets, as not the source style."""
    hits = [
        int(label) == case.target if case.target >= 0 else int(label) != case.source
        for case, label in zip(cloaked.cases, labels, strict=True)
    ]
    return float(np.mean(hits))


def visibility(cloaked: Cloaked) -> dict:
    original, protected = to_tensor(cloaked.originals), to_tensor(cloaked.protected)
    linf = (original - protected).abs().flatten(1).max(1).values * 255
    return {
        "linf_255_max": float(linf.max()),
        "psnr_db": float(psnr(protected, original).mean()),
        "ssim": float(ssim(protected, original).mean()),
        "lpips_mean": float(np.mean([r.measured.lpips for r in cloaked.results])),
        "lpips_max": float(np.max([r.measured.lpips for r in cloaked.results])),
    }


def preset_settings(intensity: Intensity, **overrides) -> ProtectionSettings:
    return replace(ProtectionSettings(intensity=intensity), **overrides)
