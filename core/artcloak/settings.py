"""The request: the plain data every host fills in and the core reads (standard library only).

``ProtectionSettings`` (how to protect, with its ``Target``) and ``ModelSettings`` (which models,
where) are the whole tree. Hosts build it directly, or from flat values by name with
:func:`request_from_flat` (the CLI's options, the worker protocol's JSON), which checks every
value's type and then its range (``check()``), with messages for people.

A new knob is one field here (and its line in ``check()``), its flag in ``cli/options.py``, and
its use in the engine: the worker protocol and the reports pick it up by name.

Pixels are floats in [0, 1]; an eps is given in 0-255 units (``eps_255=8`` is 8/255) and
``Budget.eps`` holds it in [0, 1]. LPIPS is the ``lpips`` package's distance on [0, 1] images.
"""

from __future__ import annotations

import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from enum import Enum
from pathlib import Path
from typing import Any

from .errors import A_CONCEPT, A_STYLE, ANCHOR_IMAGES, SettingsError
from .results import TargetDescription

WIRE = "wire"  # field metadata: False keeps a field out of the flat values (in memory only)
FLAT = "flat"  # field metadata: the field's flat name, where its own would be ambiguous


class Mode(str, Enum):
    """cloak hides a style; shade poisons a concept."""

    CLOAK = "cloak"
    SHADE = "shade"


class Intensity(str, Enum):
    """How much visible change the artist accepts (the perceptual budget)."""

    LOW = "low"
    DEFAULT = "default"
    HIGH = "high"


class Quality(str, Enum):
    """Render quality: how much optimisation effort to spend."""

    FASTER = "faster"
    DEFAULT = "default"
    SLOWER = "slower"


class Precision(str, Enum):
    """Arithmetic of the encoder passes. auto: bf16 on CUDA (fp16 where bf16 is missing) and on
    CPUs with AMX tiles (bf16 matrix units), else fp32."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"


class LpipsNet(str, Enum):
    ALEX = "alex"
    VGG = "vgg"


@dataclass(frozen=True)
class Budget:
    """The promise to the artist: both bounds hold on the written file."""

    lpips: float
    eps: float  # L-inf bound, [0, 1] pixel units

    @property
    def eps_255(self) -> float:
        """The L-inf bound in 0-255 units, as people are told it."""
        return round(self.eps * 255, 4)

    def describe(self) -> str:
        return f"LPIPS <= {self.lpips:g}, L-inf <= {self.eps_255:g}/255"


@dataclass(frozen=True)
class Effort:
    """How the optimisation loop spends encoder passes."""

    steps: int  # at most this many steps, one encoder pass each (the first at the start)
    lpips_every: int = (
        4  # LPIPS penalty evaluated every this many steps (every step near its bound)
    )
    # Steps without progress before the loop winds down (None: never), and the steps of
    # shrinking step size it then takes. Measured on the bench world's VAE (bench/speed.py):
    # 3 and 4 close the same latent distance as 6 and 10 in about a third fewer passes.
    patience: int | None = 3
    cool_down: int = 4


INTENSITY_BUDGETS: dict[Intensity, Budget] = {
    Intensity.LOW: Budget(lpips=0.03, eps=4 / 255),
    Intensity.DEFAULT: Budget(lpips=0.05, eps=8 / 255),
    Intensity.HIGH: Budget(lpips=0.10, eps=16 / 255),
}

# Each preset is a budget of encoder passes (one a step), set on a real encoder: on TAEF2 at
# 256 px and 8/255 (14 artworks toward another style, painting or texture; `python
# bench/step_rules.py --passes 10 15 20 30`, bench/reports/passes.md) the median image reached
# 91.7% / 95.3% / 98.2% of its ceiling's latent distance in 10 / 15 / 30 passes (16 held-out
# artworks: 91.4 / 94.95 / 98.0%). At 512 px (10 artworks, `bench/step_rule_trials.py --size 512`,
# README, world 3's section): 90.3 / 94.1 / 97.4%, and 95% takes 18-20 passes.
QUALITY_EFFORT: dict[Quality, Effort] = {
    Quality.FASTER: Effort(steps=10),
    Quality.DEFAULT: Effort(steps=15),
    Quality.SLOWER: Effort(steps=30),
}

MAX_EPS = 64 / 255
MAX_STEPS = 10_000
MAX_SEED = 2**63 - 1
MAX_ANCHORS = 64
# Longest text setting (a path's usual limit) and longest list: anything past them is a mistake
# or hostile, refused before it reaches a file system call or a message.
MAX_TEXT = 4096
MAX_ITEMS = 1000

DEFAULT_ENCODER = "stabilityai/sd-vae-ft-mse"  # the SD 1.x VAE on the Hugging Face hub
DEFAULT_DIFFUSION = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD 1.5 on the hub
DEFAULT_STYLE = "weave"  # cloak without a style: this built-in texture, in every host
# ``art.png`` -> ``art-cloaked.png``: the output name every host suggests, per mode
OUTPUT_SUFFIXES = {Mode.CLOAK: "cloaked", Mode.SHADE: "shaded"}


def _check_number(
    name: str, value: float | None, low: float, high: float, low_open: bool = False
) -> None:
    """``value`` (None: not given) must be a finite number in [low, high], or in (low, high]
    with ``low_open``."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"'{name}' must be a number, got {value!r}.")
    too_low = value <= low if low_open else value < low
    if not math.isfinite(value) or too_low or value > high:
        opening = "(" if low_open else "["
        raise SettingsError(
            f"'{name}' must be in {opening}{_number(low)}, {_number(high)}], got {value!r}."
        )


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class ModelSettings:
    """Which models to load and where: shared by every image of a run."""

    encoders: tuple[str, ...] = (DEFAULT_ENCODER,)  # empty: the default encoder
    encoder_config: str | None = None  # a family name or a config file/folder, for single files
    allow_pickle: bool = False
    device: str = "auto"
    precision: Precision = Precision.AUTO
    lpips_net: LpipsNet = LpipsNet.ALEX
    # Random LPIPS backbone: only for tests and offline benches; the budget is then not perceptual.
    lpips_random_backbone: bool = False

    def __post_init__(self) -> None:
        if not self.encoders:
            object.__setattr__(self, "encoders", (DEFAULT_ENCODER,))

    def check(self) -> None:
        if not all(isinstance(source, str) and source.strip() for source in self.encoders):
            raise SettingsError("Each encoder must be a hub id, a folder or a file.")
        if not self.device.strip():
            raise SettingsError("'device' must be auto, cpu, cuda, cuda:N or mps.")


