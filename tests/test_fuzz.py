"""Fuzzed images (issue 32, item 1): a few hundred malformed PNG, JPEG, WebP and TIFF files,
derived from valid seeds by artcloak.testing.fuzz, through the reader and the CLI. Each must
be read or refused with artcloak's own error, in one line naming the file, with nothing
written and the input byte-identical. bench/fuzz.py runs the same fuzzer for longer."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from artcloak.engine.images import load_image
from artcloak.errors import InputImageError
from artcloak.testing.fuzz import KINDS, Mutant, make_seeds, mutants

FILES = 400  # the CI run: 5 rounds of every seed x mutation kind; well under 2 minutes
CLI_FILES = 20  # the CLI pays ~1.5 s of start-up a file, so a spread-out sample
SLOW_S = 5.0  # a single small file taking longer than this is a hang


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    return make_seeds()


@pytest.fixture(scope="module")
def refused(seeds, tmp_path_factory) -> list[Mutant]:
    """Run the reader on every mutant; the ones it refused, for the CLI test."""
    folder = tmp_path_factory.mktemp("fuzz")
    failures, refused = [], []
    for mutant in mutants(FILES, seeds):
        path = folder / f"m{mutant.index}{mutant.suffix}"
        path.write_bytes(mutant.data)
        started = time.perf_counter()
        try:
            load_image(path)
        except InputImageError as error:
            message = str(error)
            if "\n" in message or message.count(path.name) != 1:
                failures.append(f"{mutant.recipe}: message {message!r}")
            refused.append(mutant)
        except BaseException as error:  # noqa: BLE001 - anything else is the finding
            failures.append(f"{mutant.recipe}: {type(error).__name__}: {error}")
        took = time.perf_counter() - started
        if took > SLOW_S:
            failures.append(f"{mutant.recipe}: took {took:.1f} s")
        if path.read_bytes() != mutant.data:
            failures.append(f"{mutant.recipe}: the input changed")
        if sorted(folder.iterdir()) != [path]:
            failures.append(f"{mutant.recipe}: wrote {sorted(folder.iterdir())}")
        path.unlink()
    assert not failures, "\n".join(failures)
    return refused


def test_the_seeds_are_valid_images(seeds, tmp_path):
    for name, data in seeds.items():
        path = tmp_path / f"{name}.{name.split('-')[0]}"
        path.write_bytes(data)
        image = load_image(path)
        assert image.size in ((48, 40), (40, 48)), name
        assert image.bit_depth == (16 if name.endswith("16") else 8), name


def test_the_mutants_cover_every_seed_and_kind(seeds):
    made = list(mutants(FILES, seeds))
    assert {(m.seed, m.kind) for m in made} == {(s, k) for s in seeds for k in KINDS}
    assert all(m.data != seeds[m.seed] for m in made)
    assert [m.data for m in mutants(8, seeds)] == [m.data for m in made[:8]], "reproducible"


def test_the_reader_reads_or_refuses_every_fuzzed_file_in_one_line(refused):
    assert len(refused) > FILES // 2  # most damage is noticed; the rest decoded cleanly


def test_decoders_say_nothing_on_stderr_about_fuzzed_files(seeds, tmp_path, capfd):
    """libtiff, libpng and OpenCV print about damaged files straight to fd 2; the reader sends
    that to the log, so that a person sees only artcloak's one line."""
    for mutant in mutants(FILES, seeds):
        path = tmp_path / f"m{mutant.index}{mutant.suffix}"
        path.write_bytes(mutant.data)
        with contextlib.suppress(InputImageError):
            load_image(path)
        assert capfd.readouterr().err == "", mutant.recipe


def _cli(mutant: Mutant, folder: Path) -> tuple[Mutant, Path, subprocess.CompletedProcess]:
    case = folder / f"case{mutant.index}"
    case.mkdir()
    source = case / f"m{mutant.index}{mutant.suffix}"
    source.write_bytes(mutant.data)
    # The file is refused before any model loads, so the encoder need not exist.
    command = [sys.executable, "-m", "artcloak", "cloak", str(source), "-o",
               str(case / "out.png"), "--encoder", str(folder / "no-model")]  # fmt: skip
    return mutant, source, subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_cli_refuses_fuzzed_files_in_one_line_writing_nothing(refused, tmp_path):
    step = max(1, len(refused) // CLI_FILES)
    sample = refused[::step][:CLI_FILES]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda m: _cli(m, tmp_path), sample))
    failures = []
    for mutant, source, done in results:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        if done.returncode != 1 or len(lines) != 1 or lines[0].count(source.name) != 1:
            failures.append(f"{mutant.recipe}: exit {done.returncode}, stderr {done.stderr!r}")
        if source.read_bytes() != mutant.data:
            failures.append(f"{mutant.recipe}: the input changed")
        if list(source.parent.iterdir()) != [source]:
            failures.append(f"{mutant.recipe}: wrote {sorted(source.parent.iterdir())}")
    assert not failures, "\n".join(failures)
