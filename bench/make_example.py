"""Draw examples/artwork.png: a 640x480 RGBA 'painting' with soft transparent corners.

Deterministic; run from the repository root: python bench/make_example.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def draw_artwork(width: int = 640, height: int = 480, seed: int = 7) -> Image.Image:
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width] / max(width, height)
    sky = np.stack([0.35 + 0.4 * v, 0.55 + 0.3 * v, 0.85 - 0.2 * u], axis=-1)
    canvas = Image.fromarray((np.clip(sky, 0, 1) * 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    for _ in range(14):
        x, y = rng.integers(0, width), rng.integers(height // 3, height)
        r = int(rng.integers(20, 90))
        colour = tuple(int(c) for c in rng.integers(30, 230, size=3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour, outline=(20, 20, 30), width=3)
    draw.polygon([(0, height), (width * 0.45, height * 0.45), (width, height)], fill=(70, 90, 60))
    canvas = canvas.filter(ImageFilter.SMOOTH_MORE)
    corner = np.minimum(
        1,
        np.hypot(u * max(width, height) / width - 0.5, v * max(width, height) / height - 0.5) * -3
        + 2.1,
    )
    alpha = (np.clip(corner, 0, 1) * 255).astype(np.uint8)
    image = canvas.convert("RGBA")
    image.putalpha(Image.fromarray(alpha, "L"))
    return image


if __name__ == "__main__":
    target = Path("examples/artwork.png")
    draw_artwork().save(target)
    print(f"wrote {target}")
