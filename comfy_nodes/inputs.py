"""The inputs and outputs Cloak and Shade share."""

from __future__ import annotations

from artcloak.protocol import ADAPTIVE_HELP, ADAPTIVE_LABEL
from artcloak.settings import (
    INTENSITY_BUDGETS,
    MAX_EPS,
    MAX_STEPS,
    QUALITY_EFFORT,
    Intensity,
    Quality,
)
from comfy_api.latest import io

from .plumbing import SEED_CONTROL, SEED_MAX, SEED_TOOLTIP
from .vae import FAMILIES

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


# --------------------------------------------------------------------------- inputs and outputs


def budget_inputs() -> list:
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
        *bound_inputs("L-inf bound in 0-255 units", "LPIPS bound"),
        io.Int.Input(
            "steps", default=0, min=0, max=MAX_STEPS, optional=True,
            tooltip="Optimisation steps; 0 uses the quality preset.",
        ),
        *model_inputs(),
        io.Boolean.Input(
            "adaptive", default=False, optional=True, tooltip=f"{ADAPTIVE_LABEL}. {ADAPTIVE_HELP}"
        ),
        io.Image.Input("original", optional=True, tooltip=ORIGINAL_TOOLTIP),
        io.String.Input(
            "previous_report", optional=True, force_input=True, tooltip=PREVIOUS_REPORT_TOOLTIP
        ),
    ]  # fmt: skip


def model_inputs() -> list:
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


def protect_outputs() -> list:
    return [
        io.Image.Output(
            "protected", display_name="protected",
            tooltip="The protected image(s), 8-bit samples. Save them with artcloak Save "
            "Protected: ComfyUI's Save Image writes the workflow (artcloak's settings, seed) "
            "into the PNG.",
        ),
        io.String.Output("report", display_name="report", tooltip=REPORT_TOOLTIP),
    ]  # fmt: skip


VAE_TOOLTIP = (
    "The VAE whose encoder should be misled (the graph's own; artcloak copies only its "
    "encoder and never changes it)."
)


def bound_inputs(eps_text: str, lpips_text: str) -> list:
    """The eps (0-255) and LPIPS overrides of the intensity preset; 0 keeps the preset's."""
    return [
        io.Float.Input(
            "eps", default=0.0, min=0.0, max=MAX_EPS * 255, step=0.5, optional=True,
            tooltip=f"{eps_text}; 0 uses the intensity preset.",
        ),
        io.Float.Input(
            "lpips", default=0.0, min=0.0, max=1.0, step=0.005, optional=True,
            tooltip=f"{lpips_text}; 0 uses the intensity preset.",
        ),
    ]  # fmt: skip
