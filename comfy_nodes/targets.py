"""Target nodes that sample with ComfyUI's own sampler and the graph's MODEL/CLIP/VAE:
Style target (img2img of the artwork in another style, for Cloak) and Concept anchor
(text-to-image pictures of the target concept, for Shade).

The styles, their prompts and the anchor prompt are the core's catalogue
(``artcloak.engine.targets.catalogue``, listed by ``artcloak styles``), so a style name means
the same style here as in the CLI, the app and the plugins. The sampler inputs are the core's
``diffusion_*`` settings, checked by the core.
"""

from __future__ import annotations

import comfy.model_management as model_management
import comfy.samplers
import torch
from artcloak.engine import (
    CATALOGUE,
    NEGATIVE_PROMPT,
    anchor_prompt,
    catalogue_names,
    catalogue_style,
)
from artcloak.errors import SettingsError
from artcloak.settings import DEFAULT_STYLE as CORE_DEFAULT_STYLE
from artcloak.settings import Diffusion, Mode
from comfy_api.latest import io

from .plumbing import CATEGORY, SEED_CONTROL, SEED_MAX, SEED_TOOLTIP, checked_settings

CUSTOM = "custom prompt"
# The catalogue style whose stand-in texture is the core's default style (settings.DEFAULT_STYLE)
DEFAULT_STYLE = next(s.name for s in CATALOGUE if s.texture == CORE_DEFAULT_STYLE)
DEFAULT_STRENGTH = Diffusion().strength  # the core's img2img strength
DEFAULT_NEGATIVE = "blurry, low quality"  # for concept anchors (photos)


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


def _graph_inputs() -> list:
    return [
        io.Model.Input(
            "model", tooltip="The diffusion model that renders the target (the checkpoint's "
            "MODEL), sampled with ComfyUI's own KSampler.",
        ),
        io.Clip.Input("clip", tooltip="The checkpoint's CLIP: it encodes the prompts."),
        io.Vae.Input(
            "vae", tooltip="The checkpoint's VAE: it encodes the artwork for img2img and "
            "decodes the rendered latents.",
        ),
    ]  # fmt: skip


def _sampler_inputs(negative: str) -> list:
    return [
        io.Int.Input("seed", default=0, min=0, max=SEED_MAX,
                     control_after_generate=SEED_CONTROL,
                     tooltip="The sampler's seed. " + SEED_TOOLTIP),
        io.Int.Input("steps", default=20, min=1, max=200,
                     tooltip="Sampling steps, as in KSampler."),
        io.Float.Input("cfg", default=7.0, min=0.0, max=30.0, step=0.1,
                       tooltip="Classifier-free guidance: how closely the render follows the "
                       "prompt, as in KSampler."),
        io.Combo.Input("sampler_name", options=list(comfy.samplers.KSampler.SAMPLERS),
                       tooltip="The sampling algorithm, as in KSampler."),
        io.Combo.Input("scheduler", options=list(comfy.samplers.KSampler.SCHEDULERS),
                       tooltip="The noise schedule, as in KSampler."),
        io.String.Input("negative", default=negative, multiline=True, optional=True,
                        tooltip="The negative prompt: what the render should avoid."),
    ]  # fmt: skip


