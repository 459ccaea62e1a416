"""World 3: protection measured on real pretrained encoders.

The attacked encoder is TAEF2 (a tiny encoder distilled from the FLUX.2 VAE on natural images),
loaded by artcloak's own ``load_encoder`` as any user would load it. The artworks are world 2's
procedural gallery rendered at the working size (so each has a Glaze-like target: the same
artwork in another style) and public-domain paintings (each toward another painting). Judges
that never see the attack: world 2's pixel style classifier reading TAEF2's reconstruction (2x
down to the 128 px it was trained at), TAESana's latent space (a different real encoder, never
attacked) and world 2's from-scratch VAE.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from artcloak.engine.encoders import load_encoder
from torch.nn import functional as F
from world.checkpoints import load_vae
from world.data import HELD_OUT_SEED
from world.efficacy import to_tensor
from world.gallery import STYLES, render
from world.metrics import psnr
from world.models import StyleClassifier
from world.train import ClassifierRecipe, cached, predict, train_classifier
from world.world2 import VARIANTS, make_gallery

from .assets import PAINTINGS, Assets

Encode = Callable[[torch.Tensor], torch.Tensor]
JUDGE_SIZE = 128  # world 2's judge reads 128 px images


@dataclass(frozen=True)
class Case:
    """One artwork and what the encoder should see instead (uint8 (S, S, 3) each)."""

    name: str
    source: np.ndarray
    target: np.ndarray
    source_style: int  # gallery style index; -1 for a painting
    target_style: int

    @property
    def painting(self) -> bool:
        return self.source_style < 0


def gallery_cases(per_style: int, size: int) -> list[Case]:
    """Held-out compositions in each style, toward the same composition in another style."""
    out = []
    for source in range(len(STYLES)):
        for k in range(per_style):
            seed = HELD_OUT_SEED + 700 + source * 1000 + k
            target = (source + 1 + (k + source) % (len(STYLES) - 1)) % len(STYLES)
            pair = [(render(seed, STYLES[s], size) * 255).round().astype(np.uint8)
                    for s in (source, target)]  # fmt: skip
            out.append(Case(f"{STYLES[source]}-{seed}", *pair, source, target))
    return out


def painting_cases(assets: Assets, count: int, size: int, skip: int = 0) -> list[Case]:
    """``count`` paintings after the first ``skip``, each toward the next one among them."""
    names = list(PAINTINGS)[skip : skip + count]
    images = {name: assets.painting(name, size) for name in names}
    return [
        Case(name, images[name], images[names[(i + 1) % len(names)]], -1, -1)
        for i, name in enumerate(names)
    ]


def stack(cases: list[Case], field: str) -> torch.Tensor:
    return to_tensor(np.stack([getattr(case, field) for case in cases]))


class Probe:
    """Latent distances in one encoder's space: how much of each case's distance to its target
    an image closes (measured on 8-bit images, as written)."""

    def __init__(self, encode: Encode, sources: torch.Tensor, targets: torch.Tensor) -> None:
        self.encode = encode
        with torch.no_grad():
            self.goal = encode(targets)
            self.start = self.latent_distance(sources)

    def latent_distance(self, x: torch.Tensor) -> torch.Tensor:
        return (self.encode(x) - self.goal).flatten(1).norm(dim=1)

    def row(self, index: int) -> Probe:
        """This probe for image ``index`` alone (no encoder pass)."""
        one = copy.copy(self)
        one.goal, one.start = self.goal[index : index + 1], self.start[index : index + 1]
        return one

    @torch.no_grad()
    def closed(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) share of each image's starting latent distance that ``x`` closes."""
        return 1 - self.latent_distance(x) / self.start


