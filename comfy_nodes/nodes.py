"""artcloak's ComfyUI nodes (V3 schema): Cloak, Shade and Verify.

Each node takes the VAE the graph already loaded, makes a private differentiable copy of its
encoder, and runs artcloak's engine with autograd switched back on (ComfyUI runs nodes under
``torch.inference_mode()``). Before the first optimisation step the node logs (and shows on
the node) how long the run should take, the core's estimate from its first encoder pass;
progress goes to ComfyUI's progress bar; ComfyUI's interrupt is checked at every step. The
report is an output, shown on the node (``ui``), and logged in short, with any warning.
"""

from __future__ import annotations

import inspect
import math
import time

import comfy.model_management as model_management
import numpy as np
import torch
from artcloak.engine import Failed, Run
from artcloak.errors import ArtcloakError, Cancelled
from artcloak.progress import Listener
from artcloak.settings import Mode, Target
from comfy_api.latest import io

from . import convert
from .ensemble import VAES, VAES_TOOLTIP, VaeChoice
from .inputs import VAE_TOOLTIP, budget_inputs, protect_outputs
from .plumbing import (
    CATEGORY,
    NodeProgress,
    autograd_on,
    engine_for,
    flat_values,
    log,
    node_run,
    raise_interrupted,
    show_on_node,
    vae_choices,
    work_groups,
)
from .reports import (
    chain_warnings,
    chain_with,
    earlier_chain,
    log_warnings,
    mask_warnings,
    pack_warnings,
    report_json,
    summary_text,
    unchanged_warnings,
)
from .verify_node import Verify

# --------------------------------------------------------------------------- protect


def _protect(
    run: Run,  # with the target images
    image: torch.Tensor,
    targets: tuple[np.ndarray, ...],
    per_image: bool,
    mask: torch.Tensor | None,
    choices: list[VaeChoice],
    original: torch.Tensor | None = None,
    previous_report: str = "",
) -> io.NodeOutput:
    settings, mode = run.asked, run.asked.mode
    earlier = earlier_chain(previous_report)
    jobs = convert.to_jobs(image, mask, original)
    warnings = pack_warnings() + mask_warnings(jobs) + chain_warnings(earlier, original)
    with autograd_on():
        engine = engine_for(choices)
        if per_image:  # each image has its own target (e.g. its own img2img style render)
            for job, target in zip(jobs, targets, strict=True):
                job.target = Target(images=(target,))
        groups = work_groups(engine, jobs, settings)
        chunks = sum(math.ceil(count / engine.batch_size) for count in groups.values())
        progress = NodeProgress(settings.effort().steps, chunks, mode, groups, engine.batch_size)
        listener = Listener(on_event=progress.on_event, should_cancel=progress.should_cancel)
        started = time.perf_counter()
        try:
            results = run.protect_images(engine, jobs, listener)
        except Cancelled:
            raise_interrupted()
        seconds = time.perf_counter() - started
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, Failed)]
        if failed:
            index, first = failed[0]
            raise ArtcloakError(
                f"{len(failed)} of {len(jobs)} images could not be protected; "
                f"image {index + 1}: {first.message}"
            )
        empty = {i for i, job in enumerate(jobs) if job.free is not None and not job.free.any()}
        warnings += unchanged_warnings([r.measured for r in results], empty)
        chain = chain_with(earlier, mode, engine, original is not None)
        report = report_json(mode, settings, results, engine, per_image, len(targets), warnings,
                         {"estimated_seconds": round(progress.estimate or 0.0, 3),
                          "seconds": round(seconds, 3)},
                         chain, original is not None)  # fmt: skip
    log_warnings(mode.value, warnings)
    summary = summary_text(
        mode.value, settings, [r.measured for r in results], warnings, original is not None
    )
    log.info(summary)
    show_on_node(summary)
    protected = convert.to_image(
        [r.colour for r in results], model_management.intermediate_device()
    )
    return io.NodeOutput(protected, report, ui={"text": (report,)})  # shown on the node


# --------------------------------------------------------------------------- nodes


