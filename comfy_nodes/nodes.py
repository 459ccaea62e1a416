"""artcloak's ComfyUI nodes (V3 schema): Cloak, Shade and Verify.

Each node takes the VAE the graph already loaded, makes a private differentiable copy of its
encoder, and runs artcloak's engine with autograd switched back on (ComfyUI runs nodes under
``torch.inference_mode()``). Before the first optimisation step the node logs (and shows on
the node) how long the run should take, the core's estimate from its first encoder pass;
progress goes to ComfyUI's progress bar; ComfyUI's interrupt is checked at every step. The
report is an output, shown on the node (``ui``), and logged in short, with any warning.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import replace

import comfy.model_management as model_management
import comfy.utils
import numpy as np
import torch
from artcloak.engine.protect import Engine, Failed
from artcloak.engine.targets import check_target
from artcloak.engine.transforms import working_size
from artcloak.engine.verify import verify_images
from artcloak.errors import ArtcloakError, Cancelled, InputImageError
from artcloak.progress import Listener, ProgressEvent, duration
from artcloak.settings import (
    INTENSITY_BUDGETS,
    MAX_EPS,
    MAX_SEED,
    MAX_STEPS,
    QUALITY_EFFORT,
    Intensity,
    Mode,
    ModelSettings,
    ProtectionSettings,
    Quality,
    Target,
    request_from_flat,
)
from comfy_api.latest import io

from . import compat, convert
from .ensemble import VAES, VAES_TOOLTIP, VaeChoice
from .vae import FAMILIES, private_encoder

CATEGORY = "artcloak"
QUANTISATION_NOTE = (
    "Protected as 8-bit samples, as ComfyUI saves 8-bit PNGs: the budget holds on a PNG saved "
    "from this IMAGE. Saving as JPEG/WebP or resizing changes the pixels; check with artcloak Verify."
)
# Tests only: a random LPIPS backbone when the ImageNet weights cannot be had. The report
# then says the budget is not perceptual.
RANDOM_LPIPS_ENV = "ARTCLOAK_TEST_RANDOM_LPIPS"
# One rule for every seed input of the pack: 0 .. the core's MAX_SEED (2**63-1), the range
# the core checks. ComfyUI's own KSampler offers up to 2**64-1; a larger seed than the core
# takes would only be refused when the node runs.
SEED_MAX = MAX_SEED
SEED_TOOLTIP = f"The same seed gives the same result on the same machine (0 to {MAX_SEED})."
# What the editor does to a seed after each run: keep it ("fixed"), so running a graph again
# protects the same way (with True the editor picks randomize: a new protection each run).
# Newer ComfyUIs name the same string io.ControlAfterGenerate.fixed. ComfyUI 0.8's editor
# ignores the mode and starts at randomize; web/seed_control.js sets the node's mode there.
SEED_CONTROL = getattr(getattr(io, "ControlAfterGenerate", None), "fixed", "fixed")
REPORT_TOOLTIP = (
    "JSON: the budget and what was measured on each image, warnings, settings, seed and "
    "models. It is shown on this node; connect it to Preview as Text, or save it with artcloak "
    "Save Protected (save_report). Keep it to yourself: never post it with the image."
)

ORIGINAL_TOOLTIP = (
    "Optional, for a chain of artcloak nodes: the image(s) before the first node of the chain "
    "(the same batch). Connected, this node starts from the change the earlier nodes made and "
    "measures and guarantees the budget against the original, so the whole chain is as visible "
    "as one node. Left unconnected, the budget is measured against this node's own input: after "
    "other artcloak nodes, N nodes can change the original by up to N times the bound."
)
PREVIOUS_REPORT_TOOLTIP = (
    "Optional, for a chain: the report of the artcloak Cloak or Shade before this one. This "
    "node's report then lists every encoder the chain has passed (its 'chain')."
)
AGAINST_ORIGINAL = "the original input (the whole chain keeps one budget)"
AGAINST_INPUT = (
    "this node's own input (original not connected: after other artcloak nodes, the total "
    "change from the first image can reach the bound times the number of nodes)"
)


log = logging.getLogger("artcloak.comfy")
_engines: dict[int, Engine] = {}


# --------------------------------------------------------------------------- shared plumbing


def _device() -> str:
    device = model_management.get_torch_device()
    return str(device) if torch.device(device).type in ("cpu", "cuda", "mps") else "cpu"


@contextlib.contextmanager
def _autograd():
    """Autograd back on: the optimisation differentiates through the encoder and LPIPS, and
    models created here must not be inference tensors either."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def _engine(choices: list[VaeChoice]) -> Engine:
    """The engine for the graph's VAE(s): their private encoder copies (one per VAE, whatever
    the working resolution, which is a setting of each run) and LPIPS."""
    device = _device()
    encoders = [
        private_encoder(choice.vae, family=choice.family, config=choice.config.strip(),
                        device=device)
        for choice in choices
    ]  # fmt: skip
    key = tuple(id(encoder) for encoder in encoders)
    engine = _engines.get(key)
    if engine is None or any(a is not b for a, b in zip(engine.encoders, encoders, strict=True)):
        models = ModelSettings(
            encoders=tuple(encoder.source for encoder in encoders),
            device=device,
            lpips_random_backbone=os.environ.get(RANDOM_LPIPS_ENV) == "1",
        )
        _engines.clear()
        engine = _engines[key] = Engine(models, encoders=encoders)
    return engine