@dataclass(frozen=True)
class Diffusion:
    """The diffusers pipeline that generates targets, and how it runs.

    ``model``: hub id, diffusers folder or single checkpoint file; None means the
    ``ARTCLOAK_DIFFUSION`` environment variable, else DEFAULT_DIFFUSION if it is already in
    the local Hugging Face cache (it is never downloaded unasked). ``enabled=False``: the
    built-in textures only.
    """

    model: str | None = field(default=None, metadata={FLAT: "diffusion"})
    config: str | None = None  # single files: sd1, sd2, sdxl or a diffusers config folder
    strength: float = 0.4  # img2img: how far the artwork is re-rendered toward the style
    guidance: float = 7.5
    steps: int = 30
    seed: int = 0
    enabled: bool = True

    def check(self) -> None:
        _check_number("diffusion_strength", self.strength, 0, 1, low_open=True)
        _check_number("diffusion_guidance", self.guidance, 0, 100)
        _check_number("diffusion_steps", self.steps, 1, 1000)
        _check_number("diffusion_seed", self.seed, 0, MAX_SEED)


@dataclass(frozen=True, eq=False)
class Target:
    """What the encoder should see instead.

    cloak: ``style`` is a built-in texture name, a catalogue style (generated with
    ``diffusion``, see ``artcloak styles``), ``auto`` (the catalogue style measured farthest
    from the batch), ``auto-per-image``, or a path to a style image.
    shade: ``anchors`` are one or more images of the target concept, or ``concept`` names it
    and ``anchors_count`` anchors are generated ("A photo of a {concept}").
    ``images``: target pixels already in memory (numpy float32 H x W x 3 in [0, 1]; style
    images for cloak, anchors for shade), as hosts such as ComfyUI have them; they take
    precedence. ``described``: how artcloak made or chose this target, for reports.
    Targets compare by identity, so engines cache their latents per Target object.
    """

    style: str | None = None
    anchors: tuple[Path, ...] = ()
    concept: str | None = None
    anchors_count: int = 4
    diffusion: Diffusion = field(default_factory=Diffusion)
    images: tuple[Any, ...] = field(default=(), metadata={WIRE: False})
    described: TargetDescription | None = field(default=None, metadata={WIRE: False})

    def check(self, mode: Mode) -> None:
        _check_number("anchors_count", self.anchors_count, 1, MAX_ANCHORS)
        self.diffusion.check()
        if mode is Mode.SHADE and not (self.anchors or self.images or self.concept):
            raise SettingsError("shade needs a concept or anchor images.",
                                named=(A_CONCEPT, ANCHOR_IMAGES))  # fmt: skip
        if mode is Mode.CLOAK and self.anchors:
            raise SettingsError(
                "Anchor images are for shade; cloak takes a style.", named=(A_STYLE,)
            )


