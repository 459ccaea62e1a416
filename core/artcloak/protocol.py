"""The artcloak worker protocol: one JSON request in, JSON lines out.

Standard library only: this file is copied next to the Krita and GIMP plugins, whose
Python has no torch, so hosts and core share one definition. The worker
(``artcloak worker``) reads a request, then prints one JSON object per line:

    {"event": "progress", "stage": "optimise", "step": 3, "total": 50, "message": "..."}
    {"event": "notice", "message": "..."}
    {"event": "result", "output": "...", "report": "...", "lpips": 0.04, "linf_255": 8, "seconds": 12.5}
    {"event": "error", "message": "one sentence for people"}

and exits 0 after a result, non-zero after an error. Cancel = terminate the worker;
outputs are written atomically, so nothing partial is left.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

PROTOCOL_VERSION = 1
MODES = ("cloak", "shade")
INTENSITIES = ("low", "default", "high")
QUALITIES = ("faster", "default", "slower")
EVENTS = ("progress", "notice", "result", "error", "summary")


class ProtocolError(ValueError):
    """A request or event line that does not follow the protocol."""


@dataclass
class WorkerRequest:
    """Everything the worker needs to protect one image file."""

    input: str
    output: str
    mode: str = "cloak"
    style: str | None = None  # cloak: a built-in style/texture name or a style image path
    anchors: list[str] = field(default_factory=list)  # shade: concept anchor images
    concept: str | None = None  # shade: generate anchors of this concept instead
    anchors_count: int = 4  # how many anchors to generate for the concept
    diffusion: str | None = None  # target generation model: hub id, folder or .safetensors
    diffusion_config: str | None = None  # single files: sd1, sd2, sdxl or a config folder
    no_diffusion: bool = False  # built-in textures only, never generate
    intensity: str = "default"
    quality: str = "default"
    encoders: list[str] = field(default_factory=list)  # empty: artcloak's default encoder
    encoder_config: str | None = None
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False
    keep_mask: str | None = None
    steps: int | None = None
    eps_255: float | None = None
    lpips: float | None = None
    resolution: int | None = None
    robust: bool = False  # optimise through random resizing, JPEG, blur and noise
    adaptive: bool = False  # less change on flat colour (contrast masking)
    lpips_random_backbone: bool = False  # tests and offline checks only
    version: int = PROTOCOL_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProtocolError(f"The request is not valid JSON ({error.msg}).") from None
        if not isinstance(data, dict):
            raise ProtocolError("The request must be a JSON object.")
        known = {item.name for item in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ProtocolError(f"Unknown request field(s): {', '.join(unknown)}.")
        for name in ("input", "output"):
            if not isinstance(data.get(name), str) or not data[name]:
                raise ProtocolError(f"The request needs '{name}', a file path.")
        request = cls(**data)
        request.check()
        return request

    def check(self) -> None:
        _one_of("mode", self.mode, MODES)
        _one_of("intensity", self.intensity, INTENSITIES)
        _one_of("quality", self.quality, QUALITIES)
        if self.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"Request version {self.version}, but this worker speaks {PROTOCOL_VERSION}: "
                "reinstall the plugin with `artcloak install`."
            )
        if not isinstance(self.anchors, list) or not all(isinstance(a, str) for a in self.anchors):
            raise ProtocolError("'anchors' must be a list of file paths.")
        if not isinstance(self.encoders, list) or not all(
            isinstance(e, str) for e in self.encoders
        ):
            raise ProtocolError("'encoders' must be a list of strings.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ProtocolError("'seed' must be an integer.")
        for name in ("concept", "diffusion", "diffusion_config"):
            if getattr(self, name) is not None and not isinstance(getattr(self, name), str):
                raise ProtocolError(f"'{name}' must be a string.")
        for name in ("robust", "adaptive", "no_diffusion", "overwrite"):
            if not isinstance(getattr(self, name), bool):
                raise ProtocolError(f"'{name}' must be true or false.")
        count = self.anchors_count
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 64:
            raise ProtocolError("'anchors_count' must be an integer from 1 to 64.")


def _one_of(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ProtocolError(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}.")


def progress(stage: str, step: int, total: int, message: str = "", **extra: object) -> dict:
    return {"event": "progress", "stage": stage, "step": step, "total": total,
            "message": message, **extra}  # fmt: skip


def notice(message: str) -> dict:
    return {"event": "notice", "message": message}


def error(message: str, **extra: object) -> dict:
    return {"event": "error", "message": message, **extra}


def result(output: str, **figures: object) -> dict:
    return {"event": "result", "output": output, **figures}


def encode(event: dict) -> str:
    """One event as one line of JSON (no newline inside)."""
    return json.dumps(event, separators=(",", ":"), allow_nan=False)


def decode(line: str) -> dict:
    """Parse one line the worker printed; ProtocolError if it is not an event."""
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        raise ProtocolError(f"Not a protocol line: {line[:200]!r}") from None
    if not isinstance(event, dict) or event.get("event") not in EVENTS:
        raise ProtocolError(f"Not a protocol event: {line[:200]!r}")
    return event


# --- What both editor plugins check before they start the worker --------------------------

CONFIG_FILE = "worker.json"  # written by `artcloak install krita|gimp` next to the plugin
OUTPUT_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
TARGET_KINDS = ("auto", "style", "image")  # cloak: built-in default, a style by name, an image


def target_problems(
    mode: str, target_kind: str, style: str, style_image: str, anchors: list[str]
) -> list[str]:
    """What is wrong with the chosen protection and its target, one sentence each."""
    found = []
    if mode == "cloak":
        if target_kind not in TARGET_KINDS:
            found.append(f"Unknown target kind {target_kind!r}.")
        elif target_kind == "style" and not style.strip():
            found.append("Choose a style, or 'Automatic'.")
        elif target_kind == "image" and not os.path.isfile(style_image):
            found.append("Choose the style image to move the style toward (it does not exist).")
    elif mode == "shade":
        if not anchors:
            found.append("Shade needs at least one image of the target concept (an anchor).")
        missing = [a for a in anchors if not os.path.isfile(a)]
        if missing:
            found.append(f"These anchor images do not exist: {', '.join(missing)}.")
    else:
        found.append(f"Unknown protection {mode!r}.")
    return found


def output_problems(output: str, original: str = "") -> list[str]:
    """What is wrong with the output file name, one sentence each; it must never be the
    original's own file."""
    output = output.strip()
    if not output:
        return ["Choose the output file."]
    found = []
    if os.path.splitext(output)[1].lower() not in OUTPUT_EXTENSIONS:
        found.append("The output file must end in .png, .jpg, .jpeg or .webp.")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):
        found.append(f"The output folder {folder} does not exist.")
    if original and _same_file(output, original):
        found.append(
            "The output would replace the original's own file; choose another name "
            "(artcloak never modifies the original)."
        )
    return found


def _same_file(a: str, b: str) -> bool:
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def read_worker_config(plugin_dir: str, host: str) -> dict:
    """The plugin's worker.json, with a 'python' and known 'request' settings checked;
    ProtocolError saying what to do otherwise. ``host``: krita or gimp."""
    path = os.path.join(plugin_dir, CONFIG_FILE)
    plugin = "plug-in" if host == "gimp" else "plugin"
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except FileNotFoundError:
        raise ProtocolError(
            f"The artcloak {plugin} is not set up ({path} is missing). Run "
            f"`artcloak install {host}` in the environment where artcloak is installed."
        ) from None
    except (OSError, ValueError) as error:
        raise ProtocolError(
            f"Cannot read {path} ({error}); run `artcloak install {host}`."
        ) from None
    python = data.get("python") if isinstance(data, dict) else None
    if not isinstance(python, str) or not python:
        raise ProtocolError(f"{path} does not say which Python runs artcloak; reinstall it.")
    known = {item.name for item in fields(WorkerRequest)}
    request = data.get("request") or {}
    if not isinstance(request, dict) or set(request) - known:
        raise ProtocolError(f"{path} has unknown request settings; reinstall the {plugin}.")
    return data
