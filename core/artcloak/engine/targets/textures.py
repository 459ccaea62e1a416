"""Built-in texture targets, rendered procedurally at any size (no resampling).

Patterns are sized relative to the shorter side, so a texture looks the same at
every resolution. Each is deterministic.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...settings import DEFAULT_STYLE

Grid = tuple[np.ndarray, np.ndarray]  # u, v coordinates in units of the shorter side


def _grid(width: int, height: int) -> Grid:
    side = min(width, height)
    v, u = np.mgrid[0:height, 0:width].astype(np.float32) / side
    return u, v


def _palette(*colours: tuple[int, int, int]) -> np.ndarray:
    return np.array(colours, dtype=np.float32) / 255


def _blend(weights: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Interpolate a palette by weights in [0, 1] -> H x W x 3."""
    position = np.clip(weights, 0, 1) * (len(palette) - 1)
    low = np.floor(position).astype(int).clip(0, len(palette) - 2)
    fraction = (position - low)[..., None]
    return palette[low] * (1 - fraction) + palette[low + 1] * fraction


def weave(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    warp = np.sin(2 * np.pi * 24 * u) * (np.sin(2 * np.pi * 3 * v) > 0)
    weft = np.sin(2 * np.pi * 24 * v) * (np.sin(2 * np.pi * 3 * u) > 0)
    colours = _palette((32, 24, 80), (200, 60, 40), (240, 210, 120))
    return _blend(0.5 + 0.25 * (warp + weft), colours)


def marble(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    turbulence = sum(
        np.abs(np.sin(2 * np.pi * (k * 1.7 * u + k * 0.9 * v) + k)) / k for k in (1, 2, 4, 8, 16)
    )
    veins = 0.5 + 0.5 * np.sin(2 * np.pi * 6 * u + 3 * turbulence)
    return _blend(veins, _palette((20, 40, 30), (90, 160, 120), (235, 240, 225)))


def stripes(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    ring = np.sqrt((u - 0.5) ** 2 + (v - 0.5) ** 2)
    bands = np.sin(2 * np.pi * (20 * (u + v) + 8 * np.sin(2 * np.pi * 2 * ring))) > 0
    return _blend(bands.astype(np.float32), _palette((10, 10, 10), (250, 250, 250)))


def mosaic(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(1234)
    cells = 12
    centres = rng.random((cells * cells, 2)).astype(np.float32) * [u.max() + 1e-6, v.max() + 1e-6]
    colours = rng.random((cells * cells, 3)).astype(np.float32)
    nearest = np.zeros(u.shape, dtype=np.int64)
    best = np.full(u.shape, np.inf, dtype=np.float32)
    for index, (cu, cv) in enumerate(centres):
        distance = (u - cu) ** 2 + (v - cv) ** 2
        closer = distance < best
        best[closer], nearest[closer] = distance[closer], index
    grout = (np.sqrt(best) * 30 % 1) < 0.08
    image = colours[nearest]
    image[grout] = 0.1
    return image


def pixels(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Big square pixels in a small palette, as in pixel art."""
    cells = 16
    column, row = np.floor(u * cells).astype(int), np.floor(v * cells).astype(int)
    rng = np.random.default_rng(4321)
    levels = rng.integers(0, 4, size=(row.max() + 1, column.max() + 1))
    palette = _palette((20, 12, 28), (68, 36, 52), (222, 110, 40), (109, 194, 202))
    return palette[levels[row, column]]


def halftone(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Halftone dots of varying size in bold primaries, as in pop art."""
    cells = 28
    cu, cv = (u * cells) % 1 - 0.5, (v * cells) % 1 - 0.5
    radius = 0.2 + 0.25 * (0.5 + 0.5 * np.sin(2 * np.pi * (1.5 * u + 0.8 * v)))
    dots = (cu**2 + cv**2) < radius**2
    band = (np.floor(3 * (u + v)) % 3).astype(int)
    inks = _palette((220, 30, 40), (30, 70, 200), (250, 210, 20))
    image = np.ones(u.shape + (3,), dtype=np.float32)
    image[dots] = inks[band[dots]]
    return image


TEXTURES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "weave": weave,
    "marble": marble,
    "stripes": stripes,
    "mosaic": mosaic,
    "pixels": pixels,
    "halftone": halftone,
}
DEFAULT_TEXTURE = DEFAULT_STYLE  # the core's default style (settings)


def render_texture(name: str, width: int, height: int) -> np.ndarray:
    """The named texture as float32 H x W x 3 in [0, 1]."""
    u, v = _grid(width, height)
    return np.clip(TEXTURES[name](u, v), 0, 1).astype(np.float32)
