"""Step rules tried against artcloak's, each against the ceilings already measured.

``bench/step_rules.py`` spends most of its hour on the ceilings (three 100-pass runs per
artwork). This script reads them from that run's JSON and measures other step rules at one pass
budget on the same artworks, started toward the target's detail as artcloak is (unless a
trial says otherwise), with artcloak's own rule first as the baseline. What is here was tried for
issue 29 (95% of the ceiling in 15 passes); a new idea is a new ``Trial`` (a ``ResidualTrial``
where the rule reads the latent residual: ``bench/residual_rules.py``).

    .venv/bin/python bench/step_rule_trials.py        # 15 passes; bench/reports/step-rule-trials.md
    .venv/bin/python bench/step_rule_trials.py --only "first step 0.25 eps"   # and the baseline
    .venv/bin/python bench/step_rule_trials.py --held-out   # against passes-held-out.json

The ceilings' run must have used the same artworks: ``--size`` and ``--paintings-count`` as it
did (the committed reports: 256 px, 4 paintings).

Tried before this file, at 256 px against the ceilings of the time (started toward the target's
pixels), none closing more for the median and the worst image: momentum 0.25-0.9, first steps
0.25-1 eps, last 0.01-0.1 eps, linear, cosine and geometric decay, Frank-Wolfe, Rprop, Adam,
auto-PGD, Nesterov look-ahead, clipped steps, blurred gradients, a coarse stage at half size
(at 512 px: ``bench/half_size_stage.py``), a start pulled 0.25-2 times as far toward the
target's pixels with a random part of 0-1 eps (94.8-95.0% against 94.9%), going back to an
image's best point when its loss rose (95.1% against 94.9%, but 94.9% either way held out with
a worse worst image), a trust region's cut where the loss fell by less than a share of what the
gradient predicted (93.5%; held out 92.8%), restarting the momentum where the loss rose (no
change), and stepping only the half of the pixels with the largest momentum (90.4%).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.optimize import SignStep, StepRule, target_detail  # noqa: E402
from machine import machine  # noqa: E402
from residual_rules import (  # noqa: E402
    AndersonMixing,
    LatentTap,
    RegionCuts,
    Residual,
    SecantCorrection,
    SecantSizes,
    dot,
    per_image,
)
from step_rules import (  # noqa: E402
    Row,
    Toward,
    Variant,
    attacked_encoder,
    case_sets,
    load_ceilings,
    measure,
    target_pixels,
)
from typed import bench_command  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402


def _normalised(grad: torch.Tensor) -> torch.Tensor:
    """Each image's gradient divided by its mean absolute value, as SignStep does."""
    return grad / per_image(grad.abs().flatten(1).mean(1).clamp_min(1e-20))


@dataclass
class Lion(SignStep):
    """Lion's update: the sign of momentum and gradient mixed (``mix``), the momentum kept
    with a slower ``keep``."""

    mix: float = 0.5
    keep: float = 0.9

    def __call__(self, delta, grad, loss, step, total, eps):
        previous = self.velocity
        self.update(grad, loss, step)
        direction = self.velocity.sign()
        if step > 0 and previous is not None:
            gradient = _normalised(grad)
            direction = (self.mix * previous + (1 - self.mix) * gradient).sign()
            self.velocity = self.keep * previous + (1 - self.keep) * gradient
        return delta - per_image(self.step_sizes(step, total, eps)) * direction


@dataclass
class ShrinkOnFlip(SignStep):
    """Each pixel's steps times ``shrink`` every time its step's sign flips (Rprop, shrinking
    only)."""

    shrink: float = 0.5
    pixel_sizes: torch.Tensor | None = field(default=None, repr=False)
    last_sign: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        sign = self.velocity.sign()
        if self.last_sign is None or step == 0:
            self.pixel_sizes = torch.ones_like(sign)
        else:
            flipped = sign != self.last_sign
            self.pixel_sizes = torch.where(
                flipped, self.pixel_sizes * self.shrink, self.pixel_sizes
            )
        self.last_sign = sign
        sizes = per_image(self.step_sizes(step, total, eps)) * self.pixel_sizes
        return delta - sizes * sign


