"""World 3's scales and the order its stages run in."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from artcloak.settings import Intensity, Quality

from . import stages, variants
from .assets import Assets
from .mimicry import MimicryScale, mimicry
from .montage import montage
from .world import load_world

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


def _ceiling(world, scale, figures, plots):
    return stages.ceiling(world, scale)


def _presets(world, scale, figures, plots):
    return stages.presets(world, scale, figures["ceiling"])


def _survival(world, scale, figures, plots):
    return stages.survival(world, scale)


def _adaptive(world, scale, figures, plots):
    return variants.adaptive(world, figures.get("presets"))


def _ensemble(world, scale, figures, plots):
    return variants.ensemble(world)


def _spot_check(world, scale, figures, plots):
    return variants.spot_check(world, scale.paintings, scale.spot_size)


def _mimicry(world, scale, figures, plots):
    return mimicry(world, scale.mimicry)


def _montage(world, scale, figures, plots):
    return montage(world, plots)


STAGES = {
    "ceiling": _ceiling, "presets": _presets, "survival": _survival, "adaptive": _adaptive,
    "ensemble": _ensemble, "spot check": _spot_check, "mimicry": _mimicry, "montage": _montage,
}  # fmt: skip


def run(
    scale: Scale, assets: Assets, only: tuple[str, ...], json_path: Path, figures: dict
) -> dict:
    """Run ``only`` (every stage when empty) into ``figures``, saving them after each stage;
    presets reads the ceiling's figures (from this run or the one ``figures`` came from)."""
    world = load_world(assets, scale)
    figures["world"] = world.figures
    for name in only or tuple(STAGES):
        started = time.perf_counter()
        figures[name] = STAGES[name](world, scale, figures, json_path.parent / "plots")
        figures.setdefault("stage_seconds", {})[name] = time.perf_counter() - started
        json_path.write_text(json.dumps(figures, indent=2, default=str) + "\n")
        log.info("world 3: %s done in %.0f s", name, figures["stage_seconds"][name])
    return figures
