"""Speed and memory of artcloak on a full-size encoder, against issues 4 and 29's goals.

Measures, each in its own process (so peak memory is that measurement's alone), with the
full-size SD VAE architecture (random weights: bench/make_full_size_vae.py) in fp32:

- floor: one bare encoder forward+backward with respect to the input image;
- reference step: one step of the reference loop (sign-gradient PGD on the latent mean,
  L2 distance to the target, projection onto the L-inf ball and [0, 1]), and the 500-step
  wall time that implies;
- artcloak step: one step of artcloak's loop (``Engine.protect`` on one image, default
  intensity), timed between its progress events, and the whole protection's peak memory;
- end to end: ``artcloak cloak`` on a 512x512 PNG at the default and faster presets (read,
  models loaded, protect, guarantee, write), its passes, seconds per pass and peak memory;
- a cheaper pass: the encoder's forward+backward in the default and channels-last layouts,
  paired.

The passes each preset makes on a real encoder, and the share of the ceiling they reach, are
bench/step_rules.py's (its report is quoted, not re-measured). Convergence against the reference
on the efficacy bench's world VAE is bench/convergence.py's. Usage, from the repository root:

    .venv/bin/python bench/speed.py [--size 256] [--memory-size 512] [--steps 4]

It writes bench/reports/speed.md and speed.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from artcloak.report import report_path
from artcloak.settings import QUALITY_EFFORT, Quality
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))

from machine import machine  # noqa: E402
from make_full_size_vae import random_vae_path, write_random_vae  # noqa: E402
from world.pgd import sign_pgd  # noqa: E402

VAE_FILE = random_vae_path("sd1")
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
    from artcloak.settings import ModelSettings, Precision, ProtectionSettings

    # fp32, the floor's and the reference's arithmetic: this row is the loop's own cost (where
    # ``auto`` picks bf16, the end-to-end rows show it).
    models = ModelSettings(encoders=(str(VAE_FILE),), device="cpu", precision=Precision.FP32,
                           lpips_random_backbone=True)  # fmt: skip
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
    from artcloak.engine import Engine, Run, protect_files
    from artcloak.settings import FileRequest, ModelSettings, ProtectionSettings

    folder = Path(tempfile.mkdtemp(prefix="artcloak-speed-"))
    source = folder / "art.png"
    small = Image.fromarray(picture(512))
    small.resize((side, side), Image.BICUBIC).save(source, compress_level=1)
    models = ModelSettings(encoders=(str(VAE_FILE),), device="cpu", lpips_random_backbone=True)
    engine = Engine(models)
    engine.load_models()
    settings = ProtectionSettings(steps=steps, resolution=working)
    started = time.perf_counter()
    (outcome,) = protect_files(engine, [FileRequest(source, folder / "out.png")], Run(settings))
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "ok": outcome.ok,
        "side": side,
        "precision": engine.precision_used(),  # auto's choice on this machine
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_gpu(size: int, steps: int) -> dict:
    """bench/gpu.py's figures on the first CUDA device: one image at the default intensity and
    quality, and images per second in batches of 8."""
    from gpu import BATCH_SIZE, IMAGES, measure

    figures = measure(str(VAE_FILE), "cuda", size, IMAGES, BATCH_SIZE)
    return {
        "seconds": figures.one_image.seconds,
        "encoder_passes": figures.one_image.encoder_passes,
        "device": figures.device,
        "peak_gpu_mb": figures.one_image.peak_memory_gb * 1024,
        "images_per_second": figures.batched.images_per_second,
    }


# The presets timed end to end: the default, and the fewest passes a preset makes.
END_TO_END_QUALITIES = ("default", "faster")


def measure_end_to_end(size: int, quality_index: int) -> dict:
    """``artcloak cloak`` on a size x size PNG with the full-size VAE on the CPU, as an artist
    runs it (read, models loaded, protect, guarantee, write): the command's wall time, the
    passes its report counts, the seconds per pass between its progress events, the estimate
    it showed before step 1 against the loop's time, and the command's peak memory."""
    quality = END_TO_END_QUALITIES[quality_index]
    with tempfile.TemporaryDirectory(prefix="artcloak-speed-") as folder:
        source, output = Path(folder) / "art.png", Path(folder) / "art-cloaked.png"
        Image.fromarray(picture(size)).save(source)
        command = [sys.executable, "-m", "artcloak", "cloak", str(source), "-o", str(output),
                   "--encoder", str(VAE_FILE.resolve()), "--no-diffusion", "--device", "cpu",
                   "--lpips-random-backbone", "--quality", quality, "--json"]  # fmt: skip
        started = time.perf_counter()
        steps = optimise_events(command)
        seconds = time.perf_counter() - started
        report = json.loads(report_path(output).read_text())
    passes = report["encoder_passes"]
    preset = QUALITY_EFFORT[Quality(quality)].steps
    # Step 0's event comes after the first pass and the last step's after the last pass.
    loop_seconds = steps[-1].at - steps[0].at
    return {
        "quality": quality,
        "seconds": seconds,
        "encoder_passes": passes,
        "preset_passes": preset,
        "seconds_per_pass": loop_seconds / (passes - 1),
        "estimate_seconds": steps[0].seconds_left,
        "loop_seconds": loop_seconds,
        "within_budget": report["measured"]["within_budget"],
        "precision": report["models"]["precision"],  # auto's choice on this machine
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


@dataclass(frozen=True)
class StepEvent:
    at: float  # perf_counter when it arrived
    seconds_left: float | None


def optimise_events(command: list[str]) -> list[StepEvent]:
    """Run a ``--json`` command to its end; its optimisation progress events, as they came."""
    events = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        for line in process.stdout:
            event = json.loads(line)
            if event.get("stage") == "optimise":
                events.append(StepEvent(time.perf_counter(), event.get("seconds_left")))
    if process.returncode:
        raise SystemExit(f"speed: {' '.join(command)} failed ({process.returncode})")
    return events


LAYOUTS = {"default": torch.contiguous_format, "channels-last": torch.channels_last}


def measure_layouts(size: int, repeats: int) -> dict:
    """A cheaper pass? The full-size encoder's forward+backward at size x size in each memory
    layout, paired: the layouts alternate round by round (the first round warms up), and each
    keeps its median."""
    encoder = load_encoder()
    image = torch.rand(1, 3, size, size)
    times: dict[str, list[float]] = {name: [] for name in LAYOUTS}
    for round_index in range(repeats + 1):
        for name, layout in LAYOUTS.items():
            encoder.to(memory_format=layout)
            pixels = image.contiguous(memory_format=layout).requires_grad_(True)
            started = time.perf_counter()
            torch.autograd.grad(encoder(pixels).square().sum(), pixels)
            if round_index:
                times[name].append(time.perf_counter() - started)
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


MEASUREMENTS = {
    "gpu": measure_gpu,
    "file": measure_file,
    "floor": measure_floor,
    "reference": measure_reference,
    "artcloak": measure_artcloak,
    "end_to_end": measure_end_to_end,
    "layouts": measure_layouts,
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


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256, help="working size for the timings")
    parser.add_argument("--memory-size", type=int, default=512, help="size for peak memory")
    parser.add_argument("--steps", type=int, default=6, help="steps timed per loop")
    parser.add_argument("--small-side", type=int, default=512, help="small artwork for scaling")
    parser.add_argument("--large-side", type=int, default=4096, help="large artwork for scaling")
    parser.add_argument("--file-steps", type=int, default=10, help="steps in the scaling runs")
    parser.add_argument("--laptop-size", type=int, default=512, help="size of the default runs")
    parser.add_argument("--layout-repeats", type=int, default=3, help="paired rounds per layout")
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
    write_random_vae("sd1", VAE_FILE)
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
    figures["end_to_end"] = [
        run_isolated("end_to_end", args.laptop_size, index)
        for index in range(len(END_TO_END_QUALITIES))
    ]
    figures["layouts"] = run_isolated("layouts", args.laptop_size, args.layout_repeats)
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


def end_to_end_rows(f: dict) -> list[Row]:
    """Issue 29's goals: the full-size default protection end to end on this CPU, its passes
    and seconds per pass, and its peak memory; the faster preset beside it."""
    n = f["laptop_size"]
    rows = []
    for run in f.get("end_to_end", []):
        goals = ""
        # Random weights may plateau before the preset's passes; a real encoder ran them all
        # (bench/reports/passes.md): the time at the preset's passes is implied from this run.
        implied = (
            run["seconds"]
            + (run["preset_passes"] - run["encoder_passes"]) * run["seconds_per_pass"]
        )
        if run["quality"] == "default":
            met = implied <= 300 and run["peak_rss_mb"] <= 3 * 1024
            goals = f" (goal <= 5 min and <= 3 GB: {'met' if met else 'not met'})"
        rows.append(Row(
            f"full-size {n}x{n}, {run['quality']} quality, CPU, end to end (`artcloak cloak`: "
            "read, models loaded, protect, guarantee, write)",
            f"{run['seconds'] / 60:.1f} min: {run['encoder_passes']} passes "
            f"({run.get('precision', 'fp32')}) at {run['seconds_per_pass']:.1f} s each; "
            f"peak {run['peak_rss_mb'] / 1024:.2f} GB; at the preset's {run['preset_passes']} "
            f"passes: {implied / 60:.1f} min{goals}",
        ))  # fmt: skip
        # The estimate is for the preset's passes: compare it pass for pass.
        estimated = run["estimate_seconds"] / (run["preset_passes"] - 1)
        rows.append(Row(
            "  its estimate before step 1 against the loop's measured passes (goal within 25%)",
            f"{estimated:.1f} s a pass against {run['seconds_per_pass']:.1f} s: "
            f"{estimated / run['seconds_per_pass']:.2f}x",
        ))  # fmt: skip
    layouts = f.get("layouts")
    if layouts:
        default, last = layouts["default"], layouts["channels-last"]
        rows.append(Row(
            f"full-size encoder forward+backward at {n}x{n}, default layout against channels-last "
            "(paired, median)",
            f"{default:.1f} s against {last:.1f} s: channels-last {default / last:.2f}x as fast",
        ))  # fmt: skip
    return rows + passes_rows()


# Each encoder's report from bench/step_rules.py (TAEF2 at 256 px: 33 min; not repeated here).
PASSES_REPORTS = {
    "TAEF2 at 256 px": REPORTS / "passes.json",
    "TAEF2 at 512 px": REPORTS / "passes-512.json",
    "world 2's VAE at 128 px": REPORTS / "passes-world2.json",
}


def passes_rows() -> list[Row]:
    """The passes each preset makes and the share of the ceiling they reach, from
    ``bench/step_rules.py``'s own runs: this bench says where."""
    out = []
    for encoder, report in PASSES_REPORTS.items():
        if not report.exists():
            continue
        rows = json.loads(report.read_text())["rows"]
        cells = []
        for row in rows:
            if row["variant"].startswith("artcloak ("):
                shares = [share for per_set in row["shares"].values() for share in per_set]
                spent = (
                    ""
                    if row["passes_spent"] == row["passes"]
                    else f" ({row['passes_spent']} spent)"
                )
                cells.append(f"{row['passes']} passes{spent}: {np.median(shares):.1%} "
                             f"(worst {min(shares):.1%})")  # fmt: skip
        label = (f"{encoder}, 8/255, median image's share of its ceiling (from "
                 f"bench/step_rules.py's run: {report.with_suffix('.md')})")  # fmt: skip
        out.append(Row(label, "; ".join(cells)))
    return out


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
        Row("artcloak loop step (fp32, as the floor)",
            f"{artcloak['seconds_per_step']:.2f} s ({f['artcloak_step_over_floor']:.2f}x floor; goal <= 1.3x)"),
        Row(f"peak memory, bare forward+backward at {m}x{m}",
            f"{f['floor_memory']['peak_rss_mb'] / 1024:.2f} GB"),
        Row(f"peak memory, artcloak protect at {m}x{m} (fp32)",
            f"{f['artcloak_memory']['peak_rss_mb'] / 1024:.2f} GB (goal <= 3 GB)"),
        Row(f"whole file, {large['side']}x{large['side']} vs {small['side']}x{small['side']} "
            f"({f['file_steps']} steps at {s}, {large.get('precision', 'fp32')})",
            f"{large['seconds']:.1f} s vs {small['seconds']:.1f} s: "
            f"{f['large_over_small']:.2f}x (goal <= 1.5x)"),
    ]  # fmt: skip


