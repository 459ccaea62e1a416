"""Convergence (issue 4): encoder passes artcloak needs to reach the reference loop's distance.

On a *trained* encoder (the efficacy bench's world VAE, trained or loaded from its cache),
for the same held-out images, style targets and L-inf budget (8/255):

- the reference loop, written here as issue 4 defines it: sign-gradient PGD on the latent
  mean, L2 latent distance to the target, 500 steps, step size from eps decaying linearly to
  eps/100, projection onto the L-inf ball and [0, 1], fp32, no perceptual constraint;
- artcloak's engine (its LPIPS constraint and final guarantee included) at a range of step
  counts and at each render-quality preset.

Distances are measured on the written (8-bit) samples: relative to the starting distance,
averaged over the images. Usage: ``.venv/bin/python bench/convergence.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from artcloak.engine.protect import Engine  # noqa: E402
from artcloak.settings import QUALITY_EFFORT, ProtectionSettings  # noqa: E402
from world import experiments  # noqa: E402
from world.efficacy import Case, cases, cloak, make_engine, to_tensor, visibility  # noqa: E402
from world.gallery import SIZE  # noqa: E402
from world.models import WorldVae  # noqa: E402
from world.pgd import sign_pgd  # noqa: E402

REFERENCE_STEPS = 500
EPS = 8 / 255


def relative_distances(vae, originals, protected, targets) -> np.ndarray:
    with torch.no_grad():
        start = (vae.latent_mean(originals) - targets).flatten(1).norm(dim=1)
        end = (vae.latent_mean(protected) - targets).flatten(1).norm(dim=1)
    return (end / start).numpy()


def reference_loop(vae, images: torch.Tensor, targets: torch.Tensor, steps: int):
    """Returns the 8-bit protected images, the per-step mean relative distance and seconds."""
    with torch.no_grad():
        start = (vae.latent_mean(images) - targets).flatten(1).norm(dim=1)
    curve: list[float] = []

    def distance(x: torch.Tensor) -> torch.Tensor:
        return (vae.latent_mean(x) - targets).flatten(1).norm(dim=1)

    started = time.perf_counter()
    written = sign_pgd(distance, images, EPS, steps,
                       on_step=lambda d: curve.append(float((d / start).mean())))  # fmt: skip
    return written, curve, time.perf_counter() - started


def artcloak_run(engine, chosen: list[Case], steps: int):
    """At most ``steps`` steps (the loop stops early on a plateau): images, seconds, passes
    actually spent, and the budget figures."""
    cloaked = cloak(engine, chosen, ProtectionSettings(steps=steps))
    seen = visibility(cloaked)
    passes = max(result.encoder_passes for result in cloaked.results)
    return (to_tensor(cloaked.protected), cloaked.seconds, passes, seen["lpips_max"],
            seen["linf_255_max"])  # fmt: skip


def artcloak_grid(
    engine: Engine,
    vae: WorldVae,
    chosen: list[Case],
    originals: torch.Tensor,
    targets: torch.Tensor,
) -> dict[int, dict]:
    """artcloak's figures at each step count of the grid, by step count."""
    grid = {}
    for steps in (2, 5, 10, 15, 20, 25, 30, 40, 50, 75, 100, 150, 200):
        protected, seconds, passes, lpips_max, linf = artcloak_run(engine, chosen, steps)
        distance = relative_distances(vae, originals, protected, targets).mean()
        grid[steps] = {
            "relative_distance": float(distance),
            "seconds": seconds,
            "encoder_passes": passes,
            "lpips_max": lpips_max,
            "linf_255_max": linf,
        }
        print(steps, grid[steps], flush=True)
    return grid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("bench/out/convergence.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the world's models are small: one thread measured fastest
    scale = experiments.QUICK if args.quick else experiments.FULL
    world = experiments.build_world(scale)
    vae = world.vae
    chosen = cases(1 if args.quick else 2)
    pairs = [case.images(SIZE) for case in chosen]
    originals = to_tensor(np.stack([source for source, _ in pairs]))
    target_images = to_tensor(np.stack([target for _, target in pairs]))
    with torch.no_grad():
        targets = vae.latent_mean(target_images)
    written, curve, ref_seconds = reference_loop(vae, originals, targets, REFERENCE_STEPS)
    reference = float(relative_distances(vae, originals, written, targets).mean())
    engine = make_engine(vae)
    with torch.no_grad():
        reference_lpips = float(engine.lpips(written, originals, normalize=True).max())
    grid = artcloak_grid(engine, vae, chosen, originals, targets)
    reached = [s for s, g in grid.items() if g["relative_distance"] <= reference]
    needed = min(reached, key=lambda s: grid[s]["encoder_passes"]) if reached else None
    presets = {}
    for quality, effort in QUALITY_EFFORT.items():
        presets[quality.value] = {"steps": effort.steps, **grid.get(effort.steps, {})}
    reference_at = next((i + 1 for i, d in enumerate(curve) if d <= reference), None)
    figures = {
        "images": len(chosen),
        "encoder": f"efficacy bench's world-2 VAE (committed, trained), {SIZE}x{SIZE}",
        "lpips": "random AlexNet backbone (the ImageNet weights cannot be had here)",
        "reference": {
            "steps": REFERENCE_STEPS,
            "seconds": ref_seconds,
            "relative_distance_written": reference,
            "encoder_passes": REFERENCE_STEPS,
            "lpips_max": reference_lpips,
            "linf_255_max": float((written - originals).abs().max() * 255),
            "curve_every_50": curve[::50],
        },
        "artcloak_grid": grid,
        "artcloak_presets": presets,
        "steps_allowed_to_reach_reference": needed,
        "passes_to_reach_reference": None if needed is None else grid[needed]["encoder_passes"],
        "pass_ratio": None if needed is None else REFERENCE_STEPS / grid[needed]["encoder_passes"],
        "time_ratio": None if needed is None else ref_seconds / grid[needed]["seconds"],
        "reference_reaches_its_final_distance_at_step": reference_at,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(json.dumps({k: v for k, v in figures.items() if k != "artcloak_grid"}, indent=2))


if __name__ == "__main__":
    main()
