"""World 3's stages, each returning plain figures for the report.

artcloak runs through its own ``Engine`` with TAEF2 loaded by ``load_encoder``; beside it, in
every table, plain sign-PGD on the same latent objective with as many encoder passes. Every
figure is measured on the 8-bit images as they would be written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, fields, replace

import numpy as np
import torch
from artcloak.engine.protect import Engine, ImageJob, ImageResult
from artcloak.settings import (
    Intensity,
    ModelSettings,
    Precision,
    ProtectionSettings,
    Quality,
    Target,
)
from world.metrics import psnr
from world.survival import transforms

from .pgd import per_image_pgd
from .world import Probe, World3, to_tensor

log = logging.getLogger("world3")
PRESET_AT = {4: Intensity.LOW, 8: Intensity.DEFAULT, 16: Intensity.HIGH}
ROBUST = "artcloak --robust"  # survival's run of the default with --robust, as its JSON names it
# fp32 on every host, as the efficacy tables were measured; where ``auto`` picks bf16 (a CPU with
# AMX tiles) `python bench/precision.py` measures the difference.
BENCH_MODELS = ModelSettings(device="cpu", precision=Precision.FP32, lpips_random_backbone=True)


@dataclass(frozen=True)
class CeilingRow:
    """The white-box latent attack at one budget: its steps (+ a restart's from a random
    start) and how far it got (the share of the latent distance closed, and the judge's
    verdict)."""

    eps_255: int
    steps: int
    restart_steps: int
    closed: float
    closed_gallery: float | None
    closed_paintings: float | None
    success: float

    @classmethod
    def from_json(cls, row: dict) -> CeilingRow:
        return cls(**{field.name: row[field.name] for field in fields(cls)})


def ceiling_rows(ceiling: dict) -> list[CeilingRow]:
    return [CeilingRow.from_json(row) for row in ceiling["rows"]]


@dataclass(frozen=True)
class SurvivalRow:
    """The latent distance still closed after one transform, for artcloak's default, the
    default with --robust, and plain PGD at the default's passes."""

    artcloak: float
    robust: float
    plain_pgd: float

    @classmethod
    def from_json(cls, closed: dict[str, float]) -> SurvivalRow:
        return cls(closed["artcloak"], closed[ROBUST], closed["plain_pgd"])


def survival_rows(survival: dict) -> dict[str, SurvivalRow]:
    """Survival's rows, by transform, in the report's order."""
    return {name: SurvivalRow.from_json(closed) for name, closed in survival["closed"].items()}


@dataclass
class Run:
    """Protected images of every case, and what making them cost."""

    images: torch.Tensor  # (N, 3, S, S) in [0, 1], 8-bit values
    passes: int  # encoder passes per image
    seconds: float
    lpips: float | None = None  # the engine's own LPIPS (mean); None for plain PGD


def engine_for(world: World3) -> Engine:
    """artcloak's engine on the CPU with its own batch size there (one image at a time)."""
    return Engine(BENCH_MODELS, encoders=[world.attacked])


def settings_at(world: World3, **overrides) -> ProtectionSettings:
    """artcloak's settings at the world's working size (TAEF2's own default is 1024 px)."""
    return replace(ProtectionSettings(resolution=world.size), **overrides)


def artcloak(world: World3, settings: ProtectionSettings) -> Run:
    """artcloak's run of every case with ``settings``; each stage asking for the same run (the
    default preset's, say) gets the one made first."""
    key = ("artcloak", *((f.name, getattr(settings, f.name)) for f in fields(settings)
                                     if f.name != "target"))  # fmt: skip
    return world.memo(key, lambda: protect_cases(world, settings))


def protect_cases(world: World3, settings: ProtectionSettings, engine: Engine | None = None) -> Run:
    """Every case protected by ``engine`` (artcloak's, attacking TAEF2, by default)."""
    jobs = [ImageJob(name=case.name, colour=case.source,
                     target=Target(images=(case.target.astype(np.float32) / 255,)))
            for case in world.cases]  # fmt: skip
    started = time.perf_counter()
    results = (engine or engine_for(world)).protect(jobs, settings)
    seconds = time.perf_counter() - started
    failed = [r for r in results if not isinstance(r, ImageResult)]
    if failed:
        raise RuntimeError(f"{len(failed)} images failed: {failed[0]}")
    images = to_tensor(np.stack([r.colour for r in results]))
    passes = round(float(np.mean([r.encoder_passes for r in results])))
    lpips = float(np.mean([r.measured.lpips for r in results]))
    return Run(images, passes, seconds / len(jobs), lpips)


def plain_pgd(world: World3, probe: Probe, eps: float, steps: int, restart_steps: int = 0) -> Run:
    """Sign-PGD on the latent distance (step 0.5 eps decaying to 1%, no perceptual bound) from
    the original; with ``restart_steps``, also a run of that many steps from a random start,
    keeping each image's better result. ``probe`` must be in the attacked space (TAEF2's)."""
    key = ("plain PGD", eps, steps, restart_steps)
    return world.memo(key, lambda: _sign_pgd(world, probe, eps, steps, restart_steps))