def gpu_row(f: dict) -> Row:
    m, gpu = f["memory_size"], f.get("gpu")
    return Row(
        f"GPU, full-size VAE, {m}x{m}, default intensity and quality (goal on an H100/H200: <= 1 s "
        "an image, >= 2 images/s in batches of 8; bench/gpu.py)",
        f"{gpu['seconds']:.2f} s on {gpu['device']}, {gpu['encoder_passes']} passes, "
        f"peak {gpu['peak_gpu_mb'] / 1024:.1f} GB; {gpu['images_per_second']:.2f} images/s batched"
        if gpu else "not measured: no GPU was lent to this work (CUDA absent)",
    )  # fmt: skip


def table(f: dict) -> str:
    s = f["size"]
    rows = step_rows(f)
    rows += convergence_rows(f.get("convergence"), f.get("full_size_time_to_reach"))
    rows += end_to_end_rows(f)
    rows.append(gpu_row(f))
    lines = [
        f"Full-size SD VAE (random weights), {s}x{s} working size, fp32 where a row does not "
        f"name `--precision auto`'s choice; {f['machine']}.",
        f"Command: `{f['command']}`; the whole bench took {f['bench_seconds'] / 60:.1f} min.",
        "",
        "| measurement | value |",
        "|---|---|",
        *[f"| {row.measurement} | {row.value} |" for row in rows],
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
