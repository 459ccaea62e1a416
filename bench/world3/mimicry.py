"""Mimicry in TAEF2's latent space: world 2's latent-generator proxy on a real encoder.

A small class-conditional flow U-Net (``world3.generator``) is pre-trained on TAEF2's latents
of world 2's training gallery (six styles), then fine-tuned on one artist's artworks under a new
label: clean, cloaked by artcloak, or attacked by plain PGD at the same passes. Its samples are
decoded by TAEF2's decoder and read by the style judge: the share still in the artist's style is
what a mimic would get. The stage works at 128 px (TAEF2 latents of 32 x 16 x 16), the size the
judge reads, so that generators train in seconds on a CPU; the artist's images are protected at
that size too.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, replace

import numpy as np
import torch
from world.experiments import FLOW_BATCH, mimicry_shares
from world.gallery import STYLES, render
from world.generator import GUIDANCE, SAMPLE_STEPS, FlowRecipe, fit, sample
from world.train import predict
from world.world2 import make_gallery

from .generator import seeded_unet
from .stages import artcloak, plain_pgd, settings_at
from .world import Case, World3, accuracy, held_out_gallery

log = logging.getLogger("world3")
SIZE = 128  # the judge's size; see the module's docstring
ARTIST_SEEDS = 3_000_000  # compositions no other stage renders
ARTIST_STYLE, TARGET_STYLE = 0, 2  # cel, protected toward watercolour (as in world 2)
# A mimic fine-tunes hard on a few images: at world 2's 5e-4 the generator, fine-tuned on the
# artist's clean images, made the artist's style in under a third of its samples.
FINETUNE_LR = 3e-3


@dataclass(frozen=True)
class MimicryScale:
    images: int  # the artist's artworks the mimic fine-tunes on
    compositions: int  # the generator's pre-training gallery (x6 styles)
    flow_steps: int
    finetune_steps: int
    generators: int  # generator seeds the figures pool
    samples: int  # per generator and training set


def artist_cases(count: int, target_style: int = TARGET_STYLE) -> list[Case]:
    """One artist's artworks in the cel style, each toward the same composition in
    ``target_style`` (watercolour unless said); a case's name says its target where that is
    not watercolour, so that runs toward different targets never share the world's memo."""
    out = []
    for seed in range(ARTIST_SEEDS, ARTIST_SEEDS + count):
        pair = [(render(seed, STYLES[s], SIZE) * 255).round().astype(np.uint8)
                for s in (ARTIST_STYLE, target_style)]  # fmt: skip
        toward = "" if target_style == TARGET_STYLE else f"-to-{STYLES[target_style]}"
        out.append(Case(f"artist-{seed}{toward}", *pair, ARTIST_STYLE, target_style))
    return out


def training_sets(artist: World3) -> tuple[dict[str, torch.Tensor], dict[str, float], int]:
    """The artist's images as a mimic would fine-tune on them (clean, artcloak's default, plain
    PGD at the same passes), and the share of TAEF2's latent distance each set closes."""
    probe = artist.probe()
    ours = artcloak(artist, settings_at(artist))
    sets = {
        "clean": artist.sources,
        "artcloak": ours.images,
        "plain PGD": plain_pgd(artist, probe, 8 / 255, ours.passes).images,
    }
    closed = {name: float(probe.closed(images).mean()) for name, images in sets.items()}
    return sets, closed, ours.passes


@torch.no_grad()
def encode(world: World3, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([world.attacked(part) for part in images.split(64)])


@torch.no_grad()
def decode(world: World3, latents: torch.Tensor) -> torch.Tensor:
    """TAEF2's decoder's images of ``latents`` (what the judge reads)."""
    return torch.cat([world.attacked.decode(part) for part in latents.split(64)])


def judge_samples(world: World3, latents: torch.Tensor) -> torch.Tensor:
    return predict(world.style_judge, decode(world, latents))


def mimicry(world: World3, scale: MimicryScale) -> dict:
    """Fine-tune generators on the artist's clean and protected images; the share of each set's
    samples the judge reads in the artist's style (and in the target's)."""
    artist = replace(world, cases=artist_cases(scale.images), size=SIZE)
    sets, closed, passes = training_sets(artist)
    gallery = make_gallery(scale.compositions)  # rendered at 128 px
    latents = encode(world, gallery.images)
    norm = float(latents.std())  # generators work on unit-scale latents
    unit = {name: encode(world, images) / norm for name, images in sets.items()}
    judged = {name: [] for name in sets}
    for seed in range(scale.generators):
        for name, labels in mimic_labels(
            world, scale, latents / norm, gallery.labels, unit, norm, seed
        ).items():
            judged[name].append(labels)
    images, labels = held_out_gallery(10, SIZE)
    out = {
        "size": SIZE, "artist_style": STYLES[ARTIST_STYLE], "target_style": STYLES[TARGET_STYLE],
        "fine_tune_images": scale.images, "pretrain_images": len(gallery.labels),
        "pretrain_steps": scale.flow_steps, "finetune_steps": scale.finetune_steps,
        "finetune_lr": FINETUNE_LR,
        "generators": scale.generators, "samples_per_generator": scale.samples,
        "guidance": GUIDANCE, "sample_steps": SAMPLE_STEPS, "closed": closed, "passes": passes,
        "judge_reconstruction_accuracy": accuracy(world.style_judge, world.seen(images), labels),
        "sets": {name: mimicry_shares(j, ARTIST_STYLE, TARGET_STYLE) for name, j in judged.items()},
    }  # fmt: skip
    log.info("mimicry %s", out["sets"])
    return out


@dataclass
class MimicSamples:
    """What one generator fine-tuned on one training set made."""

    labels: torch.Tensor  # (samples,) the style judge's label of each sample
    images: torch.Tensor  # (samples, 3, SIZE, SIZE) the samples as TAEF2's decoder shows them


def mimic_labels(
    world: World3,
    scale: MimicryScale,
    latents: torch.Tensor,
    labels: torch.Tensor,
    sets: dict[str, torch.Tensor],
    norm: float,
    seed: int,
) -> dict[str, torch.Tensor]:
    """One generator (``seed``) pre-trained once on the gallery's latents, then fine-tuned from
    there on each set under a new label: the judge's labels of that label's samples, per set."""
    found = mimic_samples(world, scale, latents, labels, sets, norm, seed)
    return {name: samples.labels for name, samples in found.items()}


def mimic_samples(
    world: World3,
    scale: MimicryScale,
    latents: torch.Tensor,
    labels: torch.Tensor,
    sets: dict[str, torch.Tensor],
    norm: float,
    seed: int,
) -> dict[str, MimicSamples]:
    """``mimic_labels``, keeping the decoded samples beside their labels."""
    base = seeded_unet(len(STYLES) + 1, latents.shape[1], seed=seed)
    fit(base, latents, labels, FlowRecipe(steps=scale.flow_steps, batch=FLOW_BATCH, seed=seed))
    new_label = len(STYLES)
    judged = {}
    for name, artist_latents in sets.items():
        model = copy.deepcopy(base)
        artist_labels = torch.full((len(artist_latents),), new_label)
        recipe = FlowRecipe(
            steps=scale.finetune_steps, batch=len(artist_labels), lr=FINETUNE_LR, seed=seed
        )
        fit(model, artist_latents, artist_labels, recipe)
        generated = sample(model, new_label, scale.samples, 1 + seed, tuple(latents.shape[1:]))
        images = decode(world, generated * norm)
        judged[name] = MimicSamples(predict(world.style_judge, images), images)
    return judged
