"""Efficacy bench (issues 3, 17, 28): does artcloak protect, what survives, at what visibility?

World 3 (the default, ``bench/world3/``) measures on real pretrained encoders: TAEF2 (distilled
from the FLUX.2 VAE) is attacked through artcloak's own engine; world 2's procedural gallery and
public-domain paintings are the artworks; TAESana and world 2's VAE judge transfer. The weights
and paintings come from ``../shared/`` (or ``--weights``/``--paintings``), SHA-256 checked.
World 2 (``--world 2``, ``bench/world/``) is the from-scratch comparison: a KL-VAE of Stable
Diffusion's shape trained here and committed, with mimicry and poisoning generators. Both
protect with artcloak's engine beside plain sign-PGD at equal passes, measure the white-box
ceiling at each budget, and write a markdown report.

Usage, from the repository root:

    .venv/bin/python bench/efficacy.py            # world 3, the full bench
    .venv/bin/python bench/efficacy.py --quick    # same path, fewer images and steps
    .venv/bin/python bench/efficacy.py --world 2  # the from-scratch world
    .venv/bin/python bench/efficacy.py --world 2 --retrain  # retrain its VAE first (about an hour)
    .venv/bin/python bench/efficacy.py --only survival --update  # rerun one stage into the report

The judge is cached in bench/cache/world/ (keyed by its recipe). The full bench writes
bench/reports/efficacy.md (world 2: efficacy-world2.md), committed; --quick writes
bench/out/efficacy-quick.md (world 2: efficacy-world2-quick.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine as describe_machine  # noqa: E402
from world import experiments  # noqa: E402
from world.checkpoints import CheckpointError  # noqa: E402
from world.report import write_report  # noqa: E402
from world.stages import STAGE_NAMES, STAGES, Stage, stages_named  # noqa: E402
from world3 import run as world3  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402
from world3.report import write_report as write_world3_report  # noqa: E402


def earlier_figures(out: Path, scale: str, command: str) -> dict:
    """The figures of the run that ``--update`` adds to (a run of the same scale, by
    ``command`` if its figures do not name theirs)."""
    path = out.with_suffix(".json")
    if not path.exists():
        sys.exit(
            f"efficacy: --update needs an earlier run's {path}; run the bench without it first"
        )
    figures = json.loads(path.read_text())
    if figures.get("scale") != scale:
        sys.exit(f"efficacy: {path} is from the {figures.get('scale')} bench, not the {scale} one")
    figures.setdefault("command", command)
    return figures


def record_rerun(
    figures: dict, stages: list[str], command: str, seconds: float, machine: str
) -> None:
    """Name the run ``stages`` now come from; earlier reruns of them no longer apply."""
    earlier = [run | {"stages": [s for s in run["stages"] if s not in stages]}
               for run in figures.get("reruns", [])]  # fmt: skip
    figures["reruns"] = [run for run in earlier if run["stages"]] + [{
        "stages": stages, "command": command, "date": time.strftime("%Y-%m-%d"),
        "seconds": seconds, "machine": machine}]  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="Fewer images and steps (CI).")
    parser.add_argument("--world", type=int, choices=(2, 3), default=3,
                        help="3: real pretrained encoders (default); 2: the VAE trained here.")  # fmt: skip
    parser.add_argument("--only", nargs="*", choices=sorted({*STAGE_NAMES, *world3.STAGE_NAMES}),
                        help="Run only these stages.")  # fmt: skip
    parser.add_argument("--weights", type=Path,
                        help="World 3: folder with taef2/ and taesana/ (default ../shared/models).")  # fmt: skip
    parser.add_argument("--paintings", type=Path,
                        help="World 3: folder with the paintings (default ../shared/paintings).")  # fmt: skip
    parser.add_argument("--out", type=Path, help="Report path.")
    parser.add_argument("--update", action="store_true",
                        help="With --only: rerun those stages into the existing report; the others "
                        "keep their figures and the report names the run each came from.")  # fmt: skip
    parser.add_argument(
        "--report-only", action="store_true", help="Rewrite the report from its JSON."
    )
    parser.add_argument("--retrain", action="store_true",
                        help="Retrain world 2's VAE (about an hour here) and commit it first.")  # fmt: skip
    parser.add_argument("--mimicry-generators", type=int, metavar="N",
                        help="Average the mimicry stage over N generator seeds (full bench: "
                        f"{experiments.FULL.mimicry_generators}; each adds about 4 min here).")  # fmt: skip
    parser.add_argument("--threads", type=int, default=2,
                        help="Torch threads (world 2's VAE: 2 threads measured 2x faster than 1 on "
                        "this 2-core CPU).")  # fmt: skip
    args = parser.parse_args()
    if args.mimicry_generators is not None and args.mimicry_generators < 1:
        parser.error("--mimicry-generators takes a whole number of generators, 1 or more")
    unknown = set(args.only or ()) - set(STAGE_NAMES)
    if args.world == 2 and unknown:
        parser.error(f"world 2 has no stage {', '.join(sorted(unknown))}")
    return args


def main() -> None:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    if args.world == 3:
        main_world3(args)
    else:
        main_world2(args)


def world2_run(args: argparse.Namespace) -> tuple[experiments.Scale, Path, str]:
    """World 2's scale, report path and command (as the report names it) for ``args``."""
    scale = experiments.QUICK if args.quick else experiments.FULL
    out = args.out or (
        Path("bench/out/efficacy-world2-quick.md")
        if args.quick
        else Path("bench/reports/efficacy-world2.md")
    )
    command = "python bench/efficacy.py --world 2" + (" --quick" if args.quick else "")
    if args.mimicry_generators is not None:
        scale = dataclasses.replace(scale, mimicry_generators=args.mimicry_generators)
        command += f" --mimicry-generators {args.mimicry_generators}"
    return scale, out, command


