"""The ``artcloak batch`` command: a folder, glob or list of images -> a protected mirror."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path

import click

from ..cli.options import (
    configure_logging,
    diffusion_options,
    model_options,
    protection_options,
    request_settings,
    shade_target_options,
)
from ..settings import DEFAULT_STYLE, Mode

# Options of cloak/shade that do not apply to a batch: DEST is the output folder, a keep mask
# is for one image, and reports are how a run knows what is done.
NOT_FOR_BATCH = {"output", "keep_mask", "no_report"}
BATCH_HELP = {
    "overwrite": "Redo every input, even those already done with these settings "
    "(originals are never touched).",
}


def _borrow(decorator: Callable, drop: set[str]) -> Callable:
    """The options a shared decorator adds, less those named in ``drop``."""
    params = [p for p in decorator(lambda: None).__click_params__ if p.name not in drop]
    for param in params:
        param.help = BATCH_HELP.get(param.name or "", param.help)

    def decorate(function: Callable) -> Callable:
        function.__click_params__ = [*getattr(function, "__click_params__", []), *params]
        return function

    return decorate


@click.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dest", type=click.Path(path_type=Path))
@click.option(
    "--mode",
    type=click.Choice([m.value for m in Mode]),
    help="cloak (a style) or shade (a concept). Default: shade with --anchor or --concept, else cloak.",
)
@click.option(
    "--style",
    metavar="auto|NAME|IMAGE",
    help="cloak: auto, auto-per-image, a catalogue style or texture (see `artcloak styles`), "
    f"or a style image. Default: {DEFAULT_STYLE}.",
)
@shade_target_options
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    metavar="[ADDRESS]",
    help="Run on Ray: alone, a Ray instance on this machine; 'auto' or an address, "
    "a running cluster (needs pip install 'artcloak[ray]').",
)
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="Ray protection workers. Default: one per GPU, else one per node.",
)
@click.option(
    "--cpus-per-worker",
    type=click.FloatRange(min=0.1),
    help="CPUs each Ray worker takes (and its torch threads). Default: its node share, "
    "less room for reading.",
)
@diffusion_options
@_borrow(protection_options, NOT_FOR_BATCH)
@model_options
def batch(src: Path, dest: Path, mode: str | None, ray_address: str | None, workers: int | None,
          cpus_per_worker: float | None, **options) -> None:  # fmt: skip
    """Protect every image of SRC (a folder, a glob pattern in quotes, or a list file) into
    DEST, which mirrors SRC's folders. Inputs already done with the same settings are skipped,
    so running the command again resumes; originals are never touched.

    \b
    artcloak batch archive/ protected/ --style marble
    artcloak batch 'archive/**/*.jpg' protected/ --ray auto
    """
    from . import run_batch
    from .view import BatchProgress, show_summary

    configure_logging(options["verbose"])
    if not options["verbose"]:
        logging.getLogger("ray").setLevel(logging.ERROR)  # Ray's start-up notices
    anchors, concept = options["anchors"], options["concept"]
    chosen = Mode(mode) if mode else (Mode.SHADE if anchors or concept else Mode.CLOAK)
    if chosen is Mode.SHADE and bool(anchors) == bool(concept):
        raise click.UsageError("shade needs either --concept TEXT or --anchor IMAGE (not both).")
    settings, models = request_settings(options, chosen)
    bars: list[BatchProgress] = []

    def progress(plan) -> BatchProgress:
        bars.append(BatchProgress(plan.total, len(plan.skipped), options["as_json"]))
        return bars[-1]

    try:
        summary = run_batch(
            src, dest, settings, models,
            output_format=options["output_format"],
            redo=options["overwrite"],
            batch_size=options["batch_size"],
            ray_address=ray_address,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            progress=progress,
        )  # fmt: skip
    finally:
        for bar in bars:
            bar.close()
    sys.exit(show_summary(summary, options["as_json"]))
