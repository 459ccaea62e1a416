"""ComfyUI IMAGE / MASK tensors <-> artcloak jobs and arrays.

ComfyUI's IMAGE is a float tensor (batch, height, width, channels) in [0, 1]; its MASK is
(batch, height, width) or (height, width) in [0, 1]. ComfyUI writes images as 8-bit PNGs, so
images are protected as 8-bit samples: the budget is guaranteed on exactly what is saved.
Nothing here imports ComfyUI.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from artcloak.engine import ImageJob
from artcloak.errors import InputImageError

MAX_VALUE = 255  # ComfyUI saves 8-bit images


def _check_image(image: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(image, torch.Tensor) or image.ndim not in (3, 4):
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InputImageError(
            f"The {what} must be a ComfyUI IMAGE shaped (batch, height, width, channels), got {shape}."
        )
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.shape[-1] not in (1, 3, 4) or image.shape[0] == 0:
        raise InputImageError(
            f"The {what} must have 1, 3 or 4 channels in its last dimension and at least one "
            f"image, got shape {tuple(image.shape)}."
        )
    return image


def to_samples(image: torch.Tensor, what: str = "image") -> tuple[list[np.ndarray], bool]:
    """IMAGE -> list of uint8 H x W x 3 arrays, and whether the batch is grey (one channel).
    An alpha channel is dropped (ComfyUI keeps alpha in a separate MASK)."""
    image = _check_image(image, what)
    grey = image.shape[-1] == 1
    colour = image[..., :1].expand(*image.shape[:-1], 3) if grey else image[..., :3]
    samples = (colour.detach().float().clamp(0, 1) * MAX_VALUE).round().to(torch.uint8)
    return [np.ascontiguousarray(item) for item in samples.cpu().numpy()], grey


def to_rgb(samples: np.ndarray) -> np.ndarray:
    """uint8 H x W x 3 samples -> float32 in [0, 1], the core's pixels."""
    return samples.astype(np.float32) / np.float32(MAX_VALUE)


def to_arrays(image: torch.Tensor, what: str = "target image") -> tuple[np.ndarray, ...]:
    """IMAGE -> float32 H x W x 3 arrays in [0, 1] (targets, kept at full float precision)."""
    image = _check_image(image, what)
    colour = image[..., :1].expand(*image.shape[:-1], 3) if image.shape[-1] == 1 else image
    colour = colour[..., :3].detach().float().clamp(0, 1).cpu().numpy()
    return tuple(np.ascontiguousarray(item) for item in colour)


def free_masks(mask: torch.Tensor | None, count: int, height: int, width: int) -> list:
    """A MASK -> per image a bool H x W array, True where artcloak may change pixels (mask
    above 0.5). One mask applies to every image; otherwise one per image. None: everywhere."""
    if mask is None:
        return [None] * count
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3):
        raise InputImageError("The mask must be a ComfyUI MASK shaped (batch, height, width).")
    if mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if mask.shape[0] not in (1, count):
        raise InputImageError(
            f"The mask batch has {mask.shape[0]} masks for {count} images: give one mask, "
            "or one per image."
        )
    mask = mask.detach().float().cpu()
    if tuple(mask.shape[-2:]) != (height, width):
        mask = F.interpolate(mask.unsqueeze(1), size=(height, width), mode="nearest")[:, 0]
    free = (mask > 0.5).numpy()
    return [free[0 if free.shape[0] == 1 else index].copy() for index in range(count)]


def to_jobs(
    image: torch.Tensor, mask: torch.Tensor | None = None, original: torch.Tensor | None = None
) -> list[ImageJob]:
    """An IMAGE batch (and optional MASK) -> one 8-bit ImageJob per image. ``original``: the
    images before any protection (the same batch), when ``image`` is already protected."""
    samples, grey = to_samples(image)
    height, width = samples[0].shape[:2]
    frees = free_masks(mask, len(samples), height, width)
    originals: list = [None] * len(samples)
    if original is not None:
        originals = to_samples(original, "original")[0]
        if not same_batch(originals, samples):
            raise InputImageError(
                f"The original batch ({batch_size(originals)}) does not match the image batch "
                f"({batch_size(samples)}): connect the images as they were before the first "
                "artcloak node of the chain, in the same order."
            )
    return [
        ImageJob(
            name=f"image {index + 1}",
            colour=colour,
            max_value=MAX_VALUE,
            free=free,
            grey=grey,
            original=before,
        )  # fmt: skip
        for index, (colour, free, before) in enumerate(zip(samples, frees, originals, strict=True))
    ]


def to_image(samples: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 H x W x 3 arrays -> a ComfyUI IMAGE (float32 in [0, 1])."""
    stacked = np.stack([np.asarray(item, dtype=np.float32) for item in samples]) / MAX_VALUE
    return torch.from_numpy(stacked).to(device)


def same_batch(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    """Whether two batches of samples have as many images, of the same size and channels."""
    return len(first) == len(second) and first[0].shape == second[0].shape


def batch_size(samples: list[np.ndarray]) -> str:
    """'N x WxH', as a message names a batch."""
    return f"{len(samples)} x {samples[0].shape[1]}x{samples[0].shape[0]}"
