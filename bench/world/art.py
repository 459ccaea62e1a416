"""Procedural artworks: random compositions of shapes rendered in six distinct styles.

A ``Composition`` is the content (a region map and a colour per region); a style turns it
into pixels. The same composition can be rendered in every style, which gives the cloak
bench its content-preserving style targets. Everything is deterministic from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SIZE = 32  # pixels: the world's images are small so its models train on a 2-core CPU
STYLES = ("cel", "pointillism", "hatching", "watercolour", "cubist", "op-art")


@dataclass(frozen=True)
class Composition:
    regions: np.ndarray  # (H, W) int: 0 is the background, k >= 1 the k-th shape from the back
    colours: np.ndarray  # (K, 3) float in [0, 1], one per region
    seed: int

    @property
    def size(self) -> int:
        return self.regions.shape[0]


def compose(seed: int, size: int = SIZE) -> Composition:
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


def render(composition: Composition, style: str, seed: int | None = None) -> np.ndarray:
    """The composition in ``style``: float32 (H, W, 3) in [0, 1]."""
    rng = np.random.default_rng(composition.seed if seed is None else seed)
    image = _RENDERERS[style](composition, rng)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _flat(c: Composition) -> np.ndarray:
    return c.colours[c.regions]


def _edges(regions: np.ndarray, width: int = 1) -> np.ndarray:
    edge = np.zeros(regions.shape, bool)
    edge[:-1] |= regions[:-1] != regions[1:]
    edge[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    return ndimage.binary_dilation(edge, iterations=width) if width > 1 else edge


def _cel(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Saturated flat colours, a hard shadow band, thick dark outlines."""
    colours = np.clip((c.colours - 0.5) * 1.6 + 0.55, 0, 1)
    image = colours[c.regions]
    yy, xx = np.mgrid[0 : c.size, 0 : c.size]
    inner = ndimage.uniform_filter((c.regions > 0) * 1.0, max(3, c.size // 7)) < 0.5
    shadow = ((xx + yy) % c.size > c.size * 0.9) | inner
    image = np.where((shadow & (c.regions > 0))[..., None], image * 0.7, image)
    return np.where(_edges(c.regions, 2 if c.size >= 64 else 1)[..., None], 0.05, image)


def _pointillism(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Separate round dots of jittered pure colour on a pale canvas."""
    size = c.size
    image = np.full((size, size, 3), 0.93, np.float32)
    flat = _flat(c)
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(size * size // 9):
        y, x = rng.integers(0, size, 2)
        colour = np.clip(flat[y, x] * 1.2 - 0.1 + rng.normal(0, 0.08, 3), 0, 1)
        dot = (yy - y) ** 2 + (xx - x) ** 2 <= rng.uniform(2.0, 4.5) * max(0.5, (size / 64) ** 2)
        image[dot] = colour
    return image


def _hatching(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Ink on paper: line density follows each region's darkness, crossing in the darkest."""
    size = c.size
    yy, xx = np.mgrid[0:size, 0:size]
    darkness = 1.0 - c.colours.mean(axis=1)[c.regions]
    wobble = rng.integers(0, 6)
    first = ((xx + yy + wobble) % 6 < 2) & (darkness > 0.25)
    second = ((xx - yy + size) % 6 < 2) & (darkness > 0.6)
    ink = first | second | _edges(c.regions)
    paper = np.array([0.96, 0.94, 0.88], np.float32)
    colour = np.array([0.12, 0.1, 0.14], np.float32)
    return np.where(ink[..., None], colour, paper)


def _watercolour(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Pale, soft washes that bleed, with pigment pooling at their edges and paper grain."""
    wash = 1.0 - (1.0 - _flat(c)) * 0.55
    scale = c.size / 64
    wash = ndimage.gaussian_filter(wash, sigma=(2.0 * scale, 2.0 * scale, 0))
    pooling = ndimage.gaussian_filter(_edges(c.regions, 2) * 1.0, scale)[..., None]
    grain = ndimage.gaussian_filter(rng.normal(0, 1, c.regions.shape), 3.0 * scale)[..., None]
    return wash * (1.0 - 0.22 * pooling) + 0.05 * grain


def _cubist(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Angular facets in muted earth tones, each shaded along its own direction."""
    size = c.size
    count = max(8, 24 * size * size // 4096)
    seeds = rng.uniform(0, size, (count, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    distance = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    facets = distance.argmin(-1)
    earth = np.array([0.55, 0.42, 0.28], np.float32)
    muted = 0.45 * c.colours + 0.55 * earth
    image = muted[c.regions]
    angles = rng.uniform(0, 2 * np.pi, count)
    gradient = (
        np.cos(angles)[facets] * (xx - seeds[facets, 1])
        + np.sin(angles)[facets] * (yy - seeds[facets, 0])
    ) / size
    image = image * (
        0.75 + 0.9 * gradient[..., None] + 0.2 * rng.uniform(-1, 1, count)[facets][..., None]
    )
    lines = _edges(facets * 16 + c.regions)
    return np.where(lines[..., None], image * 0.45, image)


def _op_art(c: Composition, rng: np.random.Generator) -> np.ndarray:
    """Black-and-white stripes whose direction and phase change from region to region."""
    size = c.size
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angles = (np.arange(len(c.colours)) * 0.9 + rng.uniform(0, np.pi)) % np.pi
    angle = angles[c.regions]
    phase = np.cos(angle) * xx + np.sin(angle) * yy
    period = max(6.0, 7.0 * size / 64)
    stripes = (np.sin(phase * 2 * np.pi / period) > 0).astype(np.float32)
    return np.repeat(stripes[..., None], 3, axis=2) * 0.92 + 0.04


_RENDERERS = {
    "cel": _cel,
    "pointillism": _pointillism,
    "hatching": _hatching,
    "watercolour": _watercolour,
    "cubist": _cubist,
    "op-art": _op_art,
}
