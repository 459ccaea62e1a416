"""The efficacy bench's experiments, each returning plain figures for the report (the stages
that run them: ``stages.py``)."""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass

import numpy as np
import torch
from artcloak.engine.protect import Engine, ImageJob
from artcloak.settings import Intensity, Mode, ProtectionSettings, Target

from .ceiling import PRESET_AT
from .checkpoints import for_attacks, load_vae
from .data import Dataset
from .efficacy import (
    Case,
    Cloaked,
    Probe,
    cases,
    cloak,
    encoder_passes,
    make_engine,
    model_labels,
    plain_pgd,
    success_rate,
    to_tensor,
    visibility,
)
from .gallery import STYLES
from .generator import GUIDANCE, SAMPLE_STEPS, FlowRecipe, fit, sample, seeded_flow
from .metrics import psnr
from .mimicry_sets import MIMICRY_SETS, Protection, TrainingSet
from .models import StyleClassifier, WorldVae
from .survival import SurvivalRow, transforms
from .train import ClassifierRecipe, cached, predict, reconstruct, train_classifier
from .world2 import VARIANTS, make_gallery

log = logging.getLogger("world")
# World 2's latents are 16x16: a narrower generator and smaller batches than world 1's 4x4 ones
# keep the generator stages to minutes on this CPU.
FLOW_WIDTH, FLOW_BATCH = 64, 32


@dataclass(frozen=True)
class Scale:
    """How big a run is: the full bench or the quick one (same path, fewer images and steps)."""

    name: str
    train_compositions: int  # the judge's and the generators' training set (x6 styles)
    held_out_compositions: int
    intensities: tuple[Intensity, ...]  # the presets the presets stage runs
    texture: bool  # ... and the default preset toward the texture target
    per_style: int  # images per source style in the preset, survival and adaptive stages
    ceiling_per_style: int  # ... in the ceiling, objectives and fragility stages
    budgets: tuple[int, ...]  # L-inf budgets (/255) of the ceiling
    latent_steps: int  # the white-box latent attack (the ceiling) at 8/255 ...
    restarts: int  # ... with this many restarts
    other_latent_steps: int  # ... and at the other budgets (one run)
    judge_steps: int  # the attack on the judge through the VAE
    objective_steps: int
    fragility_steps: int  # the latent attack on each VAE variant ...
    fragility_judge_steps: int  # ... and the attack on the judge through it
    classifier_steps: int
    flow_steps: int
    shade_flow_steps: int  # per poison count: the shade stage trains one generator for each
    finetune_steps: int
    mimicry_images: int
    mimicry_generators: int  # generator seeds the mimicry figures are averaged over
    samples: int
    poison_counts: tuple[int, ...]
    concept_images: int


FULL = Scale(
    name="full", train_compositions=150, held_out_compositions=20,
    intensities=tuple(Intensity), texture=True, per_style=4, ceiling_per_style=2,
    budgets=(4, 8, 16, 32), latent_steps=500, restarts=2, other_latent_steps=200,
    judge_steps=60, objective_steps=50, fragility_steps=100, fragility_judge_steps=30, classifier_steps=300,
    flow_steps=1000, shade_flow_steps=500, finetune_steps=400, mimicry_images=20,
    mimicry_generators=2, samples=200,
    poison_counts=(0, 16, 32), concept_images=80,
)  # fmt: skip
QUICK = Scale(
    name="quick", train_compositions=40, held_out_compositions=4,
    intensities=(Intensity.DEFAULT,), texture=False, per_style=1, ceiling_per_style=1,
    budgets=(8,), latent_steps=40, restarts=1, other_latent_steps=20, judge_steps=10,
    objective_steps=10, fragility_steps=20, fragility_judge_steps=5, classifier_steps=60, flow_steps=100,
    shade_flow_steps=60, finetune_steps=40, mimicry_images=4,
    mimicry_generators=1, samples=24,
    poison_counts=(0, 8), concept_images=12,
)  # fmt: skip


@dataclass
class World:
    train: Dataset
    held_out: Dataset
    judge: StyleClassifier
    vae: WorldVae
    figures: dict


