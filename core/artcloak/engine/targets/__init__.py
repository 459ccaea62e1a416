"""Protection targets: what the encoder should see instead of the artwork.

cloak: a built-in texture, a catalogue style (generated with diffusers, see ``resolve``),
``auto`` or a style image; shade: concept anchor images, given or generated from a concept.
Targets are returned at the working size, cropped to cover it (no stretching). Importing
this package does not import torch (``artcloak install`` lists the styles without it).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ...errors import ArtcloakError, TargetError
from ...results import TargetDescription
from ...settings import Mode, Target
from .catalogue import AUTO_CHOICES, CATALOGUE, catalogue_style
from .textures import DEFAULT_TEXTURE, TEXTURES, render_texture

__all__ = [
    "AUTO_CHOICES",
    "CATALOGUE",
    "DEFAULT_TEXTURE",
    "TEXTURES",
    "available_styles",
    "check_target",
    "describe_target",
    "target_images",
]


def available_styles() -> list[str]:
    """Names a user can give as a cloak style, for the CLI, the app and the plugins:
    ``auto``, ``auto-per-image``, the catalogue styles, then the built-in textures."""
    return [*AUTO_CHOICES, *(style.name for style in CATALOGUE), *TEXTURES]


def check_target(target: Target, mode: Mode) -> None:
    """Refuse a target that cannot be used, before any model is loaded."""
    for image in target.images:
        if not (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3):
            raise TargetError("In-memory target images must be arrays shaped (height, width, 3).")
        if image.dtype.kind != "f" or not (
            np.isfinite(image).all() and 0 <= image.min() <= image.max() <= 1
        ):
            raise TargetError(
                "In-memory target images must hold floats in [0, 1] (got "
                f"{image.dtype} from {image.min()} to {image.max()}); divide 8-bit samples by 255."
            )
    if target.images:
        return
    if mode is Mode.SHADE:
        for path in target.anchors:
            if not _is_file(path):
                raise TargetError(f"The anchor image {path} does not exist.")
        if target.concept is not None and not target.concept.strip():
            raise TargetError("The concept is empty; name what the anchors should show.")
        return
    style = target.style or DEFAULT_TEXTURE
    if style in AUTO_CHOICES or catalogue_style(style) is not None:
        return
    if style not in TEXTURES and not _is_file(style):
        raise TargetError(_unknown_style(style))


def _is_file(path: str) -> bool:
    """Whether ``path`` names a file; a name the file system cannot take (too long) does not."""
    try:
        return Path(path).is_file()
    except OSError:
        return False


def target_images(target: Target, mode: Mode, width: int, height: int) -> list[np.ndarray]:
    """The target image(s) as float32 H x W x 3 in [0, 1] at (width, height), for a target
    already checked (``check_target``)."""
    if target.images:
        return [
            _cover(np.asarray(image, dtype=np.float32), width, height) for image in target.images
        ]
    if mode is Mode.SHADE:
        return [_cover(_load_target(path), width, height) for path in target.anchors]
    style = target.style or DEFAULT_TEXTURE
    if style in AUTO_CHOICES:  # not resolved (no run to measure): the default texture
        style = DEFAULT_TEXTURE
    entry = catalogue_style(style)
    if entry is not None:  # not generated (no diffusion here): its texture stands in
        style = entry.texture
    if style in TEXTURES:
        return [render_texture(style, width, height)]
    path = Path(style)
    if not path.exists():
        raise TargetError(_unknown_style(style))
    return [_cover(_load_target(path), width, height)]


def _unknown_style(style: str) -> str:
    names = ", ".join(available_styles())
    return f"Unknown style '{style}': give one of {names} (see `artcloak styles`) or an image."


def describe_target(target: Target, mode: Mode) -> TargetDescription:
    """What the report says about the target: how artcloak made or chose it, if it did."""
    if target.described is not None:
        return target.described
    if target.images:
        return TargetDescription("images", count=len(target.images))
    if mode is Mode.SHADE:
        return TargetDescription("anchors", anchors=[str(path) for path in target.anchors])
    style = target.style or DEFAULT_TEXTURE
    entry = catalogue_style(style)
    if entry is not None or style in AUTO_CHOICES:
        texture = entry.texture if entry is not None else DEFAULT_TEXTURE
        return TargetDescription("texture", style=texture, instead_of=style)
    return TargetDescription("texture" if style in TEXTURES else "image", style=style)


@lru_cache(maxsize=16)
def _load_target(path: Path) -> np.ndarray:
    from ..images import load_image

    try:
        return load_image(path).rgb
    except ArtcloakError as error:
        raise TargetError(f"Target image unusable: {error}") from None


def _cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to cover (width, height), then centre-crop."""
    import torch

    from ..resizing import resize

    source_h, source_w = image.shape[:2]
    scale = max(width / source_w, height / source_h)
    scaled_h, scaled_w = max(height, round(source_h * scale)), max(width, round(source_w * scale))
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).unsqueeze(0)
    scaled = resize(tensor, (scaled_h, scaled_w))[0].permute(1, 2, 0).numpy()
    top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
    return np.clip(scaled[top : top + height, left : left + width], 0, 1).astype(np.float32)
