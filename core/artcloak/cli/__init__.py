"""The ``artcloak`` command: cloak, shade, verify, styles, worker.

Every error a person can cause ends in one line on stderr and exit status 1;
usage errors exit 2. ``--json`` prints protocol events (see protocol.py) on stdout.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import click

from .. import protocol
from ..engine import FORMAT_EXTENSIONS, IMAGE_EXTENSIONS
from ..errors import ArtcloakError
from ..install import install
from ..memory import own_process
from ..settings import (
    DEFAULT_STYLE,
    FileRequest,
    Mode,
    OutputSettings,
)
from .options import (
    SETTING_OPTIONS,
    configure_logging,
    diffusion_options,
    model_options,
    protection_options,
    request_settings,
    shade_target_options,
)


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
    f"style image. Default: {DEFAULT_STYLE}.",
)
@diffusion_options
@protection_options
@model_options
def cloak(inputs: tuple[Path, ...], **options) -> None:
    """Hide the style of INPUTS (files or folders) from style mimicry."""
    _protect(Mode.CLOAK, inputs, options)


@cli.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@shade_target_options
@diffusion_options
@protection_options
@model_options
def shade(inputs: tuple[Path, ...], **options) -> None:
    """Poison what a model learns from INPUTS toward a concept: --concept or --anchor images."""
    if bool(options["anchors"]) == bool(options["concept"]):
        raise click.UsageError("shade needs either --concept TEXT or --anchor IMAGE (not both).")
    _protect(Mode.SHADE, inputs, options)


@cli.command()
@click.argument("original", type=click.Path(path_type=Path))
@click.argument("protected", type=click.Path(path_type=Path))
@click.option("--style", metavar="NAME|IMAGE", help="Measure the shift toward this cloak target.")
@click.option("--anchor", "anchors", multiple=True, type=click.Path(path_type=Path),
              help="Measure the shift toward these shade anchors.")  # fmt: skip
@click.option(
    "--eps", "eps_255", type=float, help="L-inf budget to check, 0-255 units (default 8)."
)
@click.option("--lpips", type=float, help="LPIPS budget to check (default 0.05).")
@model_options
def verify(original: Path, protected: Path, **options) -> None:
    """Measure PROTECTED against ORIGINAL: budget used, latent shift, survival of JPEG and resizing."""
    from ..engine import Engine, verify_files

    configure_logging(options["verbose"])
    mode = Mode.SHADE if options["anchors"] else Mode.CLOAK
    settings, models = request_settings(options, mode)
    engine = Engine(models)
    toward = bool(options["style"] or options["anchors"])
    figures = verify_files(engine, original, protected, settings, toward)
    if options["as_json"]:
        click.echo(protocol.encode(protocol.result(str(protected), **figures)))
    else:
        click.echo(json.dumps(figures, indent=2))


@cli.command()
@click.option("--prompts", is_flag=True, help="Show each catalogue style's full prompt.")
def styles(prompts: bool) -> None:
    """List the cloak targets: auto, the catalogue styles and the built-in textures."""
    from ..engine import CATALOGUE, DEFAULT_TEXTURE, TEXTURES

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
    from ..worker import run_worker

    configure_logging(False)
    text = sys.stdin.read() if str(request) == "-" else _read_text(request)
    sys.exit(run_worker(text, sys.stdout))


cli.add_command(install)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ArtcloakError(f"Cannot read the request {path}: {error.strerror}.") from None


def _protect(mode: Mode, inputs: tuple[Path, ...], options: dict) -> None:
    from ..engine import Engine, Run, protect_files
    from .progress_view import listener_for, summarise

    configure_logging(options["verbose"])
    settings, models = request_settings(options, mode, check=False)
    run = Run(settings)  # checks the settings, before a folder is made or a model loads
    requests = plan_requests(mode, inputs, options["output"], options["output_format"],
                             options["keep_mask"])  # fmt: skip
    output = OutputSettings(
        format=None,
        overwrite=options["overwrite"],
        write_report=not options["no_report"],
    )
    engine = Engine(models, batch_size=options["batch_size"])
    listener = listener_for(options["as_json"], len(requests))
    outcomes = protect_files(engine, requests, run, output, listener)
    _say_targets(outcomes)
    sys.exit(summarise(outcomes, settings, options["as_json"]))


def _say_targets(outcomes) -> None:
    """Once per run, on stderr: which target artcloak generated or chose, and any fallback."""
    said: set[str] = set()
    for outcome in outcomes:
        if outcome.report is None:
            continue
        target = outcome.report.target
        lines = []
        if target.fallback:
            lines.append(f"note: {target.fallback}: '{target.style}'.")
        elif target.kind == "generated style":
            chosen = " (auto: farthest measured)" if target.distances is not None else ""
            lines.append(f"target: the artwork rendered as '{target.style}'{chosen}.")
        elif target.kind == "generated anchors":
            lines.append(f"target: {target.count} generated anchor(s), '{target.prompt}'.")
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
    from ..engine import default_output

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
    own_process()
    try:
        cli.main(args=argv, prog_name="artcloak", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("artcloak: cancelled.", err=True)
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except ArtcloakError as error:
        click.echo(f"artcloak: error: {error.said(SETTING_OPTIONS)}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("artcloak: cancelled; nothing partial was written.", err=True)
        sys.exit(130)
