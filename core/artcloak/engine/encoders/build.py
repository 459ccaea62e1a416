"""Build a diffusers VAE encoder from weights, guessing its config when not given.

Every family builds diffusers' ``AutoencoderKL`` except FLUX.2, which builds
``AutoencoderKLFlux2`` (the same encoder and decoder, plus a batch norm over patchified
latents that only its pipeline applies)."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from artcloak.errors import AS_THE_ENCODER_CONFIG, ModelLoadError

from .configs import FAMILIES, _family_from_keys, _family_of_config, shipped_config
from .layout import _fix_legacy_diffusers, _is_original_layout, _original_to_diffusers
from .messages import _short, weights_mismatch
from .tae import TAE_FAMILIES

logger = logging.getLogger(__name__)

DECODER_PARTS = ("decoder", "post_quant_conv")  # what only decoding uses (diffusers names)
DECODER_PREFIXES = tuple(f"{name}." for name in DECODER_PARTS)


def _build_from_weights(
    weights: dict[str, Tensor],
    label: str,
    family_hint: str | None,
    config: dict | None,
    *,
    keys: Mapping | Sequence[str],
    encoder_only: bool = False,
) -> tuple[Any, str]:
    """The VAE (diffusers, fp32, eval mode) and its family. ``encoder_only``: the decoder half
    (``decoder``, ``post_quant_conv``) exists only on the meta device, dropped before any
    weight is copied, so a VAE made from weights a host already holds costs the encoder's
    memory only; it then cannot decode."""
    if family_hint in TAE_FAMILIES:
        raise ModelLoadError(
            f"{label} is a full VAE, not a tiny autoencoder ({family_hint}); leave out the "
            "tiny-autoencoder family or point at the tiny autoencoder's encoder file."
        )
    if _is_original_layout(weights):
        weights = _original_to_diffusers(weights)
    else:
        weights = _fix_legacy_diffusers(weights)
    family, config = _family_and_config(weights, label, family_hint, config, keys)
    vae = _empty_vae(family, config, label)
    if encoder_only:  # still on the meta device: dropping the decoder here costs nothing
        for name in DECODER_PARTS:
            if getattr(vae, name, None) is not None:
                setattr(vae, name, None)
        weights = {k: v for k, v in weights.items() if not k.startswith(DECODER_PREFIXES)}
    _load_weights(vae, weights, label, family)
    vae.eval()
    return vae, family


def _family_and_config(
    weights: dict[str, Tensor],
    label: str,
    family_hint: str | None,
    config: dict | None,
    keys: Mapping | Sequence[str],
) -> tuple[str, dict]:
    """The model family and the config to build: the given config, else the shipped config
    of the family given or told by the weights (their latent channels and key names)."""
    if config is not None:
        return family_hint or _family_of_config(config), config
    conv_out = weights.get("encoder.conv_out.weight")
    latent_channels = int(conv_out.shape[0]) // 2 if conv_out is not None else None
    family = family_hint
    if family is None and latent_channels is not None:
        family = _family_from_keys(list(keys), latent_channels)
    if family is None:
        raise ModelLoadError(
            f"The VAE in {label} has {latent_channels} latent channels, which matches no "
            f"known model family ({', '.join(FAMILIES)}); give its config.json as the encoder config.",
            named=(AS_THE_ENCODER_CONFIG,),
        )
    return family, shipped_config(family)


def _empty_vae(family: str, config: dict, label: str) -> Any:
    """The VAE the config describes, on the meta device (no memory until weights come)."""
    vae_class = _vae_class(family, config)
    init_names = set(inspect.signature(vae_class.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in config.items() if k in init_names}
    try:
        with torch.device("meta"):
            return vae_class(**kwargs)
    except Exception as error:
        raise ModelLoadError(
            f"The model config for {label} does not describe a valid {vae_class.__name__} "
            f"({_short(error)}); give the VAE's own config.json as the encoder config.",
            named=(AS_THE_ENCODER_CONFIG,),
        ) from error


def _load_weights(vae: Any, weights: dict[str, Tensor], label: str, family: str) -> None:
    """Copy the weights into the meta-device VAE as fp32, refusing weights that do not fit
    it, are not floating point, leave a part unset or hold NaN or infinite values."""
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    weights = _with_batch_norm_defaults(weights, expected, label)
    mismatch = weights_mismatch(expected, weights)
    if mismatch:
        what = f"the {family} VAE config" if family in FAMILIES else "the given VAE config"
        raise ModelLoadError(
            f"The VAE weights in {label} do not fit {what} {mismatch}; "
            "give the config that matches this model as the encoder config (a family name "
            "or its config.json).",
            named=(AS_THE_ENCODER_CONFIG,),
        )
    state = {key: _as_state(key, tensor, label) for key, tensor in weights.items()}
    vae.load_state_dict(state, strict=True, assign=True)
    leftovers = [n for n, t in [*vae.named_parameters(), *vae.named_buffers()] if t.is_meta]
    if leftovers:  # pragma: no cover - would mean a diffusers change added unsaved state
        raise ModelLoadError(
            f"The VAE in {label} left {leftovers[0]} unset; this version of diffusers is not supported."
        )
    non_finite = [k for k, t in state.items() if not torch.isfinite(t).all()]
    if non_finite:
        raise ModelLoadError(
            f"The VAE weights in {label} contain NaN or infinite values (e.g. {non_finite[0]}); "
            "the file is damaged, so download it again."
        )


def _as_state(key: str, tensor: Tensor, label: str) -> Tensor:
    """A weight as the VAE holds it: fp32 (a batch-norm counter: a long scalar)."""
    if key.endswith("num_batches_tracked"):  # an integer counter, unused at inference
        return tensor.to(dtype=torch.long, copy=True).reshape(())
    if not tensor.is_floating_point():
        raise ModelLoadError(
            f"The VAE weight {key} in {label} is not a floating-point tensor "
            f"({tensor.dtype}); the file is not a usable VAE."
        )
    return tensor.to(dtype=torch.float32, copy=True).contiguous()


def _vae_class(family: str | None, config: Mapping) -> type:
    from diffusers import AutoencoderKL

    if family == "flux2" or config.get("_class_name") == "AutoencoderKLFlux2":
        from diffusers import AutoencoderKLFlux2

        return AutoencoderKLFlux2
    return AutoencoderKL


def _with_batch_norm_defaults(
    weights: dict[str, Tensor], expected: Mapping[str, tuple], label: str
) -> dict[str, Tensor]:
    """FLUX.2's latent batch-norm statistics where a file lacks them: the encoder's output
    does not use them (its pipeline does), so a VAE file without them still loads."""
    absent = [k for k in expected if k.startswith("bn.") and k not in weights]
    if not absent:
        return weights
    logger.info(
        "%s has no latent batch-norm statistics (%s); using neutral ones.", label, absent[0]
    )
    filled = dict(weights)
    for key in absent:
        if key.endswith("num_batches_tracked"):
            filled[key] = torch.zeros((), dtype=torch.long)
        elif key.endswith("running_var"):
            filled[key] = torch.ones(expected[key])
        else:
            filled[key] = torch.zeros(expected[key])
    return filled
