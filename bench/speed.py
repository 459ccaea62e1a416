"""Speed and memory of one optimisation step against the floor (issue 4, first part).

Measures, each in its own process (so peak memory is that measurement's alone), with the
full-size SD VAE architecture (random weights: bench/make_full_size_vae.py) in fp32:

- floor: one bare encoder forward+backward with respect to the input image;
- reference step: one step of the reference loop (sign-gradient PGD on the latent mean,
  L2 distance to the target, projection onto the L-inf ball and [0, 1]), and the 500-step
  wall time that implies;
- artcloak step: one step of artcloak's loop (``Engine.protect`` on one image, default
  intensity), timed between its progress events, and the whole protection's peak memory.

Convergence (passes to reach the reference's latent distance) needs a trained encoder:
bench/convergence.py measures it on the efficacy bench's world VAE, and this script turns
it into a full-size wall-time ratio with the step times above. Usage, from the repository
root:

    .venv/bin/python bench/speed.py [--size 256] [--memory-size 512] [--steps 4]

It writes bench/reports/speed.md and speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from world.pgd import sign_pgd  # noqa: E402

VAE_FILE = Path("bench/cache/sd1-vae-random.safetensors")
OUT = Path("bench/out")
REPORTS = Path("bench/reports")  # the committed report
REFERENCE_STEPS = 500
REFERENCE_EPS = 8 / 255
TARGET_SEED = 0  # the reference's target latent: the encoding of noise drawn from this seed


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_encoder():
    from artcloak.engine.encoders import load_encoder as load

    return load(str(VAE_FILE))


def picture(size: int) -> np.ndarray:
    v, u = np.mgrid[0:size, 0:size] / size
    image = np.stack([0.5 + 0.4 * np.sin(7 * u + 3 * v + p) for p in (0, 2, 4)], axis=-1)
    return (image * 255).round().astype(np.uint8)


def measure_floor(size: int, repeats: int) -> dict:
    encoder = load_encoder()
    image = torch.rand(1, 3, size, size, requires_grad=True)
    times = []
    for _ in range(repeats + 1):  # the first pass warms up
        started = time.perf_counter()
        encoder(image).sum().backward()
        times.append(time.perf_counter() - started)
    return {"seconds_per_pass": float(np.median(times[1:])), "peak_rss_mb": peak_rss_mb()}


def measure_reference(size: int, steps: int) -> dict:
    """The reference loop as the issue defines it: fp32 sign-gradient PGD on the latent mean,
    L2 distance to the target, step size decaying over 500 steps (the benches' one sign-PGD,
    ``world.pgd.sign_pgd``). Its first ``steps`` + 1 steps are timed one by one; the first
    warms up."""
    encoder = load_encoder()
    image = torch.from_numpy(picture(size)).permute(2, 0, 1)[None].float() / 255
    target_noise = torch.Generator().manual_seed(TARGET_SEED)
    with torch.no_grad():
        target = encoder(torch.rand(1, 3, size, size, generator=target_noise))

    def distance(x: torch.Tensor) -> torch.Tensor:
        return (encoder(x) - target).flatten(1).norm(dim=1)

    stamps = [time.perf_counter()]
    sign_pgd(distance, image, REFERENCE_EPS, steps + 1, schedule_steps=REFERENCE_STEPS,
             on_step=lambda _: stamps.append(time.perf_counter()))  # fmt: skip
    per_step = float(np.median(np.diff(stamps)[1:]))
    return {
        "seconds_per_step": per_step,
        "implied_500_step_seconds": per_step * REFERENCE_STEPS,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_artcloak(size: int, steps: int) -> dict:
    from artcloak.engine.protect import Engine, ImageJob
    from artcloak.progress import Listener
    from artcloak.settings import ModelSettings, ProtectionSettings

    models = ModelSettings(encoders=(str(VAE_FILE),), device="cpu", lpips_random_backbone=True)
    engine = Engine(models)
    engine.load_models()
    stamps: dict[int, float] = {}

    def on_event(event) -> None:
        if event.stage == "optimise":
            stamps[event.step] = time.perf_counter()

    settings = ProtectionSettings(steps=steps, resolution=size)
    started = time.perf_counter()
    (result,) = engine.protect([ImageJob("bench", picture(size))], settings, Listener(on_event))
    total = time.perf_counter() - started
    # the median step, as for the floor and the reference (step 1 warms up; LPIPS runs on some)
    per_step = float(np.median([stamps[k + 1] - stamps[k] for k in range(1, steps)]))
    return {
        "seconds_per_step": per_step,
        "seconds_total": total,
        "steps": steps,
        "within_budget": result.measured.within_budget,
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_file(side: int, steps: int, working: int = 256) -> dict:
    """Protect a side x side PNG file end to end (read, optimise at ``working``, guarantee,
    write) with the CLI's code path; the time of the whole call."""
    import tempfile

    from artcloak.engine.image_files import protect_files
    from artcloak.engine.protect import Engine
    from artcloak.settings import FileRequest, ModelSettings, ProtectionSettings
    from PIL import Image

    folder = Path(tempfile.mkdtemp(prefix="artcloak-speed-"))
    source = folder / "art.png"
    small = Image.fromarray(picture(512))
    small.resize((side, side), Image.BICUBIC).save(source, compress_level=1)
    models = ModelSettings(encoders=(str(VAE_FILE),), device="cpu", lpips_random_backbone=True)
    engine = Engine(models)
    engine.load_models()
    settings = ProtectionSettings(steps=steps, resolution=working)
    started = time.perf_counter()
    (outcome,) = protect_files(engine, [FileRequest(source, folder / "out.png")], settings)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "ok": outcome.ok, "side": side, "peak_rss_mb": peak_rss_mb()}


