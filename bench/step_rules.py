"""Which step rule reaches the ceiling in the fewest passes on a real encoder?

Runs artcloak's ``SignStep`` with each setting below on world 3's artworks (TAEF2 at 256 px,
8/255, the engine's random start, no perceptual term) for each pass budget, and prints the
latent distance closed and its share of the ceiling the efficacy report measured
(``bench/reports/efficacy.json``, 8/255 row). Needs ``../shared`` (or ``--weights`` and
``--paintings``), as ``bench/efficacy.py`` does.

    .venv/bin/python bench/step_rules.py               # every rule at 15 and 30 passes
    .venv/bin/python bench/step_rules.py --passes 100
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.encoders import load_encoder  # noqa: E402
from artcloak.engine.optimize import RANDOM_START, SignStep  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402
from world3.world import Probe, gallery_cases, painting_cases, stack  # noqa: E402

RULES = {
    "sign, start 0.25 eps (before)": SignStep(decay=0.0, start=0.25),
    "sign, start 0.5 eps": SignStep(decay=0.0, start=0.5),
    "momentum 0.5, start 0.25 eps": SignStep(decay=0.5, start=0.25),
    "momentum 0.5, start 0.5 eps": SignStep(decay=0.5, start=0.5),
    "momentum 0.9, start 0.5 eps": SignStep(decay=0.9, start=0.5),
    # tried for the 15-pass goal (95% of the ceiling): start, end and momentum moved each way
    "momentum 0.25, start 0.5 eps": SignStep(decay=0.25, start=0.5),
    "momentum 0.5, start 1 eps": SignStep(decay=0.5, start=1.0),
    "momentum 0.75, start 1 eps": SignStep(decay=0.75, start=1.0),
    "momentum 0.9, start 1 eps": SignStep(decay=0.9, start=1.0),
    "momentum 0.5, 0.5 -> 0.1 eps": SignStep(decay=0.5, start=0.5, end=0.1),
    "momentum 0.5, 0.75 -> 0.05 eps": SignStep(decay=0.5, start=0.75, end=0.05),
}
EPS = 8 / 255
SIZE = 256


def closed_after(rule: SignStep, probe: Probe, sources: torch.Tensor, passes: int) -> float:
    """The engine's loop without its perceptual term: random start, ``passes - 1`` steps (one
    pass measures the start), projection onto the box and [0, 1], 8-bit result."""
    generator = torch.Generator().manual_seed(0)
    delta = (torch.rand(sources.shape, generator=generator) * 2 - 1) * RANDOM_START * EPS
    delta = (sources + delta).clamp(0, 1) - sources
    steps = passes - 1
    for step in range(steps):
        delta.requires_grad_(True)
        loss = probe.latent_distance((sources + delta).clamp(0, 1)) / probe.start
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        with torch.no_grad():
            delta = rule(delta.detach(), grad, step, steps, EPS).clamp(-EPS, EPS)
            delta = (sources + delta).clamp(0, 1) - sources
    return float(probe.closed(((sources + delta) * 255).round() / 255).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, nargs="*", default=[15, 30])
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument("--report", type=Path, default=Path("bench/reports/efficacy.json"))
    args = parser.parse_args()
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"step_rules: {error}")
    rows = json.loads(args.report.read_text())["ceiling"]["rows"]
    ceiling = next(row["closed"] for row in rows if row["eps_255"] == 8)
    encoder = load_encoder(str(assets.weight("taef2/encoder.safetensors")))
    cases = gallery_cases(1, SIZE) + painting_cases(assets, 3, SIZE)
    sources = stack(cases, "source")
    probe = Probe(encoder, sources, stack(cases, "target"))
    print(f"{len(cases)} artworks at {SIZE} px, 8/255; the ceiling closes {ceiling:.1%}")
    for passes in args.passes:
        for name, rule in RULES.items():
            started = time.perf_counter()
            closed = closed_after(rule, probe, sources, passes)
            print(f"{passes:4d} passes  {name:32s} closed {closed:.1%}  share {closed / ceiling:.1%}"
                  f"  ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
