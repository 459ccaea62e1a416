"""The report of ``bench/mimicry_objectives.py``: what stops mimicry, and the same section in
``bench/reports/efficacy.md``.

The section lives in efficacy.md between two markers. ``bench/mimicry_objectives.py`` rewrites
it there when it runs; ``bench/efficacy.py`` (world 3's ``report.write_report``) builds it
again from ``mimicry-objectives.json`` when it rewrites the whole report. Both render the one
JSON with the functions here, so the section always shows the last mimicry run, whichever
bench ran last, and says which command and date its figures come from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from world.report import _goal, _table

from .row_figures import Closure, Visibility

GOAL = 0.30  # mimicry share at most, for a protection to count (issue "What stops mimicry")
CONTROL = 0.80  # the clean control must reach this for the figures to mean anything
START = "<!-- what-stops-mimicry: written from bench/reports/mimicry-objectives.json -->"
END = "<!-- /what-stops-mimicry -->"
BEFORE = "Not measured here:"  # efficacy.md's closing note: the section goes above it


@dataclass
class Row:
    """One training set: what the mimic made of it, and what making it moved and cost."""

    name: str
    method: str
    budget: str
    target_style: str
    same_images_as: str | None
    shares: dict  # world.experiments.mimicry_shares: artist's share, per generator, target's
    closure: Closure
    visibility: Visibility
    passes: int | None
    seconds_per_image: float | None

    @property
    def mimicry(self) -> float:
        return self.shares["artist_style_share"]

    @classmethod
    def from_json(cls, data: dict) -> Row:
        return cls(**data | {"closure": Closure(**data["closure"]),
                             "visibility": Visibility(**data["visibility"])})  # fmt: skip


def best(rows: list[Row]) -> Row:
    """The protected set whose mimic made the artist's style least (the first of equals)."""
    return min((row for row in rows if row.method != "none"), key=lambda row: row.mimicry)


def pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def number(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def control_valid(rows: list[Row]) -> bool:
    return next(row for row in rows if row.method == "none").mimicry >= CONTROL


def verdict(row: Row, valid: bool) -> str:
    """The goal's verdict for one row; none where the control failed (nothing is measured)."""
    if row.method == "none":
        return "(control)"
    if not valid:
        return "- (control failed)"
    return "met" if row.mimicry <= GOAL else "not met"


def goal_lines(rows: list[Row]) -> list[str]:
    clean = next(row for row in rows if row.method == "none").mimicry
    valid = control_valid(rows)
    lines = [_goal(f"the clean control makes the artist's style in {pct(clean)} of samples "
                   f"(must be >= {CONTROL:.0%} for the rows below to mean anything)", valid)]  # fmt: skip
    met = [row.name for row in rows if verdict(row, valid) == "met"]
    lines.append(_goal(f"a protection whose mimic makes the artist's style in <= {GOAL:.0%} of "
                       f"samples: {', '.join(met) if met else 'none of the rows below'}",
                       bool(met)))  # fmt: skip
    default = next(row for row in rows if row.name == "artcloak")
    lines.append(_goal(f"artcloak's default (flat 8/255): {pct(default.mimicry)} (goal <= "
                       f"{GOAL:.0%})", verdict(default, valid) == "met"))  # fmt: skip
    return lines


def mimicry_table(rows: list[Row]) -> str:
    body = []
    valid = control_valid(rows)
    for row in rows:
        per = ", ".join(pct(share) for share in row.shares["artist_style_share_per_generator"])
        same = f" (the images of '{row.same_images_as}')" if row.same_images_as else ""
        body.append([row.name + same, row.budget, row.target_style, pct(row.mimicry), per,
                     pct(row.shares["target_style_share"]), verdict(row, valid)])  # fmt: skip
    return _table(["training set", "budget", "target style", "mimicry share", "per generator",
                   "target style share", "goal <= 30%"], body)  # fmt: skip


def cost_table(rows: list[Row]) -> str:
    body = [[row.name, pct(row.closure.taef2), pct(row.closure.taesana),
             pct(row.closure.taef2_after_jpeg), number(row.visibility.psnr_db, 1),
             number(row.visibility.ssim, 3), number(row.visibility.lpips, 3),
             number(row.visibility.linf_255, 0), row.passes or "-",
             number(row.seconds_per_image, 2)] for row in rows]  # fmt: skip
    return _table(["training set", "TAEF2 latent closed", "TAESana closed (transfer)",
                   "TAEF2 closed after JPEG q75", "PSNR dB", "SSIM", "LPIPS*", "L-inf /255",
                   "TAEF2 passes", "s/image"], body)  # fmt: skip


def choices_lines(figures: dict) -> list[str]:
    """How the nearest reachable target and the texture-shaped budgets were chosen."""
    candidates = [[c["style"], f"{c['latent_distance']:.1f}", pct(c["flips"]),
                   "chosen" if c["style"] == figures["nearest"] else ""]
                  for c in figures["candidates"]]  # fmt: skip
    calibration = [[name, f"{c['flat_colour_eps_255']:.1f}-{c['eps_255']:.1f}/255",
                    f"{c['wanted_psnr_db']:.1f}", f"{c['psnr_db']:.1f}"]
                   for name, c in figures["calibration"].items()]  # fmt: skip
    return [
        "Target styles for the artist's artworks (the same compositions in each style), nearest "
        "first: mean distance from the artworks in TAEF2's latent space, and the share of the "
        "target images the judge reads as not the artist's style in TAEF2's reconstruction (a "
        "candidate must flip >= 90%).",
        _table(["target style", "TAEF2 latent distance", "judge flipped", ""], candidates),
        "Texture-shaped budgets: artcloak's `--adaptive` shares (a quarter of eps on flat "
        "colour, all of it in texture) with eps scaled until the run's PSNR is its flat row's "
        "(`bench/world3/shaped.py`):",
        _table(
            ["training set", "bound, flat colour to texture", "wanted PSNR dB", "reached PSNR dB"],
            calibration,
        ),  # fmt: skip
    ]


def notes_lines(figures: dict, rows: list[Row]) -> list[str]:
    """What the rows cannot show: the target choice where it changed nothing, and LPIPS."""
    lines = []
    if figures["nearest"] == figures["fixed_target_style"]:
        lines.append(
            f"The nearest reachable target is the fixed one ({figures['nearest']}) for these "
            "artworks, so its rows are the fixed target's images (not trained again)."
        )
    top = max(row.visibility.lpips for row in rows)
    lines.append(
        f"Not measured: an LPIPS-bounded budget. The only LPIPS here has a random backbone; it "
        f"reads at most {top:.3f} on these rows, far under artcloak's bounds (0.05 at 8/255, "
        "0.10 at 16/255), so it never binds and says nothing about what people see; the "
        "texture-shaped rows are the perceptual budget measured here."
    )
    return ["\n".join(f"- {line}" for line in lines)]


def body(figures: dict) -> list[str]:
    """Everything but the title: the run, goals, both tables, the choices and the montage."""
    rows = [Row.from_json(row) for row in figures["rows"]]
    scale = figures["scale"]
    top = best(rows)
    return [
        f"From `{figures['command']}` ({figures['date']}, {figures['minutes']:.1f} min on this "
        f"machine's CPU). The artist's {scale['images']} {figures['artist_style']} artworks at "
        f"{figures['size']} px; {scale['generators']} mimic generators x {scale['samples']} samples "
        "per set (a latent flow U-Net pre-trained on six styles, fine-tuned on the set under a "
        "new label; samples decoded by TAEF2 and read by the style judge). Mimicry share: the "
        "samples the judge reads in the artist's style. Plain PGD runs the same latent pull "
        "as artcloak at the same TAEF2 passes and budget.",
        "\n".join(goal_lines(rows)),
        f"Lowest mimicry share: **{top.name}**, {pct(top.mimicry)}.",
        mimicry_table(rows),
        "Latent closed: share of the TAEF2 latent distance to the set's own target style (the "
        "same compositions in it) that the images close; TAESana measures the same images in "
        "a real encoder never attacked; JPEG q75: TAEF2's closure after the protected image is "
        "saved as JPEG q75. *LPIPS with a randomly initialised AlexNet (the ImageNet weights "
        "cannot be had here): not a perceptual figure. s/image on this machine's 2-core CPU, "
        "shared with other work while it ran.",
        cost_table(rows),
        *choices_lines(figures),
        *notes_lines(figures, rows),
        f"What the mimic learned (`{figures['montage']['file']}`): per row, training images "
        "then the samples of the first generator.\n\n"
        f"![mimicry montage](plots/{figures['montage']['file']})",
    ]


def efficacy_section(figures: dict) -> str:
    """The marked section of efficacy.md."""
    return "\n\n".join([START, "## What stops mimicry", *body(figures),
                        "Full report: [mimicry-objectives.md](mimicry-objectives.md).", END])  # fmt: skip


def markdown(figures: dict) -> str:
    title = "# What stops mimicry (world 3): budgets, targets and objectives beside the latent pull"
    return "\n\n".join([title, *body(figures)]) + "\n"


def with_section(report: str, section: str) -> str:
    """``report`` with its marked section replaced by ``section`` (added above the closing
    note, or at the end, where there is none yet)."""
    if START in report and END in report:
        head, rest = report.split(START, 1)
        return head + section + rest.split(END, 1)[1]
    if BEFORE in report:
        head, rest = report.split(BEFORE, 1)
        return head + section + "\n\n" + BEFORE + rest
    return report.rstrip("\n") + "\n\n" + section + "\n"


def saved_section(folder: Path) -> str | None:
    """The section from ``folder``'s mimicry-objectives.json, None where there is none."""
    path = folder / "mimicry-objectives.json"
    return efficacy_section(json.loads(path.read_text())) if path.exists() else None


def write(figures: dict, out: Path, efficacy: Path | None) -> None:
    """The report and its JSON at ``out``; the section in ``efficacy`` when given."""
    out.with_suffix(".json").write_text(json.dumps(figures, indent=2) + "\n")
    out.write_text(markdown(figures))
    if efficacy is not None and efficacy.exists():
        efficacy.write_text(with_section(efficacy.read_text(), efficacy_section(figures)))