def measure_gpu(size: int, steps: int) -> dict:
    """Default intensity and quality on the first CUDA device, after a warm-up run (kernel
    selection and allocator growth are not the artist's per-image cost)."""
    from artcloak.engine.protect import Engine, ImageJob
    from artcloak.settings import ModelSettings, ProtectionSettings

    models = ModelSettings(encoders=(str(VAE_FILE),), device="cuda", lpips_random_backbone=True)
    engine = Engine(models)
    engine.load_models()
    image = ImageJob("bench", picture(size))
    engine.protect([image], ProtectionSettings(steps=2, resolution=size))
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    (result,) = engine.protect([image], ProtectionSettings(resolution=size))
    torch.cuda.synchronize()
    return {
        "seconds": time.perf_counter() - started,
        "encoder_passes": result.encoder_passes,
        "device": torch.cuda.get_device_name(0),
        "peak_gpu_mb": torch.cuda.max_memory_allocated() / 2**20,
    }


# The default loop as it was before the early stop was tightened (issue 18): the same
# schedule, a plateau after 6 flat steps and a 10-step cool-down.
TODAY = {"patience": 6, "cool_down": 10}


@dataclass(frozen=True)
class LoopVariant:
    """A version of the default loop: its label (the key of its figures in speed.json and its
    row in the report) and the fields of this code's default effort it replaces."""

    label: str
    changes: dict[str, float]

    def effort(self):
        from artcloak.settings import QUALITY_EFFORT, Quality

        return replace(QUALITY_EFFORT[Quality.DEFAULT], **self.changes)


TODAYS_LOOP = LoopVariant("today's default loop", TODAY)
THIS_LOOP = LoopVariant("this default loop", {})
# The closure figures: today's loop, this code's, and the levers tried.
CLOSURE_VARIANTS = (
    TODAYS_LOOP,
    THIS_LOOP,
    LoopVariant("16-step schedule", {"steps": 16}),
)
# The laptop figures, by the names speed.json keeps them under.
LAPTOP_VARIANTS = {"today": TODAYS_LOOP, "now": THIS_LOOP}


