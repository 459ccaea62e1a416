"""Tiny-autoencoder weights from files and folders: which keys, which family, which decoder.

Accepted layouts: a bare ``torch.nn.Sequential`` encoder (keys ``0.weight``,
``1.conv.0.weight``, ...) with an optional sibling decoder file; one file with both halves
under ``encoder.``/``decoder.`` (or ComfyUI's ``taesd_encoder.``/``taesd_decoder.``); and
diffusers' AutoencoderTiny (``encoder.layers.N``, ``decoder.layers.N``, whose decoder lacks the
leading clamp module, so its indices are one lower), as a file or a folder.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from artcloak.errors import ModelLoadError

from .messages import weights_mismatch
from .tae import TAE_FAMILIES, TinyAutoencoder, build_decoder, build_encoder

logger = logging.getLogger(__name__)

_INDEXED = re.compile(r"^(\d+)\.(.+)$")
# (encoder prefix, decoder prefix, how much to add to the decoder's layer indices)
_PAIRED_LAYOUTS = (
    ("encoder.layers.", "decoder.layers.", 1),  # diffusers AutoencoderTiny
    ("taesd_encoder.", "taesd_decoder.", 0),  # ComfyUI's combined TAESD
    ("encoder.", "decoder.", 0),  # madebyollin's TAESD module
)
_DIFFUSERS_TINY = "AutoencoderTiny"
_TINY_WEIGHT_NAMES = (
    "diffusion_pytorch_model.safetensors",
    "diffusion_pytorch_model.fp16.safetensors",
)


def is_tae_family(name: str | None) -> bool:
    return name is not None and name in TAE_FAMILIES


def tae_key_split(keys: Mapping | list[str]) -> tuple[dict[str, str], dict[str, str]] | None:
    """Where a tiny autoencoder's tensors are: ({encoder key: file key}, {decoder key: file
    key}), either possibly empty; None when the keys are not a tiny autoencoder's."""
    keys = list(keys)
    if keys and all(_INDEXED.match(k) for k in keys):
        bare = {k: k for k in keys}
        return (bare, {}) if "0.weight" in bare else ({}, bare)
    for encoder_prefix, decoder_prefix, shift in _PAIRED_LAYOUTS:
        encoder = _strip(keys, encoder_prefix, 0)
        if encoder is not None and "0.weight" in encoder:
            return encoder, _strip(keys, decoder_prefix, shift) or {}
    return None


def _strip(keys: list[str], prefix: str, shift: int) -> dict[str, str] | None:
    """{layer key: file key} of the keys under ``prefix`` if they are all Sequential keys."""
    found: dict[str, str] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        match = _INDEXED.match(key[len(prefix) :])
        if match is None:
            return None
        found[f"{int(match[1]) + shift}.{match[2]}"] = key
    return found or None


def tae_family(encoder: Mapping[str, Tensor], name: str, label: str) -> str:
    """The family of an encoder's weights: its layout, latent channels and the file's name."""
    first = encoder["0.weight"]
    channels = _latent_channels(encoder, label)
    if first.ndim == 4 and first.shape[0] == 32 and "2.weight" in encoder:
        return "taesana"
    if any(".pool." in key for key in encoder):
        return "taef2"
    name = name.lower()
    by_channels = {
        4: "taesdxl" if "xl" in name else "taesd",
        16: "taef1" if ("f1" in name or "flux" in name) else "taesd3",
        32: "taef2",
    }
    if channels not in by_channels:
        raise ModelLoadError(
            f"The tiny autoencoder in {label} has {channels} latent channels, which matches no "
            f"known family ({', '.join(TAE_FAMILIES)}); name its family as a prefix "
            "(for example taef2:PATH)."
        )
    return by_channels[channels]


