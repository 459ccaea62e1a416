"""World 2's stages, in the order the bench runs them: each one's name (its ``--only`` name and
the key of its figures in the report's JSON), what it measures, the experiment that measures
it, and the report section that shows it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import experiments, report
from .ceiling import ceiling
from .experiments import Scale, World
from .fragility import fragility
from .objectives import compare_objectives


@dataclass(frozen=True)
class Stage:
    name: str  # the --only name, and the key of the stage's figures
    measures: str
    run: Callable[[World, Scale], dict]
    section: Callable[[dict], str]  # the report section, from the whole run's figures


STAGES: tuple[Stage, ...] = (
    Stage("presets", "success and visibility at each intensity preset, beside plain sign-PGD",
          experiments.presets, lambda figures: report.presets_section(figures["presets"])),
    Stage("ceiling", "the white-box ceiling at each budget, and artcloak's share of it",
          ceiling, lambda figures: report.ceiling_section(figures["ceiling"])),
    Stage("objectives", "the latent objectives at equal budget and passes",
          compare_objectives,
          lambda figures: report.objectives_section(figures["objectives"], figures.get("ceiling"))),
    Stage("fragility", "how far each VAE variant's latent moves",
          fragility, lambda figures: report.fragility_section(figures["fragility"])),
    Stage("survival", "success after each transform, without and with robust optimisation",
          experiments.survival, lambda figures: report.survival_section(figures["survival"])),
    Stage("adaptive", "visibility on flat colour with and without the adaptive budget",
          experiments.adaptive, lambda figures: report.adaptive_section(figures["adaptive"])),
    Stage("mimicry", "the artist's style in a generator fine-tuned on clean or cloaked images",
          experiments.mimicry, lambda figures: report.mimicry_section(figures["mimicry"])),
    Stage("shade", "a concept's samples against the number of shaded (poisoned) images",
          experiments.shade, lambda figures: report.shade_section(figures["shade"])),
)  # fmt: skip
STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in STAGES)


def stages_named(names: list[str] | None) -> tuple[Stage, ...]:
    """The stages ``names`` names, in that order (all of them, in the bench's order, for
    None); a name that is no stage's raises KeyError."""
    by_name = {stage.name: stage for stage in STAGES}
    unknown = set(names or ()) - set(by_name)
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return STAGES if names is None else tuple(by_name[name] for name in names)