def measure_laptop(size: int, variant_index: int) -> dict:
    """Default intensity and quality, full-size VAE, size x size, CPU fp32: the protection's
    wall time (models loaded first: their load time is reported apart)."""
    from artcloak.engine.protect import Engine, ImageJob
    from artcloak.settings import ModelSettings, Precision, ProtectionSettings

    variant = tuple(LAPTOP_VARIANTS)[variant_index]
    models = ModelSettings(encoders=(str(VAE_FILE),), device="cpu", precision=Precision.FP32,
                           lpips_random_backbone=True)  # fmt: skip
    engine = Engine(models)
    loading = time.perf_counter()
    engine.load_models()
    loaded = time.perf_counter() - loading
    effort = LAPTOP_VARIANTS[variant].effort()
    ProtectionSettings.effort = lambda self: effort  # this process measures one variant
    started = time.perf_counter()
    (result,) = engine.protect([ImageJob("bench", picture(size))], ProtectionSettings())
    return {"variant": variant, "seconds": time.perf_counter() - started, "load_seconds": loaded,
            "encoder_passes": result.encoder_passes, "peak_rss_mb": peak_rss_mb()}  # fmt: skip


WORLD_SIZE = 128  # world 2's committed VAE at its artworks' own size


def closure_on_world() -> dict:
    """Latent distance closed at default intensity, on the trained world VAE at 128x128 (12
    held-out artworks toward other styles), by each of ``CLOSURE_VARIANTS``."""
    from artcloak.engine.encoders.model import VaeEncoder
    from artcloak.engine.protect import Engine
    from artcloak.settings import ModelSettings, ProtectionSettings
    from world import experiments
    from world.efficacy import cases, cloak

    torch.set_num_threads(1)  # the world's models are small: one thread measured fastest
    world = experiments.build_world(experiments.QUICK)
    encoder = VaeEncoder(world.vae, source="world-vae", family="world",
                         train_resolution=WORLD_SIZE)  # fmt: skip
    models = ModelSettings(device="cpu", lpips_random_backbone=True)
    engine = Engine(models, batch_size=12, encoders=[encoder])
    figures = {}
    original = ProtectionSettings.effort
    try:
        for variant in CLOSURE_VARIANTS:
            effort = variant.effort()
            ProtectionSettings.effort = lambda self, effort=effort: effort
            cloaked = cloak(engine, cases(2), ProtectionSettings(), size=WORLD_SIZE)
            closed = [result.latent[0].distance_closed for result in cloaked.results]
            figures[variant.label] = {
                "distance_closed": float(np.mean(closed)),
                "encoder_passes": cloaked.results[0].encoder_passes,  # half-size ones included
                "seconds": cloaked.seconds,
            }
    finally:
        ProtectionSettings.effort = original
    today = figures[TODAYS_LOOP.label]["distance_closed"]
    for entry in figures.values():
        entry["share_of_today"] = entry["distance_closed"] / today
    return figures


MEASUREMENTS = {
    "gpu": measure_gpu,
    "file": measure_file,
    "floor": measure_floor,
    "reference": measure_reference,
    "artcloak": measure_artcloak,
    "laptop": measure_laptop,
}


