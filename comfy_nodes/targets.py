"""Target nodes that sample with ComfyUI's own sampler and the graph's MODEL/CLIP/VAE:
Style target (img2img of the artwork in another style, for Cloak) and Concept anchor
(text-to-image pictures of the target concept, for Shade)."""

from __future__ import annotations

import comfy.model_management as model_management
import comfy.samplers
import torch
from artcloak.errors import SettingsError
from comfy_api.latest import io

from .nodes import CATEGORY

# Style prompts for cloak targets: styles far from most artists' own, so the encoder is led
# well away from the artwork's style. (The core has no prompt catalogue yet; this is the only
# copy, to move there when it has one.)
STYLES: dict[str, str] = {
    "oil impasto": "an oil painting with thick impasto brush strokes and heavy texture",
    "watercolour": "a loose watercolour painting with soft bleeding washes on rough paper",
    "charcoal": "a rough charcoal drawing with heavy smudged strokes",
    "cubist": "a cubist painting with fragmented geometric planes",
    "ukiyo-e": "an ukiyo-e woodblock print with flat colours and bold outlines",
    "pop art": "a pop art print with halftone dots and saturated flat colours",
    "mosaic": "a stone mosaic made of small irregular tiles",
    "pixel art": "low-resolution pixel art with a limited palette",
}
CUSTOM = "custom prompt"
DEFAULT_NEGATIVE = "blurry, low quality"


def _encode_text(clip, text: str):
    """Conditioning from text, as ComfyUI's CLIP Text Encode node makes it."""
    if clip is None:
        raise SettingsError("The CLIP input is not connected; connect the checkpoint's CLIP.")
    return clip.encode_from_tokens_scheduled(clip.tokenize(text))


def _sample(
    model, clip, vae, prompt, negative, latent, seed, steps, cfg, sampler, scheduler, denoise
):
    import nodes  # ComfyUI's own nodes module: its KSampler's sampling function

    positive = _encode_text(clip, prompt)
    negative = _encode_text(clip, negative)
    (out,) = nodes.common_ksampler(
        model, seed, steps, cfg, sampler, scheduler, positive, negative, latent, denoise=denoise
    )
    images = vae.decode(out["samples"])
    if images.ndim == 5:  # video VAEs: combine the batches, as VAE Decode does
        images = images.reshape(-1, *images.shape[-3:])
    return images


def _sampler_inputs() -> list:
    return [
        io.Int.Input("seed", default=0, min=0, max=2**63 - 1, control_after_generate=True),
        io.Int.Input("steps", default=20, min=1, max=200),
        io.Float.Input("cfg", default=7.0, min=0.0, max=30.0, step=0.1),
        io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS)),
        io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS)),
        io.String.Input("negative", default=DEFAULT_NEGATIVE, multiline=True, optional=True),
    ]


class StyleTarget(io.ComfyNode):
    """The artwork re-rendered in another style: img2img with ComfyUI's sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.StyleTarget",
            display_name="artcloak Style target",
            category=CATEGORY,
            description="Re-renders the artwork in another style (img2img with the graph's "
            "model), as the style target of artcloak Cloak.",
            inputs=[
                io.Image.Input("image", tooltip="The artwork(s) to protect."),
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.Vae.Input("vae"),
                io.Combo.Input(
                    "style", options=[*STYLES, CUSTOM], default="oil impasto",
                    tooltip="A target style far from the artwork's own, or the prompt below.",
                ),
                io.String.Input(
                    "prompt", default="", multiline=True,
                    tooltip="The style prompt for 'custom prompt'; otherwise added to the style.",
                ),
                io.Float.Input(
                    "strength", default=0.45, min=0.05, max=1.0, step=0.05,
                    tooltip="img2img denoise: about 0.4-0.5 keeps the content, changes the style.",
                ),
                *_sampler_inputs(),
            ],
            outputs=[io.Image.Output("style_target", display_name="style target")],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, image, model, clip, vae, style, prompt, strength, seed, steps, cfg, sampler_name,
        scheduler, negative=DEFAULT_NEGATIVE,
    ) -> io.NodeOutput:  # fmt: skip
        extra = prompt.strip()
        if style == CUSTOM:
            if not extra:
                raise SettingsError("The style is 'custom prompt' but the prompt is empty.")
            text = extra
        elif style in STYLES:
            text = f"{STYLES[style]}, {extra}" if extra else STYLES[style]
        else:
            raise SettingsError(f"Unknown style '{style}'; use one of {', '.join(STYLES)}.")
        latent = {"samples": vae.encode(image[..., :3])}
        images = _sample(model, clip, vae, text, negative, latent, seed, steps, cfg,
                         sampler_name, scheduler, strength)  # fmt: skip
        return io.NodeOutput(images)


class ConceptAnchor(io.ComfyNode):
    """Pictures of the target concept: text-to-image with ComfyUI's sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.ConceptAnchor",
            display_name="artcloak Concept anchor",
            category=CATEGORY,
            description="Generates pictures of the target concept ('a photo of a {concept}') "
            "with the graph's model, as the anchors of artcloak Shade.",
            inputs=[
                io.Model.Input("model"),
                io.Clip.Input("clip"),
                io.Vae.Input("vae"),
                io.String.Input("concept", default="handbag", tooltip="What the encoder should see."),
                io.Int.Input("count", default=4, min=1, max=16, tooltip="How many anchors."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8),
                io.Int.Input("height", default=512, min=64, max=4096, step=8),
                *_sampler_inputs(),
            ],
            outputs=[io.Image.Output("anchors", display_name="anchors")],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, model, clip, vae, concept, count, width, height, seed, steps, cfg, sampler_name,
        scheduler, negative=DEFAULT_NEGATIVE,
    ) -> io.NodeOutput:  # fmt: skip
        concept = concept.strip()
        if not concept:
            raise SettingsError("Name the concept the anchors should show.")
        device = model_management.intermediate_device()
        # as ComfyUI's Empty Latent Image makes it; the sampler fixes the channels per model
        latent = {"samples": torch.zeros([count, 4, height // 8, width // 8], device=device)}
        images = _sample(model, clip, vae, f"a photo of a {concept}", negative, latent, seed,
                         steps, cfg, sampler_name, scheduler, 1.0)  # fmt: skip
        return io.NodeOutput(images)


NODES: list[type[io.ComfyNode]] = [StyleTarget, ConceptAnchor]
