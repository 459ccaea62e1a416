"""On-disk cache of generated targets, keyed by everything that determines them.

A key is the SHA-256 of a canonical JSON of the inputs (model identity, pipeline kind, prompt,
seed, size, strength, guidance, steps, and for img2img the artwork's pixels). Targets are
stored as 8-bit PNGs (so people can look at them) and always used as read back, so a first
run and a re-run use the same pixels. Writes are atomic.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from ...atomic import atomic_write
from ...errors import ArtcloakError

log = logging.getLogger(__name__)

CACHE_ENV = "ARTCLOAK_CACHE_DIR"
CACHE_FORMAT = 1  # bump when what a key means changes


def cache_folder() -> Path:
    """``$ARTCLOAK_CACHE_DIR`` or the user cache folder, plus ``targets/``."""
    override = os.environ.get(CACHE_ENV, "").strip()
    if override:
        base = Path(override).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("artcloak", appauthor=False))
    return base / "targets"


def cache_key(**inputs: Any) -> str:
    """A stable hex key of the inputs (JSON-serialisable values, arrays by content)."""
    canonical = json.dumps(
        {"format": CACHE_FORMAT, **{name: _plain(value) for name, value in inputs.items()}},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return {"array": digest, "shape": list(value.shape), "dtype": str(value.dtype)}
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(name): _plain(item) for name, item in value.items()}
    return value


def cache_path(key: str) -> Path:
    return cache_folder() / key[:2] / f"{key}.png"


def load_cached(key: str) -> np.ndarray | None:
    """The cached target as float32 H x W x 3 in [0, 1], or None."""
    path = cache_path(key)
    if not path.is_file():
        return None
    from PIL import Image

    try:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    except (OSError, ValueError):
        log.warning("Ignoring an unreadable cached target %s.", path)
        return None
    log.info("Using the cached target %s.", path)
    return pixels


def store(key: str, image: np.ndarray) -> np.ndarray:
    """Write the target as an 8-bit PNG (atomically) and return the pixels as stored."""
    from PIL import Image

    samples = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, format="PNG")
    path = cache_path(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, lambda stream: stream.write(buffer.getvalue()))
    except (OSError, ArtcloakError) as error:  # an unwritable cache must not stop the work
        log.warning("Could not cache the generated target (%s); it will be made again.", error)
    return samples.astype(np.float32) / 255
