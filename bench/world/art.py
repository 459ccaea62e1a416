"""Procedural compositions: three to six shapes with a colour each, from a seed.

A ``Composition`` is the content (a region map and a colour per region); ``gallery.py`` turns
it into pixels in a style. The same composition renders in every style, which gives the cloak
bench its content-preserving style targets. Everything is deterministic from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Composition:
    regions: np.ndarray  # (H, W) int: 0 is the background, k >= 1 the k-th shape from the back
    colours: np.ndarray  # (K, 3) float in [0, 1], one per region
    seed: int

    @property
    def size(self) -> int:
        return self.regions.shape[0]


def compose(seed: int, size: int) -> Composition:
    """Three to six circles, rectangles and triangles on a coloured background."""
    rng = np.random.default_rng(seed)
    count = int(rng.integers(3, 7))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    regions = np.zeros((size, size), np.int32)
    for k in range(1, count + 1):
        cy, cx = rng.uniform(0.15, 0.85, 2)
        radius = rng.uniform(0.12, 0.32)
        kind = rng.integers(3)
        if kind == 0:
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < radius**2
        elif kind == 1:
            ry, rx = radius * rng.uniform(0.6, 1.4, 2)
            inside = (np.abs(yy - cy) < ry) & (np.abs(xx - cx) < rx)
        else:
            inside = (yy - cy + radius > 0) & (np.abs(xx - cx) < (yy - cy + radius) * 0.6)
            inside &= yy < cy + radius
        regions[inside] = k
    colours = rng.uniform(0.1, 0.95, (count + 1, 3)).astype(np.float32)
    return Composition(regions, colours, seed)