@dataclass
class GrowOnFall(SignStep):
    """As SignStep, and an image's steps ``grow`` times as large (at most ``largest``) after a
    step that cut its latent loss by more than ``fall`` of it."""

    grow: float = 1.2
    fall: float = 0.03
    largest: float = 1.5

    def __call__(self, delta, grad, loss, step, total, eps):
        before = None if step == 0 else self.last_loss
        self.update(grad, loss, step)
        if before is not None:
            fell = before - self.last_loss > self.fall * before
            grown = (self.scales * self.grow).clamp(max=self.largest)
            self.scales = torch.where(fell, grown, self.scales)
        return delta - per_image(self.step_sizes(step, total, eps)) * self.velocity.sign()


@dataclass
class AverageLast(SignStep):
    """As SignStep, but the last step lands on the mean of the last two iterates."""

    previous: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        stepped = super().__call__(delta, grad, loss, step, total, eps)
        if step == total - 1 and self.previous is not None:
            stepped = (self.previous + stepped) / 2
        self.previous = stepped
        return stepped


@dataclass
class ClippedMomentum(SignStep):
    """In the last ``tail`` steps (None: every step), the momentum divided by its median
    magnitude and clipped to +-1 rather than its sign: small components take smaller steps."""

    tail: int | None = 5

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        direction = self.velocity.sign()
        if self.tail is None or step >= total - self.tail:
            typical = self.velocity.abs().flatten(1).median(1).values.clamp_min(1e-20)
            direction = (self.velocity / per_image(typical)).clamp(-1, 1)
        return delta - per_image(self.step_sizes(step, total, eps)) * direction


@dataclass
class ConjugateMomentum(SignStep):
    """The momentum's weight per image from nonlinear conjugate gradients (as the Auto
    Conjugate Gradient attack does): Polak-Ribiere (``"pr"``) or Hestenes-Stiefel (``"hs"``),
    clipped to [0, 1]."""

    formula: str = "pr"
    last_gradient: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        gradient = _normalised(grad)
        if step > 0 and self.last_gradient is not None:
            change = gradient - self.last_gradient
            if self.formula == "hs":
                weight = -dot(gradient, change) / dot(self.velocity, change)
            else:
                weight = dot(gradient, change) / dot(self.last_gradient, self.last_gradient)
            self.decay = per_image(torch.nan_to_num(weight, 0.0).clamp(0, 1))
        self.last_gradient = gradient
        return super().__call__(delta, grad, loss, step, total, eps)


@dataclass
class FirstStep(SignStep):
    """As SignStep with the first step at ``first`` eps (None: the schedule's), and no cut
    for a rise after the first step unless ``cut_first``."""

    first: float | None = None
    cut_first: bool = True

    def __call__(self, delta, grad, loss, step, total, eps):
        if step == 1 and not self.cut_first:
            self.last_loss = torch.full_like(self.last_loss, float("inf"))
        stepped = super().__call__(delta, grad, loss, step, total, eps)
        if step == 0 and self.first is not None:
            return delta - (delta - stepped) * (self.first / self.start)
        return stepped


@dataclass
class HoldThenDecay(SignStep):
    """As SignStep, the first ``hold`` steps at the start's size, then the linear decay over
    the rest (``hold`` 0: artcloak's schedule)."""

    hold: int = 4

    def step_sizes(self, step: int, total: int, eps: float) -> torch.Tensor:
        fraction = max(0, step - self.hold) / max(1, total - 1 - self.hold)
        return eps * (self.start + (self.end - self.start) * fraction) * self.scales


@dataclass
class JumpWhenSteady(SignStep):
    """As SignStep, and a pixel whose momentum's sign held for ``steady`` steps jumps to the
    bound on that side."""

    steady: int = 3
    agreeing: torch.Tensor | None = field(default=None, repr=False)
    last_sign: torch.Tensor | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        stepped = super().__call__(delta, grad, loss, step, total, eps)
        sign = self.velocity.sign()
        if self.last_sign is None or step == 0:
            self.agreeing = torch.ones_like(sign)
        else:
            held = sign == self.last_sign
            self.agreeing = torch.where(held, self.agreeing + 1, torch.ones_like(sign))
        self.last_sign = sign
        return torch.where(self.agreeing >= self.steady, -eps * sign, stepped)


