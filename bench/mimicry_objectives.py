"""What stops mimicry in world 3? Budgets, targets and objectives beside the latent pull.

World 3's mimicry stage (TAEF2 latents at 128 px, a latent flow U-Net pre-trained on six styles
and fine-tuned on one artist's 20 cel artworks under a new label, its samples read by the style
judge), with one training set per protection: the artist's images clean; artcloak's default
(flat 8/255) and plain PGD at its passes; both under a texture-shaped budget at their flat
PSNR (``world3/shaped.py``); both at 16/255; both toward the nearest reachable target style
(``world3/reachable.py``); and each objective of ``world3/objectives.py`` against a surrogate
generator of the protector's own. Writes ``bench/reports/mimicry-objectives.md`` (and
``.json``, and a montage), and the section "What stops mimicry" of
``bench/reports/efficacy.md``; needs ``../shared`` as ``bench/efficacy.py`` does.

    .venv/bin/python bench/mimicry_objectives.py             # 2 generator seeds, ~30 min here
    .venv/bin/python bench/mimicry_objectives.py --quick     # the same path, a few minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from artcloak.engine.encoders import load_encoder  # noqa: E402
from artcloak.settings import Intensity  # noqa: E402
from world.experiments import FLOW_BATCH, mimicry_shares  # noqa: E402
from world.gallery import STYLES  # noqa: E402
from world.generator import FlowRecipe, fit  # noqa: E402
from world.world2 import make_gallery  # noqa: E402
from world3 import objectives, reachable, report_stops, stops  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402
from world3.generator import seeded_unet  # noqa: E402
from world3.mimicry import (  # noqa: E402
    ARTIST_STYLE,
    FINETUNE_LR,
    SIZE,
    TARGET_STYLE,
    MimicryScale,
    artist_cases,
    encode,
    mimic_samples,
)
from world3.montage import mimicry_montage  # noqa: E402
from world3.row_figures import Measures  # noqa: E402
from world3.run import FULL, QUICK  # noqa: E402
from world3.stops import TrainingSet  # noqa: E402
from world3.world import World3, stack, style_judge  # noqa: E402

EPS = 8 / 255
REPORTS = Path("bench/reports")
log = logging.getLogger("world3")


@dataclass
class Gallery:
    """The generators' pre-training data: TAEF2 latents at unit scale, and their labels."""

    latents: torch.Tensor
    labels: torch.Tensor
    norm: float  # the latents' scale before division


def pretraining(world: World3, scale: MimicryScale) -> Gallery:
    gallery = make_gallery(scale.compositions)
    latents = encode(world, gallery.images)
    norm = float(latents.std())
    return Gallery(latents / norm, gallery.labels, norm)


def objective_sets(
    artist: World3, gallery: Gallery, passes: int, flow_steps: int
) -> list[TrainingSet]:
    """The surrogate objectives at 8/255 with ``passes`` TAEF2 passes (one of artcloak's
    measures the start), against a surrogate pre-trained for ``flow_steps``."""
    surrogate_model = seeded_unet(len(STYLES) + 1, gallery.latents.shape[1],
                                  seed=objectives.SURROGATE_SEED)  # fmt: skip
    recipe = FlowRecipe(steps=flow_steps, batch=FLOW_BATCH, seed=objectives.SURROGATE_SEED)
    fit(surrogate_model, gallery.latents, gallery.labels, recipe)
    surrogate = objectives.Surrogate(surrogate_model, gallery.norm, artist.attacked)
    sources, steps = artist.sources, passes - 1
    made = {
        "mimic loss": lambda: objectives.hard_to_learn(surrogate, sources, EPS, steps),
        "mimic loss, fine-tuned surrogate": lambda: objectives.hard_to_learn_fine_tuned(
            surrogate, sources, EPS, steps, FINETUNE_LR
        ),
        "toward the target in the mimic's eyes": lambda: objectives.toward_target_label(
            surrogate, sources, EPS, steps, TARGET_STYLE
        ),
    }
    out = []
    for name, make in made.items():
        started = time.perf_counter()
        images = make()
        seconds = (time.perf_counter() - started) / len(sources)
        out.append(TrainingSet(name, images, "surrogate objective", "flat 8/255", TARGET_STYLE,
                               passes, seconds))  # fmt: skip
    return out


def training_sets(
    artist: World3, gallery: Gallery, scale: MimicryScale, with_objectives: bool
) -> tuple[list[TrainingSet], dict]:
    """Every training set, and how the nearest target and the shaped budgets were chosen."""
    clean = TrainingSet("clean", artist.sources, "none", "-", TARGET_STYLE)
    flat = stops.flat_pair(artist, Intensity.DEFAULT)
    shaped_sets, calibration = stops.texture_pair(artist, flat, Intensity.DEFAULT)
    high = stops.flat_pair(artist, Intensity.HIGH, ", 16/255")
    shaped_high, calibration_high = stops.texture_pair(artist, high, Intensity.HIGH, ", 16/255")
    found = reachable.candidates(artist)
    chosen = reachable.nearest(found)
    sets = [clean, *flat, *shaped_sets, *high, *shaped_high,
            *stops.nearest_pair(artist, chosen)]  # fmt: skip
    if with_objectives:
        sets += objective_sets(artist, gallery, flat[0].passes, scale.flow_steps)
    return sets, {"candidates": [asdict(c) for c in found], "nearest": chosen.style,
                  "calibration": {name: asdict(c) for name, c in (calibration | calibration_high).items()}}  # fmt: skip


