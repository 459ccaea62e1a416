"""The efficacy bench's experiments, each returning plain figures for the report."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from artcloak.engine.protect import ImageJob
from artcloak.settings import Intensity, Mode, ProtectionSettings, Target

from .art import STYLES
from .ceiling import ceiling  # noqa: F401  (a stage, called by name)
from .data import Dataset, make_dataset
from .efficacy import (
    Case,
    Cloaked,
    cases,
    cloak,
    make_engine,
    model_labels,
    success_rate,
    to_tensor,
    visibility,
)
from .generator import FlowRecipe, LatentFlow, fit, sample
from .metrics import psnr
from .models import StyleClassifier, WorldVae
from .survival import transforms
from .train import (
    ClassifierRecipe,
    VaeRecipe,
    cached,
    predict,
    reconstruct,
    train_classifier,
    train_vae,
)

log = logging.getLogger("world")


@dataclass(frozen=True)
class Scale:
    """How big a run is: the full bench or the quick one (same path, fewer images)."""

    name: str
    train_compositions: int
    held_out_compositions: int
    per_style: int
    classifier_steps: int
    vae_steps: int
    flow_steps: int
    shade_flow_steps: int  # per poison count: the shade stage trains one generator for each
    finetune_steps: int
    mimicry_images: int
    samples: int
    poison_counts: tuple[int, ...]
    concept_images: int


FULL = Scale("full", 300, 50, 8, 500, 3000, 3000, 2000, 600, 20, 200, (0, 4, 8, 16, 32), 80)
QUICK = Scale("quick", 60, 10, 2, 150, 250, 400, 400, 150, 8, 60, (0, 4, 8), 40)


@dataclass
class World:
    train: Dataset
    held_out: Dataset
    perceptual: StyleClassifier
    judge: StyleClassifier
    vae: WorldVae
    figures: dict


def build_world(scale: Scale) -> World:
    """Data, the two classifiers and the VAE (trained or loaded from the cache)."""
    train = make_dataset(scale.train_compositions)
    held_out = make_dataset(scale.held_out_compositions, held_out=True)
    data_key = f"compositions={scale.train_compositions}"
    classes = len(STYLES)
    perceptual, p_meta = cached(
        "classifier",
        recipe := ClassifierRecipe(seed=1, steps=scale.classifier_steps, width=16),
        data_key,
        lambda: train_classifier(train, recipe, classes),
    )
    judge, j_meta = cached(
        "classifier",
        judge_recipe := ClassifierRecipe(seed=2, steps=scale.classifier_steps, width=16),
        data_key,
        lambda: train_classifier(train, judge_recipe, classes),
    )
    vae, v_meta = cached(
        "vae",
        vae_recipe := VaeRecipe(steps=scale.vae_steps),
        data_key,
        lambda: train_vae(train, perceptual, vae_recipe),
    )
    figures = {
        "training_seconds": {
            "perceptual classifier": p_meta["seconds"],
            "judge classifier": j_meta["seconds"],
            "vae": v_meta["seconds"],
        },
        "cached": v_meta["cached"],
        "vae_parameters": sum(p.numel() for p in vae.parameters()),
        "vae_history": v_meta.get("history", []),
        **world_quality(held_out, judge, vae),
    }
    return World(train, held_out, perceptual, judge, vae, figures)


def world_quality(held_out: Dataset, judge: StyleClassifier, vae: WorldVae) -> dict:
    """Does the model's view keep style? Judge accuracy on clean and reconstructed images."""
    reconstructions = reconstruct(vae, held_out.images)
    clean = predict(judge, held_out.images) == held_out.labels
    seen = predict(judge, reconstructions) == held_out.labels
    quality = psnr(reconstructions, held_out.images)
    per_style = {
        style: {
            "clean_accuracy": float(clean[held_out.labels == i].float().mean()),
            "reconstruction_accuracy": float(seen[held_out.labels == i].float().mean()),
            "reconstruction_psnr": float(quality[held_out.labels == i].mean()),
        }
        for i, style in enumerate(STYLES)
    }
    return {
        "clean_accuracy": float(clean.float().mean()),
        "reconstruction_accuracy": float(seen.float().mean()),
        "reconstruction_psnr": float(quality.mean()),
        "per_style": per_style,
        "held_out_images": len(held_out),
    }


