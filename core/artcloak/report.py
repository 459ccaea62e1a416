"""Measured figures -> one JSON report per output, written atomically."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .atomic import atomic_write
from .settings import ProtectionSettings


def artcloak_version() -> str:
    try:
        return version("artcloak")
    except PackageNotFoundError:
        return "unknown"


def settings_section(settings: ProtectionSettings) -> dict:
    budget = settings.budget()
    return {
        "mode": settings.mode.value,
        "intensity": settings.intensity.value,
        "quality": settings.quality.value,
        "budget": {"lpips": budget.lpips, "eps_255": round(budget.eps * 255, 4)},
        "steps": settings.effort().steps,
        "seed": settings.seed,
        "resolution": settings.resolution,
        "robust": settings.robust,
        "adaptive": settings.adaptive,
    }


def report_path(output: Path) -> Path:
    """The report sits next to its image: ``art-cloaked.png`` -> ``art-cloaked.png.json``."""
    return output.with_name(output.name + ".json")


def stamp() -> dict:
    return {"artcloak": artcloak_version(), "created": datetime.now(timezone.utc).isoformat()}


def write_json(path: Path, data: dict) -> None:
    """Write JSON atomically (see atomic.py)."""
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(path, lambda stream: stream.write(text.encode("utf-8")))
