"""Measured figures -> one JSON report per output, written atomically."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from .atomic import atomic_write
from .settings import PROTECTION_NAMES, ProtectionSettings, to_flat


def artcloak_version() -> str:
    try:
        return version("artcloak")
    except PackageNotFoundError:
        return "unknown"


# Settings the report states as the values they resolve to (the budget and the steps), not as
# the overrides asked for; the target has its own section.
RESOLVED = {"eps_255", "lpips", "steps"}


def settings_section(settings: ProtectionSettings) -> dict:
    """Every protection setting by its flat name, the budget and steps as resolved: a new
    setting appears here (and in a batch's run key) without a change to this file."""
    budget = settings.budget()
    flat = to_flat(settings)
    plain = {
        name: value
        for name, value in flat.items()
        if PROTECTION_NAMES[name][0] != "target" and name not in RESOLVED
    }
    first = {name: plain.pop(name) for name in ("mode", "intensity", "quality")}
    return {
        **first,
        "budget": {"lpips": budget.lpips, "eps_255": budget.eps_255},
        "steps": settings.effort().steps,
        **plain,
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
