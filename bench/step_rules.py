"""How many encoder passes reach the ceiling on a real encoder?

Runs artcloak's own loop (``optimise``: its step rule, start, plateau stop; no perceptual
term) on TAEF2 (or ``--encoder world2``: world 2's from-scratch VAE, at its 128 px) at 8/255
for each pass budget, and reports each image's latent distance closed as a share of its own
ceiling: the best of three long runs of the same loop (``--ceiling-passes`` each, all of them
spent: from the random start, from the start toward the target's pixels and from the start
toward its detail, artcloak's), or of those named by ``--ceiling-starts`` and an earlier run's
ceilings (``--prior-ceilings``, its JSON) for the same artworks. Three sets of
artworks, as the product meets them: world 3's gallery toward the same artwork in another style
(what a generated style target is), paintings toward another painting (an image target), and
paintings toward the built-in ``weave`` texture (the default target without a diffusion model).
Beside artcloak: its step rule from the start toward the target's pixels (the start it had
before), and plain sign-PGD steps from the random start, at the same passes. Needs ``../shared`` (or ``--weights`` and ``--paintings``),
as ``bench/efficacy.py`` does.

    .venv/bin/python bench/step_rules.py               # presets' budgets; writes bench/reports/passes.md
    .venv/bin/python bench/step_rules.py --held-out   # other artworks: bench/reports/passes-held-out.md
    .venv/bin/python bench/step_rules.py --encoder world2   # bench/reports/passes-world2.md
    .venv/bin/python bench/step_rules.py --size 512 --paintings-count 2 --passes 15 \
        --ceiling-starts detail --prior-ceilings bench/reports/passes-512-random-pixels.json \
        --report bench/reports/passes-512.md   # 10 artworks at 512 px, the detail start's ceiling
    .venv/bin/python bench/step_rules.py --passes 10 15 --ceiling-passes 60 --paintings-count 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.encoders import load_encoder  # noqa: E402
from artcloak.engine.optimize import (  # noqa: E402
    Batch,
    SignStep,
    StepRule,
    optimise,
    target_detail,
)
from artcloak.engine.targets.textures import render_texture  # noqa: E402
from artcloak.settings import QUALITY_EFFORT, Budget, Effort, Precision, Quality  # noqa: E402
from machine import machine  # noqa: E402
from typed import bench_command  # noqa: E402
from world.checkpoints import load_vae  # noqa: E402
from world.world2 import VARIANTS as WORLD2_MODELS  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402
from world3.world import PAINTINGS, Case, Probe, gallery_cases, painting_cases, stack  # noqa: E402

EPS = 8 / 255
TEXTURE = "weave"
ENCODERS = {"taef2": ("TAEF2", 256), "world2": ("world 2's VAE", 128)}  # name: label, size


Toward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (sources, targets) -> pixels


def target_pixels(sources: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """What artcloak's start moved toward before the target's detail: its pixels."""
    return targets


@dataclass(frozen=True)
class Variant:
    """A way of running the loop: its step rule and what its start moves toward (None: the
    random start alone)."""

    name: str
    make_rule: Callable[[torch.Tensor], StepRule]  # given the batch's target latents
    toward: Toward | None

    def rule(self, goal: torch.Tensor) -> StepRule:
        return self.make_rule(goal)


def needing_nothing(make: Callable[[], StepRule]) -> Callable[[torch.Tensor], StepRule]:
    """A rule's maker that ignores the batch's target latents."""
    return lambda goal: make()


ARTCLOAK = Variant(
    "artcloak (start toward the target's detail)", needing_nothing(SignStep), target_detail
)
PIXEL_START = Variant(
    "artcloak's step rule, start toward the target's pixels",
    needing_nothing(SignStep),
    target_pixels,
)
FROM_RANDOM = Variant("artcloak's step rule from the random start", needing_nothing(SignStep), None)
PLAIN = Variant(
    "plain sign steps from 0.25 eps, random start",
    needing_nothing(lambda: SignStep(0, 0.25, cut=1.0)),
    None,
)
VARIANTS = (ARTCLOAK, PIXEL_START, PLAIN)  # measured at each budget
# The ceiling: the best of these (``--ceiling-starts`` names them).
CEILING_STARTS = {"random": FROM_RANDOM, "pixels": PIXEL_START, "detail": ARTCLOAK}


@dataclass
class CaseSet:
    """Artworks and what their encoder should see instead, as one batch."""

    name: str
    sources: torch.Tensor  # (N, 3, S, S) in [0, 1]
    targets: torch.Tensor
    names: list[str]


@dataclass
class Row:
    variant: str
    passes: int  # the budget asked for
    passes_spent: int  # what the loop spent (it may stop on a plateau)
    shares: dict[str, list[float]] = field(default_factory=dict)  # per set, per image
    seconds: float = 0.0

    def all_shares(self) -> list[float]:
        return [share for shares in self.shares.values() for share in shares]


def case_sets(assets, size: int, paintings: int, held_out: bool = False) -> list[CaseSet]:
    """The artworks the step rule was chosen on, or (``held_out``) others: each style's second
    gallery composition and the paintings after the first ``paintings``."""
    if held_out:
        gallery = gallery_cases(2, size)[1::2]
        pictures = painting_cases(assets, len(PAINTINGS) - paintings, size, skip=paintings)
    else:
        gallery = gallery_cases(1, size)
        pictures = painting_cases(assets, paintings, size)
    texture = torch.from_numpy(np.asarray(render_texture(TEXTURE, size, size), np.float32))
    toward_texture = texture.permute(2, 0, 1).expand(len(pictures), -1, -1, -1).contiguous()

    def of(cases: list[Case], name: str, targets: torch.Tensor | None = None) -> CaseSet:
        sources = stack(cases, "source")
        chosen = stack(cases, "target") if targets is None else targets
        return CaseSet(name, sources, chosen, [case.name for case in cases])

    return [
        of(gallery, "gallery -> the same artwork in another style"),
        of(pictures, "painting -> another painting"),
        of(pictures, f"painting -> the {TEXTURE} texture", toward_texture),
    ]


def batch_of(cases: CaseSet, goal: torch.Tensor, toward: Toward | None) -> Batch:
    """The loop's batch for a set: whole images, each its own target latents ``goal``, the
    random start moved toward what ``toward`` makes of the sources and targets (None: not)."""
    count, height, width = len(cases.sources), *cases.sources.shape[-2:]
    return Batch(
        base=cases.sources,
        targets=[goal],
        free=torch.ones_like(cases.sources[:, :1]),
        grey=torch.zeros(count, dtype=torch.bool),
        rows=torch.eye(height).expand(count, 1, -1, -1),
        cols=torch.eye(width).expand(count, 1, -1, -1),
        seeds=[0] * count,
        toward=None if toward is None else toward(cases.sources, cases.targets),
    )


def closed(
    encoder,
    cases: CaseSet,
    variant: Variant,
    passes: int,
    ceiling: bool = False,
    precision: Precision = Precision.FP32,
) -> tuple[torch.Tensor, int]:
    """(N,) share of each image's latent distance closed by ``passes`` passes, as 8-bit images,
    and the passes the loop spent (a ``ceiling`` run spends them all: no stop on a plateau).
    The passes are fp32 unless ``precision`` says otherwise (where ``auto`` would pick bf16,
    ``bench/precision.py`` measures the difference)."""
    with torch.no_grad():
        goal = encoder(cases.targets)
    batch = batch_of(cases, goal, variant.toward)
    effort = Effort(steps=passes, patience=None) if ceiling else Effort(steps=passes)
    budget = Budget(lpips=1.0, eps=EPS)
    outcome = optimise(batch, [encoder], None, budget, effort, precision, variant.rule(goal))
    return closed_as_written(encoder, cases, outcome.delta), outcome.encoder_passes


def closed_as_written(encoder, cases: CaseSet, delta: torch.Tensor) -> torch.Tensor:
    """(N,) each image's latent distance closed by ``delta``, the images written as 8 bits."""
    written = ((cases.sources + delta).clamp(0, 1) * 255).round() / 255
    return Probe(encoder, cases.sources, cases.targets).closed(written)


