"""A private, differentiable copy of the encoder of the VAE a ComfyUI graph loaded.

ComfyUI runs nodes under ``torch.inference_mode()``, and its VAE weights may be inference
tensors, which autograd refuses. The copy is made with inference mode switched off, so its
weights are ordinary tensors; the graph's VAE object is only read, never changed.

Only the encoder (and ``quant_conv``, which encoding uses) is built and copied: the protection
needs nothing else, and the decoder is most of a VAE (SD 1.x: 49.5 M of its 83.7 M parameters,
about 200 MB in fp32), so its weights are never read, not even for a moment.
Anything that must decode (Verify's model view) decodes with the graph's own VAE. One copy is
kept per VAE, whatever the working resolution: the resolution is a setting of the run, not of
the encoder. Nothing here imports ComfyUI: the VAE is duck-typed (``first_stage_model``).
"""

from __future__ import annotations

import weakref
from pathlib import Path

import torch
from artcloak.engine import VaeEncoder, encoder_from_state_dict
from artcloak.errors import ArtcloakError, ModelLoadError

FAMILIES = ("auto", "sd1", "sd2", "sdxl", "sd3", "flux")
_CACHE_SIZE = 4  # VAEs (one copy each; an ensemble of artcloak Add VAE holds several)
_cache: list[tuple[weakref.ref, tuple, VaeEncoder]] = []


def private_encoder(
    vae,
    *,
    family: str = "auto",
    config: str = "",
    device: torch.device | str = "cpu",
) -> VaeEncoder:
    """The encoder of ComfyUI's ``vae`` as an artcloak VaeEncoder (fp32, on ``device``), its
    ``train_resolution`` the model family's.

    ``family`` picks the model family (training resolution, config); ``auto`` guesses it from
    the latent channels (4: SD 1.x, 16: SD3). ``config``: a diffusers VAE config.json for a VAE
    of no known family (it overrides ``family``). One copy is cached per VAE object; asking
    for it with another family, config or device replaces it.
    """
    model = getattr(vae, "first_stage_model", None)
    if model is None or not hasattr(model, "state_dict"):
        raise ModelLoadError(
            "The VAE input holds no model; connect the VAE output of a checkpoint or VAE loader."
        )
    if family not in FAMILIES:
        raise ModelLoadError(f"Unknown model family '{family}'; use one of {', '.join(FAMILIES)}.")
    config = config.strip()
    if config:
        _check_config_path(config)
    key = (family, config, str(torch.device(device)))
    for index, (ref, cached_key, encoder) in enumerate(_cache):
        if ref() is model:
            if cached_key == key:
                return encoder
            del _cache[index]  # one copy per VAE: this one is replaced
            break
    with torch.inference_mode(False), torch.no_grad():
        state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
        try:
            encoder = encoder_from_state_dict(
                state,
                source=f"ComfyUI VAE ({type(model).__name__})",
                config=config or (None if family == "auto" else family),
                device=device,
                encoder_only=True,
            )
        except ArtcloakError as error:
            if config:
                raise ModelLoadError(
                    f"artcloak could not build an encoder from this VAE with the vae_config "
                    f"{config}: {error}"
                ) from None
            raise ModelLoadError(
                "artcloak works with the KL VAEs of Stable Diffusion 1.x/2.x, SDXL, SD3 and Flux; "
                f"this VAE cannot be used: {error}"
            ) from None
        encoder.decode = _no_decoder  # an instance attribute: says to use the graph's VAE
    _cache.insert(0, (weakref.ref(model), key, encoder))
    del _cache[_CACHE_SIZE:]
    return encoder


def _check_config_path(config: str) -> None:
    """A vae_config that names no file says so, by its path (not "this VAE cannot be used")."""
    if config.lower() in FAMILIES:
        return  # a family name, which the core takes as a config too
    path = Path(config).expanduser()
    if not path.exists():
        raise ModelLoadError(
            f"The vae_config file {path} does not exist; check the path (a diffusers VAE "
            "config.json), or leave vae_config empty for a VAE of a known model family."
        )


def _no_decoder(*_args, **_kwargs):
    raise ModelLoadError(
        "artcloak's private copy of the VAE holds only its encoder; decode with the graph's VAE."
    )


def clear_cache() -> None:
    _cache.clear()