def _latent_channels(encoder: Mapping[str, Tensor], label: str) -> int:
    convs = [
        int(m[1])
        for key in encoder
        if (m := re.fullmatch(r"(\d+)\.weight", key)) and encoder[key].ndim == 4
    ]
    if not convs:  # pragma: no cover - "0.weight" is always there
        raise ModelLoadError(f"{label} holds no convolution weights; it is not a tiny autoencoder.")
    return int(encoder[f"{max(convs)}.weight"].shape[0])


def check_family_fits(family: str, encoder: Mapping[str, Tensor], label: str) -> None:
    """A family named by the user must have the file's latent channels and downscale."""
    wanted = TAE_FAMILIES[family]
    found = TAE_FAMILIES[tae_family(encoder, "", label)]
    if (wanted.latent_channels, wanted.downscale) != (found.latent_channels, found.downscale):
        raise ModelLoadError(
            f"{label} is a tiny autoencoder with {found.latent_channels} latent channels and "
            f"{found.downscale}x downscale, not a {family} ({wanted.latent_channels} channels, "
            f"{wanted.downscale}x); name the right family or leave the prefix out."
        )


def build_tae(
    family_name: str,
    encoder: Mapping[str, Tensor],
    decoder: Mapping[str, Tensor] | None,
    label: str,
) -> TinyAutoencoder:
    """A frozen tiny autoencoder with these weights (decoder only where given)."""
    family = TAE_FAMILIES[family_name]
    encoder_module = _fitted(
        build_encoder(family, encoder), encoder, label, f"{family_name} encoder"
    )
    decoder_module = None
    if decoder:
        if family.downscale != 8:
            logger.info(
                "Ignoring the decoder weights in %s: no %s decoder is known.", label, family_name
            )
        else:
            decoder_module = _fitted(
                build_decoder(family, decoder), decoder, label, f"{family_name} decoder"
            )
    return TinyAutoencoder(family, encoder_module, decoder_module).eval()


def _fitted(module: nn.Module, weights: Mapping[str, Tensor], label: str, what: str) -> nn.Module:
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    mismatch = weights_mismatch(expected, weights)
    if mismatch:
        raise ModelLoadError(
            f"The weights in {label} do not fit the {what} {mismatch}; "
            "name the right family as a prefix (for example taesd:PATH) or use the matching file."
        )
    state = {}
    for key, tensor in weights.items():
        if not tensor.is_floating_point() or not torch.isfinite(tensor).all():
            raise ModelLoadError(
                f"The weight {key} in {label} is not a finite floating-point tensor; the file "
                "is damaged or not a tiny autoencoder, so download it again."
            )
        state[key] = tensor.to(dtype=torch.float32, copy=True).contiguous()
    module.load_state_dict(state, strict=True)
    return module


# --------------------------------------------------------------------------- files and folders


def sibling_decoder(path: Path) -> Path | None:
    """The decoder file beside an encoder file (``encoder`` -> ``decoder`` in its name)."""
    name = path.name
    index = name.lower().rfind("encoder")
    if index < 0:
        return None
    candidate = path.with_name(name[:index] + "decoder" + name[index + len("encoder") :])
    return candidate if candidate.is_file() else None


def tiny_folder_weights(folder: Path) -> Path | None:
    """The weights of a diffusers AutoencoderTiny folder (or its vae/), None if it is not one."""
    from .configs import _read_json

    for candidate in (folder, folder / "vae"):
        config = candidate / "config.json"
        if config.is_file() and _read_json(config).get("_class_name") == _DIFFUSERS_TINY:
            for name in _TINY_WEIGHT_NAMES:
                if (candidate / name).is_file():
                    return candidate / name
            raise ModelLoadError(
                f"The AutoencoderTiny folder {candidate} has no weights "
                "(diffusion_pytorch_model.safetensors); download the model again."
            )
    return None


def read_tensors(state: Mapping[str, Tensor], where: Mapping[str, str]) -> dict[str, Tensor]:
    return {layer_key: state[file_key] for layer_key, file_key in where.items()}