def _choices(vae, family: str, config: str, more_vaes) -> list[VaeChoice]:
    """The node's own VAE first, then those of more_vaes (artcloak Add VAE)."""
    if more_vaes is not None and not all(isinstance(c, VaeChoice) for c in more_vaes):
        raise ArtcloakError("more_vaes takes the output of artcloak Add VAE.")
    return [VaeChoice(vae, family, config), *(more_vaes or ())]


def _show(text: str) -> None:
    """Text under the running node (ComfyUI's progress text), where ComfyUI can show it."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return
    context = get_executing_context()
    server = getattr(PromptServer, "instance", None)
    if context is None or server is None:
        return
    with contextlib.suppress(Exception):  # a display nicety: never fail a run for it
        server.send_progress_text(text, context.node_id)


class _Progress:
    """Optimisation steps -> ComfyUI's progress bar; ComfyUI's interrupt -> Cancelled. After
    the first step, the time it took gives a measured estimate of the rest."""

    def __init__(self, steps: int, chunks: int, mode: Mode, groups: dict, batch: int) -> None:
        self.steps, self.total, self.mode = steps, max(1, steps * chunks), mode
        self.groups, self.batch = groups, batch
        self.bar = comfy.utils.ProgressBar(self.total)
        self.started: float | None = None
        self.estimate: float | None = None

    def on_event(self, event: ProgressEvent) -> None:
        if event.stage != "optimise":
            return
        if event.step == 0 and self.started is None:
            self.started = time.perf_counter()
            if event.seconds_left is not None:
                self._announce(event.seconds_left)
        elif event.step == 1 and self.started is not None and self.bar.current == 0:
            took = time.perf_counter() - self.started
            text = (f"artcloak {self.mode.value}: step 1 took {took:.1f} s; about "
                    f"{duration(took * (self.total - 1))} left at most (measured)")  # fmt: skip
            log.info(text)
            _show(text)
        if event.step > 0:
            self.bar.update(1)
            if event.step == event.total < self.steps:  # the loop stopped early
                self.bar.update(self.steps - event.total)

    def _announce(self, first_chunk_seconds: float) -> None:
        """The core's estimate for the first chunk, for the whole run (by pixels), logged and
        shown on the node before the first step."""
        (width, height), count = next(iter(self.groups.items()))
        per_pixel = first_chunk_seconds / (min(count, self.batch) * width * height)
        pixels = sum(n * w * h for (w, h), n in self.groups.items())
        self.estimate = per_pixel * pixels
        text = _estimate_text(self.mode, self.estimate, self.steps, self.groups)
        log.info(text)
        _show(text)

    @staticmethod
    def should_cancel() -> bool:
        return model_management.processing_interrupted()


def _interrupted() -> None:
    """Tell ComfyUI the way its own nodes do that the run was interrupted."""
    model_management.throw_exception_if_processing_interrupted()
    raise model_management.InterruptProcessingException()


def checked_settings(values: dict, images: tuple[np.ndarray, ...] = ()) -> ProtectionSettings:
    """Every node's settings: its inputs by the core's flat names, with the target images
    it was given, checked by the core (SettingsError/TargetError with the core's message,
    which ComfyUI shows as the node's error)."""
    settings = request_from_flat(values, check=False)[0]  # the target images come next
    if images:
        settings = replace(settings, target=replace(settings.target, images=tuple(images)))
    check_target(settings.target, settings.mode)
    settings.check()
    return settings


def _values(mode: Mode, intensity, quality="default", seed=0, eps=0.0, lpips=0.0, steps=0,
            resolution=0) -> dict:  # fmt: skip
    """The protection inputs by the core's flat names; 0 (a number widget's default) means
    the preset's value."""
    return {"mode": mode.value, "intensity": intensity, "quality": quality, "seed": seed,
            "eps_255": eps or None, "lpips": lpips or None, "steps": steps or None,
            "resolution": resolution or None}  # fmt: skip


# --------------------------------------------------------------------------- the time estimate


def _work_groups(engine: Engine, jobs, settings) -> dict[tuple[int, int], int]:
    """Images per working size (width, height), as the engine groups them."""
    resolution = engine.resolution(settings)
    groups: dict[tuple[int, int], int] = {}
    for job in jobs:
        size = working_size(*job.size, resolution)
        groups[size] = groups.get(size, 0) + 1
    return groups


def _estimate_text(mode: Mode, seconds: float, steps: int, groups: dict) -> str:
    (width, height), *_ = groups
    return (f"artcloak {mode.value}: about {duration(seconds)} for {steps} steps on "
            f"{sum(groups.values())} image(s) at {width}x{height} (an estimate from the first "
            "encoder pass; the run may stop sooner when it converges)")  # fmt: skip


# --------------------------------------------------------------------------- warnings


def _mask_warnings(jobs) -> list[str]:
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


def _unchanged_warnings(measured: list, skip: set[int] = frozenset()) -> list[str]:
    return [
        f"image {i + 1} was not changed at all (L-inf 0): it is NOT protected."
        for i, figures in enumerate(measured)
        if i not in skip and figures.linf == 0
    ]


def _warn(mode: str, warnings: list[str]) -> None:
    for warning in warnings:
        log.warning("artcloak %s: %s", mode, warning)


def _pack_warnings() -> list[str]:
    return [compat.PROBLEM] if compat.PROBLEM else []


def _resolutions(engine: Engine, settings: ProtectionSettings) -> dict:
    """The model's training resolution and the one this run worked at, clearly apart."""
    return {
        "train_resolution": max(encoder.train_resolution for encoder in engine.encoders),
        "working_resolution": engine.resolution(settings),
        "working_resolution_from": (
            "the resolution input" if settings.resolution else "the model's training resolution"
        ),
    }


# --------------------------------------------------------------------------- protect


def _protect(
    mode: Mode,
    image: torch.Tensor,
    targets: tuple[np.ndarray, ...],
    per_image: bool,
    settings: ProtectionSettings,  # with the target images
    mask: torch.Tensor | None,
    choices: list[VaeChoice],
    original: torch.Tensor | None = None,
    previous_report: str = "",
) -> io.NodeOutput:
    earlier = _earlier_chain(previous_report)
    jobs = convert.to_jobs(image, mask, original)
    warnings = _pack_warnings() + _mask_warnings(jobs) + _chain_warnings(earlier, original)
    with _autograd():
        engine = _engine(choices)
        if per_image:  # each image has its own target (e.g. its own img2img style render)
            for job, target in zip(jobs, targets, strict=True):
                job.target = Target(images=(target,))
        groups = _work_groups(engine, jobs, settings)
        chunks = sum(math.ceil(count / engine.batch_size) for count in groups.values())
        progress = _Progress(settings.effort().steps, chunks, mode, groups, engine.batch_size)
        listener = Listener(on_event=progress.on_event, should_cancel=progress.should_cancel)
        started = time.perf_counter()
        try:
            results = engine.protect(jobs, settings, listener)
        except Cancelled:
            _interrupted()
        seconds = time.perf_counter() - started
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, Failed)]
        if failed:
            index, first = failed[0]
            raise ArtcloakError(
                f"{len(failed)} of {len(jobs)} images could not be protected; "
                f"image {index + 1}: {first.message}"
            )
        empty = {i for i, job in enumerate(jobs) if job.free is not None and not job.free.any()}
        warnings += _unchanged_warnings([r.measured for r in results], empty)
        chain = _chain(earlier, mode, engine, original is not None)
        report = _report(mode, settings, results, engine, per_image, len(targets), warnings,
                         {"estimated_seconds": round(progress.estimate or 0.0, 3),
                          "seconds": round(seconds, 3)},
                         chain, original is not None)  # fmt: skip
    _warn(mode.value, warnings)
    summary = _summary(
        mode.value, settings, [r.measured for r in results], warnings, original is not None
    )
    log.info(summary)
    _show(summary)
    protected = convert.to_image(
        [r.colour for r in results], model_management.intermediate_device()
    )
    return io.NodeOutput(protected, report, ui={"text": (report,)})  # shown on the node


