"""A lossy output's figures on the file as written.

The budget is guaranteed on the samples before encoding; JPEG and WebP then change them again.
So for those formats the report's ``measured`` and ``latent`` are measured on the file read back
(what a viewer and a scraper get), and the perturbation's own figures move to
``before_encoding``: every host then shows what holds on the file.
"""

from __future__ import annotations

from pathlib import Path

from ..results import BeforeEncoding, Report
from ..settings import ProtectionSettings
from .budget import measure_rgb
from .images import LoadedImage, load_image
from .images.formats import display_name
from .protect import Engine


def measure_as_written(
    engine: Engine, report: Report, written: Path, image: LoadedImage, settings: ProtectionSettings
) -> str | None:
    """Put the written file's figures in ``report`` (see the module docstring); a notice when
    the re-encoding took the file over the budget, else None."""
    reread = load_image(written)
    figures = measure_rgb(engine.lpips, image.rgb, reread.rgb, reread.max_value)
    budget = settings.budget()
    report.before_encoding = BeforeEncoding(report.measured, report.latent)
    report.measured = figures.figures(budget, kept=report.measured.perturbation_kept)
    report.latent = engine.latent_figures(image.rgb, reread.rgb, 1, settings)
    if report.measured.within_budget:
        return None
    encoding = display_name(report.output_format)
    return (
        f"{encoding} encoding changed the pixels after the budget was kept: the file as written "
        f"is at L-inf {report.measured.linf_255:g}/255 and LPIPS {figures.lpips:.4f} "
        f"(budget {budget.describe()}); save as PNG to keep the budget on the file."
    )
