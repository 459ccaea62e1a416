"""What the decoder shows: originals, artcloak's default at 8/255 and 16/255, and TAEF2's
reconstruction of each, in one picture for the report."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import torch
from artcloak.settings import Intensity
from PIL import Image, ImageDraw

from .stages import artcloak, settings_at
from .world import World3, stack

COLUMNS = (
    "original",
    "TAEF2 sees",
    "cloaked 8/255",
    "TAEF2 sees",
    "cloaked 16/255",
    "TAEF2 sees",
    "target",
)
ROWS = 4  # artworks shown: two from the gallery, two paintings where there are
LABEL_HEIGHT = 14


def montage(world: World3, folder: Path) -> dict:
    """Write ``world3-montage.png`` into ``folder``; returns its name and the cases shown."""
    shown = _pick(world)
    rows = [world.cases.index(case) for case in shown]
    default = artcloak(world, settings_at(world)).images[rows]  # the presets stage's runs
    high = artcloak(world, settings_at(world, intensity=Intensity.HIGH)).images[rows]
    sources, targets = stack(shown, "source"), stack(shown, "target")
    columns = [sources, world.seen(sources), default, world.seen(default), high, world.seen(high),
               targets]  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    name = "world3-montage.png"
    _grid(columns, world.size).save(folder / name)
    return {"file": name, "cases": [case.name for case in shown]}


def _pick(world: World3) -> list:
    gallery = [case for case in world.cases if not case.painting][: ROWS // 2]
    paintings = [case for case in world.cases if case.painting][: ROWS - len(gallery)]
    return gallery + paintings


def _grid(columns: list[torch.Tensor], size: int) -> Image.Image:
    rows = len(columns[0])
    sheet = Image.new("RGB", (size * len(columns), LABEL_HEIGHT + size * rows), "white")
    draw = ImageDraw.Draw(sheet)
    for c, (title, images) in enumerate(zip(COLUMNS, columns, strict=True)):
        draw.text((c * size + 4, 1), title, fill="black")
        for r, image in enumerate(images):
            pixels = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            sheet.paste(Image.fromarray(pixels), (c * size, LABEL_HEIGHT + r * size))
    return sheet


SHOWN = 4  # training images and samples per row of the mimicry montage
LABEL_WIDTH = 150


def mimicry_montage(rows: list[tuple[str, torch.Tensor, torch.Tensor]], path: Path) -> dict:
    """Per (label, training images, mimic's samples): ``SHOWN`` of each side by side, at their
    own size, in one picture at ``path``; returns its name and the rows' labels."""
    size = rows[0][1].shape[-1]
    gap = size // 4
    width = LABEL_WIDTH + 2 * SHOWN * size + gap
    sheet = Image.new("RGB", (width, LABEL_HEIGHT + size * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    draw.text((LABEL_WIDTH + 4, 1), "training images", fill="black")
    draw.text((LABEL_WIDTH + SHOWN * size + gap + 4, 1), "mimic's samples", fill="black")
    for r, (label, training, samples) in enumerate(rows):
        top = LABEL_HEIGHT + r * size
        draw.multiline_text((4, top + 4), textwrap.fill(label, 22), fill="black")
        for c, image in enumerate(training[:SHOWN]):
            sheet.paste(_picture(image), (LABEL_WIDTH + c * size, top))
        for c, image in enumerate(samples[:SHOWN]):
            sheet.paste(_picture(image), (LABEL_WIDTH + (SHOWN + c) * size + gap, top))
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)
    return {"file": path.name, "rows": [label for label, _, _ in rows]}


def _picture(image: torch.Tensor) -> Image.Image:
    pixels = (image.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(pixels)
