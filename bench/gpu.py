"""Issue 29's GPU goals in one short run, for a session lent a device machine.

With the full-size SD VAE (random weights; built first as bench/make_full_size_vae.py does,
when ``--encoder`` is absent) and a random-backbone LPIPS, at auto precision (bf16 on CUDA):

- one image: a size x size picture at the default intensity and quality, after warm-up runs on
  other pictures (kernel choice and allocator growth are not an artist's per-image cost); goal
  <= 1 s;
- batched: ``--images`` different pictures protected in batches of ``--batch-size``; goal
  >= 2 images/s;

each with its encoder passes and peak accelerator memory. Models are loaded before timing.
On the device machine ``bench/gpu_device.sh`` runs it; anywhere, from the repository root:

    .venv/bin/python bench/gpu.py [--device cuda] [--size 512] [--images 16] [--batch-size 8]

It writes gpu.json and gpu.md into ``--out`` (bench/out/gpu).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine  # noqa: E402
from make_full_size_vae import random_vae_path, write_random_vae  # noqa: E402
from typed import bench_command  # noqa: E402

FULL_SIZE_VAE = random_vae_path("sd1")
SECONDS_PER_IMAGE_GOAL = 1.0
IMAGES_PER_SECOND_GOAL = 2.0
IMAGES, BATCH_SIZE = 16, 8  # the batched measurement's


@dataclass(frozen=True)
class Timing:
    """One timed ``Engine.protect`` call."""

    images: int
    seconds: float
    encoder_passes: int  # summed over the images
    peak_memory_gb: float | None  # the accelerator's; None on a CPU

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds

    def peak(self) -> str:
        return "" if self.peak_memory_gb is None else f"; peak {self.peak_memory_gb:.2f} GB"


@dataclass(frozen=True)
class GpuFigures:
    device: str
    precision: str
    size: int
    batch_size: int
    one_image: Timing
    batched: Timing


def picture(size: int, index: int) -> np.ndarray:
    """A smooth colour picture, a different one for each index."""
    v, u = np.mgrid[0:size, 0:size] / size
    phases = np.random.default_rng(index).random(3) * 6
    image = np.stack([0.5 + 0.4 * np.sin(7 * u + 3 * v + p) for p in phases], axis=-1)
    return (image * 255).round().astype(np.uint8)


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_protect(engine, jobs: list, settings) -> Timing:
    """Protect ``jobs`` in one call, timed from a quiet device to its last kernel."""
    from artcloak.engine.jobs import Failed

    device = engine.device
    synchronise(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    results = engine.protect(jobs, settings)
    synchronise(device)
    seconds = time.perf_counter() - started
    failures = [result for result in results if isinstance(result, Failed)]
    if failures:
        raise RuntimeError(f"gpu bench: {len(failures)} image(s) failed: {failures[0]}")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    passes = sum(result.encoder_passes for result in results)
    return Timing(len(jobs), seconds, passes, peak)


def measure(encoder: str, device: str, size: int, images: int, batch_size: int) -> GpuFigures:
    from artcloak.engine.protect import Engine, ImageJob
    from artcloak.settings import ModelSettings, ProtectionSettings

    models = ModelSettings(encoders=(encoder,), device=device, lpips_random_backbone=True)
    engine = Engine(models, batch_size=batch_size)
    engine.load_models()
    # A new picture for every protection: the engine remembers the latents of the last views it
    # encoded, which a picture seen before would reuse.
    pictures = (ImageJob(f"picture {index}", picture(size, index)) for index in itertools.count())
    warm_up = ProtectionSettings(steps=2, resolution=size)
    engine.protect([next(pictures)], warm_up)  # at both batch sizes
    engine.protect([next(pictures) for _ in range(batch_size)], warm_up)
    settings = ProtectionSettings(resolution=size)
    one_image = timed_protect(engine, [next(pictures)], settings)
    batched = timed_protect(engine, [next(pictures) for _ in range(images)], settings)
    name = torch.cuda.get_device_name(engine.device) if engine.device.type == "cuda" else "CPU"
    return GpuFigures(name, engine.precision_used(), size, batch_size, one_image, batched)


def verdict(figures: GpuFigures, ok: bool) -> str:
    """Met or not: the goals are an H100's or H200's, judged on a CUDA device only."""
    if figures.device == "CPU":
        return "not judged on a CPU"
    return "met" if ok else "**not met**"


def markdown(figures: GpuFigures, encoder: str, seconds: float) -> str:
    one, batched = figures.one_image, figures.batched
    side = figures.size
    return "\n".join([
        "# artcloak on an accelerator: issue 29's GPU goals",
        "",
        bench_command("gpu.py", sys.argv[1:]),
        f"on {figures.device} ({machine()}); encoder `{encoder}`, random-backbone LPIPS, "
        f"{figures.precision}; default intensity and quality; {seconds / 60:.1f} min in all.",
        "",
        "| measurement | value | goal |",
        "|---|---|---|",
        f"| one {side}x{side} image | {one.seconds:.2f} s, {one.encoder_passes} passes{one.peak()} "
        f"| <= {SECONDS_PER_IMAGE_GOAL:g} s: {verdict(figures, one.seconds <= SECONDS_PER_IMAGE_GOAL)} |",
        f"| {batched.images} images in batches of {figures.batch_size} | "
        f"{batched.images_per_second:.2f} images/s ({batched.seconds:.2f} s, "
        f"{batched.encoder_passes} passes){batched.peak()} | >= {IMAGES_PER_SECOND_GOAL:g} "
        f"images/s: {verdict(figures, batched.images_per_second >= IMAGES_PER_SECOND_GOAL)} |",
        "",
    ])  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoder", default=str(FULL_SIZE_VAE))
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--images", type=int, default=IMAGES)
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--out", type=Path, default=Path("bench/out/gpu"))
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("gpu bench: torch sees no CUDA device here (run it on the device machine).")
    if args.encoder == str(FULL_SIZE_VAE):
        write_random_vae("sd1", FULL_SIZE_VAE)
    started = time.perf_counter()
    figures = measure(args.encoder, args.device, args.size, args.images, args.batch_size)
    args.out.mkdir(parents=True, exist_ok=True)
    report = markdown(figures, args.encoder, time.perf_counter() - started)
    (args.out / "gpu.md").write_text(report)
    (args.out / "gpu.json").write_text(json.dumps(asdict(figures), indent=2) + "\n")
    print(report)


if __name__ == "__main__":
    main()
