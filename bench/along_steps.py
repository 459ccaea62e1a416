"""Where along its own steps is artcloak's loop lowest, and does the latent secant know?

Runs artcloak's loop (its rule, started toward the target's detail) on TAEF2 at 256 px, 8/255,
15 passes (every one spent), on the artworks ``bench/step_rules.py`` measures, and for a few of its steps
measures the latent loss at multiples of the step (projected onto the box), each as a share of
the loss where the step began; beside it what the secant model predicts from the residuals at
the step's two ends (the residual linear along the step: what the rules in
``bench/residual_rules.py`` rely on). Needs ``../shared`` (or ``--weights`` and ``--paintings``).

    .venv/bin/python bench/along_steps.py     # bench/reports/along-steps.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.optimize import SignStep, optimise, project, target_detail  # noqa: E402
from artcloak.settings import Budget, Effort, Precision  # noqa: E402
from machine import machine  # noqa: E402
from step_rules import EPS, attacked_encoder, batch_of, case_sets  # noqa: E402
from typed import bench_command  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402

MULTIPLES = (0.25, 0.5, 1.0, 1.5, 2.0)


@dataclass
class Recording(SignStep):
    """artcloak's rule, keeping the point each step starts from."""

    points: list[torch.Tensor] = field(default_factory=list, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        self.points.append(delta.clone())
        return super().__call__(delta, grad, loss, step, total, eps)


@dataclass
class Cell:
    step: int
    multiple: float
    predicted: list[float] = field(default_factory=list)  # per image, share of the start's loss
    measured: list[float] = field(default_factory=list)


def trajectory(encoder, cases, passes: int):
    """The batch, its target latents and the points the loop stepped between."""
    with torch.no_grad():
        goal = encoder(cases.targets)
    batch = batch_of(cases, goal, target_detail)
    rule = Recording()
    effort = Effort(steps=passes, patience=None)
    outcome = optimise(
        batch, [encoder], None, Budget(lpips=1.0, eps=EPS), effort, Precision.FP32, rule
    )
    return batch, goal, [*rule.points, outcome.delta]


@torch.no_grad()
def along(encoder, batch, goal, start: torch.Tensor, end: torch.Tensor, cells: list[Cell]):
    """Each cell's losses for one step from ``start`` to ``end``."""

    def residual(delta):
        return encoder(batch.view(delta)) - goal

    def energy(residual):
        return residual.flatten(1).square().sum(1)

    first, last = residual(start), residual(end)
    for cell in cells:
        point = project(start + cell.multiple * (end - start), batch, EPS)
        measured = energy(residual(point)) / energy(first)
        predicted = energy(first + cell.multiple * (last - first)) / energy(first)
        cell.measured += measured.tolist()
        cell.predicted += predicted.tolist()


def markdown(cells: list[Cell], args, seconds: float) -> str:
    lines = [
        f"# Along artcloak's steps: TAEF2 at {args.size} px, 8/255, {args.passes} passes",
        "",
        bench_command("along_steps.py", sys.argv[1:]),
        f"on {machine()}; {seconds / 60:.1f} min. The latent loss at a multiple of the "
        "step (1: where the loop went), as a share of the loss where the step began, the median "
        f"over {len(cells[0].measured)} artworks; the secant model's prediction beside it.",
        "",
        "| step | multiple | secant model | measured | artworks lower than at 1 |",
        "|---|---|---|---|---|",
    ]
    at_one = {cell.step: cell.measured for cell in cells if cell.multiple == 1.0}
    for cell in cells:
        lower = sum(m < one for m, one in zip(cell.measured, at_one[cell.step], strict=True))
        lines.append(
            f"| {cell.step + 1} | {cell.multiple:g} | {statistics.median(cell.predicted):.3f} | "
            f"{statistics.median(cell.measured):.3f} | {lower} of {len(cell.measured)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 4, 8, 11, 15],
                        help="the steps to look along (1: the first)")  # fmt: skip
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--paintings-count", type=int, default=4)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument("--report", type=Path, default=Path("bench/reports/along-steps.md"))
    args = parser.parse_args()
    if not all(1 <= step <= args.passes for step in args.steps):
        sys.exit(f"along_steps: --steps must lie in 1..{args.passes} (the passes).")
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"along_steps: {error}")
    started = time.perf_counter()
    encoder = attacked_encoder("taef2", assets)
    cells = [Cell(step - 1, multiple) for step in args.steps for multiple in MULTIPLES]
    for cases in case_sets(assets, args.size, args.paintings_count):
        batch, goal, points = trajectory(encoder, cases, args.passes)
        for step in args.steps:
            mine = [cell for cell in cells if cell.step == step - 1]
            along(encoder, batch, goal, points[step - 1], points[step], mine)
    args.report.write_text(markdown(cells, args, time.perf_counter() - started))
    print(args.report.read_text())


if __name__ == "__main__":
    main()