def _sampler_values(seed, steps, cfg) -> dict:
    """The sampler inputs by the core's flat names (the diffusion settings of a target)."""
    return {"diffusion_seed": seed, "diffusion_steps": steps, "diffusion_guidance": cfg}


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
                *_graph_inputs(),
                io.Combo.Input(
                    "style", options=[*catalogue_names(), CUSTOM], default=DEFAULT_STYLE,
                    tooltip="A target style far from the artwork's own (artcloak's catalogue: "
                    "'artcloak styles --prompts' shows each prompt), or the prompt below.",
                ),
                io.String.Input(
                    "prompt", default="", multiline=True,
                    tooltip="The style prompt for 'custom prompt'; otherwise added to the style.",
                ),
                io.Float.Input(
                    "strength", default=DEFAULT_STRENGTH, min=0.05, max=1.0, step=0.05,
                    tooltip="img2img denoise: about 0.4-0.5 keeps the content, changes the style.",
                ),
                *_sampler_inputs(NEGATIVE_PROMPT),
            ],
            outputs=[
                io.Image.Output(
                    "style_target", display_name="style target",
                    tooltip="The artwork in the target style: connect it to artcloak Cloak's "
                    "style_target.",
                ),
            ],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, image, model, clip, vae, style, prompt, strength, seed, steps, cfg, sampler_name,
        scheduler, negative=NEGATIVE_PROMPT,
    ) -> io.NodeOutput:  # fmt: skip
        extra = prompt.strip()
        entry = None if style == CUSTOM else catalogue_style(style)
        if style == CUSTOM:
            if not extra:
                raise SettingsError("The style is 'custom prompt' but the prompt is empty.")
            text = extra
        elif entry is None:
            raise SettingsError(
                f"Unknown style '{style}'; use one of {', '.join(catalogue_names())} or '{CUSTOM}'."
            )
        else:
            text = f"{entry.prompt}, {extra}" if extra else entry.prompt
        values = {"mode": Mode.CLOAK.value, "style": None if entry is None else entry.name,
                  "diffusion_strength": strength, **_sampler_values(seed, steps, cfg)}  # fmt: skip
        diffusion = checked_settings(values).target.diffusion
        latent = {"samples": vae.encode(image[..., :3])}
        images = _sample(model, clip, vae, text, negative, latent, diffusion.seed,
                         diffusion.steps, diffusion.guidance, sampler_name, scheduler,
                         diffusion.strength)  # fmt: skip
        return io.NodeOutput(images)


class ConceptAnchor(io.ComfyNode):
    """Pictures of the target concept: text-to-image with ComfyUI's sampler."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.ConceptAnchor",
            display_name="artcloak Concept anchor",
            category=CATEGORY,
            description="Generates pictures of the target concept ('A photo of a {concept}', "
            "as artcloak's shade makes them) with the graph's model, as the anchors of "
            "artcloak Shade.",
            inputs=[
                *_graph_inputs(),
                io.String.Input("concept", default="handbag", tooltip="What the encoder should see."),
                io.Int.Input("count", default=4, min=1, max=16, tooltip="How many anchors."),
                io.Int.Input("width", default=512, min=64, max=4096, step=8,
                             tooltip="Width of each anchor image in pixels."),
                io.Int.Input("height", default=512, min=64, max=4096, step=8,
                             tooltip="Height of each anchor image in pixels."),
                *_sampler_inputs(DEFAULT_NEGATIVE),
            ],
            outputs=[
                io.Image.Output(
                    "anchors", display_name="anchors",
                    tooltip="Pictures of the concept: connect them to artcloak Shade's anchors.",
                ),
            ],
        )  # fmt: skip

    @classmethod
    def execute(
        cls, model, clip, vae, concept, count, width, height, seed, steps, cfg, sampler_name,
        scheduler, negative=DEFAULT_NEGATIVE,
    ) -> io.NodeOutput:  # fmt: skip
        values = {"mode": Mode.SHADE.value, "concept": concept, "anchors_count": count,
                  **_sampler_values(seed, steps, cfg)}  # fmt: skip
        target = checked_settings(values).target  # an empty concept: the core's message
        diffusion = target.diffusion
        device = model_management.intermediate_device()
        # as ComfyUI's Empty Latent Image makes it; the sampler fixes the channels per model
        shape = [target.anchors_count, 4, height // 8, width // 8]
        latent = {"samples": torch.zeros(shape, device=device)}
        images = _sample(model, clip, vae, anchor_prompt(target.concept), negative, latent,
                         diffusion.seed, diffusion.steps, diffusion.guidance, sampler_name,
                         scheduler, 1.0)  # fmt: skip
        return io.NodeOutput(images)


NODES: list[type[io.ComfyNode]] = [StyleTarget, ConceptAnchor]