@dataclass
class RmsNormalised(SignStep):
    """As SignStep with each gradient divided by its root mean square, not its mean absolute
    value (the momentum then weighs peaky gradients differently)."""

    def __call__(self, delta, grad, loss, step, total, eps):
        rms = grad.flatten(1).norm(dim=1) / grad[0].numel() ** 0.5
        mean_abs = grad.abs().flatten(1).mean(1)
        rescaled = grad * per_image(mean_abs / rms.clamp_min(1e-20))
        return super().__call__(delta, rescaled, loss, step, total, eps)


@dataclass
class GrowingMomentum(SignStep):
    """As SignStep with the momentum's decay moving linearly from ``early`` to ``late``."""

    early: float = 0.3
    late: float = 0.8

    def __call__(self, delta, grad, loss, step, total, eps):
        self.decay = self.early + (self.late - self.early) * step / max(1, total - 1)
        return super().__call__(delta, grad, loss, step, total, eps)


@dataclass
class QuasiNewton(SignStep):
    """SignStep's steps for the first ``sign_steps``, then L-BFGS's direction from the last
    ``memory`` steps and gradient changes, each pixel's move clipped to the schedule's step."""

    sign_steps: int = 8
    memory: int = 5
    moves: list[torch.Tensor] = field(default_factory=list, repr=False)
    changes: list[torch.Tensor] = field(default_factory=list, repr=False)
    last: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, repr=False)

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        if self.last is not None:
            self.moves = [*self.moves, delta - self.last[0]][-self.memory :]
            self.changes = [*self.changes, grad - self.last[1]][-self.memory :]
        self.last = (delta, grad)
        sizes = per_image(self.step_sizes(step, total, eps))
        if step < self.sign_steps or not self.moves:
            return delta - sizes * self.velocity.sign()
        direction = -self.inverse_hessian_times(grad)
        return delta + torch.minimum(direction.abs(), sizes) * direction.sign()

    def inverse_hessian_times(self, grad: torch.Tensor) -> torch.Tensor:
        """L-BFGS's two-loop recursion, per image."""
        pairs = list(zip(self.moves, self.changes, strict=True))
        result, weights = grad, []
        for move, change in reversed(pairs):
            inverse = 1 / dot(change, move).clamp_min(1e-30)
            weight = inverse * dot(move, result)
            weights.append((weight, inverse))
            result = result - per_image(weight) * change
        move, change = pairs[-1]
        result = result * per_image(
            (dot(move, change) / dot(change, change).clamp_min(1e-30)).clamp(min=0)
        )
        for (move, change), (weight, inverse) in zip(pairs, reversed(weights), strict=True):
            result = result + move * per_image(weight - inverse * dot(change, result))
        return result


@dataclass
class StartInMomentum(SignStep):
    """As SignStep, the momentum starting with the start's own direction (toward the target),
    ``weight`` times a normalised gradient, added to the first gradient."""

    weight: float = 0.3

    def __call__(self, delta, grad, loss, step, total, eps):
        if step > 0:
            return super().__call__(delta, grad, loss, step, total, eps)
        self.update(grad, loss, step)
        self.velocity = self.velocity - self.weight * _normalised(delta)
        return delta - per_image(self.step_sizes(step, total, eps)) * self.velocity.sign()


def block_means(velocity: torch.Tensor, block: int) -> torch.Tensor:
    """Each pixel's share of the mean of ``velocity`` over its ``block`` x ``block`` block."""
    coarse = torch.nn.functional.avg_pool2d(velocity, block, ceil_mode=True)
    coarse = coarse.repeat_interleave(block, -2).repeat_interleave(block, -1)
    return coarse[..., : velocity.shape[-2], : velocity.shape[-1]]


