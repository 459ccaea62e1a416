"""Images per second of ``artcloak batch``: in-process against Ray with 1 and 2 workers.

    .venv/bin/python bench/batch_throughput.py [--images 24] [--size 128] [--steps 10]

A tiny VAE with random weights (artcloak.testing) and a random-backbone LPIPS, on the CPU, one
torch thread per worker, so that the figures compare runners rather than models. Throughput
counts protected images over the time after the models are loaded (the summary's
``images_per_second``); the wall time of each run, start-up included, is reported beside it.
Writes bench/out/batch_throughput.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from typed import typed

HERE = Path(__file__).resolve().parent


def make_images(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    v, u = np.mgrid[0:size, 0:size] / size
    for index in range(count):
        rng = np.random.default_rng(index)
        phases = rng.random(3) * 6
        image = np.stack([0.5 + 0.4 * np.sin(6 * u + 4 * v + p) for p in phases], axis=-1)
        Image.fromarray((image * 255).round().astype(np.uint8)).save(folder / f"art{index:03d}.png")


def run(label: str, src: Path, dest: Path, settings, models, **options) -> dict:
    from artcloak.batch import run_batch

    shutil.rmtree(dest, ignore_errors=True)
    started = time.perf_counter()
    summary = run_batch(src, dest, settings, models, **options)
    wall = time.perf_counter() - started
    assert summary.done == summary.total, summary.as_dict()["failures"]
    workers = max(1, len(summary.per_worker()))
    figures = {
        "runner": label,
        "workers": workers,
        "images": summary.done,
        "images_per_second": round(summary.images_per_second, 3),
        "per_worker_images_per_second": round(summary.images_per_second / workers, 3),
        "seconds_protecting": round(summary.seconds, 1),
        "wall_seconds": round(wall, 1),
        "per_worker": summary.per_worker(),
    }
    print(json.dumps(figures), flush=True)
    return figures


def two_plain_processes(work: Path, args) -> dict:
    """Two in-process runs side by side, each on half the images: what running two workers
    costs on this machine without Ray."""
    import subprocess

    halves = []
    for half in (0, 1):
        part = work / f"src-half{half}"
        shutil.rmtree(part, ignore_errors=True)
        part.mkdir()
        for path in sorted((work / "src").iterdir())[half::2]:
            shutil.copy(path, part / path.name)
        halves.append(part)
    common = ["--size", str(args.size), "--steps", str(args.steps)]
    started = time.perf_counter()
    processes = [
        subprocess.Popen(
            [sys.executable, __file__, "--part", str(part), *common],
            stdout=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for part in halves
    ]
    figures = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in processes]
    rates = [f["images_per_second"] for f in figures]
    result = {
        "runner": "2 plain in-process runs side by side",
        "workers": 2,
        "images": sum(f["images"] for f in figures),
        "images_per_second": round(sum(rates), 3),
        "per_worker_images_per_second": round(sum(rates) / 2, 3),
        "seconds_protecting": max(f["seconds_protecting"] for f in figures),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(result), flush=True)
    return result


def protect_part(args) -> None:
    import torch
    from artcloak.settings import ModelSettings, ProtectionSettings

    torch.set_num_threads(1)
    work = HERE / "cache" / "batch"
    models = ModelSettings(encoders=(str(work / "models" / "tiny_vae_diffusers"),), device="cpu",
                           lpips_random_backbone=True)  # fmt: skip
    settings = ProtectionSettings(steps=args.steps, resolution=args.size, lpips=0.5)
    run("part", args.part, work / f"dest-{args.part.name}", settings, models)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--size", type=int, default=128, help="square images, pixels a side")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs the local Ray instance gets")
    parser.add_argument("--part", type=Path, help=argparse.SUPPRESS)  # one plain process's share
    args = parser.parse_args()
    if args.part:
        return protect_part(args)

    import ray
    import torch
    from artcloak.settings import ModelSettings, ProtectionSettings
    from artcloak.testing import save_tiny_models

    work = HERE / "cache" / "batch"
    models_path = save_tiny_models(work / "models")["diffusers_folder"]
    src = work / "src"
    shutil.rmtree(src, ignore_errors=True)
    make_images(src, args.images, args.size)
    models = ModelSettings(encoders=(str(models_path),), device="cpu", lpips_random_backbone=True)
    settings = ProtectionSettings(steps=args.steps, resolution=args.size, lpips=0.5)

    torch.set_num_threads(1)
    results = [run("in-process", src, work / "dest-local", settings, models)]
    results.append(two_plain_processes(work, args))
    from artcloak.batch.ray_runner import LOCAL_CONFIG

    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False,
             _system_config=LOCAL_CONFIG)  # fmt: skip
    try:
        for workers in (1, 2):
            # 0.75 CPU each: a whole CPU per worker would leave none for the read tasks.
            results.append(run(f"Ray, {workers} worker(s)", src, work / f"dest-ray{workers}",
                               settings, models, ray_address="auto", workers=workers,
                               cpus_per_worker=0.75))  # fmt: skip
    finally:
        ray.shutdown()
    one, two = (
        results[2]["per_worker_images_per_second"],
        results[3]["per_worker_images_per_second"],
    )
    alone, beside = (results[0]["per_worker_images_per_second"],
                     results[1]["per_worker_images_per_second"])  # fmt: skip
    report = {
        "command": "python bench/batch_throughput.py " + typed(sys.argv[1:]),
        "machine": f"{socket.gethostname()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
        "images": args.images,
        "size": args.size,
        "steps": args.steps,
        "results": results,
        "per_worker_cost_1_to_2_workers": round(1 - two / one, 3) if one else None,
        "per_process_cost_1_to_2_plain_processes": round(1 - beside / alone, 3) if alone else None,
    }
    out = HERE / "out" / "batch_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print("\n| runner | images/s | per worker | protecting (s) | wall (s) |\n|---|---|---|---|---|")
    for r in results:
        print(f"| {r['runner']} | {r['images_per_second']} | {r['per_worker_images_per_second']} "
              f"| {r['seconds_protecting']} | {r['wall_seconds']} |")  # fmt: skip
    cost, plain = (
        report["per_worker_cost_1_to_2_workers"],
        report["per_process_cost_1_to_2_plain_processes"],
    )
    print(f"\nper-worker cost of going from 1 to 2 Ray workers: {cost:.1%}")
    print(f"the same for two plain in-process runs side by side (the machine's own): {plain:.1%}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