def main_world2(args: argparse.Namespace) -> None:
    """World 2: the stages named (all by default) into the report, or with --update into the
    report of an earlier run of the same scale."""
    stages = stages_named(args.only)
    scale, out, command = world2_run(args)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.report_only:  # rewrite the report from a run's figures
        figures = json.loads(out.with_suffix(".json").read_text())
        write_report(figures, out, figures.get("command", command), figures.get("seconds", 0.0),
                     STAGES)  # fmt: skip
        return
    if args.update and not args.only:
        sys.exit("efficacy: --update reruns the stages named by --only")
    earlier = earlier_figures(out, scale.name, command) if args.update else None
    started = time.perf_counter()
    if args.retrain:
        from world.train import train_and_commit

        train_and_commit("vae2", threads=max(args.threads, 2))
        torch.set_num_threads(args.threads)
    try:
        world = experiments.build_world(scale)
    except CheckpointError as error:
        sys.exit(f"efficacy: {error}")
    machine = describe_machine()
    if earlier is not None:
        figures = earlier
        command += " --only " + " ".join(args.only) + " --update"
    else:
        figures = {"scale": scale.name, "machine": machine, "world": world.figures}
    run_stages(stages, world, scale, figures, out.with_suffix(".json"))
    seconds = time.perf_counter() - started
    if args.update:
        record_rerun(figures, args.only, command, seconds, machine)
    else:
        figures |= {"command": command, "seconds": seconds}
    write_report(figures, out, figures["command"], figures["seconds"], STAGES)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"wrote {out} in {seconds / 60:.1f} min")


def run_stages(
    stages: tuple[Stage, ...],
    world: experiments.World,
    scale: experiments.Scale,
    figures: dict,
    json_path: Path,
) -> None:
    """Each stage's figures into ``figures`` under its name, with its seconds; the figures so
    far written to ``json_path`` after every stage, so a failure later loses nothing measured."""
    for stage in stages:
        stage_started = time.perf_counter()
        figures[stage.name] = stage.run(world, scale)
        figures.setdefault("stage_seconds", {})[stage.name] = time.perf_counter() - stage_started
        json_path.write_text(json.dumps(figures, indent=2, default=str) + "\n")


def main_world3(args: argparse.Namespace) -> None:
    """World 3: the stages named (all by default) into the report, or with --update into the
    report of an earlier run of the same scale."""
    unknown = set(args.only or ()) - set(world3.STAGE_NAMES)
    if unknown:
        sys.exit(f"efficacy: world 3 has no stage {', '.join(sorted(unknown))}")
    if args.retrain or args.mimicry_generators is not None:
        sys.exit("efficacy: --retrain and --mimicry-generators are world 2's; add --world 2")
    try:
        assets = locate(args.weights, args.paintings)
    except MissingAssets as error:
        sys.exit(f"efficacy: {error}")
    scale = world3.QUICK if args.quick else world3.FULL
    out = args.out or Path(
        "bench/out/efficacy-quick.md" if args.quick else "bench/reports/efficacy.md"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    command = "python bench/efficacy.py" + (" --quick" if args.quick else "")
    if args.report_only:
        write_world3_report(json.loads(out.with_suffix(".json").read_text()), out)
        return
    if args.update and not args.only:
        sys.exit("efficacy: --update reruns the stages named by --only")
    machine = describe_machine()
    figures = earlier_figures(out, scale.name, command) if args.update else {
        "scale": scale.name, "machine": machine}  # fmt: skip
    started = time.perf_counter()
    world3.run(scale, assets, tuple(args.only or ()), out.with_suffix(".json"), figures)
    seconds = time.perf_counter() - started
    if args.update:
        record_rerun(figures, args.only, command + " --only " + " ".join(args.only) + " --update",
                     seconds, machine)  # fmt: skip
    else:
        figures |= {"command": command, "seconds": seconds}
    write_world3_report(figures, out)
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"wrote {out} in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
