"""The page's form as plain data: choices, defaults, what is remembered, and the settings it makes.

The form is remembered in the browser as a dict (``FormValues.as_dict``); files (style image,
anchors) are never remembered.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import SettingsError
from ..settings import (
    DEFAULT_STYLE,
    INTENSITY_BUDGETS,
    QUALITY_EFFORT,
    Intensity,
    Mode,
    ProtectionSettings,
    Quality,
    request_from_flat,
)

STYLE_IMAGE = "style image…"  # the style choice that shows the style-image upload
FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WebP": ".webp"}
LOSSY_WARNING = (
    "JPEG and WebP re-encode the pixels, which weakens the protection; each result says how much "
    "survived. PNG keeps it all."
)


def style_choices() -> list[str]:
    """The catalogue (with ``auto`` first when the catalogue has it), then a style image."""
    from ..engine import available_styles

    styles = list(available_styles())
    if "auto" in styles:
        styles.remove("auto")
        styles.insert(0, "auto")
    return [*styles, STYLE_IMAGE]


def default_style() -> str:
    """The core's default style (what the CLI uses without --style), as in every host."""
    return DEFAULT_STYLE


def intensity_label(intensity: Intensity) -> str:
    budget = INTENSITY_BUDGETS[intensity]
    return f"{intensity.value} (LPIPS {budget.lpips:g}, {budget.eps_255:g}/255)"


def quality_label(quality: Quality) -> str:
    return f"{quality.value} ({QUALITY_EFFORT[quality].steps} steps)"


@dataclass(frozen=True)
class FormValues:
    """What the artist chose on the page (files aside)."""

    mode: str = Mode.CLOAK.value
    style: str = ""  # "" = the default style
    concept: str = ""
    intensity: str = Intensity.DEFAULT.value
    quality: str = Quality.DEFAULT.value
    output_format: str = "PNG"
    adaptive: bool = False  # the texture-shaped budget

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, stored: object) -> FormValues:
        """Remembered values, each dropped back to its default when unknown or invalid."""
        values = stored if isinstance(stored, dict) else {}
        default = cls()
        choices = {
            "mode": [m.value for m in Mode],
            "style": style_choices(),
            "intensity": [i.value for i in Intensity],
            "quality": [q.value for q in Quality],
            "output_format": list(FORMATS),
        }
        kept = {}
        for name, allowed in choices.items():
            value = values.get(name)
            kept[name] = value if value in allowed else getattr(default, name)
        concept = values.get("concept")
        kept["concept"] = concept[:200] if isinstance(concept, str) else ""
        kept["adaptive"] = values.get("adaptive") is True
        if not kept["style"]:
            kept["style"] = default_style()
        return cls(**kept)

    @property
    def extension(self) -> str:
        return FORMATS.get(self.output_format, ".png")

    @property
    def lossy(self) -> bool:
        return self.extension != ".png"

    def settings(
        self,
        style_image: Path | None = None,
        anchors: Sequence[Path] = (),
        resolution: int | None = None,
        seed: int = 0,
    ) -> ProtectionSettings:
        """The protection settings; SettingsError with a message for the page when incomplete."""
        values: dict = {"mode": self.mode, "intensity": self.intensity, "quality": self.quality,
                        "adaptive": self.adaptive, "seed": seed, "resolution": resolution}  # fmt: skip
        if Mode(self.mode) is Mode.CLOAK:
            if self.style == STYLE_IMAGE:
                if style_image is None:
                    raise SettingsError("Choose a style image, or pick a style from the list.")
                values["style"] = str(style_image)
            else:
                values["style"] = self.style or default_style()
        elif anchors:
            values["anchors"] = [str(path) for path in anchors]
        elif self.concept.strip():
            values["concept"] = self.concept.strip()
        else:
            raise SettingsError(
                "shade needs a concept or one or more images of the target concept."
            )
        settings, _ = request_from_flat(values, check=False)  # checked when submitted
        return settings
