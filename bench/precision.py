"""What bf16 encoder passes cost and close on a CPU with bf16 matrix units, against fp32.

``--precision auto`` runs the encoder passes in bf16 where the CPU has AMX tiles
(``cpu_has_bf16_tiles``), as it does on CUDA. This bench is the evidence, in one run: paired
with fp32 round by round, the median forward+backward of the full-size SD VAE (random weights,
``bench/make_full_size_vae.py``) and of TAEF2 at 512 px, through artcloak's loader; then
artcloak's default (15 passes, no perceptual term) on world 3's artworks at 512 px and 8/255 in
each arithmetic, each image's closure (measured in fp32 on the 8-bit images) as a share of its
ceiling in ``bench/step_rules.py``'s JSON. Needs ``../shared`` (or ``--weights`` and
``--paintings``). On a CPU without bf16 units bf16 is far slower; the bench says so and stops.

    .venv/bin/python bench/precision.py   # bench/reports/precision.md, about 10 min on 2 cores
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.encoders import load_encoder  # noqa: E402
from artcloak.engine.optimize import cpu_has_bf16_tiles  # noqa: E402
from artcloak.settings import Precision  # noqa: E402
from machine import machine  # noqa: E402
from make_full_size_vae import random_vae_path, write_random_vae  # noqa: E402
from step_rules import ARTCLOAK, attacked_encoder, case_sets, closed, load_ceilings  # noqa: E402
from typed import bench_command  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402

FULL_SIZE_VAE = random_vae_path("sd1")
ARITHMETIC = {Precision.FP32: None, Precision.BF16: torch.bfloat16}


@dataclass(frozen=True)
class PassCost:
    encoder: str
    fp32: float  # median seconds per forward+backward
    bf16: float


@dataclass(frozen=True)
class Closure:
    precision: Precision
    shares: list[float]  # per image, of its ceiling
    seconds: float  # the loop's time over all images


def one_pass(encoder, image: torch.Tensor, dtype: torch.dtype | None) -> float:
    """Seconds of one forward+backward of ``encoder`` at ``image``, in ``dtype`` (None: fp32)."""
    pixels = image.clone().requires_grad_(True)
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
        latent = encoder(pixels)
    torch.autograd.grad(latent.float().square().sum(), pixels)
    return time.perf_counter() - started


def pass_cost(name: str, encoder, size: int, rounds: int) -> PassCost:
    """Median seconds per pass in each arithmetic, paired round by round after one warm-up."""
    image = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(size))
    image = image.contiguous(memory_format=torch.channels_last)
    times = {precision: [] for precision in ARITHMETIC}
    for round_index in range(rounds + 1):
        for precision, dtype in ARITHMETIC.items():
            seconds = one_pass(encoder, image, dtype)
            if round_index:
                times[precision].append(seconds)
    medians = [statistics.median(times[p]) for p in ARITHMETIC]
    return PassCost(name, *medians)


def closures(encoder, sets, ceilings: dict, passes: int) -> list[Closure]:
    """Artcloak's default on every set in each arithmetic, as shares of the ceilings."""
    rows = []
    for precision in ARITHMETIC:
        started, shares = time.perf_counter(), []
        for cases in sets:
            done, _ = closed(encoder, cases, ARTCLOAK, passes, precision=precision)
            shares += (done / ceilings[cases.name]).tolist()
        rows.append(Closure(precision, shares, time.perf_counter() - started))
        print(f"{precision.value}: median {statistics.median(shares):.1%}", flush=True)
    return rows


def markdown(costs: list[PassCost], rows: list[Closure], args, seconds: float) -> str:
    lines = [
        "# bf16 against fp32 encoder passes on a CPU with bf16 matrix units",
        "",
        bench_command("precision.py", sys.argv[1:]),
        f"on {machine()}, AMX tiles: {cpu_has_bf16_tiles()}; {seconds / 60:.1f} min.",
        "",
        f"Forward+backward at {args.size} px, batch 1, channels-last, median of {args.rounds} "
        "paired rounds:",
        "",
        "| encoder | fp32 | bf16 | bf16 as fast as fp32 by |",
        "|---|---|---|---|",
    ]
    for cost in costs:
        lines.append(f"| {cost.encoder} | {cost.fp32:.2f} s | {cost.bf16:.2f} s | "
                     f"{cost.fp32 / cost.bf16:.2f}x |")  # fmt: skip
    lines += [
        "",
        f"Artcloak's default ({args.passes} passes, the start toward the target's detail) on TAEF2 "
        f"at {args.size} px, 8/255, {len(rows[0].shares)} artworks; each image's closure (in fp32, "
        f"on the 8-bit images) as a share of its ceiling in `{args.ceilings}`:",
        "",
        "| passes in | median share | min | max | the loop's time |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        shares = row.shares
        lines.append(f"| {row.precision.value} | {statistics.median(shares):.1%} | "
                     f"{min(shares):.1%} | {max(shares):.1%} | {row.seconds:.0f} s |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3, help="paired timing rounds")
    parser.add_argument("--paintings-count", type=int, default=2)
    parser.add_argument("--ceilings", type=Path, default=Path("bench/reports/passes-512.json"))
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument("--report", type=Path, default=Path("bench/reports/precision.md"))
    args = parser.parse_args()
    if not cpu_has_bf16_tiles():
        sys.exit("precision: this CPU has no AMX tiles, so artcloak runs its passes in fp32 here.")
    write_random_vae("sd1", FULL_SIZE_VAE)
    try:
        assets = locate(args.weights, args.paintings)
        sets = case_sets(assets, args.size, args.paintings_count)
        ceilings = load_ceilings(args.ceilings, sets)
    except (MissingAssets, ValueError) as error:
        sys.exit(f"precision: {error}")
    started = time.perf_counter()
    taef2 = attacked_encoder("taef2", assets)
    costs = [
        pass_cost("full-size SD VAE", load_encoder(str(FULL_SIZE_VAE)), args.size, args.rounds),
        pass_cost("TAEF2", taef2, args.size, args.rounds),
    ]
    rows = closures(taef2, sets, ceilings, args.passes)
    report = markdown(costs, rows, args, time.perf_counter() - started)
    args.report.write_text(report)
    print(report)


if __name__ == "__main__":
    main()
