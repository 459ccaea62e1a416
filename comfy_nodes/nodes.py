"""artcloak's ComfyUI nodes (V3 schema): Cloak, Shade and Verify.

Each node takes the VAE the graph already loaded, makes a private differentiable copy of its
encoder, and runs artcloak's engine with autograd switched back on (ComfyUI runs nodes under
``torch.inference_mode()``). Progress goes to ComfyUI's progress bar; ComfyUI's interrupt is
checked at every optimisation step.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from dataclasses import replace

import comfy.model_management as model_management
import comfy.utils
import numpy as np
import torch
from artcloak.engine.protect import Engine, Failed
from artcloak.engine.targets import check_target
from artcloak.engine.verify import model_view, verify_images
from artcloak.errors import ArtcloakError, Cancelled
from artcloak.progress import Listener, ProgressEvent
from artcloak.settings import (
    MAX_EPS,
    MAX_STEPS,
    Intensity,
    Mode,
    ModelSettings,
    ProtectionSettings,
    Quality,
    Target,
    request_from_flat,
)
from comfy_api.latest import io

from . import convert
from .vae import FAMILIES, private_encoder

CATEGORY = "artcloak"
QUANTISATION_NOTE = (
    "Protected as 8-bit samples, as ComfyUI saves 8-bit PNGs: the budget holds on a PNG saved "
    "from this IMAGE. Saving as JPEG/WebP or resizing changes the pixels; check with artcloak Verify."
)
# Tests only: a random LPIPS backbone when the ImageNet weights cannot be had. The report
# then says the budget is not perceptual.
RANDOM_LPIPS_ENV = "ARTCLOAK_TEST_RANDOM_LPIPS"

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


def _engine(vae, family: str, config: str, resolution: int) -> Engine:
    device = _device()
    encoder = private_encoder(
        vae, family=family, config=config.strip(), device=device, resolution=resolution
    )
    engine = _engines.get(id(encoder))
    if engine is None or engine.encoders[0] is not encoder:
        models = ModelSettings(
            encoders=(encoder.source,),
            device=device,
            lpips_random_backbone=os.environ.get(RANDOM_LPIPS_ENV) == "1",
        )
        _engines.clear()
        engine = _engines[id(encoder)] = Engine(models, encoders=[encoder])
    return engine


class _Progress:
    """Optimisation steps -> ComfyUI's progress bar; ComfyUI's interrupt -> Cancelled."""

    def __init__(self, steps: int, chunks: int) -> None:
        self.steps = steps
        self.bar = comfy.utils.ProgressBar(max(1, steps * chunks))

    def on_event(self, event: ProgressEvent) -> None:
        if event.stage == "optimise" and event.step > 0:
            self.bar.update(1)
            if event.step == event.total < self.steps:  # the loop stopped early
                self.bar.update(self.steps - event.total)

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


def _protect(
    mode: Mode,
    image: torch.Tensor,
    vae,
    targets: tuple[np.ndarray, ...],
    per_image: bool,
    settings: ProtectionSettings,  # with the target images
    mask: torch.Tensor | None,
    family: str,
    config: str,
) -> io.NodeOutput:
    jobs = convert.to_jobs(image, mask)
    with _autograd():
        engine = _engine(vae, family, config, settings.resolution or 0)
        if per_image:  # each image has its own target (e.g. its own img2img style render)
            for job, target in zip(jobs, targets, strict=True):
                job.target = Target(images=(target,))
        chunks = math.ceil(len(jobs) / engine.batch_size)
        progress = _Progress(settings.effort().steps, chunks)
        listener = Listener(on_event=progress.on_event, should_cancel=progress.should_cancel)
        try:
            results = engine.protect(jobs, settings, listener)
        except Cancelled:
            _interrupted()
        failed = [(i, r) for i, r in enumerate(results) if isinstance(r, Failed)]
        if failed:
            index, first = failed[0]
            raise ArtcloakError(
                f"{len(failed)} of {len(jobs)} images could not be protected; "
                f"image {index + 1}: {first.message}"
            )
        report = _report(mode, settings, results, engine, per_image, len(targets))
    protected = convert.to_image(
        [r.colour for r in results], model_management.intermediate_device()
    )
    return io.NodeOutput(protected, report)


def _report(mode, settings, results, engine, per_image, target_count) -> str:
    budget = settings.budget()
    return json.dumps(
        {
            "artcloak": mode.value,
            "budget": budget.describe(),
            "within_budget": all(r.measured.within(budget) for r in results),
            "steps": settings.effort().steps,
            "seed": settings.seed,
            "target": (
                "one target image per input image"
                if per_image
                else f"mean of {target_count} target image(s)"
            ),
            "quantisation": QUANTISATION_NOTE,
            "images": [
                {
                    "image": index + 1,
                    "measured": r.measured.as_dict(),
                    "within_budget": r.measured.within(budget),
                    "perturbation_kept": round(r.scale, 4),
                    "latent": r.latent,
                    "working_size": list(r.working_size),
                    "seconds": round(r.seconds, 2),
                }
                for index, r in enumerate(results)
            ],
            "models": engine.describe(),
        },
        indent=2,
    )


def _budget_inputs() -> list:
    return [
        io.Combo.Input(
            "intensity",
            options=[item.value for item in Intensity],
            default=Intensity.DEFAULT.value,
            tooltip="The visible-change budget: low LPIPS 0.03, L-inf 4/255; default 0.05, "
            "8/255; high 0.10, 16/255.",
        ),
        io.Combo.Input(
            "quality",
            options=[item.value for item in Quality],
            default=Quality.DEFAULT.value,
            tooltip="Render quality: optimisation steps (faster 25, default 50, slower 200).",
        ),
        io.Int.Input(
            "seed", default=0, min=0, max=2**31 - 1, control_after_generate=True,
            tooltip="The same seed gives the same result on the same machine.",
        ),
        io.Mask.Input(
            "mask", optional=True,
            tooltip="Where artcloak may change pixels (white); elsewhere pixels stay bit-exact.",
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
    ]  # fmt: skip


def _model_inputs() -> list:
    return [
        io.Combo.Input(
            "model_family", options=list(FAMILIES), default="auto", optional=True,
            tooltip="The VAE's model family (sets the working resolution: 512 for SD 1.x/2.x, "
            "1024 for SDXL/SD3/Flux). auto: SD 1.x for 4 latent channels, SD3 for 16.",
        ),
        io.Int.Input(
            "resolution", default=0, min=0, max=4096, step=8, optional=True,
            tooltip="Working shorter side in pixels; 0 uses the model family's.",
        ),
        io.String.Input(
            "vae_config", default="", optional=True,
            tooltip="Path to a diffusers config.json, only for a VAE of no known family.",
        ),
    ]  # fmt: skip


def _outputs() -> list:
    return [
        io.Image.Output("protected", display_name="protected"),
        io.String.Output("report", display_name="report"),
    ]


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
                io.Vae.Input("vae", tooltip="The VAE whose encoder should be misled."),
                io.Image.Input(
                    "style_target",
                    tooltip="The artwork re-rendered in another style (img2img, strength about "
                    "0.4-0.5), or any style image. A batch as large as the image batch gives "
                    "each image its own target; otherwise their mean latent is the target.",
                ),
                *_budget_inputs(),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls, image, vae, style_target, intensity="default", quality="default", seed=0,
        mask=None, eps=0.0, lpips=0.0, steps=0, model_family="auto", resolution=0, vae_config="",
    ) -> io.NodeOutput:  # fmt: skip
        targets = convert.to_arrays(style_target, "style target")
        count = image.shape[0] if image.ndim == 4 else 1
        values = _values(Mode.CLOAK, intensity, quality, seed, eps, lpips, steps, resolution)
        settings = checked_settings(values, targets)
        per_image = count > 1 and len(targets) == count
        return _protect(
            Mode.CLOAK, image, vae, targets, per_image, settings, mask, model_family, vae_config
        )


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
                io.Vae.Input("vae", tooltip="The VAE whose encoder should be misled."),
                io.Image.Input(
                    "anchors",
                    tooltip="One or more images of the target concept (a batch); the target "
                    "is their mean latent.",
                ),
                *_budget_inputs(),
            ],
            outputs=_outputs(),
        )

    @classmethod
    def execute(
        cls, image, vae, anchors, intensity="default", quality="default", seed=0,
        mask=None, eps=0.0, lpips=0.0, steps=0, model_family="auto", resolution=0, vae_config="",
    ) -> io.NodeOutput:  # fmt: skip
        targets = convert.to_arrays(anchors, "anchor images")
        values = _values(Mode.SHADE, intensity, quality, seed, eps, lpips, steps, resolution)
        settings = checked_settings(values, targets)
        return _protect(
            Mode.SHADE, image, vae, targets, False, settings, mask, model_family, vae_config
        )


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
                io.Image.Input("original"),
                io.Image.Input("protected"),
                io.Vae.Input("vae"),
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
                io.Float.Input("eps", default=0.0, min=0.0, max=MAX_EPS * 255, step=0.5, optional=True),
                io.Float.Input("lpips", default=0.0, min=0.0, max=1.0, step=0.005, optional=True),
                *_model_inputs(),
            ],
            outputs=[
                io.String.Output("report", display_name="report"),
                io.Image.Output("model_view", display_name="model view"),
            ],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, original, protected, vae, intensity="default", target=None, eps=0.0, lpips=0.0,
        model_family="auto", resolution=0, vae_config="",
    ) -> io.NodeOutput:  # fmt: skip
        originals, _ = convert.to_samples(original, "original")
        protecteds, _ = convert.to_samples(protected, "protected image")
        if len(originals) != len(protecteds) or originals[0].shape != protecteds[0].shape:
            raise ArtcloakError(
                f"The protected batch ({len(protecteds)} x {protecteds[0].shape[1]}x"
                f"{protecteds[0].shape[0]}) does not match the originals ({len(originals)} x "
                f"{originals[0].shape[1]}x{originals[0].shape[0]}): compare images with their "
                "own protected copies."
            )
        targets = () if target is None else convert.to_arrays(target)
        values = _values(Mode.CLOAK, intensity, eps=eps, lpips=lpips, resolution=resolution)
        settings = checked_settings(values, targets)
        toward = target is not None
        with _autograd():
            engine = _engine(vae, model_family, vae_config, settings.resolution or 0)
            images, views = [], []
            for index, (before, after) in enumerate(zip(originals, protecteds, strict=True)):
                if model_management.processing_interrupted():
                    _interrupted()
                before, after = convert.to_rgb(before), convert.to_rgb(after)
                figures = verify_images(engine, before, after, convert.MAX_VALUE, settings, toward)
                images.append(_verified(index, figures))
                views.append(torch.from_numpy(model_view(engine, after, settings)).unsqueeze(0))
        report = {
            "budget": settings.budget().describe(),
            "within_budget": all(item["within_budget"] for item in images),
            "quantisation": "Measured on 8-bit samples, as ComfyUI saves them.",
            "images": images,
            "models": engine.describe(),
        }
        view = torch.cat(views).to(model_management.intermediate_device())
        text = json.dumps(report, indent=2)
        return io.NodeOutput(text, view, ui={"text": (text,)})  # shown on the node


def _verified(index: int, figures: dict) -> dict:
    """One image's entry in Verify's report: the core's verify figures (engine/verify.py),
    with ``within_budget`` beside ``measured`` as in Cloak's and Shade's reports."""
    measured = dict(figures["measured"])
    within = measured.pop("within_budget")
    return {"image": index + 1, "measured": measured, "within_budget": within,
            "latent": figures["latent"], "after": figures["after"]}  # fmt: skip


NODES: list[type[io.ComfyNode]] = [Cloak, Shade, Verify]