def _summary(
    mode: str, settings: ProtectionSettings, measured: list, warnings: list, chained: bool = False
) -> str:
    """The report in two lines, for the log and the node."""
    budget = settings.budget()
    held = all(figures.within(budget) for figures in measured)
    largest = max(figures.linf for figures in measured) * 255
    worst = max(figures.lpips for figures in measured)
    against = "the original" if chained else "this node's input"
    head = (f"artcloak {mode}: {len(measured)} image(s), "
            f"{'within' if held else 'NOT within'} the budget ({budget.describe()}) against "
            f"{against}: largest change L-inf {largest:g}/255, LPIPS {worst:.4f}.")  # fmt: skip
    return "\n".join([head, *(f"Warning: {warning}" for warning in warnings)])


# --------------------------------------------------------------------------- chains


def _earlier_chain(previous_report: str | None) -> list[dict]:
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


def _chain(earlier: list[dict], mode: Mode, engine: Engine, chained: bool) -> list[dict]:
    """The chain so far, this node last."""
    own = {
        "node": mode.value,
        "encoders": engine.describe()["encoders"],
        "budget_against": "original" if chained else "input",
    }
    return [*earlier, own]


def _chain_warnings(earlier: list[dict], original: torch.Tensor | None) -> list[str]:
    if not earlier or original is not None:
        return []
    nodes = len(earlier) + 1
    return [
        f"this node follows {len(earlier)} artcloak node(s) but 'original' is not connected: "
        "its budget is measured against its own input, so the chain's total change from the "
        f"first image can reach {nodes} times the bound. Connect the first image to "
        "'original' to keep one budget along the chain."
    ]


