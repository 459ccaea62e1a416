"""World 2's artworks: 128x128, anti-aliased, six styles with texture at painterly scales.

World 1 (``art.py``) draws 32x32 images whose styles live in single-pixel patterns; no 8x
latent can hold those, so its VAE reconstructs at 16 dB. World 2 draws each artwork at twice
its size and averages 2x2 blocks, as a painting program's anti-aliasing does, and its
textures (brush strokes, paper grain, hatching, stripes, facets) have features of two pixels
and more, like digital art posted at full size. Compositions are world 1's (``compose``), so
the same content renders in every style: the cloak bench's content-preserving targets.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .art import Composition, compose

SIZE = 128
SUPERSAMPLE = 2
STYLES = ("cel", "impasto", "watercolour", "hatching", "cubist", "op-art")


def render(seed: int, style: str, size: int = SIZE) -> np.ndarray:
    """Composition ``seed`` in ``style``: float32 (size, size, 3) in [0, 1]."""
    composition = compose(seed, size * SUPERSAMPLE)
    rng = np.random.default_rng(seed)
    image = np.clip(_RENDERERS[style](composition, rng, SUPERSAMPLE * size / SIZE), 0.0, 1.0)
    return _downsample(image.astype(np.float32), SUPERSAMPLE)


def _downsample(image: np.ndarray, factor: int) -> np.ndarray:
    height, width, channels = image.shape
    blocks = image.reshape(height // factor, factor, width // factor, factor, channels)
    return blocks.mean(axis=(1, 3))


def _edges(regions: np.ndarray, width: int) -> np.ndarray:
    edge = np.zeros(regions.shape, bool)
    edge[:-1] |= regions[:-1] != regions[1:]
    edge[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    return ndimage.binary_dilation(edge, iterations=max(0, width - 1)) if width > 1 else edge


def _grid(c: Composition) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0 : c.size, 0 : c.size].astype(np.float32)
    return yy, xx


def _cel(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Saturated flat colours, a hard shadow on each shape's far side, dark outlines."""
    colours = np.clip((c.colours - 0.5) * 1.6 + 0.55, 0, 1)
    image = colours[c.regions]
    yy, xx = _grid(c)
    inside = c.regions > 0
    lit = ndimage.uniform_filter(inside * 1.0, int(12 * px)) > 0.6
    shifted = np.roll(lit, (int(5 * px), int(5 * px)), axis=(0, 1))
    shadow = inside & ~(lit & shifted)
    image = np.where(shadow[..., None], image * 0.68, image)
    return np.where(_edges(c.regions, int(2 * px))[..., None], 0.06, image)


def _line_kernel(angle: float, length: int) -> np.ndarray:
    kernel = np.zeros((length, length), np.float32)
    centre = (length - 1) / 2
    for t in np.linspace(-centre, centre, 4 * length):
        kernel[int(round(centre + t * np.sin(angle))), int(round(centre + t * np.cos(angle)))] = 1
    return kernel / kernel.sum()


def _impasto(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Oil paint: each region's colour carried by short strokes along its own direction."""
    flat = c.colours[c.regions]
    noise = ndimage.gaussian_filter(rng.normal(0, 1, c.regions.shape), 2.0 * px)
    angles = rng.choice(np.arange(4) * np.pi / 4, len(c.colours))
    strokes = np.zeros(c.regions.shape, np.float32)
    for angle in np.unique(angles):
        textured = ndimage.convolve(noise, _line_kernel(float(angle), int(13 * px) | 1))
        mask = np.isin(c.regions, np.flatnonzero(angles == angle))
        strokes[mask] = textured[mask]
    strokes /= strokes.std() + 1e-6
    warm = np.array([1.03, 1.0, 0.94], np.float32)
    return flat * warm * (1 + 0.1 * strokes[..., None]) + 0.03 * strokes[..., None]


def _watercolour(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Pale washes that bleed, pigment pooling at their edges, and paper grain."""
    wash = 1.0 - (1.0 - c.colours[c.regions]) * 0.55
    wash = ndimage.gaussian_filter(wash, sigma=(3 * px, 3 * px, 0))
    pooling = ndimage.gaussian_filter(_edges(c.regions, int(2 * px)) * 1.0, 1.5 * px)[..., None]
    blotches = ndimage.gaussian_filter(rng.normal(0, 1, c.regions.shape), 5 * px)
    blotches /= blotches.std() + 1e-6
    grain = ndimage.gaussian_filter(rng.normal(0, 1, c.regions.shape), 1.0 * px)
    grain /= grain.std() + 1e-6
    texture = 0.035 * blotches + 0.008 * grain
    return wash * (1.0 - 0.3 * pooling) + texture[..., None]


def _hatching(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Ink on paper: line density follows each region's darkness, crossing in the darkest."""
    yy, xx = _grid(c)
    darkness = 1.0 - c.colours.mean(axis=1)[c.regions]
    period, width = 7 * px, 2 * px
    offset = rng.uniform(0, period)
    first = ((xx + yy + offset) % period < width) & (darkness > 0.25)
    second = ((xx - yy + offset + c.size) % period < width) & (darkness > 0.55)
    ink = first | second | _edges(c.regions, int(1.5 * px))
    paper = np.array([0.96, 0.94, 0.88], np.float32)
    colour = np.array([0.12, 0.1, 0.16], np.float32)
    return np.where(ink[..., None], colour, paper)


def _cubist(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Angular facets in muted earth tones, each shaded along its own direction."""
    count = 40
    seeds = rng.uniform(0, c.size, (count, 2)).astype(np.float32)
    yy, xx = _grid(c)
    distance = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    facets = distance.argmin(-1)
    earth = np.array([0.55, 0.42, 0.28], np.float32)
    image = (0.45 * c.colours + 0.55 * earth)[c.regions]
    angles = rng.uniform(0, 2 * np.pi, count)
    gradient = (
        np.cos(angles)[facets] * (xx - seeds[facets, 1])
        + np.sin(angles)[facets] * (yy - seeds[facets, 0])
    ) / c.size
    shade = 0.75 + 1.2 * gradient + 0.2 * rng.uniform(-1, 1, count)[facets]
    image = image * shade[..., None]
    lines = _edges(facets * 16 + c.regions, int(1.5 * px))
    return np.where(lines[..., None], image * 0.45, image)


def _op_art(c: Composition, rng: np.random.Generator, px: float) -> np.ndarray:
    """Black-and-white stripes whose direction and phase change from region to region."""
    yy, xx = _grid(c)
    angles = (np.arange(len(c.colours)) * 0.9 + rng.uniform(0, np.pi)) % np.pi
    angle = angles[c.regions]
    phase = np.cos(angle) * xx + np.sin(angle) * yy
    stripes = (np.sin(phase * 2 * np.pi / (12 * px)) > 0).astype(np.float32)
    return np.repeat(stripes[..., None], 3, axis=2) * 0.92 + 0.04


_RENDERERS = {
    "cel": _cel,
    "impasto": _impasto,
    "watercolour": _watercolour,
    "hatching": _hatching,
    "cubist": _cubist,
    "op-art": _op_art,
}
