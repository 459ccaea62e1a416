"""The ``artcloak`` command: cloak, shade, verify, styles, worker.

Every error a person can cause ends in one line on stderr and exit status 1;
usage errors exit 2. ``--json`` prints protocol events (see protocol.py) on stdout.
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import click

from . import protocol
from .errors import ArtcloakError
from .install import install
from .settings import (
    DEFAULT_ENCODER,
    INTENSITY_BUDGETS,
    QUALITY_EFFORT,
    Diffusion,
    FileRequest,
    Intensity,
    LpipsNet,
    Mode,
    ModelSettings,
    OutputSettings,
    Precision,
    ProtectionSettings,
    Quality,
    Target,
)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"}
FORMAT_EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}


def _preset_help(kind: str) -> str:
    if kind == "intensity":
        parts = [
            f"{i.value}: LPIPS {b.lpips:g}, {b.eps * 255:g}/255"
            for i, b in INTENSITY_BUDGETS.items()
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


model_options = _options(
    [
        click.option("--encoder", "encoders", multiple=True, metavar="SOURCE",
                     help="VAE to protect against: hub id, diffusers folder or .safetensors file "
                     f"(repeat for an ensemble). Default: {DEFAULT_ENCODER}."),
        click.option("--encoder-config", metavar="FAMILY|PATH",
                     help="Config for single-file encoders: sd1, sd2, sdxl, sd3, flux or a config file."),
        click.option("--allow-pickle", is_flag=True,
                     help="Allow .ckpt/.pt pickles (loaded with weights_only=True)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:N or mps."),
        click.option("--precision", type=click.Choice([p.value for p in Precision]),
                     default="auto", show_default=True, help="Arithmetic of encoder passes."),
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
        click.option("--eps", type=float, help="L-inf bound in 0-255 units (overrides --intensity)."),
        click.option("--lpips", "lpips_budget", type=float, help="LPIPS bound (overrides --intensity)."),
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
                     help="Spend the budget where texture hides it: less change on flat colour."),
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
        click.option("--no-diffusion", is_flag=True, help="Never generate targets: built-in textures only."),
        click.option("--strength", type=float, default=DIFFUSION_DEFAULTS.strength, show_default=True,
                     help="img2img strength of generated style targets."),
        click.option("--guidance", type=float, default=DIFFUSION_DEFAULTS.guidance, show_default=True,
                     help="Classifier-free guidance of target generation."),
        click.option("--diffusion-steps", type=int, default=DIFFUSION_DEFAULTS.steps, show_default=True,
                     help="Denoising steps of target generation."),
        click.option("--diffusion-seed", type=int, default=DIFFUSION_DEFAULTS.seed, show_default=True,
                     help="Seed of target generation (anchors use it, +1, +2, ...)."),
    ]
)  # fmt: skip


class LazyGroup(click.Group):
    """Commands whose modules (and optional dependencies such as Ray or Gradio) load on use."""

    lazy_commands = {
        "batch": "artcloak.batch.command:batch",
        "app": "artcloak.app.command:app",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy_commands])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy_commands:
            return super().get_command(ctx, name)
        module_name, attribute = self.lazy_commands[name].split(":")
        module = importlib.import_module(module_name)
        return getattr(module, attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="artcloak")
def cli() -> None:
    """Protect artwork before posting it: cloak hides a style, shade poisons a concept."""


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--style",
    metavar="auto|NAME|IMAGE",
    help="Target style: auto (the catalogue style farthest from these images, one for "
    "all), auto-per-image, a catalogue style or texture (see `artcloak styles`), or a "
    "style image. Default: weave.",
)
@diffusion_options
@protection_options
@model_options
def cloak(inputs: tuple[Path, ...], style: str | None, **options) -> None:
    """Hide the style of INPUTS (files or folders) from style mimicry."""
    _protect(Mode.CLOAK, inputs, Target(style=style, diffusion=_diffusion(options)), options)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--anchor",
    "anchors",
    multiple=True,
    type=click.Path(path_type=Path),
    help="An image of the concept the model should learn instead (repeatable).",
)
@click.option(
    "--concept",
    metavar="TEXT",
    help="The concept the model should learn instead: its anchors are generated "
    '("A photo of a TEXT") with the diffusion model.',
)
@click.option(
    "--anchors-count",
    type=click.IntRange(1, 64),
    default=Target().anchor_count,
    show_default=True,
    help="How many anchors to generate for --concept (seeds differ).",
)
@diffusion_options
@protection_options
@model_options
def shade(
    inputs: tuple[Path, ...],
    anchors: tuple[Path, ...],
    concept: str | None,
    anchors_count: int,
    **options,
) -> None:
    """Poison what a model learns from INPUTS toward a concept: --concept or --anchor images."""
    if bool(anchors) == bool(concept):
        raise click.UsageError("shade needs either --concept TEXT or --anchor IMAGE (not both).")
    target = Target(
        anchors=anchors, concept=concept, anchor_count=anchors_count, diffusion=_diffusion(options)
    )
    _protect(Mode.SHADE, inputs, target, options)


@cli.command()
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("protected", type=click.Path(path_type=Path))
@click.option("--style", metavar="NAME|IMAGE", help="Measure the shift toward this cloak target.")
@click.option("--anchor", "anchors", multiple=True, type=click.Path(path_type=Path),
              help="Measure the shift toward these shade anchors.")  # fmt: skip
@click.option("--eps", type=float, help="L-inf budget to check, 0-255 units (default 8).")
@click.option("--lpips", "lpips_budget", type=float, help="LPIPS budget to check (default 0.05).")
@model_options
def verify(original: Path, protected: Path, style, anchors, eps, lpips_budget, **options) -> None:
    """Measure PROTECTED against ORIGINAL: budget used, latent shift, survival of JPEG and resizing."""
    from .protect import Engine
    from .verify import verify_files

    _configure(options["verbose"])
    mode = Mode.SHADE if anchors else Mode.CLOAK
    settings = ProtectionSettings(
        mode=mode,
        target=Target(style=style, anchors=tuple(anchors)),
        eps=None if eps is None else eps / 255,
        lpips=lpips_budget,
        resolution=options["resolution"],
    )
    engine = Engine(_model_settings(options))
    figures = verify_files(engine, original, protected, settings, bool(style or anchors))
    if options["as_json"]:
        click.echo(protocol.encode(protocol.result(str(protected), **figures)))
    else:
        click.echo(json.dumps(figures, indent=2))


@cli.command()
@click.option("--prompts", is_flag=True, help="Show each catalogue style's full prompt.")
def styles(prompts: bool) -> None:
    """List the cloak targets: auto, the catalogue styles and the built-in textures."""
    from .targets import CATALOGUE, DEFAULT_TEXTURE, TEXTURES

    click.echo(
        "auto            the catalogue style measured farthest from your images (one for all)"
    )
    click.echo("auto-per-image  the farthest style for each image on its own")
    click.echo(
        "\nCatalogue (generated from your artwork with --diffusion; else the texture shown):"
    )
    for style in CATALOGUE:
        detail = style.prompt if prompts else style.description
        click.echo(f"{style.name:<24}{detail}  [texture: {style.texture}]")
    click.echo("\nBuilt-in textures (no diffusion model needed):")
    for name in TEXTURES:
        click.echo(f"{name}{'  (default)' if name == DEFAULT_TEXTURE else ''}")


@cli.command()
@click.argument("request", default="-", type=click.Path(path_type=Path, allow_dash=True))
def worker(request: Path) -> None:
    """Run one protection request (JSON, from a file or '-' for stdin) printing JSON lines."""
    from .worker import run_worker

    _configure(False)
    text = sys.stdin.read() if str(request) == "-" else _read_text(request)
    sys.exit(run_worker(text, sys.stdout))


cli.add_command(install)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ArtcloakError(f"Cannot read the request {path}: {error.strerror}.") from None


def _configure(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        stream=sys.stderr,
        format="artcloak: %(message)s",
    )
    if not verbose:
        warnings.filterwarnings("ignore")


def _model_settings(options: dict) -> ModelSettings:
    return ModelSettings(
        encoders=tuple(options["encoders"]) or (DEFAULT_ENCODER,),
        encoder_config=options["encoder_config"],
        allow_pickle=options["allow_pickle"],
        device=options["device"],
        precision=Precision(options["precision"]),
        lpips_net=LpipsNet(options["lpips_net"]),
        lpips_random_backbone=options["lpips_random_backbone"],
    )


def _diffusion(options: dict) -> Diffusion:
    diffusion = Diffusion(
        model=options.pop("diffusion"),
        config=options.pop("diffusion_config"),
        strength=options.pop("strength"),
        guidance=options.pop("guidance"),
        steps=options.pop("diffusion_steps"),
        seed=options.pop("diffusion_seed"),
        enabled=not options.pop("no_diffusion"),
    )
    if not 0 < diffusion.strength <= 1:
        raise click.BadParameter("must be in (0, 1].", param_hint="--strength")
    if not 1 <= diffusion.steps <= 1000:
        raise click.BadParameter("must be between 1 and 1000.", param_hint="--diffusion-steps")
    return diffusion


def protection_settings(mode: Mode, target: Target, options: dict) -> ProtectionSettings:
    """The settings the protection options (``protection_options``) ask for."""
    return ProtectionSettings(
        mode=mode,
        target=target,
        intensity=Intensity(options["intensity"]),
        quality=Quality(options["quality"]),
        eps=None if options["eps"] is None else options["eps"] / 255,
        lpips=options["lpips_budget"],
        steps=options["steps"],
        seed=options["seed"],
        resolution=options["resolution"],
        robust=options["robust"],
        adaptive=options["adaptive"],
    )


def _protect(mode: Mode, inputs: tuple[Path, ...], target: Target, options: dict) -> None:
    from .files import protect_files
    from .progress_view import listener_for, summarise
    from .protect import Engine

    _configure(options["verbose"])
    settings = protection_settings(mode, target, options)
    if target.concept is None:  # a concept's anchors are generated before they can be checked
        settings.check()
    requests = plan_requests(mode, inputs, options["output"], options["output_format"],
                             options["keep_mask"])  # fmt: skip
    output = OutputSettings(
        format=None,
        overwrite=options["overwrite"],
        write_report=not options["no_report"],
    )
    engine = Engine(_model_settings(options), batch_size=options["batch_size"])
    listener = listener_for(options["as_json"], len(requests))
    outcomes = protect_files(engine, requests, settings, output, listener)
    _say_targets(outcomes)
    sys.exit(summarise(outcomes, settings, options["as_json"]))


def _say_targets(outcomes) -> None:
    """Once per run, on stderr: which target artcloak generated or chose, and any fallback."""
    said: set[str] = set()
    for outcome in outcomes:
        target = (outcome.report or {}).get("target", {})
        lines = []
        if "fallback" in target:
            lines.append(f"note: {target['fallback']}: '{target.get('style')}'.")
        elif target.get("kind") == "generated style":
            chosen = " (auto: farthest measured)" if "distances" in target else ""
            lines.append(f"target: the artwork rendered as '{target['style']}'{chosen}.")
        elif target.get("kind") == "generated anchors":
            lines.append(f"target: {target['count']} generated anchor(s), '{target['prompt']}'.")
        for line in lines:
            if line not in said:
                said.add(line)
                click.echo(f"artcloak: {line}", err=True)


def plan_requests(
    mode: Mode,
    inputs: tuple[Path, ...],
    output: Path | None,
    output_format: str | None,
    keep_mask: Path | None,
) -> list[FileRequest]:
    """One request per input image: folders expand to the images in them."""
    from .files import default_output

    sources = [path for item in inputs for path in _expand(item)]
    if not sources:
        raise ArtcloakError("No images found in the given folder(s).")
    if keep_mask is not None and len(sources) > 1:
        raise ArtcloakError("--keep-mask applies to one input image; give one image.")
    extension = FORMAT_EXTENSIONS.get(output_format) if output_format else None
    single_file = len(sources) == 1 and not inputs[0].is_dir()
    if output is not None and single_file and not output.is_dir():
        if extension and output.suffix.lower() != extension:
            output = output.with_suffix(extension)
        return [FileRequest(sources[0], output, keep_mask)]
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
    return [FileRequest(s, default_output(s, mode, output, extension), keep_mask) for s in sources]


def _expand(item: Path) -> list[Path]:
    if item.is_dir():
        return sorted(
            p for p in item.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
    return [item]


def main(argv: list[str] | None = None) -> None:
    """Entry point: one clear line for every error a person can cause."""
    try:
        cli.main(args=argv, prog_name="artcloak", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("artcloak: cancelled.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except ArtcloakError as error:
        click.echo(f"artcloak: error: {error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("artcloak: cancelled; nothing partial was written.", err=True)
        sys.exit(130)
