"""bench/mimicry_objectives.py: what stops mimicry in world 3 (texture-shaped budgets at the
flat box's PSNR, 16/255, the nearest reachable target, the surrogate objectives).

The budget shaping and the report's section in efficacy.md are checked everywhere; the quick
bench goes end to end where world 3's real weights and paintings are present."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from artcloak.engine.masking import budget_shares

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from world.metrics import psnr  # noqa: E402
from world3 import report_stops, shaped  # noqa: E402
from world3.assets import MissingAssets, locate  # noqa: E402
from world3.world import Probe  # noqa: E402


def _half_flat_half_texture() -> torch.Tensor:
    """(1, 3, 32, 32): flat grey on the left, noise on the right."""
    generator = torch.Generator().manual_seed(0)
    image = torch.full((1, 3, 32, 32), 0.5)
    image[..., 16:] = torch.rand((1, 3, 32, 16), generator=generator)
    return image


def test_a_shaped_budget_is_matched_to_the_flat_psnr():
    """With a perturbation on the corners of the shaped box, the corrected scale reaches the
    wanted PSNR, texture takes more than the flat eps and flat colour less."""
    sources = _half_flat_half_texture()
    signs = torch.ones_like(sources)
    signs[..., ::2, :] = -1

    def corners(eps_255: float) -> torch.Tensor:
        bound = budget_shares(sources) * eps_255 / 255
        return (((sources + signs * bound).clamp(0, 1)) * 255).round() / 255

    flat = (((sources + signs * 8 / 255).clamp(0, 1)) * 255).round() / 255
    wanted = float(psnr(flat, sources).mean())
    images, calibration = shaped.matched(corners, sources, 8, wanted)
    assert calibration.psnr_db == pytest.approx(wanted, abs=0.3)
    assert calibration.flat_colour_eps_255 < 8 < calibration.eps_255
    change = (images - sources).abs() * 255
    assert change[..., :12].max() < 8 and change[..., 20:].max() > 8


def test_shaped_pgd_keeps_each_pixel_within_its_share():
    sources = _half_flat_half_texture()
    targets = torch.rand(sources.shape, generator=torch.Generator().manual_seed(1))
    conv = torch.nn.Conv2d(3, 4, 4, stride=4).requires_grad_(False)
    probe = Probe(conv, sources, targets)
    images = shaped.shaped_pgd(probe, sources, 16, steps=5)
    bound = budget_shares(sources) * 16 / 255
    assert ((images - sources).abs() <= bound + 0.5 / 255 + 1e-6).all()
    assert (probe.closed(images) > 0).all()


def test_the_section_in_efficacy_md_is_replaced_in_place():
    """Either bench may run last: the marked section is added once above the closing note,
    and replaced, not repeated, when the mimicry bench runs again."""
    report = "# efficacy\n\n## Mimicry\n\ntable\n\nNot measured here: much.\n\nWorld 2: link.\n"
    section = f"{report_stops.START}\n\n## What stops mimicry\n\nold\n\n{report_stops.END}"
    once = report_stops.with_section(report, section)
    assert once.index("What stops mimicry") < once.index("Not measured here")
    again = report_stops.with_section(once, section.replace("old", "new"))
    assert again.count("## What stops mimicry") == 1 and "new" in again and "old" not in again
    assert again.endswith("World 2: link.\n")
    bare = report_stops.with_section("# report\n", section)
    assert bare.rstrip().endswith(report_stops.END)


def test_quick_mimicry_bench_runs_end_to_end(tmp_path):
    """Every artcloak row has plain PGD beside it at the same passes; every row is measured
    (closure, transfer, JPEG, visibility); the montage is written; the section renders."""
    try:
        assets = locate()
    except MissingAssets as error:
        pytest.skip(f"world 3's real weights and paintings are absent: {error}")
    out = tmp_path / "quick.md"
    done = subprocess.run(
        [sys.executable, "bench/mimicry_objectives.py", "--quick", "--out", str(out),
         "--weights", str(assets.weights), "--paintings", str(assets.paintings)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.with_suffix(".json").read_text())
    rows = {row["name"]: row for row in figures["rows"]}
    ours = [name for name, row in rows.items() if row["method"] == "artcloak"]
    # flat 8/255, texture-shaped, 16/255, texture-shaped 16/255, nearest target: five rows
    assert len(ours) == 5, ours
    for name in ours:
        theirs = rows[name.replace("artcloak", "plain PGD", 1)]
        assert theirs["method"] == "plain PGD" and theirs["passes"] == rows[name]["passes"]
        assert theirs["budget"].split(",")[0] == rows[name]["budget"].split(",")[0]
    for row in rows.values():
        assert set(row["closure"]) == {"taef2", "taesana", "taef2_after_jpeg"}
        assert abs(sum(row["shares"]["histogram"].values()) - 1) < 1e-4
    assert rows["artcloak"]["closure"]["taef2"] > 0.05 and rows["clean"]["closure"]["taef2"] == 0
    assert figures["nearest"] in {c["style"] for c in figures["candidates"]}
    assert (out.parent / "plots" / figures["montage"]["file"]).stat().st_size > 0
    report = out.read_text()
    assert "mimicry share" in report and "(control)" in report
    assert "## What stops mimicry" in report_stops.efficacy_section(figures)
