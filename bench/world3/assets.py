"""World 3's real assets: pretrained tiny autoencoders and public-domain paintings.

They live outside the repository (``../shared/models`` and ``../shared/paintings`` beside the
checkout, on this project's machines and CI), are checked by SHA-256, and when absent the
bench says in one line what it needs and where it comes from.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
WEIGHTS = {  # madebyollin/taesd (MIT), commit 5cccb12, converted to safetensors unchanged
    "taef2/encoder.safetensors": "ed439d4f19057d2a3b8fb43e3caa9aff37f5b9fdbf707cddff57f5a8ae8d5068",
    "taef2/decoder.safetensors": "79b69df8dd742e179d3b929905310a39901a805840f9b2b8968d1bbf5f65d642",
    "taesana/encoder.safetensors": "44f441ed65c5d2774223d40801c9accf6fe8de2cdbb81fc05f8cf4a7ad25e867",
}
PAINTINGS = {  # public domain; sources in ../shared/paintings/README.md
    "great_wave": "54f19686bea5117c0bb68ce4425dbed4efafa3e8d7cafe35f0fae80b8223f4be",
    "the_scream": "f3075cddeb974a9ee1d6418f7f33fd05185a7ac7dcb4288bd2805d499a9dcaee",
    "water_lilies": "db4c4fe90c02be04d269f2f598357bb8cd4ea0541712a90d4913e91b1da689d7",
    "matisse_hat": "6a8b2383d9c110354a97a42c74bdcc5341be879cbb842ddb7ab5843dbdf56d53",
    "udnie": "45e510d2a53b4167a22bae12a191eea3018f82d74a2fa17b1573adc1e9dfc7f6",
    "mondrian": "262d95bea34a593542793e44d8ab5e73a19408e44d9f78d00e08b123bbc6ebb2",
    "shipwreck": "4f7cf34e3cd4a5daaf3f421f059ca9a01aaa2a3afd7243d6670c9c8bc001a213",
    "contrast_of_forms": "e299c9e807ed4394a76e9a17f7879f81b46b89d5d78638955571c93bf25cda96",
    "reservoir": "58f6e233125f49d28fd35c17e6b10ca09992c1db0e8169b631998a8c615eb0c0",
}
WHERE = (
    "TAEF2 and TAESana from madebyollin/taesd as safetensors, the paintings listed in "
    "bench/world3/assets.py; this project's machines have them in ../shared/"
)


class MissingAssets(RuntimeError):
    """The real weights or paintings are absent or altered (one line, for people)."""


@dataclass(frozen=True)
class Assets:
    weights: Path  # folder holding taef2/ and taesana/
    paintings: Path

    def weight(self, name: str) -> Path:
        return self.weights / name

    def painting(self, name: str, size: int) -> np.ndarray:
        """The painting centre-cropped to a square and resized: uint8 (size, size, 3)."""
        with Image.open(self.paintings / f"{name}.jpg") as image:
            rgb = image.convert("RGB")
        width, height = rgb.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        square = rgb.crop((left, top, left + side, top + side))
        return np.asarray(square.resize((size, size), Image.LANCZOS)).copy()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def locate(weights: Path | None = None, paintings: Path | None = None) -> Assets:
    """The checked assets, from the given folders or ``../shared``; ``MissingAssets`` names
    the first file that is absent or altered."""
    assets = Assets(weights or SHARED / "models", paintings or SHARED / "paintings")
    expected = [(assets.weights / name, digest) for name, digest in WEIGHTS.items()]
    expected += [(assets.paintings / f"{name}.jpg", digest) for name, digest in PAINTINGS.items()]
    for path, digest in expected:
        if not path.is_file():
            raise MissingAssets(f"world 3 needs {path}, which is missing ({WHERE})")
        if sha256(path) != digest:
            raise MissingAssets(f"{path} does not match its SHA-256 in bench/world3/assets.py")
    return assets