@dataclass
class TwoScales(SignStep):
    """As SignStep, each pixel's step ``fine`` times its momentum's sign plus the rest times the
    sign of the momentum's mean over its ``block`` x ``block`` block (the rest split evenly
    over ``blocks`` where given): where the two disagree the step is shorter.
    At 512 px a latent pixel covers four times the pixels it does at 256, whose signs each carry
    less of what the encoder sees."""

    fine: float = 0.5
    block: int = 2
    blocks: tuple[int, ...] = ()

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        return delta - per_image(self.step_sizes(step, total, eps)) * self.direction()

    def direction(self) -> torch.Tensor:
        blocks = self.blocks or (self.block,)
        coarse = sum(block_means(self.velocity, block).sign() for block in blocks) / len(blocks)
        return self.fine * self.velocity.sign() + (1 - self.fine) * coarse


@dataclass
class CoarseToFine(TwoScales):
    """As TwoScales, the share along each pixel's own sign going linearly from ``fine_first``
    at the first step to ``fine_last`` at the last."""

    fine_first: float = 0.7
    fine_last: float = 1.0

    def __call__(self, delta, grad, loss, step, total, eps):
        fraction = step / max(1, total - 1)
        self.fine = self.fine_first + (self.fine_last - self.fine_first) * fraction
        return super().__call__(delta, grad, loss, step, total, eps)


@dataclass
class BlockBiased(SignStep):
    """Full steps along the sign of the momentum plus ``weight`` times its ``block`` x ``block``
    block mean: a pixel's sign flips to its block's where its own momentum is weak."""

    weight: float = 1.0
    block: int = 2

    def __call__(self, delta, grad, loss, step, total, eps):
        self.update(grad, loss, step)
        direction = (self.velocity + self.weight * block_means(self.velocity, self.block)).sign()
        return delta - per_image(self.step_sizes(step, total, eps)) * direction


@dataclass
class BlockRegionCuts(RegionCuts):
    """RegionCuts' cuts per region of latent pixels, with TwoScales' steps."""

    fine: float = 0.85
    block: int = 2
    blocks: tuple[int, ...] = ()
    direction = TwoScales.direction


def detail_finer_than(blur: int) -> Toward:
    """A start toward the target's detail, blurred over ``blur`` px rather than artcloak's."""
    return lambda sources, targets: target_detail(sources, targets, blur)


