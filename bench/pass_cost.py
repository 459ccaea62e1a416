"""What one encoder pass costs per image on this machine, by batch size and memory layout.

Times TAEF2's encoder forward+backward (the pass every protection step makes) on random images,
for batches of 1, 2 and ``--batch`` images at each size, with channels-last weights (artcloak's
layout for tiny autoencoders) and with the default layout; each figure is the best of
``--repeats`` runs, divided by the batch. With ``--encoder PATH`` it times that encoder instead
(for instance a full-size SD VAE from ``bench/make_full_size_vae.py``). Needs ``../shared``'s
TAEF2 (or ``--encoder``). Why it matters: the engine's batch size on a CPU is 1.

    .venv/bin/python bench/pass_cost.py > bench/reports/pass-cost.md
    .venv/bin/python bench/pass_cost.py --sizes 512 --batch 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.encoders import load_encoder  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402


def seconds_per_image(
    encoder: torch.nn.Module, images: torch.Tensor, batch: int, repeats: int
) -> float:
    """Best of ``repeats`` timings of forward+backward over ``images`` in batches of ``batch``."""
    best = float("inf")
    for _ in range(repeats + 1):  # the first run warms up the allocator and kernels
        started = time.perf_counter()
        for part in images.split(batch):
            part = part.clone().requires_grad_(True)
            torch.autograd.grad(encoder(part).square().sum(), part)
        best = min(best, time.perf_counter() - started)
    return best / len(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--encoder", help="An encoder as --encoder takes it (default: ../shared's TAEF2)."
    )
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--batch", type=int, default=8, help="The largest batch timed.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.encoder is None:
        try:
            args.encoder = str(locate().weight("taef2/encoder.safetensors"))
        except MissingAssets as error:
            sys.exit(f"pass_cost: {error}")
    encoder = load_encoder(args.encoder)
    print("# What one encoder pass costs per image\n")
    print(f"Forward+backward of {args.encoder} per image, best of {args.repeats} runs on random "
          f"images; {args.threads} torch threads, torch {torch.__version__}.\n")  # fmt: skip
    print("| size | layout | " + " | ".join(f"batch {b}" for b in _batches(args.batch)) + " |")
    print("|---|---|" + "---|" * len(_batches(args.batch)))
    generator = torch.Generator().manual_seed(0)
    for size in args.sizes:
        images = torch.rand(args.batch, 3, size, size, generator=generator)
        for layout in (torch.channels_last, torch.contiguous_format):
            encoder.to(memory_format=layout)
            cells = [f"{seconds_per_image(encoder, images, b, args.repeats):.3f} s"
                     for b in _batches(args.batch)]  # fmt: skip
            name = "channels-last" if layout is torch.channels_last else "default"
            print(f"| {size} | {name} | " + " | ".join(cells) + " |", flush=True)


def _batches(largest: int) -> list[int]:
    return sorted({1, 2, largest})


if __name__ == "__main__":
    main()
