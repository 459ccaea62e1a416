"""How true is the time shown before step 1? (issue "What a newcomer meets")

Runs ``artcloak cloak`` as a person would (a subprocess, TAEF2 from ../shared, each of the
bench's paintings at each working size, ``--json`` to read its events) and compares the
estimate the command shows at step 0 with what followed: the optimisation loop (from the
estimate to the last step) and the whole command (start to exit, models and writing
included). The goal (issue "the fewest passes"): within 25% of the loop's time. Writes
``bench/reports/estimate.md``.

    .venv/bin/python bench/estimate.py                 # 3 paintings at 256 and 512 px
    .venv/bin/python bench/estimate.py --sizes 256 --paintings 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world3.assets import PAINTINGS, MissingAssets, locate  # noqa: E402

GOAL = 0.25  # the largest share the estimate may be off the loop's time
REPORT = Path("bench/reports/estimate.md")


@dataclass(frozen=True)
class Timing:
    painting: str
    size: int
    estimate: float  # seconds, shown at step 0
    loop: float  # seconds from the estimate to the last step
    command: float  # seconds from start to exit
    steps: int  # steps the loop took

    @property
    def ratio(self) -> float:
        """Estimate over the loop: 1 is exact, 2 twice too long, 0.5 half."""
        return self.estimate / self.loop


def time_one(painting: Path, size: int, encoder: Path, folder: Path) -> Timing:
    command = [sys.executable, "-m", "artcloak", "cloak", str(painting), "--encoder", str(encoder),
               "--device", "cpu", "--resolution", str(size), "--lpips-random-backbone",
               "--json", "--output", str(folder / f"{painting.stem}-{size}.png")]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    estimate = estimated_at = last_step_at = None
    steps = 0
    for line in process.stdout:
        event = json.loads(line)
        if event.get("event") != "progress" or event.get("stage") != "optimise":
            continue
        now = time.perf_counter()
        if event["step"] == 0 and estimate is None:
            estimate, estimated_at = event["seconds_left"], now
        elif event["step"] > 0:
            last_step_at, steps = now, event["step"]
    if process.wait() != 0 or estimate is None or last_step_at is None:
        raise SystemExit(f"estimate: {' '.join(command)} failed or showed no estimate")
    return Timing(painting.stem, size, estimate, last_step_at - estimated_at,
                  time.perf_counter() - started, steps)  # fmt: skip


def report(timings: list[Timing], command: str) -> str:
    ratios = [t.ratio for t in timings]
    within = sum(abs(r - 1) <= GOAL for r in ratios)
    lines = [
        "# The time shown before step 1",
        "",
        f"`{command}` on this machine's CPU (TAEF2, default preset, random-backbone LPIPS). "
        f"Estimate over loop: median {statistics.median(ratios):.2f}, range "
        f"{min(ratios):.2f}-{max(ratios):.2f}; within {GOAL:.0%} of the loop's time: "
        f"{within} of {len(ratios)} ({'met' if within == len(ratios) else 'not met'}).",
        "",
        "| painting | working size | estimate s | loop s | steps | estimate / loop | whole command s |",
        "|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for t in timings:
        lines.append(f"| {t.painting} | {t.size} | {t.estimate:.1f} | {t.loop:.1f} | {t.steps} | "
                     f"{t.ratio:.2f} | {t.command:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[256, 512])
    parser.add_argument("--paintings", type=int, default=3)
    args = parser.parse_args()
    try:
        assets = locate()
    except MissingAssets as error:
        sys.exit(f"estimate: {error}")
    encoder = assets.weight("taef2/encoder.safetensors")
    timings = []
    with tempfile.TemporaryDirectory() as folder:
        for name in list(PAINTINGS)[: args.paintings]:
            painting = Path(folder) / f"{name}.png"  # as a person's file: a PNG of the painting
            Image.fromarray(assets.painting(name, max(args.sizes))).save(painting)
            for size in args.sizes:
                timings.append(time_one(painting, size, encoder, Path(folder)))
                print(timings[-1], flush=True)
    command = "python bench/estimate.py" + (
        "" if (args.sizes, args.paintings) == ([256, 512], 3) else " (a smaller run)"
    )
    text = report(timings, ".venv/bin/" + command)
    if "smaller" not in command:
        REPORT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
