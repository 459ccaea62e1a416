"""Generate targets with a diffusers pipeline, through the on-disk cache.

- ``style_target``: the artwork re-rendered in a catalogue style (img2img, Glaze's target).
- ``concept_anchors``: text-to-image anchors of a concept, one per seed (Nightshade's).
- ``style_probe``: a text-to-image picture of a catalogue style, to measure styles by.

Images are float32 H x W x 3 in [0, 1], generated at the working size rounded down to the
pipeline's multiple of 8. Seeds go through a CPU ``torch.Generator``, so a seed gives the
same target on every device.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch

from ...settings import Diffusion
from .cache import cache_key, load_cached, store
from .catalogue import NEGATIVE_PROMPT, CatalogueStyle, anchor_prompt
from .pipelines import DiffusionModel

log = logging.getLogger(__name__)

MULTIPLE = 8  # the VAE's downsampling: pipelines need sizes divisible by it


def generation_size(width: int, height: int) -> tuple[int, int]:
    return max(MULTIPLE, width - width % MULTIPLE), max(MULTIPLE, height - height % MULTIPLE)


def style_target(
    model: DiffusionModel,
    artwork: np.ndarray,
    style: CatalogueStyle,
    diffusion: Diffusion,
    width: int,
    height: int,
) -> np.ndarray:
    """``artwork`` (float H x W x 3, any size) re-rendered in ``style`` at (width, height)."""
    size = generation_size(width, height)
    source = _resized(artwork, size)
    steps = img2img_steps(diffusion)
    key = cache_key(kind="img2img", model=model.identity, prompt=style.prompt,
                    negative=NEGATIVE_PROMPT, seed=diffusion.seed, size=size,
                    strength=diffusion.strength, guidance=diffusion.guidance,
                    steps=steps, artwork=(source * 255).round().astype(np.uint8))  # fmt: skip
    cached = load_cached(key)
    if cached is not None:
        return cached
    log.info("Rendering the artwork as %s (img2img, strength %g).", style.name, diffusion.strength)
    image = torch.from_numpy(source).permute(2, 0, 1).unsqueeze(0)
    output = model.img2img(
        prompt=style.prompt,
        negative_prompt=NEGATIVE_PROMPT,
        image=image,
        strength=diffusion.strength,
        guidance_scale=diffusion.guidance,
        num_inference_steps=steps,
        generator=torch.Generator("cpu").manual_seed(diffusion.seed),
        output_type="np",
    )
    return store(key, _first(output))


def img2img_steps(diffusion: Diffusion) -> int:
    """Scheduler steps such that img2img runs at least one (it runs steps x strength)."""
    return max(diffusion.steps, math.ceil(1 / max(diffusion.strength, 1e-3)))


def concept_anchors(
    model: DiffusionModel, concept: str, count: int, diffusion: Diffusion, width: int, height: int
) -> list[np.ndarray]:
    """``count`` anchors "A photo of a {concept}", seeds diffusion.seed, +1, +2, ..."""
    prompt = anchor_prompt(concept)
    return [
        _text_to_image(model, prompt, "", diffusion, diffusion.seed + index, width, height)
        for index in range(count)
    ]


def style_probe(
    model: DiffusionModel, style: CatalogueStyle, diffusion: Diffusion, side: int
) -> np.ndarray:
    """A square picture in ``style``, for measuring how far the style is from an artwork."""
    return _text_to_image(
        model, style.prompt, NEGATIVE_PROMPT, diffusion, diffusion.seed, side, side
    )


def _text_to_image(
    model: DiffusionModel,
    prompt: str,
    negative: str,
    diffusion: Diffusion,
    seed: int,
    width: int,
    height: int,
) -> np.ndarray:
    size = generation_size(width, height)
    key = cache_key(kind="text2img", model=model.identity, prompt=prompt, negative=negative,
                    seed=seed, size=size, guidance=diffusion.guidance, steps=diffusion.steps)  # fmt: skip
    cached = load_cached(key)
    if cached is not None:
        return cached
    log.info("Generating '%s' (seed %d).", prompt, seed)
    output = model.text2img(
        prompt=prompt,
        negative_prompt=negative or None,
        width=size[0],
        height=size[1],
        guidance_scale=diffusion.guidance,
        num_inference_steps=diffusion.steps,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    )
    return store(key, _first(output))


def _first(output) -> np.ndarray:
    image = np.asarray(output.images[0], dtype=np.float32)
    return np.nan_to_num(np.clip(image, 0, 1))


def _resized(artwork: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from ..resizing import resize

    if artwork.shape[1] == size[0] and artwork.shape[0] == size[1]:
        return np.ascontiguousarray(artwork, dtype=np.float32)
    tensor = torch.from_numpy(np.ascontiguousarray(artwork, dtype=np.float32))
    scaled = resize(tensor.permute(2, 0, 1).unsqueeze(0), (size[1], size[0]))[0]
    return np.clip(scaled.permute(1, 2, 0).numpy(), 0, 1).astype(np.float32)
