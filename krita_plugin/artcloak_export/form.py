"""The dialog's values as plain data: defaults, remembered settings, checks, the request.

No Qt and no Krita here, so all of it is tested without either. The dialog (dialog.py)
only moves these values in and out of widgets.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

from . import protocol

PLUGIN_ID = "artcloak_export"
FORMATS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp"}
EXTENSIONS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".webp": "webp"}
DEFAULT_STYLES = ("weave", "marble", "stripes", "mosaic")  # when worker.json has no list
LOSSY_WARNING = (
    "JPEG and WebP re-encode the image, and re-encoding weakens the protection. "
    "artcloak still measures the budget on the written file, but prefer PNG for posting "
    "where the site allows it."
)


class PluginError(Exception):
    """Something the artist can fix; its message is shown as is, in a message box."""


@dataclass
class FormValues:
    mode: str = "cloak"
    target_kind: str = "auto"  # cloak: auto (built-in default), style (catalogue), image
    style: str = ""
    style_image: str = ""
    anchors: list[str] = field(default_factory=list)  # shade: images of the target concept
    intensity: str = "default"
    quality: str = "default"
    output: str = ""
    format: str = "png"
    open_result: bool = True

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
    """``<folder>/<document name>-protected.<ext>``; the folder is the remembered one, else
    the document's, else the home folder."""
    stem = os.path.splitext(os.path.basename(document_path))[0] if document_path else ""
    name = (stem or "untitled") + "-protected" + FORMATS[values.format]
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
    found = protocol.target_problems(
        values.mode, values.target_kind, values.style, values.style_image, values.anchors
    )
    return found + protocol.output_problems(values.output, document_path)


@dataclass
class WorkerConfig:
    """What the installer recorded: which Python runs the worker, and request defaults."""

    python: str
    styles: list[str] = field(default_factory=lambda: list(DEFAULT_STYLES))
    request: dict = field(default_factory=dict)  # e.g. encoders, device: merged into requests
    artcloak: str = ""  # the version that was installed

    @classmethod
    def load(cls, plugin_dir: str) -> WorkerConfig:
        try:
            data = protocol.read_worker_config(plugin_dir, "krita")
        except protocol.ProtocolError as error:
            raise PluginError(str(error)) from None
        python, request = data["python"], data.get("request") or {}
        styles = data.get("styles")
        if not (isinstance(styles, list) and styles and all(isinstance(s, str) for s in styles)):
            styles = list(DEFAULT_STYLES)
        return cls(python=python, styles=styles, request=request, artcloak=data.get("artcloak", ""))


def build_request(
    values: FormValues, input_path: str, config: WorkerConfig, overwrite: bool = False
) -> protocol.WorkerRequest:
    """The worker request for the flattened document at ``input_path``."""
    style = None
    anchors: list[str] = []
    if values.mode == "cloak":
        if values.target_kind == "style":
            style = values.style
        elif values.target_kind == "image":
            style = values.style_image
    else:
        anchors = list(values.anchors)
    data = {
        "input": input_path,
        "output": os.path.abspath(values.output),
        "mode": values.mode,
        "style": style,
        "anchors": anchors,
        "intensity": values.intensity,
        "quality": values.quality,
        "overwrite": overwrite,
    }
    for name, value in config.request.items():  # the dialog's own choices win
        if name != "version":
            data.setdefault(name, value)
    request = protocol.WorkerRequest(**data)
    try:
        request.check()
    except protocol.ProtocolError as error:
        raise PluginError(str(error)) from None
    return request
