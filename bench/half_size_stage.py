"""Does a stage at half size first buy closure at 512 px? (a pass there costs about a quarter)

Runs artcloak's loop on TAEF2 at ``--size`` px over bench/step_rules.py's artworks: first
``coarse`` passes that show the encoder the view at half the size (toward the targets' latents
at half size), then ``fine`` passes at the full size from where they ended, the fine stage's first
step ``start`` eps; each image's closure (as 8-bit images) is a share of its ceiling in
``--ceilings`` (a bench/step_rules.py JSON for the same artworks and size). ``0:15:0.75`` is
artcloak's default, measured in the same run. Needs ``../shared`` as bench/step_rules.py does.

    .venv/bin/python bench/half_size_stage.py   # bench/reports/half-size-stage.md
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

from artcloak.engine.optimize import SignStep, optimise, target_detail  # noqa: E402
from artcloak.engine.resizing import resize  # noqa: E402
from artcloak.settings import Budget, Effort, Precision  # noqa: E402
from machine import machine  # noqa: E402
from step_rules import (  # noqa: E402
    EPS,
    CaseSet,
    attacked_encoder,
    batch_of,
    case_sets,
    closed_as_written,
    load_ceilings,
)
from typed import bench_command  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402


@dataclass(frozen=True)
class Stages:
    coarse: int  # passes at half size
    fine: int  # passes at the full size after them
    start: float  # the fine stage's first step, in eps

    @classmethod
    def parse(cls, text: str) -> Stages:
        coarse, fine, start = text.split(":")
        return cls(int(coarse), int(fine), float(start))

    def label(self) -> str:
        if not self.coarse:
            return f"artcloak: {self.fine} passes at the full size"
        return (
            f"{self.coarse} at half size, then {self.fine} at the full size from {self.start:g} eps"
        )


def closed(encoder, cases: CaseSet, stages: Stages) -> torch.Tensor:
    """(N,) each image's latent distance closed, as 8-bit images, after both stages."""
    budget = Budget(lpips=1.0, eps=EPS)
    with torch.no_grad():
        goal = encoder(cases.targets)
    batch = batch_of(cases, goal, target_detail)
    if stages.coarse:
        half = [side // 2 for side in cases.targets.shape[-2:]]
        with torch.no_grad():  # the loop shows the encoder the view at the goal's size
            batch.targets = [encoder(resize(cases.targets, half))]
        effort = Effort(steps=stages.coarse, patience=None)
        first = optimise(batch, [encoder], None, budget, effort, Precision.FP32)
        batch.targets, batch.starts = [goal], list(first.delta)
    rule = SignStep(start=stages.start)
    outcome = optimise(
        batch, [encoder], None, budget, Effort(steps=stages.fine), Precision.FP32, rule
    )
    return closed_as_written(encoder, cases, outcome.delta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--paintings-count", type=int, default=2)
    parser.add_argument("--ceilings", type=Path, default=Path("bench/reports/passes-512.json"))
    parser.add_argument(
        "--stages",
        nargs="+",
        type=Stages.parse,
        default=[Stages.parse(s) for s in ("0:15:0.75", "8:13:0.75", "8:13:0.4")],
        help="coarse:fine:start of each variant",
    )
    parser.add_argument("--report", type=Path, default=Path("bench/reports/half-size-stage.md"))
    args = parser.parse_args()
    try:
        assets = locate(None, None)
    except MissingAssets as error:
        sys.exit(f"half_size_stage: {error}")
    started = time.perf_counter()
    encoder = attacked_encoder("taef2", assets)
    sets = case_sets(assets, args.size, args.paintings_count)
    try:
        ceiling = load_ceilings(args.ceilings, sets)
    except ValueError as error:
        sys.exit(f"half_size_stage: {error}")
    lines = ["| loop | median share of the ceiling | min | max |", "|---|---|---|---|"]
    for stages in args.stages:
        shares = []
        for cases in sets:
            shares += (closed(encoder, cases, stages) / ceiling[cases.name]).tolist()
        lines.append(f"| {stages.label()} | {statistics.median(shares):.1%} | "
                     f"{min(shares):.1%} | {max(shares):.1%} |")  # fmt: skip
        print(lines[-1], flush=True)
    head = [
        "# A stage at half size first: TAEF2",
        "",
        bench_command("half_size_stage.py", sys.argv[1:]),
        f"on {machine()}; TAEF2 at {args.size} px, 8/255, {len(sets)} sets of artworks "
        f"({sum(len(c.names) for c in sets)} images); ceilings from `{args.ceilings}`; "
        f"{(time.perf_counter() - started) / 60:.1f} min.",
        "",
    ]
    args.report.write_text("\n".join(head + lines) + "\n")


if __name__ == "__main__":
    main()