def _report(mode, settings, results, engine, per_image, target_count, warnings, timing,
            chain=None, chained=False) -> str:  # fmt: skip
    budget = settings.budget()
    chain = chain or _chain([], mode, engine, chained)
    return json.dumps(
        {
            "artcloak": mode.value,
            "warnings": warnings,
            "budget": budget.describe(),
            "budget_measured_against": AGAINST_ORIGINAL if chained else AGAINST_INPUT,
            "within_budget": all(r.measured.within(budget) for r in results),
            "steps": settings.effort().steps,
            "seed": settings.seed,
            "target": (
                "one target image per input image"
                if per_image
                else f"mean of {target_count} target image(s)"
            ),
            **_resolutions(engine, settings),
            "quantisation": QUANTISATION_NOTE,
            "time": timing,
            "images": [
                {
                    "image": index + 1,
                    "measured": r.measured.as_dict(),
                    "within_budget": r.measured.within(budget),
                    "changed": r.measured.linf > 0,
                    "perturbation_kept": round(r.scale, 4),
                    "latent": r.latent,
                    "working_size": list(r.working_size),
                    "seconds": round(r.seconds, 2),
                }
                for index, r in enumerate(results)
            ],
            "models": engine.describe(),
            "chain": chain,
            "chain_encoders": sum(len(entry.get("encoders", [])) for entry in chain),
        },
        indent=2,
    )


# --------------------------------------------------------------------------- inputs and outputs


