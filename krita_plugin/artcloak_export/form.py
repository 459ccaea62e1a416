"""The dialog's values as plain data: defaults, remembered settings, output name and format.

No Qt and no Krita here, so all of it is tested without either. The dialog (dialog.py)
only moves these values in and out of widgets; the checks and the worker request are
client.py's (shared with the GIMP plug-in), through :meth:`FormValues.choices`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

from . import client, protocol

PLUGIN_ID = "artcloak_export"
FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
LOSSY_WARNING = (
    "JPEG and WebP re-encode the image, and re-encoding weakens the protection. "
    "artcloak still measures the budget on the written file, but prefer PNG for posting "
    "where the site allows it."
)


@dataclass
class FormValues:
    mode: str = "cloak"
    target_kind: str = "auto"  # cloak: auto (built-in default), style (catalogue), image
    style: str = ""
    style_image: str = ""
    anchors: list[str] = field(default_factory=list)  # shade: images of the target concept
    intensity: str = "default"
    quality: str = "default"
    adaptive: bool = False
    output: str = ""
    format: str = "png"
    open_result: bool = True

    def choices(self, overwrite: bool = False) -> client.Choices:
        """What the worker request is built from (``overwrite``: the person agreed to
        replace an existing output file)."""
        return client.Choices(
            output=self.output,
            mode=self.mode,
            target_kind=self.target_kind,
            style=self.style,
            style_image=self.style_image,
            anchors=list(self.anchors),
            intensity=self.intensity,
            quality=self.quality,
            adaptive=self.adaptive,
            overwrite=overwrite,
        )

    def to_settings(self) -> str:
        """What Krita remembers between uses (everything but the output file name)."""
        data = asdict(self)
        data["output_folder"] = os.path.dirname(data.pop("output"))
        return json.dumps(data)

    @classmethod
    def from_settings(cls, text: str | None) -> FormValues:
        """Remembered values; anything missing, unknown or malformed falls back to the default."""
        values = cls()
        try:
            data = json.loads(text or "{}")
        except ValueError:
            return values
        if not isinstance(data, dict):
            return values
        choices = {
            "mode": protocol.MODES,
            "target_kind": protocol.TARGET_KINDS,
            "intensity": protocol.INTENSITIES,
            "quality": protocol.QUALITIES,
            "format": tuple(FORMATS),
        }
        for item in fields(cls):
            if item.name not in data or item.name == "output":
                continue
            value = data[item.name]
            default = getattr(values, item.name)
            if item.name in choices:
                if value in choices[item.name]:
                    setattr(values, item.name, value)
            elif item.name == "anchors":
                if isinstance(value, list) and all(isinstance(a, str) for a in value):
                    values.anchors = value
            elif isinstance(value, type(default)):
                setattr(values, item.name, value)
        folder = data.get("output_folder")
        if isinstance(folder, str) and folder:
            values.output = folder  # a folder only: suggest_output() adds the name
        return values


def suggest_output(values: FormValues, document_path: str, home: str | None = None) -> str:
    """``<folder>/<document name>-cloaked.<ext>`` (``-shaded`` for shade, as the CLI names
    them); the folder is the remembered one, else the document's, else the home folder."""
    stem = os.path.splitext(os.path.basename(document_path))[0] if document_path else ""
    suffix = protocol.OUTPUT_SUFFIXES.get(values.mode, protocol.OUTPUT_SUFFIXES["cloak"])
    name = f"{stem or 'untitled'}-{suffix}{FORMATS[values.format]}"
    folder = values.output if values.output and os.path.isdir(values.output) else ""
    folder = folder or os.path.dirname(document_path) or (home or os.path.expanduser("~"))
    return os.path.join(folder, name)


def with_format(path: str, format_name: str) -> str:
    """The path with the extension of ``format_name`` (replacing a known image extension)."""
    root, extension = os.path.splitext(path)
    if extension.lower() in EXTENSIONS:
        if EXTENSIONS[extension.lower()] == format_name:
            return path
        path = root
    return path + FORMATS[format_name]


def format_warning(format_name: str) -> str:
    return "" if format_name == "png" else LOSSY_WARNING


def problems(values: FormValues, document_path: str = "") -> list[str]:
    """Everything wrong with the values, one sentence each; empty when they can run."""
    return client.problems(values.choices(), document_path)