def run_isolated(kind: str, size: int, count: int, *extra: str) -> dict:
    """One measurement in a fresh process: its peak memory is its own."""
    command = [
        sys.executable,
        __file__,
        "--measure",
        kind,
        "--size",
        str(size),
        "--steps",
        str(count),
        *extra,
    ]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"{torch.get_num_threads()} torch threads, torch {torch.__version__}")  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="working size for the timings")
    parser.add_argument("--memory-size", type=int, default=512, help="size for peak memory")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per loop")
    parser.add_argument("--small-side", type=int, default=512, help="small artwork for scaling")
    parser.add_argument("--large-side", type=int, default=4096, help="large artwork for scaling")
    parser.add_argument("--file-steps", type=int, default=10, help="steps in the scaling runs")
    parser.add_argument("--laptop-size", type=int, default=512, help="size of the default runs")
    parser.add_argument("--no-convergence", action="store_true", help="Skip bench/convergence.py.")
    parser.add_argument(
        "--full-world",
        action="store_true",
        help="Convergence at the full bench's scale (more images; the same committed VAE).",
    )
    parser.add_argument("--working", type=int, default=256, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    parser.add_argument("--report-only", action="store_true",
                        help="Write speed.md again from the figures in speed.json.")  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.report_only:
        (REPORTS / "speed.md").write_text(table(json.loads((REPORTS / "speed.json").read_text())))
        return
    if args.measure == "file":
        print(json.dumps(measure_file(args.size, args.steps, args.working)))
        return
    if args.measure:
        print(json.dumps(MEASUREMENTS[args.measure](args.size, args.steps)))
        return
    started = time.perf_counter()
    if not VAE_FILE.exists():
        subprocess.run([sys.executable, "bench/make_full_size_vae.py"], check=True)
    figures = measure_all(args)
    figures["full_size_time_to_reach"] = full_size_time_to_reach(figures)
    floor = figures["floor"]["seconds_per_pass"]
    figures["artcloak_step_over_floor"] = figures["artcloak"]["seconds_per_step"] / floor
    figures["reference_step_over_floor"] = figures["reference"]["seconds_per_step"] / floor
    figures["bench_seconds"] = time.perf_counter() - started
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / "speed.json").write_text(json.dumps(figures, indent=2) + "\n")
    (REPORTS / "speed.md").write_text(table(figures))
    print(table(figures))


def measure_all(args: argparse.Namespace) -> dict:
    """Every measurement, each in its own process, and the convergence bench's figures."""
    figures = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine(),
        "size": args.size,
        "floor": run_isolated("floor", args.size, args.steps),
        "reference": run_isolated("reference", args.size, args.steps),
        "artcloak": run_isolated("artcloak", args.size, args.steps),
        "memory_size": args.memory_size,
        "floor_memory": run_isolated("floor", args.memory_size, 1),
        "artcloak_memory": run_isolated("artcloak", args.memory_size, 2),
        "file_small": run_isolated(
            "file", args.small_side, args.file_steps, "--working", str(args.size)
        ),
        "file_large": run_isolated(
            "file", args.large_side, args.file_steps, "--working", str(args.size)
        ),
        "file_steps": args.file_steps,
    }
    if torch.cuda.is_available():
        figures["gpu"] = run_isolated("gpu", args.memory_size, 0)
    figures["laptop_size"] = args.laptop_size
    figures["laptop"] = {
        variant: run_isolated("laptop", args.laptop_size, index)
        for index, variant in enumerate(LAPTOP_VARIANTS)
    }
    figures["closure"] = closure_on_world()
    figures["large_over_small"] = (
        figures["file_large"]["seconds"] / figures["file_small"]["seconds"]
    )
    if not args.no_convergence:
        command = [sys.executable, "bench/convergence.py", "--out", str(OUT / "convergence.json")]
        subprocess.run(command + ([] if args.full_world else ["--quick"]), check=True)
        figures["convergence"] = json.loads((OUT / "convergence.json").read_text())
    return figures


def full_size_time_to_reach(f: dict) -> dict | None:
    """Wall time to the reference's distance with the full-size VAE, from this run's measured
    parts: the reference as 500 measured steps; artcloak as its fixed cost (the whole protect
    minus its timed steps: start latents, target, guarantee, report figures) plus the steps
    convergence needed, each at the measured step time."""
    c = f.get("convergence") or {}
    passes = c.get("passes_to_reach_reference")
    if passes is None:
        return None
    run = f["artcloak"]
    fixed = run["seconds_total"] - run["steps"] * run["seconds_per_step"]
    artcloak = fixed + (passes - 1) * run["seconds_per_step"]
    reference = REFERENCE_STEPS * f["reference"]["seconds_per_step"]
    return {"reference_seconds": reference, "artcloak_seconds": artcloak,
            "artcloak_fixed_seconds": fixed, "ratio": reference / artcloak}  # fmt: skip