def _budget_inputs() -> list:
    return [
        io.Combo.Input(
            "intensity",
            options=[item.value for item in Intensity],
            default=Intensity.DEFAULT.value,
            tooltip="The visible-change budget: "
            + "; ".join(
                f"{i.value} LPIPS {b.lpips:g}, L-inf {b.eps_255:g}/255"
                for i, b in INTENSITY_BUDGETS.items()
            )
            + ".",
        ),
        io.Combo.Input(
            "quality",
            options=[item.value for item in Quality],
            default=Quality.DEFAULT.value,
            tooltip="Render quality: optimisation steps ("
            + ", ".join(f"{q.value} {QUALITY_EFFORT[q].steps}" for q in Quality)
            + "). The node logs the expected time before the first step.",
        ),
        io.Int.Input(
            "seed", default=0, min=0, max=SEED_MAX, control_after_generate=SEED_CONTROL,
            tooltip=SEED_TOOLTIP,
        ),
        io.Mask.Input(
            "mask", optional=True,
            tooltip="Where artcloak may change pixels (white); elsewhere pixels stay bit-exact. "
            "Not Load Image's MASK (the inverted alpha, all black without alpha): a mask that "
            "frees no pixel is refused.",
        ),
        io.Float.Input(
            "eps", default=0.0, min=0.0, max=MAX_EPS * 255, step=0.5, optional=True,
            tooltip="L-inf bound in 0-255 units; 0 uses the intensity preset.",
        ),
        io.Float.Input(
            "lpips", default=0.0, min=0.0, max=1.0, step=0.005, optional=True,
            tooltip="LPIPS bound; 0 uses the intensity preset.",
        ),
        io.Int.Input(
            "steps", default=0, min=0, max=MAX_STEPS, optional=True,
            tooltip="Optimisation steps; 0 uses the quality preset.",
        ),
        *_model_inputs(),
        io.Image.Input("original", optional=True, tooltip=ORIGINAL_TOOLTIP),
        io.String.Input(
            "previous_report", optional=True, force_input=True, tooltip=PREVIOUS_REPORT_TOOLTIP
        ),
    ]  # fmt: skip


def _model_inputs() -> list:
    return [
        io.Combo.Input(
            "model_family", options=list(FAMILIES), default="auto", optional=True,
            tooltip="The VAE's model family (sets the training resolution: 512 for SD 1.x/2.x, "
            "1024 for SDXL/SD3/Flux). auto: SD 1.x for 4 latent channels, SD3 for 16.",
        ),
        io.Int.Input(
            "resolution", default=0, min=0, max=4096, step=8, optional=True,
            tooltip="Working shorter side in pixels; 0 uses the model's training resolution "
            "(the report gives both).",
        ),
        io.String.Input(
            "vae_config", default="", optional=True,
            tooltip="Path to a diffusers config.json, only for a VAE of no known family.",
        ),
    ]  # fmt: skip


def _outputs() -> list:
    return [
        io.Image.Output(
            "protected", display_name="protected",
            tooltip="The protected image(s), 8-bit samples. Save them with artcloak Save "
            "Protected: ComfyUI's Save Image writes the workflow (artcloak's settings, seed) "
            "into the PNG.",
        ),
        io.String.Output("report", display_name="report", tooltip=REPORT_TOOLTIP),
    ]  # fmt: skip


_VAE_TOOLTIP = (
    "The VAE whose encoder should be misled (the graph's own; artcloak copies only its "
    "encoder and never changes it)."
)


# --------------------------------------------------------------------------- nodes


