"""Load encoders from hub ids, folders and single files, and build them from weights."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from artcloak.errors import ModelLoadError, SettingsError

from .build import _build_from_weights
from .configs import (
    CUSTOM_RESOLUTION,
    TRAIN_RESOLUTION,
    _resolve_config_argument,
    _split_family_prefix,
)
from .devices import choose_device
from .files import (
    PICKLE_SUFFIXES,
    SAFETENSORS_SUFFIXES,
    _load_file,
    _load_folder,
    _select_vae_weights,
)
from .hub import _HUB_ID, _load_hub
from .messages import _short
from .model import TaeEncoder, VaeEncoder
from .tae import TinyAutoencoder

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- public loading


def load_encoder(
    source: str | Path,
    *,
    device: torch.device | str = "cpu",
    config: str | Path | None = None,
    allow_pickle: bool = False,
    resolution: int | None = None,
    encoder_only: bool = False,
) -> VaeEncoder:
    """Load a VAE encoder from a hub id, a diffusers folder or a single weights file, or a
    tiny autoencoder (TAESD, TAEF2, ...) from its encoder file (its decoder beside it, if any).

    ``source`` may start with a family prefix (``"sdxl:/path/vae.safetensors"``,
    ``"taef2:/path/encoder.safetensors"``). ``config`` is a family name (one of
    :data:`FAMILIES` or a tiny-autoencoder family) or a diffusers AutoencoderKL config (a
    ``.json`` file or a folder with ``config.json``). ``resolution`` overrides the working
    resolution (the shorter side the model family was trained at). ``encoder_only``: the
    decoder is not built (a full VAE's decoder half is about 0.2 GB) and the encoder cannot
    show what the model sees (``has_decoder`` is False).
    """
    source = _checked_source(source, resolution)
    target = choose_device(device)
    family_hint, location = _split_family_prefix(source.strip())
    family_hint, config_dict = _resolve_config_argument(config, family_hint)

    with contextlib.redirect_stdout(sys.stderr):
        vae, family = _load_vae(location, family_hint, config_dict, allow_pickle, encoder_only)
        encoder = _wrap(vae, source, family, resolution or _train_resolution(family, source))
        try:
            encoder.to(target)
        except (RuntimeError, torch.OutOfMemoryError) as error:
            raise ModelLoadError(
                f"The encoder from {source} could not be moved to {target} ({_short(error)}); "
                "free memory on that device or choose another one."
            ) from error
    logger.info(
        "Loaded encoder %s (family %s, %d latent channels, %d px) on %s.",
        source,
        family,
        encoder.latent_channels,
        encoder.train_resolution,
        target,
    )
    return encoder


def _checked_source(source: str | Path, resolution: int | None) -> str:
    """The source as text; SettingsError for an empty source or an unusable resolution."""
    if isinstance(source, Path):
        source = str(source)
    if not isinstance(source, str) or not source.strip():
        raise SettingsError("The encoder source is empty; give a hub id, a folder or a file.")
    if resolution is not None and (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or resolution < 64
        or resolution % 8
    ):
        raise SettingsError(
            f"The encoder resolution must be a whole number of pixels, at least 64 and a "
            f"multiple of 8, not {resolution!r}."
        )
    return source


def _train_resolution(family: str, source: str) -> int:
    """The shorter side the family was trained at (CUSTOM_RESOLUTION when unknown)."""
    if family in TRAIN_RESOLUTION:
        return TRAIN_RESOLUTION[family]
    logger.info(
        "Model family of %s is unknown; working at %d px (set resolution to change).",
        source,
        CUSTOM_RESOLUTION,
    )
    return CUSTOM_RESOLUTION


def load_encoders(sources: Sequence[str] | str, **same_kwargs: Any) -> list[VaeEncoder]:
    """Load several encoders (an ensemble) with the same keyword arguments."""
    if isinstance(sources, (str, Path)):
        sources = [str(sources)]
    sources = list(sources)
    if not sources:
        raise SettingsError("No encoder was given; name at least one model.")
    return [load_encoder(source, **same_kwargs) for source in sources]


def _wrap(vae: Any, source: str, family: str, train_resolution: int) -> VaeEncoder:
    kind = TaeEncoder if isinstance(vae, TinyAutoencoder) else VaeEncoder
    return kind(vae, source=source, family=family, train_resolution=train_resolution)


def describe_encoder(enc: VaeEncoder) -> dict:
    """Plain, JSON-able facts about an encoder, for reports: among them its family, latent
    channels, downscale and whether a decoder is loaded (to show what the model sees)."""
    encoder_parameters = sum(p.numel() for p in enc.vae.encoder.parameters())
    quant_conv = getattr(enc.vae, "quant_conv", None)
    if quant_conv is not None:
        encoder_parameters += sum(p.numel() for p in quant_conv.parameters())
    return {
        "source": enc.source,
        "family": enc.family,
        "latent_channels": int(enc.latent_channels),
        "downscale": int(getattr(enc, "downscale", 8)),
        "decoder": bool(getattr(enc, "has_decoder", True)),
        "train_resolution": int(enc.train_resolution),
        "parameters": int(sum(p.numel() for p in enc.vae.parameters())),
        "encoder_parameters": int(encoder_parameters),
        "scaling_factor": float(enc.scaling_factor),
        "shift_factor": float(enc.shift_factor),
    }


def encoder_from_state_dict(
    state_dict: Mapping[str, Tensor],
    *,
    source: str = "state dict",
    config: str | Path | None = None,
    device: torch.device | str = "cpu",
    resolution: int | None = None,
    encoder_only: bool = False,
) -> VaeEncoder:
    """Build an encoder from VAE weights already in memory (e.g. a VAE a host loaded).

    The weights may be in either key layout, with or without a ``first_stage_model.``
    prefix; the tensors are copied, so the caller's model is left untouched.
    ``encoder_only``: build and copy only the encoding half (the decoder's weights are never
    read); the encoder then has no decoder (``has_decoder`` is False).
    """
    family_hint, config_dict = _resolve_config_argument(config, None)
    with contextlib.redirect_stdout(sys.stderr):
        weights = _select_vae_weights(dict(state_dict), source)
        vae, family = _build_from_weights(
            weights, source, family_hint, config_dict, keys=state_dict, encoder_only=encoder_only
        )
    if resolution is None:
        resolution = TRAIN_RESOLUTION.get(family, CUSTOM_RESOLUTION)
    encoder = VaeEncoder(vae, source=source, family=family, train_resolution=resolution)
    return encoder.to(choose_device(device))


# --------------------------------------------------------------------------- dispatch


def _load_vae(
    location: str,
    family_hint: str | None,
    config: dict | None,
    allow_pickle: bool,
    encoder_only: bool,
) -> tuple[Any, str]:
    path = Path(location).expanduser()
    if path.is_dir():
        return _load_folder(path, location, family_hint, config, allow_pickle, encoder_only)
    if path.is_file():
        return _load_file(path, family_hint, config, allow_pickle, encoder_only)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES or location.lower().endswith(".json"):
        raise ModelLoadError(f"The model file {path} does not exist; check the path.")
    if _HUB_ID.match(location) and not location.startswith((".", "~")):
        return _load_hub(location, family_hint, config, allow_pickle, encoder_only)
    raise ModelLoadError(
        f"'{location}' is neither an existing file or folder nor a Hugging Face model id "
        "(owner/name); check the spelling or the path."
    )
