"""Requests and presets: the plain data every host fills in and the core reads.

Pixels are floats in [0, 1]; ``eps`` is stored in that unit and shown to people in
0-255 units (``8/255``). LPIPS is the ``lpips`` package's distance on [0, 1] images.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

import numpy as np

from .errors import SettingsError


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
    """Arithmetic of the encoder passes. auto: bf16 on CUDA (fp16 where bf16 is missing), else fp32."""

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

    def describe(self) -> str:
        return f"LPIPS <= {self.lpips:g}, L-inf <= {self.eps * 255:g}/255"


@dataclass(frozen=True)
class Effort:
    """How the optimisation loop spends encoder passes."""

    steps: int  # at most this many steps
    lpips_every: int = (
        4  # LPIPS penalty evaluated every this many steps (every step near its bound)
    )
    patience: int | None = 6  # steps without progress before the loop winds down; None: never


INTENSITY_BUDGETS: dict[Intensity, Budget] = {
    Intensity.LOW: Budget(lpips=0.03, eps=4 / 255),
    Intensity.DEFAULT: Budget(lpips=0.05, eps=8 / 255),
    Intensity.HIGH: Budget(lpips=0.10, eps=16 / 255),
}

QUALITY_EFFORT: dict[Quality, Effort] = {
    Quality.FASTER: Effort(steps=25),
    Quality.DEFAULT: Effort(steps=50),
    Quality.SLOWER: Effort(steps=200),
}

MAX_EPS = 64 / 255
MAX_STEPS = 10_000


DEFAULT_ENCODER = "stabilityai/sd-vae-ft-mse"  # the SD 1.x VAE on the Hugging Face hub


@dataclass(frozen=True)
class ModelSettings:
    """Which models to load and where: shared by every image of a run."""

    encoders: tuple[str, ...] = (DEFAULT_ENCODER,)
    encoder_config: str | None = None  # a family name or a config file/folder, for single files
    allow_pickle: bool = False
    device: str = "auto"
    precision: Precision = Precision.AUTO
    lpips_net: LpipsNet = LpipsNet.ALEX
    # Random LPIPS backbone: only for tests and offline benches; the budget is then not perceptual.
    lpips_random_backbone: bool = False

    def __post_init__(self) -> None:
        if not self.encoders:
            raise SettingsError("At least one encoder is needed.")


DEFAULT_DIFFUSION = "stable-diffusion-v1-5/stable-diffusion-v1-5"  # SD 1.5 on the hub


@dataclass(frozen=True)
class Diffusion:
    """The diffusers pipeline that generates targets, and how it runs.

    ``model``: hub id, diffusers folder or single checkpoint file; None means the
    ``ARTCLOAK_DIFFUSION`` environment variable, else DEFAULT_DIFFUSION if it is already in
    the local Hugging Face cache (it is never downloaded unasked). ``enabled=False``: the
    built-in textures only.
    """

    model: str | None = None
    config: str | None = None  # single files: sd1, sd2, sdxl or a diffusers config folder
    strength: float = 0.4  # img2img: how far the artwork is re-rendered toward the style
    guidance: float = 7.5
    steps: int = 30
    seed: int = 0
    enabled: bool = True


@dataclass(frozen=True, eq=False)
class Target:
    """What the encoder should see instead.

    cloak: ``style`` is a built-in texture name, a catalogue style (generated with
    ``diffusion``, see ``artcloak styles``), ``auto`` (the catalogue style measured farthest
    from the batch), ``auto-per-image``, or a path to a style image.
    shade: ``anchors`` are one or more images of the target concept, or ``concept`` names it
    and ``anchor_count`` anchors are generated ("A photo of a {concept}").
    ``images``: target pixels already in memory (float32 H x W x 3 in [0, 1]; style images
    for cloak, anchors for shade), as hosts such as ComfyUI have them; they take precedence.
    ``described``: how artcloak made or chose this target, for reports.
    Targets compare by identity, so engines cache their latents per Target object.
    """

    style: str | None = None
    anchors: tuple[Path, ...] = ()
    images: tuple[np.ndarray, ...] = ()
    concept: str | None = None
    anchor_count: int = 4
    diffusion: Diffusion = field(default_factory=Diffusion)
    described: dict | None = None


@dataclass(frozen=True)
class ProtectionSettings:
    """How to protect: mode, target and the two artist-facing knobs, with explicit overrides."""

    mode: Mode = Mode.CLOAK
    target: Target = field(default_factory=Target)
    intensity: Intensity = Intensity.DEFAULT
    quality: Quality = Quality.DEFAULT
    eps: float | None = None  # overrides the intensity preset, [0, 1] units
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
            eps=preset.eps if self.eps is None else self.eps,
        )

    def effort(self) -> Effort:
        preset = QUALITY_EFFORT[self.quality]
        return preset if self.steps is None else replace(preset, steps=self.steps)

    def check(self) -> None:
        """Raise SettingsError with a specific message for any invalid value."""
        budget = self.budget()
        if not 0 < budget.eps <= MAX_EPS:
            raise SettingsError(
                f"eps must be between 0 and {MAX_EPS * 255:g}/255, got {budget.eps * 255:g}/255."
            )
        if not 0 < budget.lpips <= 1:
            raise SettingsError(f"The LPIPS budget must be in (0, 1], got {budget.lpips:g}.")
        if not 1 <= self.effort().steps <= MAX_STEPS:
            raise SettingsError(f"steps must be between 1 and {MAX_STEPS}, got {self.steps}.")
        if self.resolution is not None and not 64 <= self.resolution <= 4096:
            raise SettingsError(f"resolution must be between 64 and 4096, got {self.resolution}.")
        if self.mode is Mode.SHADE and not (
            self.target.anchors or self.target.images or self.target.concept
        ):
            raise SettingsError("shade needs a concept (--concept) or anchor images (--anchor).")
        if self.mode is Mode.CLOAK and self.target.anchors:
            raise SettingsError("Anchor images are for shade; cloak takes a style (--style).")


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
