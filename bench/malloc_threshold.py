"""Does giving freed tensors back at once pay, per encoder? (``artcloak/memory.py``'s rule)

Times the lean encoder's forward+backward and reads the peak memory, each run in a fresh
process, with glibc's own rule (its mmap threshold rising to 32 MiB) and with the threshold fixed
at 1 MiB as ``artcloak.memory.return_freed_memory`` sets it, alternating round by round: TAEF2 at
256 and 512 px and the full-size SD VAE (random weights, ``bench/make_full_size_vae.py``) at
512 px. Needs ``../shared``'s TAEF2 (or ``--taef2``).

    .venv/bin/python bench/malloc_threshold.py   # bench/reports/malloc-threshold.md; 4.3 min here
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import machine  # noqa: E402
from make_full_size_vae import random_vae_path, write_random_vae  # noqa: E402
from typed import bench_command  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402

SD_VAE = random_vae_path("sd1")
REPORT = Path("bench/reports/malloc-threshold.md")
RULES = ("glibc's rule", "1 MiB")


@dataclass(frozen=True)
class Case:
    label: str
    path: Path
    size: int
    passes: int


def measure(path: str, size: int, passes: int, fixed: bool) -> dict:
    """In this process: seconds per pass (median, after a first that warms up) and peak RSS."""
    from artcloak.engine.encoders import load_encoder
    from artcloak.engine.encoders.lean import make_lean
    from artcloak.memory import return_freed_memory

    if fixed and not return_freed_memory():
        raise SystemExit("malloc_threshold: glibc's mmap threshold could not be set here")
    encoder = load_encoder(path)
    make_lean(encoder.vae.encoder)
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    seconds = []
    for _ in range(passes + 1):
        pixels = image.clone().requires_grad_(True)
        started = time.perf_counter()
        torch.autograd.grad(encoder(pixels).square().sum(), pixels)
        seconds.append(time.perf_counter() - started)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": statistics.median(seconds[1:]), "peak_mb": peak}


def isolated(case: Case, fixed: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    command = [sys.executable, __file__, "--measure", str(case.path), str(case.size),
               str(case.passes), "fixed" if fixed else "glibc"]  # fmt: skip
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(cases: list[Case], figures: dict, rounds: int, seconds: float) -> str:
    lines = [
        "# Freed tensors back at once: glibc's rule against a 1 MiB mmap threshold",
        "",
        bench_command("malloc_threshold.py", sys.argv[1:]),
        f"on {machine()}; {rounds} rounds, each case in a fresh process; "
        f"{seconds / 60:.1f} min. Seconds: the median over rounds of each run's median pass; "
        "peak: the highest of the rounds.",
        "",
        "| encoder forward+backward (lean) | glibc's rule | 1 MiB threshold | time | peak |",
        "|---|---|---|---|---|",
    ]
    for case in cases:
        cells = []
        for rule in RULES:
            runs = figures[case.label][rule]
            cells.append((statistics.median(r["seconds"] for r in runs),
                          max(r["peak_mb"] for r in runs)))  # fmt: skip
        (glibc_s, glibc_mb), (fixed_s, fixed_mb) = cells
        lines.append(f"| {case.label} | {glibc_s:.3f} s, {glibc_mb / 1024:.2f} GB | "
                     f"{fixed_s:.3f} s, {fixed_mb / 1024:.2f} GB | {fixed_s / glibc_s:.2f}x | "
                     f"{fixed_mb / glibc_mb:.2f}x |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--measure":
        path, size, passes, rule = sys.argv[2:6]
        print(json.dumps(measure(path, int(size), int(passes), rule == "fixed")))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--taef2", type=Path, help="TAEF2's encoder.safetensors")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    taef2 = args.taef2
    if taef2 is None:
        try:
            taef2 = locate(None, None).weight("taef2/encoder.safetensors")
        except MissingAssets as error:
            sys.exit(f"malloc_threshold: {error}")
    write_random_vae("sd1", SD_VAE)
    cases = [Case("TAEF2, 256 px", taef2, 256, 20), Case("TAEF2, 512 px", taef2, 512, 8),
             Case("full-size SD VAE, 512 px", SD_VAE, 512, 4)]  # fmt: skip
    started = time.perf_counter()
    figures = {case.label: {rule: [] for rule in RULES} for case in cases}
    for _ in range(args.rounds):
        for case in cases:
            for rule in RULES:
                figures[case.label][rule].append(isolated(case, rule == "1 MiB"))
    REPORT.write_text(report(cases, figures, args.rounds, time.perf_counter() - started))
    print(REPORT.read_text())


if __name__ == "__main__":
    main()
