"""The figures of one training set beside its mimicry share: how far it moves the latent (in
TAEF2, in TAESana never attacked, and in TAEF2 after JPEG q75), and what the change costs a
person (PSNR, SSIM, LPIPS with the random backbone available here, L-inf)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from artcloak.engine.budget import load_lpips
from artcloak.settings import LpipsNet
from world.metrics import psnr, ssim
from world.survival import transforms

from .world import Encode, Probe

JPEG = "JPEG q75"


@dataclass
class Closure:
    """Share of the latent distance to the set's target that its images close (mean)."""

    taef2: float  # the attacked encoder
    taesana: float  # never attacked: transfer
    taef2_after_jpeg: float  # after JPEG q75 of the protected image


@dataclass
class Visibility:
    """What the change costs against the originals (means over the images)."""

    psnr_db: float | None  # None for the originals themselves
    ssim: float
    lpips: float  # random-backbone AlexNet LPIPS: not a perceptual figure
    linf_255: float


class Measures:
    """The encoders and the metric every set is measured with."""

    def __init__(self, taef2: Encode, taesana: Encode) -> None:
        self.taef2, self.taesana = taef2, taesana
        self.lpips = load_lpips(LpipsNet.ALEX, torch.device("cpu"), random_backbone=True)
        self.jpeg = transforms(0)[JPEG]

    def closure(
        self, images: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor
    ) -> Closure:
        taef2 = Probe(self.taef2, sources, targets)
        return Closure(
            taef2=float(taef2.closed(images).mean()),
            taesana=float(Probe(self.taesana, sources, targets).closed(images).mean()),
            taef2_after_jpeg=float(taef2.closed(self._through_jpeg(images)).mean()),
        )

    @torch.no_grad()
    def visibility(self, images: torch.Tensor, sources: torch.Tensor) -> Visibility:
        changed = bool((images != sources).any())
        distance = self.lpips(images, sources, normalize=True).flatten()
        return Visibility(
            psnr_db=float(psnr(images, sources).mean()) if changed else None,
            ssim=float(ssim(images, sources).mean()),
            lpips=float(distance.mean()),
            linf_255=float((images - sources).abs().amax() * 255),
        )

    def _through_jpeg(self, images: torch.Tensor) -> torch.Tensor:
        samples = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        out = np.stack([self.jpeg(sample) for sample in samples])
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