@dataclass
class World3:
    attacked: torch.nn.Module  # artcloak's encoder for TAEF2, with its decoder
    judges: dict[str, Encode]  # latent spaces never attacked: TAESana, world 2's VAE
    style_judge: StyleClassifier
    cases: list[Case]
    size: int
    figures: dict
    assets: Assets
    world2_vae: torch.nn.Module  # the ensemble's second encoder (its judge is ``judges``')
    runs: dict = field(default_factory=dict)  # protected images by how they were made

    def memo(self, key: tuple, make: Callable[[], object]):
        """The run ``key`` names for these cases at this size, made by ``make`` the first time
        it is asked for (worlds made from this one by ``replace`` share the memo)."""
        key = (self.size, tuple(case.name for case in self.cases), *key)
        if key not in self.runs:
            self.runs[key] = make()
        return self.runs[key]

    @cached_property
    def sources(self) -> torch.Tensor:
        return stack(self.cases, "source")

    @cached_property
    def targets(self) -> torch.Tensor:
        return stack(self.cases, "target")

    def probe(self, encode: Encode | None = None) -> Probe:
        return Probe(encode or self.attacked, self.sources, self.targets)

    @torch.no_grad()
    def seen(self, x: torch.Tensor) -> torch.Tensor:
        """What a model trained on TAEF2's latents sees: its decoder's reconstruction."""
        return torch.cat([self.attacked.decode(self.attacked(part)) for part in x.split(16)])

    def verdicts(self, x: torch.Tensor) -> torch.Tensor:
        """The style judge's label of what the model sees of each image."""
        return predict(self.style_judge, F.interpolate(self.seen(x), size=JUDGE_SIZE,
                                                       mode="area"))  # fmt: skip

    def success(self, x: torch.Tensor) -> float | None:
        """Share of gallery cases the judge reads as the target style (None: no gallery)."""
        gallery = [i for i, case in enumerate(self.cases) if not case.painting]
        if not gallery:
            return None
        labels = self.verdicts(x[gallery])
        wanted = torch.tensor([self.cases[i].target_style for i in gallery])
        return float((labels == wanted).float().mean())


def load_world(assets: Assets, scale) -> World3:
    """TAEF2 through artcloak's loader, the judges, and the cases at ``scale.size``."""
    attacked = load_encoder(str(assets.weight("taef2/encoder.safetensors")))
    sana = load_encoder(str(assets.weight("taesana/encoder.safetensors")))
    vae2, _ = load_vae("vae2", VARIANTS["vae2"])
    judge = style_judge(scale.judge_compositions, scale.classifier_steps)
    cases = gallery_cases(scale.per_style, scale.size)
    cases += painting_cases(assets, scale.paintings, scale.size)
    world = World3(attacked, {"TAESana": sana, "world 2 VAE": vae2.latent_mean}, judge, cases,
                   scale.size, {}, assets, vae2)  # fmt: skip
    world.figures = quality(world, scale)
    return world


def style_judge(compositions: int, steps: int) -> StyleClassifier:
    """World 2's judge recipe (trained, or loaded from bench/cache/world/)."""
    recipe = ClassifierRecipe(seed=2, steps=steps, batch=32, width=16)
    judge, _ = cached("judge2", recipe, f"gallery-compositions={compositions}",
                      lambda: train_classifier(make_gallery(compositions), recipe, len(STYLES)))  # fmt: skip
    return judge.eval()


def held_out_gallery(compositions: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Held-out compositions in every style, rendered at ``size``: (images, style labels)."""
    pairs = [(render(HELD_OUT_SEED + seed, style, size), label)
             for seed in range(compositions) for label, style in enumerate(STYLES)]  # fmt: skip
    images = torch.from_numpy(np.stack([image for image, _ in pairs])).permute(0, 3, 1, 2)
    return images.contiguous(), torch.tensor([label for _, label in pairs])


def quality(world: World3, scale) -> dict:
    """Does TAEF2's view keep the styles? Reconstruction PSNR and the judge on held-out art."""
    images, labels = held_out_gallery(scale.judge_check_compositions, world.size)
    seen = world.seen(images)
    small = F.interpolate(images, size=JUDGE_SIZE, mode="area")
    small_seen = F.interpolate(seen, size=JUDGE_SIZE, mode="area")
    paintings = stack([case for case in world.cases if case.painting], "source")
    return {
        "judge_clean_accuracy": accuracy(world.style_judge, small, labels),
        "judge_reconstruction_accuracy": accuracy(world.style_judge, small_seen, labels),
        "judge_images": len(labels),
        "reconstruction_psnr_gallery": float(psnr(seen, images).mean()),
        "reconstruction_psnr_paintings": float(psnr(world.seen(paintings), paintings).mean()),
        "cases": [case.name for case in world.cases],
        "size": world.size,
    }


def accuracy(judge: StyleClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return float((predict(judge, images) == labels).float().mean())
