"""artcloak Add VAE: several VAEs in one input, so that one Cloak or Shade protects for all of
them at once (the engine sums each encoder's latent loss, each normalised by its own
starting distance, in one optimisation and one budget). Chained like LoRA loaders: each Add
VAE appends its VAE to the list it is given.
"""

from __future__ import annotations

from dataclasses import dataclass

from comfy_api.latest import io

from .vae import FAMILIES

CATEGORY = "artcloak"
VAES = io.Custom("ARTCLOAK_VAES")
VAES_TOOLTIP = (
    "Further VAEs to protect for in the same run (from artcloak Add VAE): one optimisation "
    "against all of them and the node's own VAE, in one budget."
)


@dataclass(frozen=True)
class VaeChoice:
    """A graph VAE and how to read it (the model family, or a diffusers config path)."""

    vae: object
    family: str = "auto"
    config: str = ""


class AddVae(io.ComfyNode):
    """Append a VAE to a list of VAEs for artcloak Cloak / Shade's ``more_vaes``."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="artcloak.AddVAE",
            display_name="artcloak Add VAE",
            category=CATEGORY,
            description="Gathers VAEs for one artcloak Cloak or Shade to protect against all "
            "of them together. Chain several; connect the last to the node's more_vaes.",
            inputs=[
                io.Vae.Input("vae", tooltip="A VAE to protect against as well."),
                io.Combo.Input(
                    "model_family", options=list(FAMILIES), default="auto",
                    tooltip="This VAE's model family (sets its training resolution). auto: "
                    "SD 1.x for 4 latent channels, SD3 for 16; choose sdxl for SDXL's VAE.",
                ),
                io.String.Input(
                    "vae_config", default="", optional=True,
                    tooltip="Path to a diffusers config.json, only for a VAE of no known family.",
                ),
                VAES.Input("vaes", optional=True, tooltip="The list so far (another Add VAE)."),
            ],
            outputs=[VAES.Output("vaes", display_name="vaes", tooltip=VAES_TOOLTIP)],
        )  # fmt: skip

    @classmethod
    def execute(cls, vae, model_family="auto", vae_config="", vaes=None) -> io.NodeOutput:
        return io.NodeOutput((*(vaes or ()), VaeChoice(vae, model_family, vae_config)))


NODES: list[type[io.ComfyNode]] = [AddVae]