def attacked_encoder(name: str, assets) -> Callable[[torch.Tensor], torch.Tensor]:
    """TAEF2 through artcloak's loader, or world 2's committed VAE (its latent mean)."""
    if name == "taef2":
        return load_encoder(str(assets.weight("taef2/encoder.safetensors")))
    vae, _ = load_vae("vae2", WORLD2_MODELS["vae2"])
    return vae.latent_mean


def ceilings(
    encoder, sets: list[CaseSet], passes: int, starts: list[Variant], prior: dict | None = None
) -> dict[str, torch.Tensor]:
    """Per set, each image's best closure over the long runs from ``starts`` and its ``prior``
    ceiling (an earlier run's, or None)."""
    out = {}
    for cases in sets:
        runs = [closed(encoder, cases, variant, passes, ceiling=True)[0] for variant in starts]
        if prior is not None:
            runs.append(prior[cases.name])
        out[cases.name] = torch.stack(runs).amax(0)
        print(f"ceiling {cases.name}: {[round(float(x), 3) for x in out[cases.name]]}", flush=True)
    return out


def load_ceilings(path: Path, sets: list[CaseSet]) -> dict[str, torch.Tensor]:
    """Each set's ceilings from a step_rules.py JSON; ValueError unless it holds one per
    artwork of each set."""
    if not path.is_file():
        raise ValueError(f"{path} is missing; run bench/step_rules.py first.")
    ceilings = json.loads(path.read_text())["ceiling"]
    for cases in sets:
        count = len(ceilings.get(cases.name, []))
        if count != len(cases.names):
            raise ValueError(
                f"{path} has {count} ceilings for '{cases.name}', not {len(cases.names)}: give "
                "the --size and --paintings-count its run used."
            )
    return {cases.name: torch.tensor(ceilings[cases.name]) for cases in sets}


def measure(encoder, sets, ceiling, variant: Variant, passes: int) -> Row:
    row = Row(variant.name, passes, 0)
    started = time.perf_counter()
    for cases in sets:
        shares, spent = closed(encoder, cases, variant, passes)
        row.shares[cases.name] = (shares / ceiling[cases.name]).tolist()
        row.passes_spent = max(row.passes_spent, spent)
    row.seconds = time.perf_counter() - started
    return row


