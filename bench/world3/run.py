"""World 3's scales and its stages, in the order the bench runs them."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from artcloak.settings import Intensity, Quality

from . import stages, variants
from .assets import Assets
from .mimicry import MimicryScale, mimicry
from .montage import montage
from .world import World3, load_world

log = logging.getLogger("world3")


@dataclass(frozen=True)
class Scale:
    """How big a run is: the full bench or the quick one (same path, fewer images and steps)."""

    name: str
    size: int  # working size of every artwork (square)
    per_style: int  # gallery artworks per source style
    paintings: int  # paintings, each toward the next
    budgets: tuple[int, ...]  # L-inf budgets (/255) of the ceiling
    ceiling_steps: int  # the white-box latent attack at 8/255 from the original ...
    restart_steps: int  # ... and again from a random start, each image keeping the better
    other_ceiling_steps: int  # ... and at the other budgets (from the original)
    qualities: tuple[Quality, ...]  # artcloak's quality presets at 8/255
    intensities: tuple[Intensity, ...]  # ... and its intensity presets at default quality
    judge_compositions: int  # world 2's judge: training compositions (x6 styles) ...
    classifier_steps: int  # ... and steps
    judge_check_compositions: int  # held-out compositions for the judge's accuracy
    mimicry: MimicryScale
    spot_size: int  # the spot check's working size


FULL = Scale(
    name="full", size=256, per_style=1, paintings=3, budgets=(4, 8, 16, 32), ceiling_steps=200,
    restart_steps=100, other_ceiling_steps=80, qualities=tuple(Quality), intensities=tuple(Intensity),
    judge_compositions=150, classifier_steps=300, judge_check_compositions=10,
    mimicry=MimicryScale(images=20, compositions=150, flow_steps=1000, finetune_steps=600,
                         generators=2, samples=100),
    spot_size=512,
)  # fmt: skip
QUICK = Scale(
    name="quick", size=128, per_style=1, paintings=2, budgets=(8,), ceiling_steps=20, restart_steps=10,
    other_ceiling_steps=10, qualities=(Quality.DEFAULT,), intensities=(Intensity.DEFAULT,),
    judge_compositions=40, classifier_steps=60, judge_check_compositions=2,
    mimicry=MimicryScale(images=3, compositions=10, flow_steps=40, finetune_steps=20, generators=1,
                         samples=12),
    spot_size=256,
)  # fmt: skip


def _ceiling(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return stages.ceiling(world, scale)


def _presets(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return stages.presets(world, scale, figures["ceiling"])


def _survival(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return stages.survival(world, scale)


def _adaptive(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return variants.adaptive(world, figures.get("presets"))


def _ensemble(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return variants.ensemble(world)


def _spot_check(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return variants.spot_check(world, scale.paintings, scale.spot_size)


def _mimicry(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return mimicry(world, scale.mimicry)


def _montage(world: World3, scale: Scale, figures: dict, plots: Path) -> dict:
    return montage(world, plots)


@dataclass(frozen=True)
class Stage:
    name: str  # the --only name, and the key of the stage's figures
    measures: str
    run: Callable[[World3, Scale, dict, Path], dict]  # the figures so far; the plots folder


STAGES: tuple[Stage, ...] = (
    Stage("ceiling", "the white-box latent attack at each budget", _ceiling),
    Stage("presets", "artcloak's presets beside plain PGD at the same passes, and transfer",
          _presets),
    Stage("survival", "closure after each transform, without and with --robust", _survival),
    Stage("adaptive", "--adaptive against the flat box at equal PSNR", _adaptive),
    Stage("ensemble", "TAEF2 + world 2's VAE against TAEF2 alone", _ensemble),
    Stage("spot check", "the default preset and plain PGD at a larger size", _spot_check),
    Stage("mimicry", "the artist's style in a mimic fine-tuned on clean or cloaked images",
          _mimicry),
    Stage("montage", "what TAEF2's decoder shows of originals and cloaked images", _montage),
)  # fmt: skip
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def stages_named(names: tuple[str, ...]) -> tuple[Stage, ...]:
    """The stages ``names`` names, in that order (all of them, in the bench's order, when
    empty); a name that is no stage's raises KeyError."""
    by_name = {stage.name: stage for stage in STAGES}
    return tuple(by_name[name] for name in names) if names else STAGES


def run(
    scale: Scale, assets: Assets, only: tuple[str, ...], json_path: Path, figures: dict
) -> dict:
    """Run ``only`` (every stage when empty) into ``figures``, saving them after each stage;
    presets reads the ceiling's figures (from this run or the one ``figures`` came from)."""
    world = load_world(assets, scale)
    figures["world"] = world.figures
    for stage in stages_named(only):
        started = time.perf_counter()
        figures[stage.name] = stage.run(world, scale, figures, json_path.parent / "plots")
        figures.setdefault("stage_seconds", {})[stage.name] = time.perf_counter() - started
        json_path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        log.info("world 3: %s done in %.0f s", stage.name, figures["stage_seconds"][stage.name])
    return figures
