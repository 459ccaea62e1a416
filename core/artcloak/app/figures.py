"""What the page shows of one protected image: previews, the change amplified, what the model
sees (the encoder-decoder reconstructions), the measured budget and what survives JPEG and
resizing. Plain numpy/torch on the engine's models; no UI library."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..engine import DEGRADATIONS, Engine, load_image, model_view, viewing_encoder
from ..results import BudgetFigures, LatentShift, Report
from ..settings import ProtectionSettings

PREVIEW_SIDE = 768  # longest side of the pictures shown on the page
MIN_PREVIEW_SIDE = 384  # small pictures are enlarged (whole pixels) to at least this

SURVIVAL_LABELS = {
    "jpeg_q90": "JPEG quality 90",
    "jpeg_q75": "JPEG quality 75",
    "downscale_0.5": "resized to half",
}


@dataclass
class ResultFigures:
    """One protected image as the page shows it (paths are PNG previews)."""

    name: str  # the uploaded file's name
    output: Path  # the protected file, for download
    before: Path
    after: Path
    amplified: Path
    amplification: float  # how many times the change is magnified in ``amplified``
    seen_before: Path | None  # what the model reconstructs from the original (None: no decoder)
    seen_after: Path | None  # ... and from the protected image
    encoder: str
    measured: BudgetFigures  # on the written file
    budget: str
    toward_target: float | None  # share of the latent distance to the target closed, as written
    survival: dict[str, float | None] = field(default_factory=dict)  # label -> same, degraded
    notices: list[str] = field(default_factory=list)


def result_figures(
    engine: Engine,
    settings: ProtectionSettings,
    name: str,
    original_path: Path,
    output_path: Path,
    report: Report,
    folder: Path,
) -> ResultFigures:
    """Compute and save everything shown for one result into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    original, protected = load_image(original_path), load_image(output_path)
    budget = settings.budget()
    gain = 0.5 / budget.eps
    change = np.clip(0.5 + (protected.rgb - original.rgb) * gain, 0, 1)
    seen = reconstructions(engine, settings, original.rgb, protected.rgb)
    paths = {
        "before": _save(original.rgb, folder / "before.png"),
        "after": _save(protected.rgb, folder / "after.png"),
        "amplified": _save(change, folder / "amplified.png", resample=Image.Resampling.NEAREST),
        "seen_before": None if seen is None else _save(seen[0], folder / "seen-before.png"),
        "seen_after": None if seen is None else _save(seen[1], folder / "seen-after.png"),
    }
    return ResultFigures(
        name=name,
        output=output_path,
        amplification=round(gain, 1),
        encoder=_short(engine.encoders[0].source),
        measured=report.measured,
        budget=budget.describe(),
        toward_target=_closed(report.latent),
        survival=survival(engine, settings, original.rgb, protected.rgb),
        notices=list(report.notices),
        **paths,
    )


def reconstructions(
    engine: Engine, settings: ProtectionSettings, original: np.ndarray, protected: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """What the first encoder with a decoder sees of both images (float RGB); None when no
    encoder was loaded with a decoder (a tiny autoencoder without its decoder file)."""
    if viewing_encoder(engine) is None:
        return None
    return model_view(engine, original, settings), model_view(engine, protected, settings)


def survival(
    engine: Engine, settings: ProtectionSettings, original: np.ndarray, protected: np.ndarray
) -> dict[str, float | None]:
    """Share of the distance to the target still closed after what scrapers do to images."""
    return {
        SURVIVAL_LABELS.get(key, key): _closed(
            engine.latent_figures(degrade(original), degrade(protected), 1, settings)
        )
        for key, degrade in DEGRADATIONS.items()
    }


def _short(source: str) -> str:
    """A hub id as it is; a local file or folder by its name."""
    path = Path(source)
    return path.name if path.is_absolute() else source


def _closed(latent: list[LatentShift]) -> float | None:
    """The mean over encoders of ``distance_closed``."""
    values = [shift.distance_closed for shift in latent if shift.distance_closed is not None]
    return round(float(np.mean(values)), 4) if values else None


def _save(
    rgb: np.ndarray, path: Path, resample: Image.Resampling = Image.Resampling.LANCZOS
) -> Path:
    samples = np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(samples)
    if max(image.size) > PREVIEW_SIDE:
        image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), resample)
    factor = MIN_PREVIEW_SIDE // max(image.size)
    if factor > 1:  # e.g. the model's 64-pixel view: show its pixels, do not blur them
        image = image.resize(
            (image.width * factor, image.height * factor), Image.Resampling.NEAREST
        )
    image.save(path)
    return path
