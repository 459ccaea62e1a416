"""The perceptual budget: LPIPS and L-inf, measured on the quantised image and guaranteed.

The guarantee works on the integer samples that will be written: the L-inf bound is
enforced exactly on them, and if LPIPS is over budget the perturbation is scaled back
(bisection) until the quantised result is within it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ModelLoadError
from ..results import BudgetFigures
from ..settings import Budget, LpipsNet
from .encoders.hub import reachable
from .resizing import resize

log = logging.getLogger(__name__)

BACKBONE_FILES = {
    LpipsNet.ALEX: "alexnet-owt-7be5be79.pth",
    LpipsNet.VGG: "vgg16-397923af.pth",
}
BACKBONE_NAMES = {LpipsNet.ALEX: "AlexNet", LpipsNet.VGG: "VGG16"}
BACKBONE_URL = "https://download.pytorch.org/models/{}"
SCALE_BACK_ITERATIONS = 10
MAX_LPIPS_PIXELS = 2048 * 2048
# redirect_stdout swaps the process-wide sys.stdout: two threads loading at once could
# restore each other's stream and leave stdout pointing at stderr.
_LOADING = threading.Lock()


def load_lpips(net: LpipsNet, device: torch.device, random_backbone: bool = False):
    """The lpips package's metric, frozen. Offline without backbone weights: a clear error."""
    import lpips  # heavy import, only when a metric is needed

    backbone = _backbone_path(net)
    unavailable = backbone_unavailable(net, random_backbone)
    if unavailable:  # said without torchvision's stray "Downloading: ..." line
        raise ModelLoadError(unavailable)
    try:
        # lpips prints to stdout while it sets up; stdout belongs to --json output.
        with (
            _LOADING,
            contextlib.redirect_stdout(sys.stderr),
            torch.random.fork_rng(devices=[]),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore")  # torchvision's deprecation notes about lpips' calls
            torch.manual_seed(0)  # a random backbone is the same one every time
            model = lpips.LPIPS(net=net.value, pnet_rand=random_backbone, verbose=False)
    except Exception as error:  # torchvision's download fails in many ways offline
        raise ModelLoadError(
            f"LPIPS needs its ImageNet {BACKBONE_NAMES[net]} weights and could not get them "
            f"({error}). Download {BACKBONE_URL.format(backbone.name)} and put it at {backbone}."
        ) from None
    model.eval().requires_grad_(False)
    return model.to(device)


def backbone_unavailable(
    net: LpipsNet, random_backbone: bool = False, *, too: bool = False
) -> str | None:
    """What to do when LPIPS's backbone weights are not on this machine and cannot be
    downloaded now (None otherwise, or when a random backbone needs none); ``too``: the
    sentence follows another model's error, so that both are said at once."""
    backbone = _backbone_path(net)
    if random_backbone or backbone.is_file() or reachable(BACKBONE_URL):
        return None
    return (
        f"LPIPS needs its ImageNet {BACKBONE_NAMES[net]} weights{' too' if too else ''}, and "
        "they are not on this machine and download.pytorch.org cannot be reached: on a "
        f"connected machine download {BACKBONE_URL.format(backbone.name)} and put it at "
        f"{backbone} here."
    )


def _backbone_path(net: LpipsNet) -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints" / BACKBONE_FILES[net]


@dataclass(frozen=True)
class Measured:
    """Budget figures of a protected image against its original."""

    lpips: float
    linf: float  # [0, 1] units
    psnr: float  # dB; inf when identical
    lpips_size: tuple[int, int] | None = None  # (w, h) LPIPS was measured at, if not full size

    def within(self, budget: Budget) -> bool:
        return self.lpips <= budget.lpips and self.linf <= budget.eps + 1e-9

    def figures(self, budget: Budget, kept: float | None = None) -> BudgetFigures:
        """As hosts read them, checked against ``budget`` (``kept``: the share of the
        optimised perturbation kept, for a protection)."""
        return BudgetFigures(
            lpips=round(self.lpips, 6),
            linf_255=round(self.linf * 255, 4),
            psnr_db=None if math.isinf(self.psnr) else round(self.psnr, 3),
            within_budget=self.within(budget),
            lpips_measured_at=self.lpips_size,
            perturbation_kept=None if kept is None else round(kept, 4),
        )


def to_tensor(samples: np.ndarray, max_value: int, device: torch.device) -> torch.Tensor:
    """Integer or float H x W x 3 samples -> (1, 3, H, W) float in [0, 1]."""
    array = samples.astype(np.float32) / max_value
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).to(device)


