"""What Cloak and Shade say: the report (JSON), its two-line summary, warnings, and the chain
of artcloak nodes an image has passed."""

from __future__ import annotations

import json

import torch
from artcloak.engine import Engine
from artcloak.errors import ArtcloakError, InputImageError
from artcloak.settings import (
    Mode,
    ProtectionSettings,
)

from . import compat
from .plumbing import log

QUANTISATION_NOTE = (
    "Protected as 8-bit samples, as ComfyUI saves 8-bit PNGs: the budget holds on a PNG saved "
    "from this IMAGE. Saving as JPEG/WebP or resizing changes the pixels; check with artcloak Verify."
)
AGAINST_ORIGINAL = "the original input (the whole chain keeps one budget)"
AGAINST_INPUT = (
    "this node's own input (original not connected: after other artcloak nodes, the total "
    "change from the first image can reach the bound times the number of nodes)"
)


# --------------------------------------------------------------------------- warnings


def mask_warnings(jobs) -> list[str]:
    """A mask that frees no pixel protects nothing: a node error when it is so for every
    image (before any work), a warning for the images it is so for otherwise."""
    empty = [i for i, job in enumerate(jobs) if job.free is not None and not job.free.any()]
    if empty and len(empty) == len(jobs):
        which = "any image" if len(jobs) > 1 else "the image"
        raise InputImageError(
            f"The mask frees no pixel of {which} (it is black everywhere), so nothing would be "
            "protected. Load Image's MASK output is the inverted alpha channel (all black for "
            "an image without alpha), not a protection mask: disconnect the mask to protect "
            "the whole image, or give one that is white where artcloak may change pixels."
        )
    return [
        f"image {i + 1}: the mask frees no pixel, so this image is NOT protected (it is "
        "returned unchanged)."
        for i in empty
    ]


def unchanged_warnings(measured: list, skip: set[int] = frozenset()) -> list[str]:
    return [
        f"image {i + 1} was not changed at all (L-inf 0): it is NOT protected."
        for i, figures in enumerate(measured)
        if i not in skip and figures.linf_255 == 0
    ]


def log_warnings(mode: str, warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("artcloak %s: %s", mode, warning)


def pack_warnings() -> list[str]:
    return [compat.PROBLEM] if compat.PROBLEM else []


def resolution_figures(engine: Engine, settings: ProtectionSettings) -> dict:
    """The model's training resolution and the one this run worked at, clearly apart."""
    return {
        "train_resolution": max(encoder.train_resolution for encoder in engine.encoders),
        "working_resolution": engine.resolution(settings),
        "working_resolution_from": (
            "the resolution input" if settings.resolution else "the model's training resolution"
        ),
    }


def summary_text(
    mode: str, settings: ProtectionSettings, measured: list, warnings: list, chained: bool = False
) -> str:
    """The report in two lines, for the log and the node."""
    budget = settings.budget()
    held = all(figures.within_budget for figures in measured)
    largest = max(figures.linf_255 for figures in measured)
    worst = max(figures.lpips for figures in measured)
    against = "the original" if chained else "this node's input"
    head = (f"artcloak {mode}: {len(measured)} image(s), "
            f"{'within' if held else 'NOT within'} the budget ({budget.describe()}) against "
            f"{against}: largest change L-inf {largest:g}/255, LPIPS {worst:.4f}.")  # fmt: skip
    return "\n".join([head, *(f"Warning: {warning}" for warning in warnings)])


# --------------------------------------------------------------------------- chains


def earlier_chain(previous_report: str | None) -> list[dict]:
    """The chain recorded in the report of the node before this one ([] when none is
    connected): one entry per artcloak node, with the encoders it optimised against."""
    if not previous_report or not previous_report.strip():
        return []
    try:
        report = json.loads(previous_report)
    except ValueError:
        report = None
    if not isinstance(report, dict) or "artcloak" not in report or "models" not in report:
        raise ArtcloakError(
            "previous_report is not the report of an artcloak Cloak or Shade node: connect "
            "that node's report output, or leave previous_report unconnected."
        )
    chain = report.get("chain")
    if isinstance(chain, list):
        return [dict(entry) for entry in chain]
    encoders = report["models"].get("encoders", [])
    return [{"node": report["artcloak"], "encoders": encoders, "budget_against": "unknown"}]


def chain_with(earlier: list[dict], mode: Mode, engine: Engine, chained: bool) -> list[dict]:
    """The chain so far, this node last."""
    own = {
        "node": mode.value,
        "encoders": engine.describe()["encoders"],
        "budget_against": "original" if chained else "input",
    }
    return [*earlier, own]


def chain_warnings(earlier: list[dict], original: torch.Tensor | None) -> list[str]:
    if not earlier or original is not None:
        return []
    nodes = len(earlier) + 1
    return [
        f"this node follows {len(earlier)} artcloak node(s) but 'original' is not connected: "
        "its budget is measured against its own input, so the chain's total change from the "
        f"first image can reach {nodes} times the bound. Connect the first image to "
        "'original' to keep one budget along the chain."
    ]


def report_json(mode, settings, results, engine, per_image, target_count, warnings, timing,
            chain=None, chained=False) -> str:  # fmt: skip
    budget = settings.budget()
    chain = chain or chain_with([], mode, engine, chained)
    return json.dumps(
        {
            "artcloak": mode.value,
            "warnings": warnings,
            "budget": budget.describe(),
            "budget_measured_against": AGAINST_ORIGINAL if chained else AGAINST_INPUT,
            "within_budget": all(r.measured.within_budget for r in results),
            "steps": settings.effort().steps,
            "seed": settings.seed,
            "adaptive": settings.adaptive,
            "target": (
                "one target image per input image"
                if per_image
                else f"mean of {target_count} target image(s)"
            ),
            **resolution_figures(engine, settings),
            "quantisation": QUANTISATION_NOTE,
            "time": timing,
            "images": [
                {"image": index + 1, **r.as_dict(), "changed": r.measured.linf_255 > 0}
                for index, r in enumerate(results)
            ],
            "models": engine.describe(),
            "chain": chain,
            "chain_encoders": sum(len(entry.get("encoders", [])) for entry in chain),
        },
        indent=2,
    )