def _sign_pgd(world: World3, probe: Probe, eps: float, steps: int, restart_steps: int) -> Run:
    started = time.perf_counter()
    best = per_image_pgd((probe,), world.sources, eps, steps)
    if restart_steps:
        generator = torch.Generator().manual_seed(1)
        again = per_image_pgd((probe,), world.sources, eps, restart_steps, random_start=generator)
        with torch.no_grad():
            better = probe.latent_distance(again) < probe.latent_distance(best)
        best = torch.where(better[:, None, None, None], again, best)
    seconds = (time.perf_counter() - started) / len(world.cases)
    return Run(best, steps + restart_steps, seconds)


def summary(world: World3, probe: Probe, run: Run) -> dict:
    closed = probe.closed(run.images)
    paintings = torch.tensor([case.painting for case in world.cases])
    return {
        "closed": float(closed.mean()),
        "closed_gallery": float(closed[~paintings].mean()) if (~paintings).any() else None,
        "closed_paintings": float(closed[paintings].mean()) if paintings.any() else None,
        "success": world.success(run.images),
        "passes": run.passes,
        "seconds_per_image": run.seconds,
        "psnr_db": float(psnr(run.images, world.sources).mean()),
        "lpips": run.lpips,
    }


def ceiling(world: World3, scale) -> dict:
    """Per budget, the white-box latent attack (many steps; at 8/255 also a restart from a
    random start): how far any pixel attack on this objective gets, and the judge's verdict."""
    probe = world.probe()
    rows = []
    for eps_255 in scale.budgets:
        headline = eps_255 == 8
        steps = scale.ceiling_steps if headline else scale.other_ceiling_steps
        restart_steps = scale.restart_steps if headline else 0
        run = plain_pgd(world, probe, eps_255 / 255, steps, restart_steps)
        rows.append({"eps_255": eps_255, "steps": steps, "restart_steps": restart_steps,
                     **summary(world, probe, run)})  # fmt: skip
        log.info("ceiling %s", rows[-1])
    return {"rows": rows}


def presets(world: World3, scale, ceiling_figures: dict) -> dict:
    """artcloak's quality presets at 8/255 and its intensity presets, each beside plain PGD at
    the same passes, with the share of the ceiling each reaches."""
    probe = world.probe()
    ceilings = {row.eps_255: row.closed for row in ceiling_rows(ceiling_figures)}
    chosen = [(Intensity.DEFAULT, quality) for quality in scale.qualities]
    chosen += [(i, Quality.DEFAULT) for i in scale.intensities if i is not Intensity.DEFAULT]
    rows, kept = [], {}
    for intensity, quality in chosen:
        settings = settings_at(world, intensity=intensity, quality=quality)
        eps = settings.budget().eps
        ours = artcloak(world, settings)
        theirs = plain_pgd(world, probe, eps, ours.passes)
        row = {"intensity": intensity.value, "quality": quality.value,
               "eps_255": settings.budget().eps_255, "artcloak": summary(world, probe, ours),
               "plain_pgd": summary(world, probe, theirs)}  # fmt: skip
        ceiling_closed = ceilings.get(round(settings.budget().eps_255))
        for name in ("artcloak", "plain_pgd"):
            share = row[name]["closed"] / ceiling_closed if ceiling_closed else None
            row[name]["share_of_ceiling"] = share
        rows.append(row)
        kept[(intensity, quality)] = (ours, theirs)
        log.info("presets %s", row)
    default = kept[(Intensity.DEFAULT, Quality.DEFAULT)]
    return {"rows": rows, "transfer": transfer(world, *default)}


def transfer(world: World3, ours: Run, theirs: Run) -> dict:
    """The default preset's images (and plain PGD's) in latent spaces never attacked, beside
    uniform sign noise of the same size (the control)."""
    generator = torch.Generator().manual_seed(0)
    eps = float((ours.images - world.sources).abs().amax())
    noise = torch.randint(0, 2, world.sources.shape, generator=generator) * 2 - 1
    noisy = ((world.sources + eps * noise).clamp(0, 1) * 255).round() / 255
    out = {}
    for name, encode in {"TAEF2 (attacked)": world.attacked, **world.judges}.items():
        probe = world.probe(encode)
        out[name] = {label: float(probe.closed(images).mean())
                     for label, images in (("artcloak", ours.images), ("plain_pgd", theirs.images),
                                           ("noise", noisy))}  # fmt: skip
    return out


def survival(world: World3, scale) -> dict:
    """Share of the latent distance still closed after what scrapers do, for the default
    preset, the default with --robust, and plain PGD at the default's passes."""
    probe = world.probe()
    ours = artcloak(world, settings_at(world))
    runs = {
        "artcloak": ours,
        ROBUST: artcloak(world, settings_at(world, robust=True)),
        "plain_pgd": plain_pgd(world, probe, 8 / 255, ours.passes),
    }
    table = {}
    for name, transform in transforms(world.size // 2).items():
        if name.startswith("resize to"):
            continue  # the working size is the encoder's: a resize changes what it measures
        table[name] = {label: float(probe.closed(_through(transform, run.images)).mean())
                       for label, run in runs.items()}  # fmt: skip
        log.info("survival %s %s", name, table[name])
    passes = {label: run.passes for label, run in runs.items()}
    transferred = {space: {label: float(world.probe(encode).closed(run.images).mean())
                           for label, run in runs.items()}
                   for space, encode in world.judges.items()}  # fmt: skip
    return {"closed": table, "passes": passes, "transfer": transferred}


def _through(transform, images: torch.Tensor) -> torch.Tensor:
    samples = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return torch.from_numpy(np.stack([transform(s) for s in samples])).permute(0, 3, 1, 2)