def presets(world: World, scale: Scale) -> dict:
    """Success and visibility at each intensity preset, style targets and the texture."""
    engine = make_engine(world.vae)
    rows = {}
    style_cases = cases(scale.per_style)
    for intensity in Intensity:
        cloaked = cloak(engine, style_cases, ProtectionSettings(intensity=intensity))
        rows[f"{intensity.value}, style target"] = _row(world, cloaked)
        log.info("preset %s: %s", intensity.value, rows[f"{intensity.value}, style target"])
    texture = cloak(engine, cases(scale.per_style, texture=True), ProtectionSettings())
    rows["default, texture target (weave)"] = _row(world, texture)
    return rows


def _row(world: World, cloaked: Cloaked) -> dict:
    labels = model_labels(world.vae, world.judge, cloaked.protected)
    source = torch.tensor([c.source for c in cloaked.cases])
    closed = [r.latent[0]["distance_closed"] for r in cloaked.results]
    return {
        "images": len(cloaked.cases),
        "success": success_rate(cloaked, labels),
        "latent_distance_closed": float(np.mean(closed)),
        "still_source_style": float((labels == source).float().mean()),
        "seconds_per_image": cloaked.seconds / len(cloaked.cases),
        **visibility(cloaked),
    }


def survival(world: World, scale: Scale) -> dict:
    """Success after each transform, without and with robust optimisation (same budget)."""
    engine = make_engine(world.vae)
    chosen = cases(scale.per_style)
    runs = {
        "standard": cloak(engine, chosen, ProtectionSettings()),
        "robust": cloak(engine, chosen, ProtectionSettings(robust=True)),
    }
    table: dict[str, dict] = {}
    originals = runs["standard"].originals
    source = torch.tensor([c.source for c in chosen])
    named = {**transforms(48), "VAE round trip": None}
    for name, transform in named.items():
        purify = transform is None
        clean = model_labels(world.vae, world.judge, originals, transform, purify)
        row = {"clean_still_recognised": float((clean == source).float().mean())}
        for run_name, cloaked in runs.items():
            labels = model_labels(world.vae, world.judge, cloaked.protected, transform, purify)
            row[run_name] = success_rate(cloaked, labels)
        table[name] = row
        log.info("survival %s: %s", name, row)
    return {
        "table": table,
        "visibility": {name: visibility(run) for name, run in runs.items()},
    }


def adaptive(world: World, scale: Scale) -> dict:
    """On flat-colour styles: success and visibility with and without the adaptive budget."""
    engine = make_engine(world.vae)
    flat = [c for c in cases(scale.per_style) if STYLES[c.source] in ("cel", "watercolour")]
    out = {}
    for label, settings in {
        "uniform eps": ProtectionSettings(),
        "adaptive (contrast masking)": ProtectionSettings(adaptive=True),
        "adaptive, high intensity": ProtectionSettings(adaptive=True, intensity=Intensity.HIGH),
    }.items():
        out[label] = _row(world, cloak(engine, flat, settings))
    return out


