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
from dataclasses import dataclass, field

PROTOCOL_VERSION = 2
MODES = ("cloak", "shade")
INTENSITIES = ("low", "default", "high")
QUALITIES = ("faster", "default", "slower")
EVENTS = ("progress", "notice", "result", "error", "summary")


class ProtocolError(ValueError):
    """A request or event line that does not follow the protocol."""


@dataclass
class WorkerRequest:
    """One image file to protect, and the settings to protect it with.

    On the wire it is one flat JSON object: ``version``, ``input``, ``output``, ``keep_mask``,
    ``overwrite``, and each setting by its flat name (``mode``, ``style``, ``intensity``,
    ``eps_255``, ``encoders``, ...: the names of artcloak's ``settings.request_from_flat``,
    which the worker uses to check them). This file does not list the settings, so a new
    setting needs no change here.
    """

    input: str
    output: str
    keep_mask: str | None = None  # white pixels are left bit-exact
    overwrite: bool = False
    settings: dict = field(default_factory=dict)
    version: int = PROTOCOL_VERSION

    def to_json(self) -> str:
        return json.dumps(self.to_wire())

    def to_wire(self) -> dict:
        envelope = {name: getattr(self, name) for name in ENVELOPE}
        return {**self.settings, **envelope}

    @classmethod
    def from_json(cls, text: str) -> WorkerRequest:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProtocolError(f"The request is not valid JSON ({error.msg}).") from None
        if not isinstance(data, dict):
            raise ProtocolError("The request must be a JSON object.")
        return cls.from_wire(data)

    @classmethod
    def from_wire(cls, data: dict) -> WorkerRequest:
        envelope = {name: data[name] for name in ENVELOPE if name in data}
        settings = {name: value for name, value in data.items() if name not in ENVELOPE}
        for name in ("input", "output"):
            if not isinstance(envelope.get(name), str) or not envelope[name]:
                raise ProtocolError(f"The request needs '{name}', a file path.")
        for name in ("input", "output", "keep_mask"):
            if isinstance(envelope.get(name), str) and len(envelope[name]) > MAX_PATH:
                raise ProtocolError(f"'{name}' is {len(envelope[name])} characters long; "
                                    f"a path has at most {MAX_PATH}.")  # fmt: skip
        request = cls(**envelope, settings=settings)
        request.check()
        return request

    def check(self) -> None:
        """The envelope's types; the worker checks the settings."""
        if self.version != PROTOCOL_VERSION:
            raise ProtocolError(
                f"Request version {self.version}, but this worker speaks {PROTOCOL_VERSION}: "
                "reinstall the plugin with `artcloak install`."
            )
        if self.keep_mask is not None and (
            not isinstance(self.keep_mask, str) or not self.keep_mask
        ):
            raise ProtocolError("'keep_mask' must be a file path.")
        if not isinstance(self.overwrite, bool):
            raise ProtocolError("'overwrite' must be true or false.")
        if not isinstance(self.settings, dict):
            raise ProtocolError("The request's settings must be a JSON object.")


ENVELOPE = ("version", "input", "output", "keep_mask", "overwrite")
MAX_PATH = 4096  # characters in a path (settings.MAX_TEXT for the settings)


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
# The core's settings.DEFAULT_STYLE and OUTPUT_SUFFIXES, for the plugins, which cannot import
# settings (tests/test_protocol.py compares them).
DEFAULT_STYLE = "weave"  # what target kind "auto" gives: the style the worker uses for none
OUTPUT_SUFFIXES = {"cloak": "cloaked", "shade": "shaded"}  # art.png -> art-cloaked.png
# The texture-shaped budget (the setting ``adaptive``, off by default) in the words every host
# shows: the app, the Krita and GIMP dialogs, ComfyUI's Cloak and Shade, the CLI's help.
ADAPTIVE_LABEL = "Shape the change to texture"
ADAPTIVE_HELP = (
    "More change in textured areas and less on flat colour, so the change is less visible at "
    "the same strength. It does not stop mimicry better than the default (artcloak's bench: no "
    "difference beyond noise)."
)


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
    request = data.get("request") or {}
    if not isinstance(request, dict) or set(request) & set(ENVELOPE):
        raise ProtocolError(
            f"{path} has request settings a plugin cannot use as defaults; reinstall the {plugin}."
        )
    return data