def build_world(scale: Scale) -> World:
    """Data, the judge (trained or loaded from the cache) and world 2's committed VAE."""
    recipe = VARIANTS["vae2"]
    vae, entry = load_vae(recipe.name, recipe)
    train = make_gallery(scale.train_compositions)
    held_out = make_gallery(scale.held_out_compositions, held_out=True)
    judge, j_meta = cached(
        "judge2",
        judge_recipe := ClassifierRecipe(seed=2, steps=scale.classifier_steps, batch=32, width=16),
        f"gallery-compositions={scale.train_compositions}",
        lambda: train_classifier(train, judge_recipe, len(STYLES)),
    )
    figures = {
        "training_seconds": {"judge classifier": j_meta["seconds"], "vae": entry["seconds"]},
        "vae_command": entry["command"],
        "vae_sha256": entry["sha256"],
        "vae_parameters": sum(p.numel() for p in vae.parameters()),
        "vae_history": entry.get("history", []),
        **world_quality(held_out, judge, vae),
    }
    return World(train, held_out, for_attacks(judge), vae, figures)


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
    """Success and visibility at each intensity preset, style targets and the texture, each
    beside plain sign-PGD with as many encoder passes."""
    engine = make_engine(world.vae)
    rows = {}
    style_cases = cases(scale.per_style)
    for intensity in scale.intensities:
        settings = ProtectionSettings(intensity=intensity)
        cloaked = cloak(engine, style_cases, settings)
        artcloak_row = _row(world, cloaked)
        rows[f"{intensity.value}, style target: artcloak"] = artcloak_row
        baseline = plain_pgd(world.vae, style_cases, settings.budget().eps, encoder_passes(cloaked))
        rows[f"{intensity.value}, style target: plain PGD"] = _row(world, baseline)
        log.info("preset %s: %s", intensity.value, artcloak_row)
    if scale.texture:
        texture = cloak(engine, cases(scale.per_style, texture=True), ProtectionSettings())
        rows["default, texture target (weave): artcloak"] = _row(world, texture)
    return rows


def _closed(world: World, cloaked: Cloaked) -> float:
    """Mean share of the latent distance to the target closed, measured on the written
    images (the engine's own figure for the texture target, whose latent it alone knows)."""
    if any(case.target < 0 for case in cloaked.cases):
        return float(np.mean([r.latent[0].distance_closed for r in cloaked.results]))
    probe = Probe(world.vae, world.judge, cloaked.cases)
    return float(probe.closed(to_tensor(cloaked.protected)).mean())


def _row(world: World, cloaked: Cloaked) -> dict:
    labels = model_labels(world.vae, world.judge, cloaked.protected)
    source = torch.tensor([c.source for c in cloaked.cases])
    return {
        "images": len(cloaked.cases),
        "passes": encoder_passes(cloaked),
        "success": success_rate(cloaked, labels),
        "latent_distance_closed": _closed(world, cloaked),
        "still_source_style": float((labels == source).float().mean()),
        "seconds_per_image": cloaked.seconds / len(cloaked.cases),
        **visibility(cloaked),
    }


def survival(world: World, scale: Scale) -> dict:
    """Success after each transform, without and with robust optimisation (same budget)."""
    engine = make_engine(world.vae)
    chosen = cases(scale.per_style)
    standard = cloak(engine, chosen, ProtectionSettings())
    runs = {
        "standard": standard,
        "robust": cloak(engine, chosen, ProtectionSettings(robust=True)),
        "plain_pgd": plain_pgd(world.vae, chosen, 8 / 255, encoder_passes(standard)),
    }
    table: dict[str, dict] = {}
    originals = runs["standard"].originals
    source = torch.tensor([c.source for c in chosen])
    named = {**transforms(96), "VAE round trip": None}
    for name, transform in named.items():
        purify = transform is None
        clean = model_labels(world.vae, world.judge, originals, transform, purify)
        success = {}
        for run_name, cloaked in runs.items():
            labels = model_labels(world.vae, world.judge, cloaked.protected, transform, purify)
            success[run_name] = success_rate(cloaked, labels)
        row = SurvivalRow(float((clean == source).float().mean()), **success)
        table[name] = asdict(row)
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
    runs = {
        "uniform eps": ProtectionSettings(),
        "adaptive (contrast masking)": ProtectionSettings(adaptive=True),
        "adaptive, high intensity": ProtectionSettings(adaptive=True, intensity=Intensity.HIGH),
    }
    for label, settings in runs.items():
        if settings.intensity not in scale.intensities:
            continue
        out[label] = _row(world, cloak(engine, flat, settings))
    return out