def detail_and_colours(share: float) -> Toward:
    """A start toward the target's detail and ``share`` of the rest of its difference (its
    colours, blurred over artcloak's 17 px): 0 is artcloak's start, 1 the target's pixels."""

    def toward(sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        detail = target_detail(sources, targets)
        return detail + share * (targets - detail)

    return toward


def detail_pulled(times: float) -> Toward:
    """A start ``times`` as far toward the target's detail as artcloak's (the box clips it)."""

    def toward(sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return sources + times * (target_detail(sources, targets) - sources)

    return toward


@dataclass(frozen=True)
class Trial:
    """A rule tried; it needs nothing but the gradients and losses the loop gives every rule.
    Its start moves toward ``toward``'s pixels (artcloak's: the target's detail)."""

    name: str
    make_rule: Callable[[], StepRule]
    toward: Toward = target_detail

    def rule(self, residual: Callable[[], torch.Tensor]) -> StepRule:
        return self.make_rule()

    def variant(self, tap: LatentTap) -> Variant:
        return Variant(self.name, lambda goal: self.rule(Residual(tap, goal)), self.toward)


@dataclass(frozen=True)
class ResidualTrial(Trial):
    """A rule tried that also reads the latent residual at each step's point."""

    make_rule: Callable[[Callable[[], torch.Tensor]], StepRule]

    def rule(self, residual: Callable[[], torch.Tensor]) -> StepRule:
        return self.make_rule(residual)


BASELINE = "artcloak's rule"
TRIALS = (
    Trial(BASELINE, SignStep),
    Trial("Lion's interpolation (mix 0.5, keep 0.9)", Lion),
    Trial("each pixel's steps halved when its sign flips", ShrinkOnFlip),
    Trial(
        "each pixel's steps x0.7 when its sign flips, steps 0.75 to 0.2 eps",
        lambda: ShrinkOnFlip(shrink=0.7, end=0.2),
    ),
    Trial("an image's steps x1.2 after its loss fell by 3%", GrowOnFall),
    Trial("the last step onto the mean of the last two iterates", AverageLast),
    Trial("clipped momentum, not its sign, in the last 5 steps", ClippedMomentum),
    Trial("clipped momentum, not its sign, in every step", lambda: ClippedMomentum(tail=None)),
    Trial("conjugate-gradient momentum, Polak-Ribiere", ConjugateMomentum),
    Trial("conjugate-gradient momentum, Hestenes-Stiefel", lambda: ConjugateMomentum(formula="hs")),
    Trial("first step 0.25 eps", lambda: FirstStep(first=0.25)),
    Trial("no cut for a rise after the first step", lambda: FirstStep(cut_first=False)),
    Trial("cut to 0.35 on a rise", lambda: SignStep(cut=0.35)),
    Trial("cut to 0.7 on a rise", lambda: SignStep(cut=0.7)),
    Trial("pixels steady for 3 steps jump to the bound", JumpWhenSteady),
    Trial("pixels steady for 5 steps jump to the bound", lambda: JumpWhenSteady(steady=5)),
    Trial("gradients divided by their root mean square", RmsNormalised),
    Trial("momentum decay 0.3 rising to 0.8", GrowingMomentum),
    Trial("L-BFGS directions after 8 sign steps, clipped to the step", QuasiNewton),
    Trial("momentum started with the start's direction, weight 0.3", StartInMomentum),
    ResidualTrial(
        "back to the best multiple of the last step on the latent secant, then the step",
        lambda residual: SecantCorrection(residual=residual),
    ),
    ResidualTrial(
        "an image's steps times the best multiple of its last (0.5-1.5)",
        lambda residual: SecantSizes(residual=residual),
    ),
    ResidualTrial(
        "Anderson mixing of the last 4 points by their latent residuals",
        lambda residual: AndersonMixing(residual=residual),
    ),
    ResidualTrial(
        "cut per region of 8 x 8 latent pixels where its residual rose",
        lambda residual: RegionCuts(residual=residual),
    ),
    Trial("start toward the target's pixels (artcloak's before)", SignStep, target_pixels),
    Trial("start toward the target's detail finer than 9 px", SignStep, detail_finer_than(9)),
    Trial("start toward the target's detail finer than 33 px", SignStep, detail_finer_than(33)),
    Trial("start toward the target's detail finer than 65 px", SignStep, detail_finer_than(65)),
    Trial(
        "start toward the target's detail and half its colours", SignStep, detail_and_colours(0.5)
    ),
    Trial(
        "start toward the target's detail and a quarter of its colours",
        SignStep,
        detail_and_colours(0.25),
    ),
    Trial("start twice as far toward the target's detail", SignStep, detail_pulled(2)),
    Trial("start four times as far toward the target's detail", SignStep, detail_pulled(4)),
    Trial("the first 4 steps at 0.75 eps, then down to 0.05 eps", HoldThenDecay),
    Trial("the first 7 steps at 0.75 eps, then down to 0.05 eps", lambda: HoldThenDecay(hold=7)),
    Trial("steps 1 to 0.05 eps", lambda: SignStep(start=1.0)),
    Trial("steps 0.5 to 0.05 eps", lambda: SignStep(start=0.5)),
    Trial("steps 0.75 to 0.125 eps (the last one 8-bit level)", lambda: SignStep(end=0.125)),
    Trial("steps 0.75 to 0.02 eps", lambda: SignStep(end=0.02)),
    Trial("momentum decay 0.75", lambda: SignStep(decay=0.75)),
    Trial("momentum decay 0.25", lambda: SignStep(decay=0.25)),
    Trial("half of each step along the sign of the 2 x 2 block's momentum", TwoScales),
    Trial(
        "a quarter of each step along the sign of the 2 x 2 block's momentum",
        lambda: TwoScales(fine=0.75),
    ),
    Trial(
        "15% of each step along the sign of the 2 x 2 block's momentum",
        lambda: TwoScales(fine=0.85),
    ),
    Trial(
        "a quarter of each step along the sign of the 4 x 4 block's momentum",
        lambda: TwoScales(fine=0.75, block=4),
    ),
    ResidualTrial(
        "15% along the 2 x 2 block's momentum, cut per region of 8 x 8 latent pixels",
        lambda residual: BlockRegionCuts(residual=residual),
    ),
    Trial(
        "an eighth along the 2 x 2 and an eighth along the 4 x 4 block's momentum",
        lambda: TwoScales(fine=0.75, blocks=(2, 4)),
    ),
    Trial(
        "steps along the sign of the momentum plus its 2 x 2 block mean",
        BlockBiased,
    ),
    Trial(
        "10% of each step along the sign of the 2 x 2 block's momentum",
        lambda: TwoScales(fine=0.9),
    ),
    Trial(
        "15% along the 2 x 2 block's momentum, steps 0.85 to 0.05 eps",
        lambda: TwoScales(fine=0.85, start=0.85),
    ),
    Trial(
        "30% along the 2 x 2 block's momentum at the first step, none at the last",
        CoarseToFine,
    ),
    Trial(
        "15% along the 2 x 2 block's momentum at the first step, none at the last",
        lambda: CoarseToFine(fine_first=0.85),
    ),
)


def markdown(rows: list[Row], args, seconds: float) -> str:
    names = list(rows[0].shares)
    lines = [
        f"# Step rules tried: TAEF2 at {args.size} px, 8/255, {args.passes} passes",
        "",
        bench_command("step_rule_trials.py", sys.argv[1:]),
        f"on {machine()}; {seconds / 60:.1f} min. Each image's closure is a share of its "
        f"ceiling from `{args.ceilings}`; every rule starts toward the target's detail unless "
        "its name says otherwise.",
        "",
        "| rule | median share | min | max | " + " | ".join(f"median, {n}" for n in names) + " |",
        "|---" * (4 + len(names)) + "|",
    ]
    for row in rows:
        shares = row.all_shares()
        cells = [row.variant] + [
            f"{x:.1%}" for x in (statistics.median(shares), min(shares), max(shares))
        ]
        cells += [f"{statistics.median(s):.1%}" for s in row.shares.values()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, default=15)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--paintings-count", type=int, default=4)
    parser.add_argument("--held-out", action="store_true")
    parser.add_argument(
        "--ceilings", type=Path, help="step_rules.py's JSON (default: its report's)"
    )
    parser.add_argument("--only", nargs="+", help="trial names to run (the baseline always runs)")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    suffix = "-held-out" if args.held_out else ""
    args.ceilings = args.ceilings or Path(f"bench/reports/passes{suffix}.json")
    trials = [t for t in TRIALS if not args.only or t.name in args.only or t.name == BASELINE]
    unknown = set(args.only or ()) - {t.name for t in TRIALS}
    if unknown:
        sys.exit(f"step_rule_trials: no trial named {sorted(unknown)}; see TRIALS in this file.")
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"step_rule_trials: {error}")
    started = time.perf_counter()
    sets = case_sets(assets, args.size, args.paintings_count, args.held_out)
    try:
        ceilings = load_ceilings(args.ceilings, sets)
    except ValueError as error:
        sys.exit(f"step_rule_trials: {error}")
    tap = LatentTap(attacked_encoder("taef2", assets))
    rows = []
    for trial in trials:
        rows.append(measure(tap, sets, ceilings, trial.variant(tap), args.passes))
        print(markdown(rows[-1:], args, 0).splitlines()[-1], flush=True)
    report = args.report or Path(f"bench/reports/step-rule-trials{suffix}.md")
    report.write_text(markdown(rows, args, time.perf_counter() - started))


if __name__ == "__main__":
    main()