class Cloak(io.ComfyNode):
    """Style protection: the encoder sees the artwork in the style target's style."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.Cloak",
            display_name="artcloak Cloak",
            category=CATEGORY,
            description="Perturbs the image(s), within a perceptual budget, so that the VAE "
            "encoder sees them in the style target's style. Connect the graph's VAE.",
            inputs=[
                io.Image.Input("image", tooltip="The artwork(s) to protect."),
                io.Vae.Input("vae", tooltip=_VAE_TOOLTIP),
                io.Image.Input(
                    "style_target",
                    tooltip="The artwork re-rendered in another style (img2img, strength about "
                    "0.4-0.5), or any style image. A batch as large as the image batch gives "
                    "each image its own target; otherwise their mean latent is the target.",
                ),
                *_budget_inputs(),
                VAES.Input("more_vaes", optional=True, tooltip=VAES_TOOLTIP),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls, image, vae, style_target, intensity="default", quality="default", seed=0,
        mask=None, eps=0.0, lpips=0.0, steps=0, model_family="auto", resolution=0, vae_config="",
        original=None, previous_report="", more_vaes=None,
    ) -> io.NodeOutput:  # fmt: skip
        targets = convert.to_arrays(style_target, "style target")
        count = image.shape[0] if image.ndim == 4 else 1
        values = _values(Mode.CLOAK, intensity, quality, seed, eps, lpips, steps, resolution)
        settings = checked_settings(values, targets)
        per_image = count > 1 and len(targets) == count
        choices = _choices(vae, model_family, vae_config, more_vaes)
        return _protect(Mode.CLOAK, image, targets, per_image, settings, mask, choices, original,
                        previous_report)  # fmt: skip


class Shade(io.ComfyNode):
    """Concept poisoning: the encoder sees the concept of the anchor images."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.Shade",
            display_name="artcloak Shade",
            category=CATEGORY,
            description="Perturbs the image(s), within a perceptual budget, so that the VAE "
            "encoder sees the concept of the anchor images instead.",
            inputs=[
                io.Image.Input("image", tooltip="Pictures of the concept to poison."),
                io.Vae.Input("vae", tooltip=_VAE_TOOLTIP),
                io.Image.Input(
                    "anchors",
                    tooltip="One or more images of the target concept (a batch); the target "
                    "is their mean latent.",
                ),
                *_budget_inputs(),
                VAES.Input("more_vaes", optional=True, tooltip=VAES_TOOLTIP),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls, image, vae, anchors, intensity="default", quality="default", seed=0,
        mask=None, eps=0.0, lpips=0.0, steps=0, model_family="auto", resolution=0, vae_config="",
        original=None, previous_report="", more_vaes=None,
    ) -> io.NodeOutput:  # fmt: skip
        targets = convert.to_arrays(anchors, "anchor images")
        values = _values(Mode.SHADE, intensity, quality, seed, eps, lpips, steps, resolution)
        settings = checked_settings(values, targets)
        choices = _choices(vae, model_family, vae_config, more_vaes)
        return _protect(Mode.SHADE, image, targets, False, settings, mask, choices, original,
                        previous_report)  # fmt: skip


