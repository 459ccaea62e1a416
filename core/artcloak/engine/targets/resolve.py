"""Turn what the user asked for into the targets the engine protects toward.

``resolve_run_target`` runs once per run (a batch of files, one artist): it generates the
concept anchors for shade, picks the ``auto`` style for cloak, and falls back to the built-in
textures when no diffusion model can be had, saying so once. ``image_target`` then gives
each artwork its own generated style target (the artwork re-rendered in that style).

``engine`` is the run's engine, as far as targets need it (``EncoderView``: it encodes, and
knows its device and working size); the engine calls these, never the hosts.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ...errors import A_CONCEPT, ANCHOR_IMAGES, ArtcloakError, TargetError
from ...results import TargetDescription
from ...settings import Mode, ProtectionSettings, Target
from ..resizing import working_size
from .auto import Choice, batch_statistics, choose_farthest
from .catalogue import AUTO, AUTO_PER_IMAGE, CATALOGUE, CatalogueStyle, catalogue_style
from .catalogue import anchor_prompt as concept_prompt
from .generate import concept_anchors, generation_size, style_probe, style_target
from .pipelines import DiffusionModel, DiffusionUnavailable, load_diffusion
from .textures import TEXTURES, render_texture

log = logging.getLogger(__name__)

GENERATED = "generated style"
TEXTURE = "texture"


class EncoderView(Protocol):
    """What target resolution needs of the engine that runs it."""

    device: torch.device

    def resolution(self, settings: ProtectionSettings) -> int: ...

    def encode_view(
        self, samples: np.ndarray, max_value: int, settings: ProtectionSettings
    ) -> list[torch.Tensor]: ...


# Candidate latents per engine, so a run measures each candidate once.
_CANDIDATES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _remembered(engine: EncoderView, key: tuple, measure: Callable[[], dict]) -> dict:
    known = _CANDIDATES.setdefault(engine, {})
    if key not in known:
        known[key] = measure()
    return known[key]


def resolve_run_target(
    engine: EncoderView, settings: ProtectionSettings, sources: Sequence[Path] = ()
) -> ProtectionSettings:
    """The settings with their target made concrete for this run (``sources``: its files)."""
    target = settings.target
    if target.images:
        return settings
    if settings.mode is Mode.SHADE:
        if target.anchors or not target.concept:
            return settings
        return replace(settings, target=_generated_anchors(engine, settings))
    style = target.style
    entry = catalogue_style(style)
    if style not in (AUTO, AUTO_PER_IMAGE) and entry is None:
        return settings  # a texture or a style image: nothing to make
    try:
        model = load_diffusion(target.diffusion, engine.device)
    except DiffusionUnavailable as reason:
        return replace(settings, target=_texture_fallback(engine, settings, sources, entry, reason))
    if style == AUTO_PER_IMAGE:
        return replace(settings, target=replace(target, described=TargetDescription(GENERATED)))
    described: dict = {}
    if style == AUTO:
        batch = _batch_latents(engine, settings, sources)
        choice = _choose_generated(engine, settings, model, batch) if batch else None
        entry = catalogue_style(choice.name) if choice else CATALOGUE[0]
        described = choice.describe() if choice else {}
        log.info("auto chose the target style '%s' for this batch.", entry.name)
    return replace(
        settings,
        target=replace(
            target, style=entry.name, described=TargetDescription(GENERATED, **described)
        ),
    )


def image_target(
    engine: EncoderView, settings: ProtectionSettings, colour: np.ndarray, max_value: int
):
    """This artwork's own target (a Target), or None when the run's target serves every image."""
    target = settings.target
    described = target.described
    if target.images or settings.mode is Mode.SHADE or described is None:
        return None
    if target.style == AUTO_PER_IMAGE and described.fallback:
        latents = [engine.encode_view(colour, max_value, settings)]
        choice = choose_farthest(batch_statistics(latents), _texture_latents(engine, settings))
        chosen = replace(described, kind=TEXTURE, style=choice.name, **choice.describe())
        return replace(target, style=choice.name, described=chosen)
    if described.kind != GENERATED:
        return None
    model = load_diffusion(target.diffusion, engine.device)
    extra: dict = {}
    entry = catalogue_style(target.style)
    if target.style == AUTO_PER_IMAGE:
        latents = [engine.encode_view(colour, max_value, settings)]
        choice = _choose_generated(engine, settings, model, latents)
        entry, extra = catalogue_style(choice.name), choice.describe()
    if entry is None:  # pragma: no cover - resolve_run_target only leaves catalogue names
        return None
    height, width = colour.shape[:2]
    work_w, work_h = working_size(width, height, engine.resolution(settings))
    artwork = colour.astype(np.float32) / max_value
    try:
        image = style_target(model, artwork, entry, target.diffusion, work_w, work_h)
    except (RuntimeError, ValueError) as error:
        raise TargetError(f"Generating the {entry.name} target failed: {error}") from None
    diffusion = target.diffusion
    return replace(target, style=entry.name, images=(image,), described=replace(
        described, **extra, kind=GENERATED, style=entry.name, prompt=entry.prompt,
        **model.describe(), strength=diffusion.strength, guidance=diffusion.guidance,
        steps=diffusion.steps, seed=diffusion.seed, size=list(generation_size(work_w, work_h)),
    ))  # fmt: skip


def _generated_anchors(engine: EncoderView, settings: ProtectionSettings) -> Target:
    target = settings.target
    try:
        model = load_diffusion(target.diffusion, engine.device)
    except DiffusionUnavailable as reason:
        raise TargetError(
            f"shade with a concept generates its anchors with a diffusion model, and none can "
            f"be had ({reason}); or give anchor images.",
            named=(*reason.named, A_CONCEPT, ANCHOR_IMAGES),
        ) from None
    side = engine.resolution(settings)
    diffusion = target.diffusion
    try:
        anchors = concept_anchors(model, target.concept or "", target.anchors_count, diffusion,
                                  side, side)  # fmt: skip
    except (RuntimeError, ValueError) as error:
        raise TargetError(f"Generating the anchors of '{target.concept}' failed: {error}") from None
    described = TargetDescription(
        "generated anchors", concept=target.concept,
        prompt=concept_prompt(target.concept or ""), count=len(anchors),
        seeds=[diffusion.seed + index for index in range(len(anchors))], **model.describe(),
        guidance=diffusion.guidance, steps=diffusion.steps,
        size=list(generation_size(side, side)),
    )  # fmt: skip
    log.info("Generated %d anchor(s) of '%s'.", len(anchors), target.concept)
    return replace(target, images=tuple(anchors), described=described)


def _texture_fallback(
    engine: EncoderView, settings: ProtectionSettings, sources, entry: CatalogueStyle | None, reason
) -> Target:
    target = settings.target
    fallback = f"no diffusion model ({reason}), so a built-in texture is the target"
    described: dict = {"fallback": fallback}
    if target.style == AUTO_PER_IMAGE:
        log.info("%s (chosen per image).", fallback)
        return replace(target, described=TargetDescription(TEXTURE, **described))
    if entry is not None:
        texture = entry.texture
        described["instead_of"] = entry.name
    else:
        batch = _batch_latents(engine, settings, sources)
        choice = choose_farthest(batch_statistics(batch), _texture_latents(engine, settings)) \
            if batch else Choice(next(iter(TEXTURES)), {})  # fmt: skip
        texture = choice.name
        described.update(choice.describe())
    log.info("%s: '%s'.", fallback, texture)
    return replace(
        target, style=texture, described=TargetDescription(TEXTURE, style=texture, **described)
    )


def _batch_latents(
    engine: EncoderView, settings: ProtectionSettings, sources: Sequence[Path]
) -> list:
    """Per readable source, its latents (one per encoder); unreadable files are skipped here
    (they fail with their own message when protected)."""
    from ..images import load_image

    latents = []
    for source in sources:
        try:
            image = load_image(source)
        except ArtcloakError:
            continue
        latents.append(engine.encode_view(image.colour_samples(), image.max_value, settings))
    return latents


def _texture_latents(engine: EncoderView, settings: ProtectionSettings) -> dict[str, list]:
    side = engine.resolution(settings)

    def measure() -> dict[str, list]:
        return {
            name: engine.encode_view(render_texture(name, side, side), 1, settings)
            for name in TEXTURES
        }

    return _remembered(engine, ("textures", side), measure)


def _choose_generated(
    engine: EncoderView, settings, model: DiffusionModel, latents: list
) -> Choice:
    side = engine.resolution(settings)
    diffusion = settings.target.diffusion

    def measure() -> dict[str, list]:
        return {
            style.name: engine.encode_view(style_probe(model, style, diffusion, side), 1, settings)
            for style in CATALOGUE
        }

    key = (
        "probes",
        side,
        repr(model.identity),
        diffusion.seed,
        diffusion.steps,
        diffusion.guidance,
    )
    return choose_farthest(batch_statistics(latents), _remembered(engine, key, measure))
