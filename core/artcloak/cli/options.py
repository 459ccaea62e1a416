"""The command-line options shared by cloak, shade, batch and app, and the settings they ask for."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import click

from ..engine import FORMAT_EXTENSIONS
from ..protocol import ADAPTIVE_HELP, ADAPTIVE_LABEL
from ..settings import (
    DEFAULT_ENCODER,
    FLAT_NAMES,
    INTENSITY_BUDGETS,
    QUALITY_EFFORT,
    Diffusion,
    Intensity,
    LpipsNet,
    Mode,
    ModelSettings,
    Precision,
    ProtectionSettings,
    Quality,
    Target,
    request_from_flat,
)


def _preset_help(kind: str) -> str:
    if kind == "intensity":
        parts = [
            f"{i.value}: LPIPS {b.lpips:g}, {b.eps_255:g}/255" for i, b in INTENSITY_BUDGETS.items()
        ]
    else:
        parts = [f"{q.value}: {e.steps} steps" for q, e in QUALITY_EFFORT.items()]
    return "; ".join(parts) + "."


def _options(options: list[Callable]) -> Callable:
    def decorate(function: Callable) -> Callable:
        for option in reversed(options):
            function = option(function)
        return function

    return decorate


# How the CLI names a setting where a core message names it in words any host can show
# (errors.Named): flat setting name -> the words the command line says instead.
# errors.Named's words -> the CLI's options, in messages the CLI prints
SETTING_OPTIONS = {
    "encoders": "with --encoder PATH",
    "concept": "a concept (--concept)",
    "anchors": "anchor images (--anchor)",
    "style": "a style (--style)",
    "overwrite": "replace it with --overwrite",
    "diffusion_enabled": "switched off (--no-diffusion)",
    "diffusion": "with --diffusion",
    "diffusion_config": "with --diffusion-config",
    "encoder_config": "with --encoder-config",
    "allow_pickle": "allow it with --allow-pickle",
}

model_options = _options(
    [
        click.option("--encoder", "encoders", multiple=True, metavar="SOURCE",
                     help="VAE to protect against: hub id, diffusers folder, .safetensors file or a tiny "
                     "autoencoder's encoder.safetensors (a family prefix such as taef2: is optional) "
                     f"(repeat for an ensemble). Default: {DEFAULT_ENCODER}."),
        click.option("--encoder-config", metavar="FAMILY|PATH",
                     help="Config for single-file encoders: sd1, sd2, sdxl, sd3, flux, flux2, a tiny "
                     "autoencoder family (taesd, taesdxl, taesd3, taef1, taef2, taesana) or a config file."),
        click.option("--allow-pickle", is_flag=True,
                     help="Allow .ckpt/.pt pickles (loaded with weights_only=True)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--precision", type=click.Choice([p.value for p in Precision]),
                     default="auto", show_default=True,
                     help="Arithmetic of encoder passes (auto: bf16 on CUDA and CPUs with AMX, else fp32)."),
        click.option("--lpips-net", type=click.Choice([n.value for n in LpipsNet]),
                     default="alex", show_default=True, help="LPIPS backbone."),
        click.option("--lpips-random-backbone", is_flag=True,
                     help="Random LPIPS backbone: for tests and offline checks only (not perceptual)."),
        click.option("--resolution", type=int,
                     help="Working shorter side in pixels. Default: the encoder's training resolution."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON events on stdout, for programs."),
        click.option("-v", "--verbose", is_flag=True, help="Log what happens on stderr."),
    ]
)  # fmt: skip

protection_options = _options(
    [
        click.option("-o", "--output", type=click.Path(path_type=Path),
                     help="Output file (one input) or folder. Default: beside each input, '-cloaked'/'-shaded'."),
        click.option("--intensity", type=click.Choice([i.value for i in Intensity]), default="default",
                     show_default=True, help=_preset_help("intensity")),
        click.option("--quality", type=click.Choice([q.value for q in Quality]), default="default",
                     show_default=True, help="Render quality; " + _preset_help("quality")),
        click.option("--eps", "eps_255", type=float, help="L-inf bound in 0-255 units (overrides --intensity)."),
        click.option("--lpips", type=float, help="LPIPS bound (overrides --intensity)."),
        click.option("--steps", type=int, help="Optimisation steps (overrides --quality)."),
        click.option("--seed", type=int, default=0, show_default=True, help="Same seed, same result."),
        click.option("--keep-mask", type=click.Path(path_type=Path),
                     help="Mask image (one input): its white pixels are left bit-exact."),
        click.option("--format", "output_format", type=click.Choice(list(FORMAT_EXTENSIONS)),
                     help="Output format. Default: the input's if lossless, else PNG. "
                     "JPEG/WebP re-encoding weakens protection; the report says by how much."),
        click.option("--overwrite", is_flag=True, help="Replace existing outputs (never the input)."),
        click.option("--no-report", is_flag=True, help="Do not write the JSON report beside outputs."),
        click.option("--batch-size", type=int, help="Images optimised together. Default: 8 on GPU, 1 on CPU."),
        click.option("--robust", is_flag=True,
                     help="Optimise through random resizing, JPEG, blur and noise, so more survives them."),
        click.option("--adaptive", is_flag=True,
                     help=f"{ADAPTIVE_LABEL}. {ADAPTIVE_HELP}"),
    ]
)  # fmt: skip

shade_target_options = _options(
    [
        click.option("--anchor", "anchors", multiple=True, type=click.Path(path_type=Path),
                     help="shade: an image of the concept the model should learn instead (repeatable)."),
        click.option("--concept", metavar="TEXT",
                     help="shade: the concept the model should learn instead; its anchors are "
                     'generated ("A photo of a TEXT") with the diffusion model.'),
        click.option("--anchors-count", type=click.IntRange(1, 64), default=Target().anchors_count,
                     show_default=True, help="How many anchors to generate for --concept (seeds differ)."),
    ]
)  # fmt: skip


DIFFUSION_DEFAULTS = Diffusion()

diffusion_options = _options(
    [
        click.option("--diffusion", metavar="MODEL",
                     help="Diffusers pipeline that generates targets: hub id, diffusers folder or "
                     ".safetensors checkpoint (SD 1.x/2.x, SDXL). Default: $ARTCLOAK_DIFFUSION, else "
                     "SD 1.5 if it is already in the Hugging Face cache, else built-in textures."),
        click.option("--diffusion-config", metavar="FAMILY|FOLDER",
                     help="For a single checkpoint file: sd1, sd2, sdxl or a diffusers config folder."),
        click.option("--no-diffusion", "diffusion_enabled", flag_value=False, default=True,
                     help="Never generate targets: built-in textures only."),
        click.option("--strength", "diffusion_strength", type=float, default=DIFFUSION_DEFAULTS.strength, show_default=True,
                     help="img2img strength of generated style targets."),
        click.option("--guidance", "diffusion_guidance", type=float, default=DIFFUSION_DEFAULTS.guidance, show_default=True,
                     help="Classifier-free guidance of target generation."),
        click.option("--diffusion-steps", type=int, default=DIFFUSION_DEFAULTS.steps, show_default=True,
                     help="Denoising steps of target generation."),
        click.option("--diffusion-seed", type=int, default=DIFFUSION_DEFAULTS.seed, show_default=True,
                     help="Seed of target generation (anchors use it, +1, +2, ...)."),
    ]
)  # fmt: skip


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="artcloak: %(message)s",
    )
    if not verbose:
        warnings.filterwarnings("ignore")


def request_settings(
    options: dict, mode: Mode | None = None, check: bool = True
) -> tuple[ProtectionSettings, ModelSettings]:
    """The settings the command's options ask for: each option whose name is a setting's flat
    name (see ``settings.request_from_flat``) sets it; the rest are the command's own. Without
    ``check``, for a command whose run checks them (``engine.Run``), only their types."""
    values = {name: value for name, value in options.items() if name in FLAT_NAMES}
    if mode is not None:
        values["mode"] = mode.value
    return request_from_flat(values, check=check)
