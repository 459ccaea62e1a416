"""Cloak the world's held-out artworks with artcloak's own engine and judge what the model sees.

Success: the judge classifier labels the VAE reconstruction of the protected image (what a
latent diffusion model trains on) as the target style. The judge is a second classifier,
trained with its own seed, never used in training the VAE.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from artcloak.engine.encoders.model import VaeEncoder
from artcloak.engine.protect import Engine, ImageJob, ImageResult
from artcloak.settings import ModelSettings, Precision, ProtectionSettings, Target
from torch.nn import functional as F

from .data import HELD_OUT_SEED
from .gallery import SIZE, STYLES, render
from .metrics import psnr, ssim
from .models import StyleClassifier, WorldVae
from .pgd import sign_pgd
from .train import predict, reconstruct


@dataclass(frozen=True)
class Case:
    seed: int
    source: int  # style index
    target: int  # style index; -1 for the built-in texture target

    def images(self, size: int = SIZE) -> tuple[np.ndarray, np.ndarray | None]:
        source = render(self.seed, STYLES[self.source], size)
        target = None if self.target < 0 else render(self.seed, STYLES[self.target], size)
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


def world_encoder(vae: WorldVae) -> VaeEncoder:
    """The world's VAE as artcloak's encoder."""
    return VaeEncoder(vae, source="world-vae", family="world", train_resolution=SIZE)


def make_engine(vae: WorldVae, batch_size: int = 16) -> Engine:
    encoder = world_encoder(vae)
    models = ModelSettings(device="cpu", precision=Precision.FP32, lpips_random_backbone=True)
    return Engine(models, batch_size=batch_size, encoders=[encoder])


@dataclass
class Cloaked:
    cases: list[Case]
    originals: np.ndarray  # (N, H, W, 3) uint8
    protected: np.ndarray  # (N, H, W, 3) uint8
    results: list[ImageResult]
    seconds: float
    passes: int | None = None  # the baseline's encoder passes (artcloak's are in its results)


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
    failed = [r for r in results if not isinstance(r, ImageResult)]
    if failed:
        raise RuntimeError(f"{len(failed)} images failed: {failed[0]}")
    protected = np.stack([r.colour for r in results])
    return Cloaked(chosen, np.stack(originals), protected, results, seconds)


def plain_pgd(vae: WorldVae, chosen: list[Case], eps: float, steps: int) -> Cloaked:
    """The baseline: sign-PGD on the latent L2 toward each case's target (no perceptual
    constraint), ``steps`` encoder passes, written as 8-bit images."""
    pairs = [case.images() for case in chosen]
    originals = np.stack([source for source, _ in pairs])
    with torch.no_grad():
        goal = vae.latent_mean(to_tensor(np.stack([target for _, target in pairs])))

    def distance(x: torch.Tensor) -> torch.Tensor:
        return (vae.latent_mean(x) - goal).flatten(1).norm(dim=1)

    started = time.perf_counter()
    written = sign_pgd(distance, to_tensor(originals), eps, steps)
    seconds = time.perf_counter() - started
    protected = (written.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return Cloaked(chosen, originals, protected, [], seconds, passes=steps)


def encoder_passes(cloaked: Cloaked) -> int:
    """Encoder passes per image: the baseline's steps, or the mean of artcloak's results."""
    if cloaked.passes is not None:
        return cloaked.passes
    return round(float(np.mean([r.encoder_passes for r in cloaked.results])))


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
    } | _lpips(cloaked)


def _lpips(cloaked: Cloaked) -> dict:
    """The engine's own LPIPS measurements (the baseline has none)."""
    if not cloaked.results:
        return {}
    measured = [r.measured.lpips for r in cloaked.results]
    return {"lpips_mean": float(np.mean(measured)), "lpips_max": float(np.max(measured))}


class Probe:
    """What a white-box observer measures on a fixed set of cases: the latent distance to
    each case's target style, and the judge's verdict on what the model sees."""

    def __init__(self, vae: WorldVae, judge: StyleClassifier, chosen: list[Case]) -> None:
        self.vae, self.judge, self.cases = vae, judge, chosen
        pairs = [case.images() for case in chosen]
        self.sources = to_tensor(np.stack([source for source, _ in pairs]))
        self.targets = to_tensor(np.stack([target for _, target in pairs]))
        self.labels = torch.tensor([case.target for case in chosen])
        self.source_labels = torch.tensor([case.source for case in chosen])
        with torch.no_grad():
            self.goal = vae.latent_mean(self.targets)
            self.start = self.latent_distance(self.sources)

    def latent_distance(self, x: torch.Tensor) -> torch.Tensor:
        return (self.vae.latent_mean(x) - self.goal).flatten(1).norm(dim=1)

    def judge_loss(self, x: torch.Tensor) -> torch.Tensor:
        seen = (self.vae.decode(self.vae.latent_mean(x)).sample + 1) / 2
        return F.cross_entropy(self.judge(seen), self.labels, reduction="none")

    @torch.no_grad()
    def closed(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) share of each image's starting latent distance that ``x`` closes."""
        return 1 - self.latent_distance(x) / self.start

    def verdicts(self, x: torch.Tensor, sampled: bool = False) -> torch.Tensor:
        """The judge's labels of the model's view: decode(mean), or decode(a sampled latent),
        which is what a latent model trained with ``latent_dist.sample()`` sees."""
        if not sampled:
            return predict(self.judge, reconstruct(self.vae, x))
        with torch.no_grad():
            mean, logvar = self.vae.moments(x * 2 - 1)
            generator = torch.Generator().manual_seed(0)
            z = mean + torch.randn(mean.shape, generator=generator) * (0.5 * logvar).exp()
            seen = ((self.vae.decode(z).sample + 1) / 2).clamp(0, 1)
        return predict(self.judge, seen)

    def summary(self, x: torch.Tensor) -> dict:
        labels = self.verdicts(x)
        return {
            "latent_distance_closed": float(self.closed(x).mean()),
            "success": float((labels == self.labels).float().mean()),
            "source_style_lost": float((labels != self.source_labels).float().mean()),
        }