@dataclass(frozen=True)
class Row:
    """One line of the report's table."""

    measurement: str
    value: str


def convergence_rows(c: dict | None, full: dict | None = None) -> list[Row]:
    if not c:
        return []
    needed = c["passes_to_reach_reference"]
    reference = c["reference"]
    rows = [
        Row(f"reference loop, 500 steps, on the {c['encoder']}",
            f"latent distance {reference['relative_distance_written']:.4f} of the start, "
            f"{reference['seconds']:.1f} s, LPIPS* {reference['lpips_max']:.4f}, "
            f"L-inf {reference['linf_255_max']:.0f}/255"),
        Row("artcloak encoder passes to reach it",
            "not reached in 200 steps" if needed is None
            else f"{needed} ({c['pass_ratio']:.1f}x fewer; goal <= 50 passes)"),
        Row("wall time to reach it, reference / artcloak, world VAE (measured)",
            "-" if needed is None else f"{c['time_ratio']:.1f}x (goal >= 15x)"),
    ]  # fmt: skip
    if full:
        rows.append(Row(
            "wall time to reach it, reference / artcloak, full-size VAE (implied: measured step "
            "times x passes needed, plus artcloak's measured fixed cost)",
            f"{full['reference_seconds'] / 60:.1f} min / {full['artcloak_seconds'] / 60:.1f} min "
            f"(fixed {full['artcloak_fixed_seconds']:.0f} s) = {full['ratio']:.1f}x (goal >= 15x)",
        ))  # fmt: skip
    for quality, v in c["artcloak_presets"].items():
        if "relative_distance" in v:
            rows.append(Row(
                f"artcloak, {quality} quality ({v['steps']} steps)",
                f"latent distance {v['relative_distance']:.4f}, {v['encoder_passes']} passes, "
                f"{v['seconds']:.1f} s, LPIPS* {v['lpips_max']:.4f}, L-inf {v['linf_255_max']:.0f}/255",
            ))  # fmt: skip
    return rows


def laptop_rows(f: dict) -> list[Row]:
    """Issue 18: the default protection at full size on this CPU, today's loop against this
    one, and the latent distance each closes on a trained encoder."""
    laptop, closure = f.get("laptop"), f.get("closure")
    if not laptop or not closure:
        return []
    n = f["laptop_size"]
    today, now = laptop["today"], laptop["now"]
    kept = closure[THIS_LOOP.label]["share_of_today"]
    met = "met" if now["seconds"] <= 300 and kept >= 0.95 else "not met"
    rows = [
        Row(f"full-size {n}x{n}, default quality, CPU: today's loop (patience 6, cool-down 10)",
            f"{today['seconds'] / 60:.1f} min, {today['encoder_passes']} passes "
            f"(models loaded first: {today['load_seconds']:.0f} s)"),
        Row(f"full-size {n}x{n}, default quality, CPU: {now['seconds'] / 60:.1f} min",
            f"{now['encoder_passes']} passes, {today['seconds'] / now['seconds']:.2f}x faster than "
            f"today's in the same run; peak {now['peak_rss_mb'] / 1024:.2f} GB "
            f"(goal <= 5 min and >= 95% of today's distance closed: {met})"),
    ]  # fmt: skip
    rows += implied_laptop_rows(f, closure)
    for label, entry in closure.items():
        rows.append(Row(
            f"world VAE (trained) at {WORLD_SIZE}x{WORLD_SIZE}, default intensity: {label}",
            f"{entry['distance_closed']:.1%} of the latent distance closed "
            f"({entry['share_of_today']:.1%} of today's), {entry['encoder_passes']} passes, "
            f"{entry['seconds']:.1f} s",
        ))  # fmt: skip
    return rows


