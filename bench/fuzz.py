"""The long run of the image fuzzer (issue 32, item 1): tests/test_fuzz.py's fuzzer over many
more files, through the reader the CLI uses (load_image) and, for a sample, the CLI itself.

Each file must be read, or refused with InputImageError in one line naming it, with the input
unchanged and nothing written; anything else (another exception type, a message over several
lines, a file slower than --slow seconds) is a failure, reported with its recipe, which
rebuilds the exact bytes (artcloak.testing.fuzz.mutant(index, make_seeds())). Usage, from
the repository root:

    .venv/bin/python bench/fuzz.py [--files 10000] [--cli 50]

It writes bench/reports/fuzz.md.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from artcloak.engine.images import load_image
from artcloak.errors import InputImageError
from artcloak.testing.fuzz import FUZZ_SEED, KINDS, Mutant, make_seeds, mutants
from typed import typed

REPORT = Path("bench/reports/fuzz.md")

# What the first runs of this fuzzer found in the reader, each fixed with one clear message
# (and kept found by tests/test_fuzz.py, whose 400 files include a case of each).
FOUND_AND_FIXED = (
    "TypeError ('Missing dimensions') from Pillow counting the pages of a TIFF whose "
    "next-page pointer is garbage (20 of 10,000 files, e.g. #373 tiff-grey16 chunk_length: "
    "IFD entry count 9->15): now 'FILE is damaged (its list of pages cannot be read)'.",
    "Noise on stderr beside artcloak's one line: Pillow's UserWarnings ('Corrupt EXIF data', "
    "'Truncated File Read') from naming a refused TIFF's layout, and libtiff / libpng / OpenCV "
    "messages printed straight to fd 2 (832 lines over 10,000 files): the warnings now make "
    "the layout unnamed, and fd 2 goes to the log while decoding.",
)


def _read(mutant: Mutant, folder: Path, slow: float) -> tuple[str, str | None, float]:
    """("read" | "refused" | "failed", what failed, seconds) for one file through the reader."""
    path = folder / f"m{mutant.index}{mutant.suffix}"
    path.write_bytes(mutant.data)
    started = time.perf_counter()
    outcome, problem = "read", None
    try:
        load_image(path)
    except InputImageError as error:
        outcome = "refused"
        if "\n" in str(error) or str(error).count(path.name) != 1:
            outcome, problem = "failed", f"message not one line naming the file: {error}"
    except BaseException as error:  # noqa: BLE001 - anything else is the finding
        outcome, problem = "failed", f"{type(error).__name__}: {error}"
    took = time.perf_counter() - started
    if took > slow:
        outcome, problem = "failed", f"took {took:.1f} s (a hang)"
    if path.read_bytes() != mutant.data:
        outcome, problem = "failed", "the input changed"
    if sorted(folder.iterdir()) != [path]:
        outcome, problem = "failed", "a file was written beside the input"
    path.unlink()
    return outcome, problem, took


def _cli(mutant: Mutant, folder: Path) -> str | None:
    """What was wrong with the CLI's refusal of one file, or None."""
    source = folder / f"m{mutant.index}{mutant.suffix}"
    source.write_bytes(mutant.data)
    command = [sys.executable, "-m", "artcloak", "cloak", str(source), "-o",
               str(folder / "out.png"), "--encoder", str(folder / "no-model")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    problem = None
    if done.returncode != 1 or len(lines) != 1 or lines[0].count(source.name) != 1:
        problem = f"CLI exit {done.returncode}, stderr {done.stderr.strip()!r}"
    elif source.read_bytes() != mutant.data or sorted(folder.iterdir()) != [source]:
        problem = "CLI changed the input or wrote a file"
    source.unlink()
    return problem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="mutated files to try")
    parser.add_argument("--cli", type=int, default=50, help="refused files also run via the CLI")
    parser.add_argument("--slow", type=float, default=5.0, help="seconds that count as a hang")
    args = parser.parse_args()

    seeds = make_seeds()
    tally: dict[str, collections.Counter[str]] = {k: collections.Counter() for k in KINDS}
    failures: list[str] = []
    refused: list[Mutant] = []
    slowest = (0.0, "")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for mutant in mutants(args.files, seeds):
            outcome, problem, took = _read(mutant, Path(folder), args.slow)
            tally[mutant.kind][outcome] += 1
            slowest = max(slowest, (took, mutant.recipe))
            if problem:
                failures.append(f"{mutant.recipe}: {problem}")
            elif outcome == "refused":
                refused.append(mutant)
        reader_s = time.perf_counter() - started
        sample = refused[:: max(1, len(refused) // args.cli)][: args.cli] if args.cli else []
        for mutant in sample:
            problem = _cli(mutant, Path(folder))
            if problem:
                failures.append(f"{mutant.recipe}: {problem}")
    total_s = time.perf_counter() - started

    command = "python bench/fuzz.py " + typed(sys.argv[1:])
    rows = [
        f"| {kind} | {sum(c.values())} | {c['read']} | {c['refused']} | {c['failed']} |"
        for kind, c in tally.items()
    ]
    totals = sum(tally.values(), collections.Counter())
    lines = [
        "# Fuzzed images: the long run",
        "",
        "Malformed PNG, JPEG, WebP and TIFF files derived from "
        f"{len(seeds)} valid seeds ({', '.join(sorted(seeds))}) by "
        "artcloak.testing.fuzz (seed "
        f"{FUZZ_SEED}), each through `load_image` (the reader the CLI uses); a sample of the "
        "refused ones also through `artcloak cloak FILE -o OUT`. A file passes when it is read, "
        "or refused with artcloak's own error in one line naming it, in under "
        f"{args.slow:g} s, with the input byte-identical and nothing written.",
        "",
        f"Command: `{command.strip()}` ({sys.platform}, Python {sys.version.split()[0]}).",
        "",
        f"**{args.files} files tried, {totals['failed']} failures** "
        f"(reader: {reader_s:.1f} s; CLI on {len(sample)} refused files; "
        f"{total_s:.1f} s in all; slowest file {slowest[0] * 1000:.0f} ms: {slowest[1]}).",
        "",
        "| mutation | tried | read (decoded cleanly) | refused in one line | failed |",
        "|---|---|---|---|---|",
        *rows,
        f"| all | {args.files} | {totals['read']} | {totals['refused']} | {totals['failed']} |",
        "",
        "## Found by earlier runs and fixed in the reader",
        "",
        *[f"- {f}" for f in FOUND_AND_FIXED],
        "",
        "## Failures left (exception or problem, and the recipe that rebuilds the file)",
        "",
        *([f"- {f}" for f in failures] or ["None."]),
        "",
    ]
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text("\n".join(lines))
    print("\n".join(lines))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