def latents_of(vae: WorldVae, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([vae.latent_mean(images[s : s + 256]) for s in range(0, len(images), 256)])


def _decode_and_judge(world: World, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        images = ((world.vae.decode(latents).sample + 1) / 2).clamp(0, 1)
    return predict(world.judge, images)


def mimicry(world: World, scale: Scale, protected_style: int = 0, target_style: int = 3) -> dict:
    """Pre-train on all styles; fine-tune on the artist's images under a new label, clean or
    cloaked; what share of the new label's samples are in the artist's style?"""
    latents = latents_of(world.vae, world.train.images)
    norm = float(latents.std())
    base = LatentFlow(labels=len(STYLES) + 1)
    pretrain_seconds = fit(
        base, latents / norm, world.train.labels, FlowRecipe(steps=scale.flow_steps)
    )
    seeds = range(2_000_000, 2_000_000 + scale.mimicry_images)
    artist = [Case(seed, protected_style, target_style) for seed in seeds]  # one target per artist
    engine = make_engine(world.vae)
    cloaked = cloak(engine, artist, ProtectionSettings())
    new_label = len(STYLES)
    out = {"pretrain_seconds": pretrain_seconds, "artist_style": STYLES[protected_style],
           "target_style": STYLES[target_style], "fine_tune_images": len(artist)}  # fmt: skip
    for name, samples in {"clean": cloaked.originals, "cloaked": cloaked.protected}.items():
        model = LatentFlow(labels=len(STYLES) + 1)
        model.load_state_dict(base.state_dict())
        artist_latents = latents_of(world.vae, to_tensor(samples)) / norm
        labels = torch.full((len(artist_latents),), new_label)
        fit(
            model,
            artist_latents,
            labels,
            FlowRecipe(steps=scale.finetune_steps, batch=len(labels), lr=5e-4),
        )
        judged = _decode_and_judge(
            world, sample(model, new_label, scale.samples, 1, tuple(latents.shape[1:])) * norm
        )
        out[name] = {
            "artist_style_share": float((judged == protected_style).float().mean()),
            "target_style_share": float((judged == target_style).float().mean()),
            "histogram": {s: float((judged == i).float().mean()) for i, s in enumerate(STYLES)},
        }
        log.info("mimicry %s: %s", name, out[name])
    return out


def shade(world: World, scale: Scale, concept: int = 1, other: int = 4) -> dict:
    """Poison concept ``concept`` with images shaded toward ``other``; samples of the concept
    that come out as ``other``, against the number of poisoned training images."""
    engine = make_engine(world.vae)
    images = make_dataset(
        scale.concept_images + max(scale.poison_counts), styles=(STYLES[concept],)
    )
    concept_images = images.images[: scale.concept_images]
    poison_pool = images.images[scale.concept_images :]
    anchors = make_dataset(4, held_out=True, styles=(STYLES[other],)).images
    anchor_target = Target(images=tuple(a.permute(1, 2, 0).numpy() for a in anchors))
    sources = (poison_pool.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    jobs = [ImageJob(str(i), s) for i, s in enumerate(sources)]
    results = engine.protect(jobs, ProtectionSettings(mode=Mode.SHADE, target=anchor_target))
    poisons = to_tensor(np.stack([r.colour for r in results]))
    others = world.train.subset(world.train.labels != concept)
    base_latents = latents_of(world.vae, others.images)
    norm = float(base_latents.std())
    out = {
        "concept": STYLES[concept],
        "other": STYLES[other],
        "clean_images": scale.concept_images,
        "rows": [],
    }
    for count in scale.poison_counts:
        clean_keep = concept_images[: scale.concept_images - count]
        concept_set = torch.cat([clean_keep, poisons[:count]])
        latents = torch.cat([base_latents, latents_of(world.vae, concept_set)]) / norm
        labels = torch.cat([others.labels, torch.full((len(concept_set),), concept)])
        model = LatentFlow(labels=len(STYLES))
        fit(model, latents, labels, FlowRecipe(steps=scale.shade_flow_steps, seed=count))
        judged = _decode_and_judge(
            world, sample(model, concept, scale.samples, 2, tuple(latents.shape[1:])) * norm
        )
        row = {
            "poisoned": count,
            "share_of_concept_set": count / len(concept_set),
            "samples_as_other": float((judged == other).float().mean()),
            "samples_as_concept": float((judged == concept).float().mean()),
        }
        out["rows"].append(row)
        log.info("shade %s", row)
    return out