def implied_laptop_rows(f: dict, closure: dict) -> list[Row]:
    """The laptop-size time today's loop and this one imply on a trained encoder: the passes
    each took on the world VAE at the step time measured at the laptop size."""
    step = implied_step(f)
    if not step:
        return []
    fixed, per_step = step
    n = f["laptop_size"]
    rows = []
    for variant in (TODAYS_LOOP, THIS_LOOP):
        passes = closure[variant.label]["encoder_passes"]
        rows.append(Row(
            f"full-size {n}x{n}, default quality, CPU, implied for a trained encoder: {variant.label}",
            f"{(fixed + (passes - 1) * per_step) / 60:.1f} min ({passes} passes as on the "
            f"trained world VAE, x {per_step:.1f} s per step at {n}x{n}, plus {fixed:.0f} s "
            "fixed, both measured in this run)",
        ))  # fmt: skip
    return rows


def implied_step(f: dict) -> tuple[float, float] | None:
    """(fixed seconds, seconds per step) of artcloak's protect at the laptop size, from the
    run that measured its memory at that size (2 steps timed), if the sizes agree."""
    run = f.get("artcloak_memory")
    if not run or f.get("memory_size") != f.get("laptop_size"):
        return None
    return run["seconds_total"] - run["steps"] * run["seconds_per_step"], run["seconds_per_step"]


def step_rows(f: dict) -> list[Row]:
    """The step times, peak memory and file scaling against the floor."""
    s, m = f["size"], f["memory_size"]
    floor, reference, artcloak = f["floor"], f["reference"], f["artcloak"]
    small, large = f["file_small"], f["file_large"]
    return [
        Row("bare encoder forward+backward (floor)", f"{floor['seconds_per_pass']:.2f} s/pass"),
        Row("reference loop step",
            f"{reference['seconds_per_step']:.2f} s ({f['reference_step_over_floor']:.2f}x floor)"),
        Row("reference, 500 steps (implied)",
            f"{reference['implied_500_step_seconds'] / 60:.1f} min"),
        Row("artcloak loop step",
            f"{artcloak['seconds_per_step']:.2f} s ({f['artcloak_step_over_floor']:.2f}x floor; goal <= 1.3x)"),
        Row(f"peak memory, bare forward+backward at {m}x{m}",
            f"{f['floor_memory']['peak_rss_mb'] / 1024:.2f} GB"),
        Row(f"peak memory, artcloak protect at {m}x{m}",
            f"{f['artcloak_memory']['peak_rss_mb'] / 1024:.2f} GB (goal <= 3 GB)"),
        Row(f"whole file, {large['side']}x{large['side']} vs {small['side']}x{small['side']} "
            f"({f['file_steps']} steps at {s})",
            f"{large['seconds']:.1f} s vs {small['seconds']:.1f} s: "
            f"{f['large_over_small']:.2f}x (goal <= 1.5x)"),
    ]  # fmt: skip


def gpu_row(f: dict) -> Row:
    m, gpu = f["memory_size"], f.get("gpu")
    return Row(
        f"GPU, full-size VAE, {m}x{m}, default intensity and quality (goal on an H200: <= 2 s)",
        f"{gpu['seconds']:.2f} s on {gpu['device']}, {gpu['encoder_passes']} passes, "
        f"peak {gpu['peak_gpu_mb'] / 1024:.1f} GB" if gpu else "not measured: no GPU was lent to this work (CUDA absent)",
    )  # fmt: skip


def table(f: dict) -> str:
    s = f["size"]
    rows = step_rows(f)
    rows += convergence_rows(f.get("convergence"), f.get("full_size_time_to_reach"))
    rows += laptop_rows(f)
    rows.append(gpu_row(f))
    lines = [
        f"Full-size SD VAE (random weights), fp32, {s}x{s} working size; {f['machine']}.",
        f"Command: `{f['command']}`; the whole bench took {f['bench_seconds'] / 60:.1f} min.",
        "",
        "| measurement | value |",
        "|---|---|",
        *[f"| {row.measurement} | {row.value} |" for row in rows],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