@dataclass(frozen=True)
class ProtectionSettings:
    """How to protect: mode, target and the two artist-facing knobs, with explicit overrides."""

    mode: Mode = Mode.CLOAK
    target: Target = field(default_factory=Target)
    intensity: Intensity = Intensity.DEFAULT
    quality: Quality = Quality.DEFAULT
    eps_255: float | None = None  # L-inf bound in 0-255 units; overrides the intensity preset
    lpips: float | None = None  # overrides the intensity preset
    steps: int | None = None  # overrides the quality preset
    seed: int = 0
    resolution: int | None = None  # working shorter side; None = the encoders' training resolution
    robust: bool = False  # optimise through random resizing, JPEG, blur and noise
    adaptive: bool = False  # less change on flat colour, the whole eps only in texture

    def budget(self) -> Budget:
        preset = INTENSITY_BUDGETS[self.intensity]
        return Budget(
            lpips=preset.lpips if self.lpips is None else self.lpips,
            eps=preset.eps if self.eps_255 is None else self.eps_255 / 255,
        )

    def effort(self) -> Effort:
        preset = QUALITY_EFFORT[self.quality]
        return preset if self.steps is None else replace(preset, steps=self.steps)

    def check(self) -> None:
        """Raise SettingsError with a specific message for any invalid value. A shade request
        with a ``concept`` passes without anchors: they are generated later."""
        _check_number("eps_255", self.eps_255, 0, MAX_EPS * 255, low_open=True)
        _check_number("lpips", self.lpips, 0, 1, low_open=True)
        _check_number("steps", self.steps, 1, MAX_STEPS)
        _check_number("seed", self.seed, 0, MAX_SEED)
        _check_number("resolution", self.resolution, 64, 4096)
        self.target.check(self.mode)


@dataclass(frozen=True)
class OutputSettings:
    """How results are written."""

    format: str | None = None  # None: keep a lossless input format, else PNG
    jpeg_quality: int = 95
    overwrite: bool = False  # replace an existing output (never the input itself)
    write_report: bool = True


@dataclass(frozen=True)
class FileRequest:
    """One image file to protect: the seam between every host and the core."""

    source: Path
    output: Path
    keep_mask: Path | None = None  # white pixels are left bit-exact


# --- Flat values by name: the CLI's options and the worker protocol's JSON -------------------
#
# Every field of the tree has a flat name: its own (``style``, ``steps``, ``encoders``), or
# ``diffusion_<name>`` inside ``Diffusion`` (``diffusion_steps``), or the one its ``FLAT``
# metadata gives (``diffusion``: the diffusion model). Fields marked ``WIRE: False`` (pixels in
# memory, descriptions the engine makes) have none.


def _flat_fields(cls: type, prefix: str = "") -> dict[str, tuple[str, ...]]:
    hints = typing.get_type_hints(cls)
    names: dict[str, tuple[str, ...]] = {}
    for item in fields(cls):
        if item.metadata.get(WIRE, True) is False:
            continue
        kind = hints[item.name]
        if is_dataclass(kind):
            inner = "diffusion_" if kind is Diffusion else ""
            for flat, path in _flat_fields(kind, inner).items():
                names[flat] = (item.name, *path)
        else:
            names[item.metadata.get(FLAT, prefix + item.name)] = (item.name,)
    return names


