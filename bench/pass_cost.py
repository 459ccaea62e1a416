"""What one encoder pass costs per image on this machine, by batch size and memory layout.

Times TAEF2's encoder forward+backward (the pass every protection step makes) on random images,
for batches of 1, 2 and ``--batch`` images at each size, with channels-last weights (artcloak's
layout for tiny autoencoders) and with the default layout; each figure is the best of
``--repeats`` runs, divided by the batch. With ``--encoder PATH`` it times that encoder instead
(for instance a full-size SD VAE from ``bench/make_full_size_vae.py``). Then, paired at batch 1
with channels-last weights, ``torch.compile``'d against eager, the compiling counted: how many
passes the compiled encoder must run to win back its compile time. Needs ``../shared``'s TAEF2 (or
``--encoder``). Why it matters: the engine's batch size on a CPU is 1.

    .venv/bin/python bench/pass_cost.py > bench/reports/pass-cost.md
    .venv/bin/python bench/pass_cost.py --sizes 512 --batch 4
    .venv/bin/python bench/pass_cost.py --encoder bench/cache/sd1-vae-random.safetensors \
        --sizes 512 --batch 1 --repeats 1 > bench/reports/pass-cost-full-size.md
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class CompiledPass:
    cold: float  # seconds: compiling with an empty cache, with the first pass
    warm: float  # seconds: compiling again from the warm disk cache, with the first pass
    compiled: float  # seconds per compiled pass
    eager: float  # seconds per eager pass, in the same run

    def payoff(self, compiling: float) -> str:
        """Passes the compiled encoder must run to win ``compiling`` back."""
        saved = self.eager - self.compiled
        return f"{compiling / saved:.0f}" if saved > 0 else "never: not faster"


def compiled_against_eager(
    encoder: torch.nn.Module, image: torch.Tensor, repeats: int
) -> CompiledPass:
    """torch.compile's costs and pass against eager's, batch 1 (inductor's cache must be empty:
    ``main`` points it at a new folder)."""
    eager = seconds_per_image(encoder, image, 1, repeats)
    compiling = []
    for _ in range(2):  # cold, then warm: what a later process meets
        torch._dynamo.reset()
        started = time.perf_counter()
        compiled = torch.compile(encoder)
        seconds_per_image(compiled, image, 1, repeats=0)
        compiling.append(time.perf_counter() - started)
    return CompiledPass(*compiling, seconds_per_image(compiled, image, 1, repeats), eager)


def compile_row(encoder: torch.nn.Module, size: int, image: torch.Tensor, repeats: int) -> str:
    """A table row: compile times, both passes and the passes that win the compiling back."""
    try:
        costs = compiled_against_eager(encoder, image, repeats)
    except Exception as error:  # inductor needs a C++ toolchain; say what failed, in one line
        return f"| {size} | torch.compile failed: {str(error).splitlines()[0][:120]} |||||"
    return (
        f"| {size} | {costs.cold:.1f} s ({costs.payoff(costs.cold)}) | {costs.warm:.1f} s "
        f"({costs.payoff(costs.warm)}) | {costs.compiled:.3f} s | {costs.eager:.3f} s |"
    )


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
    print_compiled(encoder, args, generator)


def print_compiled(encoder: torch.nn.Module, args, generator: torch.Generator) -> None:
    """The torch.compile table, inductor's cache in a new folder (cold, then warm)."""
    print("\n`torch.compile` (inductor), batch 1, channels-last, paired with eager in one run; in")
    print("brackets, the passes the compiled encoder must run to win the compiling back:\n")
    print("| size | compiling, empty cache | again, warm cache | compiled pass | eager pass |")
    print("|---|---|---|---|---|")
    encoder.to(memory_format=torch.channels_last)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache
        for size in args.sizes:
            image = torch.rand(1, 3, size, size, generator=generator)
            print(compile_row(encoder, size, image, args.repeats), flush=True)


def _batches(largest: int) -> list[int]:
    return sorted({1, 2, largest})


if __name__ == "__main__":
    main()