def _sample_differences(
    original: np.ndarray, protected: np.ndarray, max_value: int
) -> tuple[float, float]:
    """L-inf ([0, 1] units) and mean squared difference of two integer images: float32 holds
    the differences exactly and their squares to 1e-7; the sum is float64's."""
    difference = np.subtract(protected, original, dtype=np.float32)
    linf = float(np.abs(difference).max()) / max_value
    np.square(difference, out=difference)
    mse = float(difference.sum(dtype=np.float64)) / (difference.size * max_value**2)
    return linf, mse


def measure(lpips_model, original: np.ndarray, protected: np.ndarray, max_value: int) -> Measured:
    """Budget figures between two integer images (H x W x 3): L-inf and PSNR at full
    resolution; LPIPS at full resolution up to MAX_LPIPS_PIXELS, above that on both images
    downscaled to that many pixels (its memory grows with the pixel count)."""
    linf, mse = _sample_differences(original, protected, max_value)
    psnr = math.inf if mse == 0 else 10 * math.log10(1 / mse)
    device = next(lpips_model.parameters()).device
    pair = [to_tensor(image, max_value, device) for image in (original, protected)]
    height, width = original.shape[:2]
    size = None
    if height * width > MAX_LPIPS_PIXELS:
        scale = math.sqrt(MAX_LPIPS_PIXELS / (height * width))
        size = (round(width * scale), round(height * scale))
        pair = [resize(image, (size[1], size[0])) for image in pair]
    with torch.no_grad():
        distance = lpips_model(*pair, normalize=True)
    return Measured(lpips=float(distance.item()), linf=linf, psnr=psnr, lpips_size=size)


def measure_rgb(
    lpips_model, original: np.ndarray, protected: np.ndarray, max_value: int
) -> Measured:
    """``measure`` on float RGB images in [0, 1], each rounded to its samples at ``max_value``
    (255 for 8-bit, 65535 for 16-bit) as a file holds them."""
    samples = [np.rint(np.clip(rgb, 0, 1) * np.float32(max_value)).astype(np.int64)
               for rgb in (original, protected)]  # fmt: skip
    return measure(lpips_model, *samples, max_value)


def quantise(
    original: np.ndarray, perturbation: np.ndarray, eps: float, max_value: int
) -> np.ndarray:
    """Integer image original + perturbation, with |change| <= eps exactly on the samples."""
    limit = math.floor(eps * max_value + 1e-6)
    # float32 holds every 16-bit sample exactly; in place, as a 4096x4096 image's arrays are 200 MB
    result = np.multiply(perturbation, np.float32(max_value), dtype=np.float32)
    np.rint(result, out=result)
    np.clip(result, -limit, limit, out=result)
    result += original
    np.clip(result, 0, max_value, out=result)
    return result.astype(original.dtype)


@dataclass(frozen=True)
class Guaranteed:
    samples: np.ndarray  # integer H x W x 3, ready to write
    measured: Measured
    scale: float  # share of the optimised perturbation kept (1.0 = all of it)


def guarantee(
    lpips_model,
    original: np.ndarray,
    perturbation: np.ndarray,
    budget: Budget,
    max_value: int,
) -> Guaranteed:
    """Quantise original + scale * perturbation with the largest scale in [0, 1] whose
    written samples hold the budget. Scale 0 (the original) always holds it."""
    candidate = quantise(original, perturbation, budget.eps, max_value)
    figures = measure(lpips_model, original, candidate, max_value)
    if figures.within(budget):
        return Guaranteed(candidate, figures, 1.0)
    best = Guaranteed(original.copy(), measure(lpips_model, original, original, max_value), 0.0)
    low, high = 0.0, 1.0
    for _ in range(SCALE_BACK_ITERATIONS):
        middle = (low + high) / 2
        candidate = quantise(original, perturbation * middle, budget.eps, max_value)
        figures = measure(lpips_model, original, candidate, max_value)
        if figures.within(budget):
            best, low = Guaranteed(candidate, figures, middle), middle
        else:
            high = middle
    log.info("perturbation scaled back to %.3f to hold %s", best.scale, budget.describe())
    return best