PROTECTION_NAMES = _flat_fields(ProtectionSettings)
MODEL_NAMES = _flat_fields(ModelSettings)
FLAT_NAMES = frozenset(PROTECTION_NAMES) | frozenset(MODEL_NAMES)


def request_from_flat(
    values: Mapping[str, object], check: bool = True
) -> tuple[ProtectionSettings, ModelSettings]:
    """The settings that flat ``values`` (by flat name, JSON types) ask for; absent names keep
    their defaults. SettingsError names the first unknown name, wrong type or (with ``check``;
    without, for a host that adds the target in memory later) bad value."""
    unknown = sorted(set(values) - FLAT_NAMES)
    if unknown:
        raise SettingsError(f"Unknown setting(s): {', '.join(unknown)[:MAX_TEXT]}.")
    for name, value in values.items():
        _check_size(name, value)
    protection = _build(ProtectionSettings, PROTECTION_NAMES, values)
    models = _build(ModelSettings, MODEL_NAMES, values)
    if check:
        protection.check()
        models.check()
    return protection, models


def _check_size(name: str, value: object) -> None:
    """A text of at most MAX_TEXT characters, a list of at most MAX_ITEMS such texts."""
    items = value if isinstance(value, (list, tuple)) else [value]
    if len(items) > MAX_ITEMS:
        raise SettingsError(f"'{name}' has {len(items)} items; at most {MAX_ITEMS}.")
    for item in items:
        if isinstance(item, str) and len(item) > MAX_TEXT:
            raise SettingsError(f"'{name}' is {len(item)} characters long; at most {MAX_TEXT}.")


def to_flat(protection: ProtectionSettings, models: ModelSettings | None = None) -> dict:
    """The flat values (JSON types) that ``request_from_flat`` turns back into these settings."""
    flat = _flatten(protection, PROTECTION_NAMES)
    if models is not None:
        flat.update(_flatten(models, MODEL_NAMES))
    return flat


def _flatten(settings: object, names: dict[str, tuple[str, ...]]) -> dict:
    flat = {}
    for name, path in names.items():
        value = settings
        for step in path:
            value = getattr(value, step)
        flat[name] = _to_json(value)
    return flat


def _to_json(value: object) -> object:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_to_json(item) for item in value]
    return value


def _build(cls: type, names: dict[str, tuple[str, ...]], values: Mapping[str, object]) -> Any:
    given: dict = {}
    for name, path in names.items():
        if name in values:
            holder = given
            for step in path[:-1]:
                holder = holder.setdefault(step, {})
            holder[path[-1]] = (name, values[name])
    return _construct(cls, given)


def _construct(cls: type, given: dict) -> Any:
    hints = typing.get_type_hints(cls)
    arguments = {}
    for key, item in given.items():
        if isinstance(item, dict):
            arguments[key] = _construct(hints[key], item)
        else:
            name, value = item
            arguments[key] = _convert(name, value, hints[key])
    return cls(**arguments)


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def _convert(name: str, value: object, kind: Any) -> object:
    """``value`` as the field type ``kind``; SettingsError naming ``name`` otherwise."""
    arguments = typing.get_args(kind)
    if type(None) in arguments:  # X | None
        if value is None:
            return None
        (kind,) = [argument for argument in arguments if argument is not type(None)]
        arguments = typing.get_args(kind)
    if typing.get_origin(kind) is tuple:
        if not isinstance(value, (list, tuple)):
            raise SettingsError(f"'{name}' must be a list, got {value!r}.")
        return tuple(_convert(name, item, arguments[0]) for item in value)
    if isinstance(kind, type) and issubclass(kind, Enum):
        allowed = [member.value for member in kind]
        if value not in allowed:
            raise SettingsError(f"'{name}' must be one of {', '.join(allowed)}; got {value!r}.")
        return kind(value)
    if kind is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise SettingsError(f"'{name}' must be a file path, got {value!r}.")
        return Path(value)
    if kind is float and type(value) is int:
        return float(value)
    if kind in _TYPE_WORDS and type(value) is not kind:
        raise SettingsError(f"'{name}' must be {_TYPE_WORDS[kind]}, got {value!r}.")
    return value
