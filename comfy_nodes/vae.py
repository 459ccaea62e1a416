"""A private, differentiable copy of the encoder of the VAE a ComfyUI graph loaded.

ComfyUI runs nodes under ``torch.inference_mode()``, and its VAE weights may be inference
tensors, which autograd refuses. The copy is made with inference mode switched off, so its
weights are ordinary tensors; the graph's VAE object is only read, never changed.
Nothing here imports ComfyUI: the VAE is duck-typed (``first_stage_model``).
"""

from __future__ import annotations

import weakref

import torch
from artcloak.engine.encoders import VaeEncoder, encoder_from_state_dict
from artcloak.errors import ArtcloakError, ModelLoadError

FAMILIES = ("auto", "sd1", "sd2", "sdxl", "sd3", "flux")
_CACHE_SIZE = 2
_cache: list[tuple[weakref.ref, tuple, VaeEncoder]] = []


def private_encoder(
    vae,
    *,
    family: str = "auto",
    config: str = "",
    device: torch.device | str = "cpu",
    resolution: int = 0,
) -> VaeEncoder:
    """The encoder of ComfyUI's ``vae`` as an artcloak VaeEncoder (fp32, on ``device``).

    ``family`` picks the model family (working resolution, config); ``auto`` guesses it from
    the latent channels (4: SD 1.x, 16: SD3). ``config``: a diffusers VAE config.json for a VAE
    of no known family (it overrides ``family``). Copies are cached per VAE object.
    """
    model = getattr(vae, "first_stage_model", None)
    if model is None or not hasattr(model, "state_dict"):
        raise ModelLoadError(
            "The VAE input holds no model; connect the VAE output of a checkpoint or VAE loader."
        )
    if family not in FAMILIES:
        raise ModelLoadError(f"Unknown model family '{family}'; use one of {', '.join(FAMILIES)}.")
    key = (family, config, str(torch.device(device)), int(resolution))
    for ref, cached_key, encoder in _cache:
        if ref() is model and cached_key == key:
            return encoder
    with torch.inference_mode(False), torch.no_grad():
        state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
        try:
            encoder = encoder_from_state_dict(
                state,
                source=f"ComfyUI VAE ({type(model).__name__})",
                config=config or (None if family == "auto" else family),
                device=device,
                resolution=resolution or None,
            )
        except ArtcloakError as error:
            raise ModelLoadError(
                "artcloak works with the KL VAEs of Stable Diffusion 1.x/2.x, SDXL, SD3 and Flux; "
                f"this VAE cannot be used: {error}"
            ) from None
    _cache.insert(0, (weakref.ref(model), key, encoder))
    del _cache[_CACHE_SIZE:]
    return encoder


def clear_cache() -> None:
    _cache.clear()