class ProtectNode(io.ComfyNode):
    """What Cloak and Shade share: the inputs but one (the target images), the outputs, and the
    run; each says its mode, its target input and its words."""

    MODE: Mode
    DESCRIPTION: str
    IMAGE_TOOLTIP: str
    TARGET_INPUT: str  # the name of the target images' input
    TARGET_TOOLTIP: str
    TARGET_WHAT: str  # the target images in an error message
    PER_IMAGE: bool  # a target batch as large as the image batch: one target per image

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id=f"artcloak.{cls.__name__}",
            display_name=f"artcloak {cls.__name__}",
            category=CATEGORY,
            description=cls.DESCRIPTION,
            inputs=[
                io.Image.Input("image", tooltip=cls.IMAGE_TOOLTIP),
                io.Vae.Input("vae", tooltip=VAE_TOOLTIP),
                io.Image.Input(cls.TARGET_INPUT, tooltip=cls.TARGET_TOOLTIP),
                *budget_inputs(),
                VAES.Input("more_vaes", optional=True, tooltip=VAES_TOOLTIP),
            ],
            outputs=protect_outputs(),
        )

    @classmethod
    def protect_toward(
        cls, image, vae, target_images, intensity="default", quality="default", seed=0, mask=None,
        eps=0.0, lpips=0.0, steps=0, model_family="auto", resolution=0, vae_config="",
        adaptive=False, original=None, previous_report="", more_vaes=None,
    ) -> io.NodeOutput:  # fmt: skip
        """Run the node on its inputs (``target_images``: its target input's images); the
        defaults are what ComfyUI's unconnected optional inputs get."""
        targets = convert.to_arrays(target_images, cls.TARGET_WHAT)
        count = image.shape[0] if image.ndim == 4 else 1
        values = flat_values(cls.MODE, intensity, quality, seed, eps, lpips, steps, resolution,
                             adaptive)  # fmt: skip
        run = node_run(values, targets)  # checked here, before the VAE is copied
        per_image = cls.PER_IMAGE and count > 1 and len(targets) == count
        choices = vae_choices(vae, model_family, vae_config, more_vaes)
        return _protect(run, image, targets, per_image, mask, choices, original, previous_report)


def execute_taking(target_input: str) -> classmethod:
    """Cloak's or Shade's ``execute``: ComfyUI passes every input by name (leaving out the
    unconnected optional ones), here to ``protect_toward``. Its signature, which says which
    inputs it takes, is ``protect_toward``'s with the target images named ``target_input``."""

    def execute(cls, **inputs) -> io.NodeOutput:
        return cls.protect_toward(target_images=inputs.pop(target_input), **inputs)

    signature = inspect.signature(ProtectNode.protect_toward.__func__)
    parameters = [item.replace(name=target_input) if item.name == "target_images" else item
                  for item in signature.parameters.values()]  # fmt: skip
    execute.__signature__ = signature.replace(parameters=parameters)
    return classmethod(execute)


class Cloak(ProtectNode):
    """Style protection: the encoder sees the artwork in the style target's style."""

    MODE = Mode.CLOAK
    DESCRIPTION = (
        "Perturbs the image(s), within a perceptual budget, so that the VAE encoder sees them "
        "in the style target's style. Connect the graph's VAE."
    )
    IMAGE_TOOLTIP = "The artwork(s) to protect."
    TARGET_INPUT = "style_target"
    TARGET_TOOLTIP = (
        "The artwork re-rendered in another style (img2img, strength about 0.4-0.5), or any "
        "style image. A batch as large as the image batch gives each image its own target; "
        "otherwise their mean latent is the target."
    )
    TARGET_WHAT = "style target"
    PER_IMAGE = True

    execute = execute_taking(TARGET_INPUT)


class Shade(ProtectNode):
    """Concept poisoning: the encoder sees the concept of the anchor images."""

    MODE = Mode.SHADE
    DESCRIPTION = (
        "Perturbs the image(s), within a perceptual budget, so that the VAE encoder sees the "
        "concept of the anchor images instead."
    )
    IMAGE_TOOLTIP = "Pictures of the concept to poison."
    TARGET_INPUT = "anchors"
    TARGET_TOOLTIP = (
        "One or more images of the target concept (a batch); the target is their mean latent."
    )
    TARGET_WHAT = "anchor images"
    PER_IMAGE = False

    execute = execute_taking(TARGET_INPUT)


NODES: list[type[io.ComfyNode]] = [Cloak, Shade, Verify]