def markdown(rows: list[Row], ceiling: dict[str, torch.Tensor], args, seconds: float) -> str:
    images = sum(len(c) for c in ceiling.values())
    lines = [
        f"# Passes to the ceiling: {ENCODERS[args.encoder][0]}",
        "",
        bench_command("step_rules.py", sys.argv[1:]),
        f"on {machine()}; {ENCODERS[args.encoder][0]} at {args.size} px, 8/255, {images} artworks"
        f"{' held out from choosing the step rule' if args.held_out else ''}; {seconds / 60:.1f} min.",
        "",
        f"Each image's closure is a share of its own ceiling: {ceiling_sources(args)}. "
        "Mean ceiling closure per set: "
        + "; ".join(f"{name} {float(c.mean()):.1%}" for name, c in ceiling.items())
        + ".",
        "",
        "| loop | passes | spent | median share | min | max | "
        + " | ".join(f"median, {name}" for name in ceiling)
        + " |",
        "|---" * (6 + len(ceiling)) + "|",
    ]
    for row in rows:
        shares = row.all_shares()
        per_set = [f"{statistics.median(s):.1%}" for s in row.shares.values()]
        cells = [row.variant, str(row.passes), str(row.passes_spent),
                 f"{statistics.median(shares):.1%}", f"{min(shares):.1%}", f"{max(shares):.1%}"]  # fmt: skip
        lines.append("| " + " | ".join(cells + per_set) + " |")
    return "\n".join(lines) + "\n"


START_WORDS = {"random": "from the random start", "pixels": "toward the target's pixels",
               "detail": "toward its detail"}  # fmt: skip


def ceiling_sources(args) -> str:
    """What each image's ceiling is the best of, in words."""
    count, passes = len(args.ceiling_starts), args.ceiling_passes
    runs = f"{count} runs of {passes} passes each" if count > 1 else f"a run of {passes} passes"
    starts = ", ".join(START_WORDS[name] for name in args.ceiling_starts)
    words = f"the best of {runs} ({starts}; no stop on a plateau)"
    if args.prior_ceilings:
        words += f" and the ceilings of an earlier run, `{args.prior_ceilings}`"
    return words


def default_report(args) -> Path:
    """bench/reports/passes[-world2][-held-out].md"""
    world2 = "-world2" if args.encoder == "world2" else ""
    return Path(f"bench/reports/passes{world2}{'-held-out' if args.held_out else ''}.md")


def main() -> None:
    presets = [QUALITY_EFFORT[q].steps for q in Quality]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passes", type=int, nargs="*", default=sorted(set(presets)))
    parser.add_argument("--ceiling-passes", type=int, default=100)
    parser.add_argument(
        "--ceiling-starts",
        nargs="+",
        choices=list(CEILING_STARTS),
        default=list(CEILING_STARTS),
        help="the starts of the ceiling's long runs (default: all three)",
    )
    parser.add_argument(
        "--prior-ceilings",
        type=Path,
        help="an earlier run's JSON on the same artworks, size and ceiling passes: each image's "
        "ceiling is at least that run's (whose long runs are not made again)",
    )
    parser.add_argument("--paintings-count", type=int, default=4)
    parser.add_argument("--encoder", choices=sorted(ENCODERS), default="taef2")
    parser.add_argument("--size", type=int, help="working size (default: the encoder's)")
    parser.add_argument(
        "--held-out",
        action="store_true",
        help="Other artworks than the step rule was chosen on: the other paintings and each "
        "style's second gallery composition (default report: bench/reports/passes-held-out.md).",
    )
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument("--report", type=Path)
    args = parser.parse_args()
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"step_rules: {error}")
    started = time.perf_counter()
    args.size = args.size or ENCODERS[args.encoder][1]
    encoder = attacked_encoder(args.encoder, assets)
    sets = case_sets(assets, args.size, args.paintings_count, args.held_out)
    report = args.report or default_report(args)
    try:
        prior = load_ceilings(args.prior_ceilings, sets) if args.prior_ceilings else None
    except ValueError as error:
        sys.exit(f"step_rules: {error}")
    starts = [CEILING_STARTS[name] for name in args.ceiling_starts]
    ceiling = ceilings(encoder, sets, args.ceiling_passes, starts, prior)
    rows = []
    for passes in args.passes:
        for variant in VARIANTS:
            rows.append(measure(encoder, sets, ceiling, variant, passes))
            print(markdown(rows[-1:], ceiling, args, 0).splitlines()[-1], flush=True)
    report.write_text(markdown(rows, ceiling, args, time.perf_counter() - started))
    payload = {"rows": [asdict(row) for row in rows],
               "ceiling": {name: c.tolist() for name, c in ceiling.items()},
               "ceiling_starts": args.ceiling_starts,
               "prior_ceilings": str(args.prior_ceilings) if args.prior_ceilings else None}  # fmt: skip
    report.with_suffix(".json").write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    main()