class Verify(io.ComfyNode):
    """Measure protected images against their originals, and show what the model sees."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.Verify",
            display_name="artcloak Verify",
            category=CATEGORY,
            description="Measures the budget used (LPIPS, L-inf, PSNR on 8-bit samples), the "
            "latent shift, and how much of it survives JPEG and downscaling; outputs the VAE's "
            "reconstruction of the protected image (what the model sees).",
            is_output_node=True,
            inputs=[
                io.Image.Input(
                    "original",
                    tooltip="The image(s) before protection (the same batch, in the same order).",
                ),
                io.Image.Input(
                    "protected",
                    tooltip="The protected image(s) to measure, e.g. artcloak Cloak's output or "
                    "a protected PNG loaded again.",
                ),
                io.Vae.Input(
                    "vae",
                    tooltip="The VAE to measure with: its encoder gives the latent shift, its "
                    "decoder the model view.",
                ),
                io.Combo.Input(
                    "intensity",
                    options=[item.value for item in Intensity],
                    default=Intensity.DEFAULT.value,
                    tooltip="The budget to check against (eps/lpips override it).",
                ),
                io.Image.Input(
                    "target", optional=True,
                    tooltip="The style target or anchors: also report how much of the "
                    "distance to the target's latent was closed.",
                ),
                io.Float.Input(
                    "eps", default=0.0, min=0.0, max=MAX_EPS * 255, step=0.5, optional=True,
                    tooltip="L-inf bound to check, in 0-255 units; 0 uses the intensity preset.",
                ),
                io.Float.Input(
                    "lpips", default=0.0, min=0.0, max=1.0, step=0.005, optional=True,
                    tooltip="LPIPS bound to check; 0 uses the intensity preset.",
                ),
                *_model_inputs(),
                io.String.Input(
                    "previous_report", optional=True, force_input=True,
                    tooltip="The report of the last Cloak or Shade of a chain: Verify then lists "
                    "the chain's nodes and encoders, and warns where a node kept its budget "
                    "against its own input instead of the original.",
                ),
                VAES.Input(
                    "more_vaes", optional=True,
                    tooltip="Further VAEs to measure (from artcloak Add VAE): the report gives "
                    "the latent figures for each, the node's own VAE first.",
                ),
            ],
            outputs=[
                io.String.Output(
                    "report", display_name="report",
                    tooltip="JSON, per image: the budget measured, the latent shift, and what "
                    "of it survives JPEG q90/q75 and 0.5x downscaling. Also shown on the node.",
                ),
                io.Image.Output(
                    "model_view", display_name="model view",
                    tooltip="What the model sees of the protected image: the VAE's "
                    "reconstruction of its latent, at the working size.",
                ),
            ],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, original, protected, vae, intensity="default", target=None, eps=0.0, lpips=0.0,
        model_family="auto", resolution=0, vae_config="", previous_report="", more_vaes=None,
    ) -> io.NodeOutput:  # fmt: skip
        chain = _earlier_chain(previous_report)  # a wrong report: refused before any work
        originals, _ = convert.to_samples(original, "original")
        protecteds, _ = convert.to_samples(protected, "protected image")
        if not convert.same_batch(originals, protecteds):
            raise ArtcloakError(
                f"The protected batch ({convert.batch_size(protecteds)}) does not match the "
                f"originals ({convert.batch_size(originals)}): compare images with their own "
                "protected copies."
            )
        targets = () if target is None else convert.to_arrays(target)
        values = _values(Mode.CLOAK, intensity, eps=eps, lpips=lpips, resolution=resolution)
        settings = checked_settings(values, targets)
        toward = target is not None
        with _autograd():
            engine = _engine(_choices(vae, model_family, vae_config, more_vaes))
            images, latents = [], []
            for index, (before, after) in enumerate(zip(originals, protecteds, strict=True)):
                if model_management.processing_interrupted():
                    _interrupted()
                before, after = convert.to_rgb(before), convert.to_rgb(after)
                figures = verify_images(engine, before, after, convert.MAX_VALUE, settings, toward)
                images.append(_verified(index, figures))
                latents.append(engine.encode_view(after, 1, settings)[0])
            resolutions = _resolutions(engine, settings)
            models = engine.describe()
        # the model view: the graph's own VAE decodes (the private copy is encoder-only),
        # as ComfyUI's VAE Decode does, under ComfyUI's inference mode
        view = torch.cat([_decode(vae, latent) for latent in latents])
        warnings = (
            _pack_warnings()
            + [
                f"image {item['image']}: the protected image equals the original (L-inf 0): it "
                "is NOT protected."
                for item in images
                if item["measured"]["linf_255"] == 0
            ]
            + _loose_links(chain)
        )
        report = {
            "warnings": warnings,
            "budget": settings.budget().describe(),
            "within_budget": all(item["within_budget"] for item in images),
            **resolutions,
            "quantisation": "Measured on 8-bit samples, as ComfyUI saves them.",
            "images": images,
            "models": models,
            **({"chain": chain} if chain else {}),
        }
        _warn("verify", warnings)
        text = json.dumps(report, indent=2)
        view = view.to(model_management.intermediate_device())
        return io.NodeOutput(text, view, ui={"text": (text,)})  # shown on the node


def _loose_links(chain: list[dict]) -> list[str]:
    """Verify's warning for a chain whose later nodes kept their budget against their own
    input: their changes add up, so the chain's total may exceed one budget."""
    loose = [
        str(i + 1) for i, entry in enumerate(chain) if i and entry["budget_against"] != "original"
    ]
    if not loose:
        return []
    return [
        f"in this chain of {len(chain)} nodes, node(s) {', '.join(loose)} kept the budget "
        "against their own input, not the original: the figures above, against the original, "
        "say whether the whole chain stayed within one budget."
    ]


def _decode(vae, latent: torch.Tensor) -> torch.Tensor:
    """A latent mean (C, h, w) -> the graph VAE's image (1, H, W, 3) in [0, 1]."""
    with torch.no_grad():
        images = vae.decode(latent.unsqueeze(0))
    if images.ndim == 5:  # video VAEs: combine the batches, as VAE Decode does
        images = images.reshape(-1, *images.shape[-3:])
    return images[..., :3].float().clamp(0, 1).cpu()


def _verified(index: int, figures: dict) -> dict:
    """One image's entry in Verify's report: the core's verify figures (engine/verify.py),
    with ``within_budget`` beside ``measured`` as in Cloak's and Shade's reports."""
    measured = dict(figures["measured"])
    within = measured.pop("within_budget")
    return {"image": index + 1, "measured": measured, "within_budget": within,
            "latent": figures["latent"], "after": figures["after"]}  # fmt: skip


NODES: list[type[io.ComfyNode]] = [Cloak, Shade, Verify]
