"""artcloak Verify: protected images measured against their originals, and what the model
sees of them."""

from __future__ import annotations

import json

import comfy.model_management as model_management
import torch
from artcloak.engine import verify_images
from artcloak.errors import ArtcloakError
from artcloak.settings import (
    Intensity,
    Mode,
)
from comfy_api.latest import io

from . import convert
from .ensemble import VAES
from .inputs import bound_inputs, model_inputs
from .plumbing import (
    CATEGORY,
    autograd_on,
    checked_settings,
    engine_for,
    flat_values,
    raise_interrupted,
    vae_choices,
)
from .reports import earlier_chain, log_warnings, pack_warnings, resolution_figures


def verify_inputs() -> list:
    """Verify's inputs: the two images and the VAE, the budget to check, the target, the
    model options, the chain's report and more VAEs."""
    return [
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
        *bound_inputs("L-inf bound to check, in 0-255 units", "LPIPS bound to check"),
        *model_inputs(),
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
    ]  # fmt: skip


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
            inputs=verify_inputs(),
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
        chain = earlier_chain(previous_report)  # a wrong report: refused before any work
        originals, _ = convert.to_samples(original, "original")
        protecteds, _ = convert.to_samples(protected, "protected image")
        if not convert.same_batch(originals, protecteds):
            raise ArtcloakError(
                f"The protected batch ({convert.batch_size(protecteds)}) does not match the "
                f"originals ({convert.batch_size(originals)}): compare images with their own "
                "protected copies."
            )
        targets = () if target is None else convert.to_arrays(target)
        values = flat_values(Mode.CLOAK, intensity, eps=eps, lpips=lpips, resolution=resolution)
        settings = checked_settings(values, targets)
        toward = target is not None
        with autograd_on():
            engine = engine_for(vae_choices(vae, model_family, vae_config, more_vaes))
            images, latents = [], []
            for index, (before, after) in enumerate(zip(originals, protecteds, strict=True)):
                if model_management.processing_interrupted():
                    raise_interrupted()
                before, after = convert.to_rgb(before), convert.to_rgb(after)
                figures = verify_images(engine, before, after, convert.MAX_VALUE, settings, toward)
                images.append(_verified(index, figures))
                latents.append(engine.encode_view(after, 1, settings)[0])
            resolutions = resolution_figures(engine, settings)
            models = engine.describe()
        # the model view: the graph's own VAE decodes (the private copy is encoder-only),
        # as ComfyUI's VAE Decode does, under ComfyUI's inference mode
        view = torch.cat([_decode(vae, latent) for latent in latents])
        warnings = (
            pack_warnings()
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
        log_warnings("verify", warnings)
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
