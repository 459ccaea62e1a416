"""A spatially adaptive budget: change hides in texture and shows on flat colour.

Contrast masking, as in just-noticeable-difference models of vision: the eye notices a
change less where the local contrast is already high. Each pixel may use a share of eps
that grows with the local standard deviation of luminance, from ``FLOOR`` on flat areas
to all of it where the contrast reaches ``REFERENCE_CONTRAST``. No learned weights.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

FLOOR = 0.25  # share of eps allowed on perfectly flat colour
REFERENCE_CONTRAST = 12 / 255  # local luminance std at which the whole eps is allowed
WINDOW = 5  # pixels, at the working resolution


def budget_shares(images: Tensor) -> Tensor:
    """(B, 1, H, W) in [FLOOR, 1]: the share of eps each pixel may use, for (B, 3, H, W)
    images in [0, 1]."""
    luma = (
        images * torch.tensor([0.299, 0.587, 0.114], device=images.device).view(1, 3, 1, 1)
    ).sum(1, keepdim=True)
    pad = WINDOW // 2
    padded = F.pad(luma, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(padded, WINDOW, stride=1)
    square = F.avg_pool2d(padded * padded, WINDOW, stride=1)
    std = (square - mean * mean).clamp_min(0).sqrt()
    share = FLOOR + (1 - FLOOR) * (std / REFERENCE_CONTRAST).clamp(max=1)
    # A masker also hides change next to it: spread each share to its neighbours.
    return F.max_pool2d(F.pad(share, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