def mimic_all(world: World3, scale: MimicryScale, gallery: Gallery, sets: list[TrainingSet]):
    """Per set trained (not those with the same images as another), each generator's samples."""
    trained = {s.name: encode(world, s.images) / gallery.norm for s in sets
               if s.same_images_as is None}  # fmt: skip
    samples = {name: [] for name in trained}
    for seed in range(scale.generators):
        found = mimic_samples(world, scale, gallery.latents, gallery.labels, trained,
                              gallery.norm, seed)  # fmt: skip
        for name, made in found.items():
            samples[name].append(made)
        log.info("generator %d of %d done", seed + 1, scale.generators)
    return samples


def rows(artist: World3, sets: list[TrainingSet], samples: dict, measures: Measures) -> list:
    """One report row per set: mimicry shares, closure, visibility, cost."""
    out = []
    for made in sets:
        judged = [s.labels for s in samples[made.same_images_as or made.name]]
        targets = stack(artist_cases(len(artist.cases), made.target_style), "target")
        out.append(report_stops.Row(
            name=made.name, method=made.method, budget=made.budget,
            target_style=STYLES[made.target_style], same_images_as=made.same_images_as,
            shares=mimicry_shares(judged, ARTIST_STYLE, made.target_style),
            closure=measures.closure(made.images, artist.sources, targets),
            visibility=measures.visibility(made.images, artist.sources),
            passes=made.passes, seconds_per_image=made.seconds_per_image,
        ))  # fmt: skip
    return out


def run(
    scale: MimicryScale, world: World3, measures: Measures, with_objectives: bool, plots: Path
) -> dict:
    """Every set made, mimicked and measured; the montage written into ``plots``."""
    artist = replace(world, cases=artist_cases(scale.images), size=SIZE)
    gallery = pretraining(world, scale)
    sets, choices = training_sets(artist, gallery, scale, with_objectives)
    samples = mimic_all(world, scale, gallery, sets)
    table = rows(artist, sets, samples, measures)
    best = report_stops.best(table)
    shown = {"clean": "clean", "artcloak": "artcloak", best.name: best.name}
    montage = mimicry_montage(
        [(label, by_name(sets, name).images, samples[name][0].images)
         for label, name in shown.items()], plots / "mimicry-stops.png",
    )  # fmt: skip
    return {"scale": asdict(scale), "rows": [asdict(row) for row in table], **choices,
            "montage": montage, "artist_style": STYLES[ARTIST_STYLE],
            "fixed_target_style": STYLES[TARGET_STYLE], "size": SIZE}  # fmt: skip


def by_name(sets: list[TrainingSet], name: str) -> TrainingSet:
    return next(s for s in sets if s.name == name)


def rewrite(out: Path, into_efficacy: bool) -> None:
    """The report at ``out`` from its JSON, as the run that measured it wrote it."""
    figures = json.loads(out.with_suffix(".json").read_text())
    report_stops.write(figures, out, REPORTS / "efficacy.md" if into_efficacy else None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run of the same path")
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--paintings", type=Path)
    parser.add_argument(
        "--out", type=Path, help="report path (default: bench/reports/ or bench/out/)"
    )
    parser.add_argument("--without-objectives", action="store_true",
                        help="leave out the surrogate objectives' rows (about a third of the time)")  # fmt: skip
    parser.add_argument("--report-only", action="store_true",
                        help="rewrite the report (and efficacy.md's section) from its JSON")  # fmt: skip
    args = parser.parse_args()
    if args.report_only:
        rewrite(args.out or REPORTS / "mimicry-objectives.md", args.out is None)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"mimicry_objectives: {error}")
    torch.set_num_threads(2)
    full = not args.quick
    base = FULL if full else QUICK
    attacked = load_encoder(str(assets.weight("taef2/encoder.safetensors")))
    sana = load_encoder(str(assets.weight("taesana/encoder.safetensors")))
    judge = style_judge(base.judge_compositions, base.classifier_steps)
    world = World3(attacked, {"TAESana": sana}, judge, [], SIZE, {}, assets, None)
    out = args.out or (REPORTS / "mimicry-objectives.md" if full
                       else Path("bench/out/mimicry-objectives-quick.md"))  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    figures = run(base.mimicry, world, Measures(attacked, sana), not args.without_objectives,
                  out.parent / "plots")  # fmt: skip
    figures["minutes"] = (time.perf_counter() - started) / 60
    flags = [flag for flag, on in (("--quick", args.quick),
                                   ("--without-objectives", args.without_objectives)) if on]  # fmt: skip
    figures["command"] = " ".join([".venv/bin/python bench/mimicry_objectives.py", *flags])
    figures["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    report_stops.write(figures, out, REPORTS / "efficacy.md" if full and not args.out else None)
    print(out.read_text())


if __name__ == "__main__":
    main()