def latents_of(vae: WorldVae, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([vae.latent_mean(images[s : s + 256]) for s in range(0, len(images), 256)])


def _decode_and_judge(world: World, latents: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        images = ((world.vae.decode(latents).sample + 1) / 2).clamp(0, 1)
    return predict(world.judge, images)


def mimicry(world: World, scale: Scale, protected_style: int = 0, target_style: int = 2) -> dict:
    """Pre-train on all styles; fine-tune on the artist's images under a new label, clean or
    cloaked; what share of the new label's samples are in the artist's style? Averaged over
    ``scale.mimicry_generators`` generators (seeds 0, 1, ...: initialisation, batches, noise),
    since one generator's figure moves by about ten points with its seed."""
    seeds = range(2_000_000, 2_000_000 + scale.mimicry_images)
    artist = [Case(seed, protected_style, target_style) for seed in seeds]  # one target per artist
    out = {"artist_style": STYLES[protected_style], "target_style": STYLES[target_style],
           "fine_tune_images": len(artist), "guidance": GUIDANCE, "sample_steps": SAMPLE_STEPS,
           "generators": scale.mimicry_generators, "pretrain_seconds": 0.0}  # fmt: skip
    latents = latents_of(world.vae, world.train.images)
    norm = float(latents.std())  # generators work on unit-scale latents
    runs = {name: latents_of(world.vae, to_tensor(images)) / norm
            for name, images in _mimicry_training_sets(world, artist).items()}  # fmt: skip
    unit_latents = latents / norm
    judged_per_seed = []
    for seed in range(scale.mimicry_generators):
        seconds, judged = _mimic(world, scale, unit_latents, runs, norm, seed)
        out["pretrain_seconds"] += seconds
        judged_per_seed.append(judged)
    for name in runs:
        out[name] = mimicry_shares(
            [j[name] for j in judged_per_seed], protected_style, target_style
        )
        log.info("mimicry %s: %s", name, out[name])
    return out


def _mimicry_training_sets(world: World, artist: list[Case]) -> dict[str, np.ndarray]:
    """The artist's images as a mimic would fine-tune on them, per set of ``MIMICRY_SETS``:
    clean, or protected."""
    engine = make_engine(world.vae)
    artcloak_at: dict[int, Cloaked] = {}  # plain PGD takes as many passes as these took
    images = {}
    for training_set in MIMICRY_SETS:
        images[training_set.label] = _protected(world, engine, artist, training_set, artcloak_at)
    return images


def _protected(
    world: World,
    engine: Engine,
    artist: list[Case],
    training_set: TrainingSet,
    artcloak_at: dict[int, Cloaked],
) -> np.ndarray:
    """``artist``'s images as ``training_set`` protects them; artcloak's runs are kept in
    ``artcloak_at`` by budget, for plain PGD's passes at the same budget."""
    eps_255 = training_set.eps_255
    if training_set.protection is Protection.NONE:
        return np.stack([case.images()[0] for case in artist])
    if training_set.protection is Protection.ARTCLOAK:
        settings = ProtectionSettings(intensity=PRESET_AT[eps_255])
        artcloak_at[eps_255] = cloak(engine, artist, settings)
        return artcloak_at[eps_255].protected
    passes = encoder_passes(artcloak_at[eps_255])
    return plain_pgd(world.vae, artist, eps_255 / 255, passes).protected


def _mimic(
    world: World,
    scale: Scale,
    latents: torch.Tensor,
    runs: dict[str, torch.Tensor],
    norm: float,
    seed: int,
) -> tuple[float, dict[str, torch.Tensor]]:
    """One generator (``seed``), pre-trained on ``latents`` (the training set's, divided by
    ``norm``) once and fine-tuned on each set of ``runs`` (latents, likewise) from there: the
    judge's labels for the new label's samples, per set, and the pre-training seconds."""
    base = seeded_flow(len(STYLES) + 1, FLOW_WIDTH, seed=seed)
    recipe = FlowRecipe(steps=scale.flow_steps, batch=FLOW_BATCH, seed=seed)
    pretrain_seconds = fit(base, latents, world.train.labels, recipe)
    new_label = len(STYLES)
    judged = {}
    for name, artist_latents in runs.items():
        model = copy.deepcopy(base)
        labels = torch.full((len(artist_latents),), new_label)
        fine_tune = FlowRecipe(steps=scale.finetune_steps, batch=len(labels), lr=5e-4, seed=seed)
        fit(model, artist_latents, labels, fine_tune)
        generated = sample(model, new_label, scale.samples, 1 + seed, tuple(latents.shape[1:]))
        judged[name] = _decode_and_judge(world, generated * norm)
    return pretrain_seconds, judged


def mimicry_shares(judged: list[torch.Tensor], artist: int, target: int) -> dict:
    """Shares of samples per style, over all generators, and the artist's share per generator."""
    every = torch.cat(judged)
    return {
        "artist_style_share": float((every == artist).float().mean()),
        "target_style_share": float((every == target).float().mean()),
        "histogram": {s: float((every == i).float().mean()) for i, s in enumerate(STYLES)},
        "artist_style_share_per_generator": [float((j == artist).float().mean()) for j in judged],
    }


def shade(world: World, scale: Scale, concept: int = 1, other: int = 4) -> dict:
    """Poison concept ``concept`` with images shaded toward ``other``; samples of the concept
    that come out as ``other``, against the number of poisoned training images."""
    engine = make_engine(world.vae)
    images = make_gallery(
        scale.concept_images + max(scale.poison_counts), styles=(STYLES[concept],)
    )
    concept_images = images.images[: scale.concept_images]
    poison_pool = images.images[scale.concept_images :]
    anchors = make_gallery(4, held_out=True, styles=(STYLES[other],)).images
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
        "guidance": GUIDANCE,
        "sample_steps": SAMPLE_STEPS,
        "rows": [],
    }
    for count in scale.poison_counts:
        clean_keep = concept_images[: scale.concept_images - count]
        concept_set = torch.cat([clean_keep, poisons[:count]])
        latents = torch.cat([base_latents, latents_of(world.vae, concept_set)]) / norm
        labels = torch.cat([others.labels, torch.full((len(concept_set),), concept)])
        model = seeded_flow(len(STYLES), FLOW_WIDTH, seed=count)
        fit(
            model,
            latents,
            labels,
            FlowRecipe(steps=scale.shade_flow_steps, batch=FLOW_BATCH, seed=count),
        )
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
