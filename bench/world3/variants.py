"""World 3's variations on the default: an ensemble of encoders, the adaptive budget, 512 px.

Each reuses the presets stage's runs where it can (the world's memo), so in a full run it costs
only its own new runs.
"""

from __future__ import annotations

import itertools
import logging
import time
from dataclasses import replace

from artcloak.engine.protect import Engine
from world.efficacy import world_encoder
from world.metrics import psnr

from .pgd import per_image_pgd
from .stages import BENCH_MODELS, Run, artcloak, plain_pgd, protect_cases, settings_at, summary
from .world import Probe, World3, gallery_cases, painting_cases

log = logging.getLogger("world3")


def ensemble(world: World3) -> dict:
    """artcloak's default against TAEF2 and world 2's VAE together, and plain PGD on the same
    summed objective at the same steps, beside each attacking TAEF2 alone: the latent distance
    each closes in both attacked spaces and in TAESana, never attacked."""
    spaces = {"TAEF2": world.attacked, **world.judges}
    probes = {name: world.probe(encode) for name, encode in spaces.items()}
    alone = artcloak(world, settings_at(world))
    together = _protect_with_both(world)
    steps = round(together.passes / 2)  # the engine counts a pass per encoder
    both = (probes["TAEF2"], probes["world 2 VAE"])
    runs = {
        "artcloak, TAEF2 alone": alone,
        "artcloak, TAEF2 + world 2 VAE": together,
        "plain PGD, TAEF2 alone": plain_pgd(world, probes["TAEF2"], 8 / 255, alone.passes),
        "plain PGD, TAEF2 + world 2 VAE": _pgd_on_both(world, both, steps),
    }
    rows = {
        name: {"passes": run.passes, "psnr_db": float(psnr(run.images, world.sources).mean()),
               "closed": {space: float(p.closed(run.images).mean()) for space, p in probes.items()}}
        for name, run in runs.items()
    }  # fmt: skip
    log.info("ensemble %s", rows)
    return {"rows": rows}


def _protect_with_both(world: World3) -> Run:
    def make() -> Run:
        engine = Engine(BENCH_MODELS, encoders=[world.attacked, world_encoder(world.world2_vae)])
        return protect_cases(world, settings_at(world), engine)

    return world.memo(("artcloak, ensemble",), make)


def _pgd_on_both(world: World3, probes: tuple[Probe, ...], steps: int) -> Run:
    """Sign-PGD on the mean of the latent distances, each divided by its start (the engine's
    ensemble objective), from the original; a pass per encoder per step, as the engine counts."""

    started = time.perf_counter()
    images = per_image_pgd(probes, world.sources, 8 / 255, steps)
    seconds = (time.perf_counter() - started) / len(world.cases)
    return Run(images, steps * len(probes), seconds)


def adaptive(world: World3, presets: dict | None) -> dict:
    """The default preset with --adaptive (change kept off flat colour) against the flat box at
    equal PSNR: the flat presets' closures (low, default, high) interpolated to the adaptive
    run's PSNR, for artcloak and for plain PGD."""
    probe = world.probe()
    run = artcloak(world, settings_at(world, adaptive=True))
    out = {"adaptive": summary(world, probe, run)}
    flat = [row for row in (presets or {}).get("rows", []) if row["quality"] == "default"]
    for method in ("artcloak", "plain_pgd"):
        points = [(row[method]["psnr_db"], row[method]["closed"]) for row in flat]
        out[f"flat_{method}_at_equal_psnr"] = at_psnr(points, out["adaptive"]["psnr_db"])
    log.info("adaptive %s", out)
    return out


def at_psnr(points: list[tuple[float, float]], psnr_db: float) -> float | None:
    """Linear interpolation of (PSNR, closed) points at ``psnr_db``; None outside their range."""
    points = sorted(points)
    for (low_db, low), (high_db, high) in itertools.pairwise(points):
        if low_db <= psnr_db <= high_db:
            share = (psnr_db - low_db) / (high_db - low_db) if high_db > low_db else 0.0
            return low + share * (high - low)
    return None


def spot_check(world: World3, paintings: int, size: int) -> dict:
    """The default preset and plain PGD at the same passes on one gallery artwork and one
    painting at ``size`` px (512 in the full bench), beside the same two at the world's size."""
    cases = [gallery_cases(1, size)[0], painting_cases(world.assets, paintings, size)[0]]
    big = replace(world, cases=cases, size=size)
    names = [case.name for case in world.cases]
    rows = [names.index(case.name) for case in cases]
    out = {"cases": [case.name for case in cases], "sizes": {}}
    for here, keep in ((big, slice(None)), (world, rows)):
        probe = here.probe()
        ours = artcloak(here, settings_at(here))
        theirs = plain_pgd(here, probe, 8 / 255, ours.passes)
        out["sizes"][str(here.size)] = {
            "passes": ours.passes, "seconds_per_image": ours.seconds,
            "artcloak": float(probe.closed(ours.images)[keep].mean()),
            "plain_pgd": float(probe.closed(theirs.images)[keep].mean()),
        }  # fmt: skip
    log.info("spot check %s", out)
    return out
