"""Read VAE weights from diffusers folders and single files, refusing unsafe pickles."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from artcloak.errors import ALLOW_PICKLES, ModelLoadError

from .build import _build_from_weights
from .configs import _family_of_config, _is_vae_config, _read_json
from .messages import _short
from .tae import TinyAutoencoder
from .tae_files import (
    build_tae,
    check_family_fits,
    is_tae_family,
    read_tensors,
    sibling_decoder,
    tae_family,
    tae_key_split,
    tiny_folder_weights,
)

logger = logging.getLogger(__name__)


SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Where full checkpoints keep their VAE (SD 1.x/2.x/XL/3 and ComfyUI's all-in-one files).
_VAE_PREFIXES = ("first_stage_model.", "vae.", "")
_VAE_MARKER = "encoder.conv_in.weight"
_VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.", "bn.")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
_PICKLE_WEIGHT_NAMES = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")


def _load_folder(
    folder: Path,
    label: str,
    family_hint: str | None,
    config: dict | None,
    allow_pickle: bool,
    encoder_only: bool,
) -> tuple[Any, str]:
    tiny_weights = tiny_folder_weights(folder)
    if tiny_weights is not None:
        state = _read_weights_file(tiny_weights, allow_pickle)
        return _load_tae(
            state, tiny_weights, family_hint, allow_pickle, name=label, encoder_only=encoder_only
        )
    vae_folder = None
    for candidate in (folder, folder / "vae"):
        cfg_path = candidate / "config.json"
        if cfg_path.is_file() and _is_vae_config(_read_json(cfg_path)):
            vae_folder = candidate
            break
    if vae_folder is None:
        raise ModelLoadError(
            f"The folder {folder} is not a diffusers VAE (no AutoencoderKL config.json there or "
            "in a vae/ subfolder); point at the model folder or at a .safetensors file."
        )
    folder_config = _read_json(vae_folder / "config.json")
    weights_path = _find_folder_weights(vae_folder, allow_pickle)
    state = _read_weights_file(weights_path, allow_pickle)
    weights = _select_vae_weights(state, weights_path.name)
    cfg = config if config is not None else folder_config
    family = family_hint
    if family is None and config is None and "stable-diffusion-2" in label.lower():
        family = "sd2" if _family_of_config(folder_config) == "sd1" else None
    return _build_from_weights(
        weights, str(weights_path), family, cfg, keys=state, encoder_only=encoder_only
    )


def _find_folder_weights(folder: Path, allow_pickle: bool) -> Path:
    for name in _WEIGHT_NAMES:
        if (folder / name).is_file():
            return folder / name
    others = sorted(folder.glob("*.safetensors"))
    if len(others) == 1:
        return others[0]
    pickles = [folder / n for n in _PICKLE_WEIGHT_NAMES if (folder / n).is_file()]
    if pickles:
        if not allow_pickle:
            raise _pickle_refused(pickles[0])
        return pickles[0]
    raise ModelLoadError(
        f"The folder {folder} has no VAE weights (diffusion_pytorch_model.safetensors); "
        "download the model again or point at a .safetensors file."
    )


def _load_file(
    path: Path,
    family_hint: str | None,
    config: dict | None,
    allow_pickle: bool,
    encoder_only: bool,
) -> tuple[Any, str]:
    state = _read_weights_file(path, allow_pickle)
    if is_tae_family(family_hint) or _looks_like_tae(state):
        name = f"{path.parent.name}/{path.name}"
        return _load_tae(
            state, path, family_hint, allow_pickle, name=name, encoder_only=encoder_only
        )
    weights = _select_vae_weights(state, str(path))
    return _build_from_weights(
        weights, str(path), family_hint, config, keys=state, encoder_only=encoder_only
    )


# --------------------------------------------------------------------------- tiny autoencoders


def _looks_like_tae(state: Mapping[str, Tensor]) -> bool:
    """Tiny-autoencoder keys, and no full VAE's (``encoder.conv_in.weight``) anywhere."""
    return not _looks_like_vae(state) and tae_key_split(state) is not None


def _load_tae(
    state: Mapping[str, Tensor],
    path: Path,
    family_hint: str | None,
    allow_pickle: bool,
    *,
    name: str,
    encoder_only: bool,
) -> tuple[TinyAutoencoder, str]:
    """A tiny autoencoder from a file's tensors, with its decoder from the file or beside it
    (none with ``encoder_only``)."""
    if family_hint is not None and not is_tae_family(family_hint):
        logger.info("%s is a tiny autoencoder: family %s does not apply.", path, family_hint)
        family_hint = None
    split = tae_key_split(state)
    if split is None or _looks_like_vae(state):
        raise ModelLoadError(
            f"{path} is not a tiny autoencoder (no Sequential keys such as 0.weight and "
            "1.conv.0.weight); leave out the tiny-autoencoder family or use a TAESD-style file."
        )
    encoder_keys, decoder_keys = split
    if not encoder_keys:
        raise ModelLoadError(
            f"{path} holds a tiny autoencoder's decoder, not its encoder; point at the encoder "
            "file (for example encoder.safetensors) instead."
        )
    label = str(path)
    encoder = read_tensors(state, encoder_keys)
    if encoder_only:
        decoder = None
    elif decoder_keys:
        decoder = read_tensors(state, decoder_keys)
    else:
        decoder = _sibling_decoder_weights(path, allow_pickle)
    if is_tae_family(family_hint):
        check_family_fits(family_hint, encoder, label)
        family = family_hint
    else:
        family = tae_family(encoder, name, label)
    logger.debug("Tiny autoencoder %s: family %s, decoder %s.", path, family, decoder is not None)
    return build_tae(family, encoder, decoder, label), family


def _looks_like_vae(state: Mapping[str, Tensor]) -> bool:
    return any(key.endswith(_VAE_MARKER) for key in state)


def _sibling_decoder_weights(path: Path, allow_pickle: bool) -> dict[str, Tensor] | None:
    sibling = sibling_decoder(path)
    if sibling is None:
        logger.info("No decoder beside %s: loading the encoder alone.", path)
        return None
    state = _read_weights_file(sibling, allow_pickle)
    split = tae_key_split(state)
    if split is None or not split[1] or _looks_like_vae(state):
        raise ModelLoadError(
            f"{sibling} beside {path} is not a tiny autoencoder's decoder; replace it with the "
            "matching decoder file or move it away."
        )
    return read_tensors(state, split[1])


# --------------------------------------------------------------------------- reading weights


def _pickle_refused(path: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is a pickle checkpoint ({path.suffix}), which can run arbitrary code when "
        "opened, so it is refused; use a .safetensors file instead, or if you trust its "
        "source allow pickles (the allow_pickle setting).",
        named=(ALLOW_PICKLES,),
    )


def _read_weights_file(path: Path, allow_pickle: bool) -> dict[str, Tensor] | _LazySafetensors:
    suffix = path.suffix.lower()
    if not path.is_file():
        raise ModelLoadError(f"The model file {path} does not exist; check the path.")
    if suffix in PICKLE_SUFFIXES:
        if not allow_pickle:
            raise _pickle_refused(path)
        return _read_pickle(path)
    if suffix in SAFETENSORS_SUFFIXES:
        return _LazySafetensors(path)
    raise ModelLoadError(
        f"{path} is not a supported weights file ({suffix or 'no extension'}); "
        "use a .safetensors file (or a .ckpt/.pt/.pth/.bin with allow_pickle)."
    )


class _LazySafetensors(Mapping):
    """Read-only mapping over a .safetensors file that reads only the tensors asked for."""

    def __init__(self, path: Path) -> None:
        from safetensors import safe_open

        self.path = path
        try:
            self._file = safe_open(str(path), framework="pt", device="cpu")
            self._keys = list(self._file.keys())
        except Exception as error:
            raise ModelLoadError(
                f"{path} is not a readable .safetensors file ({_short(error)}); it may be "
                "damaged or incompletely downloaded, so download it again."
            ) from error

    def __getitem__(self, key: str) -> Tensor:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self._file.get_tensor(key)
        except Exception as error:
            raise ModelLoadError(
                f"{self.path} is damaged: the tensor {key} cannot be read ({_short(error)}); "
                "download the file again."
            ) from error

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys


def _read_pickle(path: Path) -> dict[str, Tensor]:
    logger.warning("Loading pickle checkpoint %s with weights_only=True (allowed).", path)
    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as error:
        if "weights_only" in str(error) or "Unsupported global" in str(error):
            raise ModelLoadError(
                f"{path} holds more than plain weights (objects that torch refuses to load "
                "safely), so it is not loaded; convert it to .safetensors with a trusted tool."
            ) from error
        raise ModelLoadError(
            f"{path} cannot be read as a PyTorch checkpoint ({_short(error)}); it may be "
            "damaged or incompletely downloaded, so download it again."
        ) from error
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            inner = obj[key]
            if any(isinstance(v, Tensor) for v in inner.values()):
                obj = inner
                break
    if not isinstance(obj, Mapping):
        raise ModelLoadError(
            f"{path} does not contain a dictionary of weights; use a VAE checkpoint."
        )
    return {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, Tensor)}


def _select_vae_weights(state: Mapping[str, Tensor], label: str) -> dict[str, Tensor]:
    """The VAE's tensors, with any checkpoint prefix (``first_stage_model.``) removed."""
    keys = list(state.keys())
    key_set = set(keys)
    prefix = None
    for candidate in _VAE_PREFIXES:
        if candidate + _VAE_MARKER in key_set:
            prefix = candidate
            break
    if prefix is None:
        found = sorted(
            (k[: -len(_VAE_MARKER)] for k in keys if k.endswith("." + _VAE_MARKER)), key=len
        )
        if found:
            prefix = found[0]
    if prefix is None:
        raise ModelLoadError(
            f"{label} contains no VAE encoder weights (no encoder.conv_in.* keys, with or "
            "without a first_stage_model. prefix) and no tiny-autoencoder weights (0.weight, "
            "1.conv.0.weight, ...); use a VAE, a checkpoint that includes its VAE, or a TAESD-style file."
        )
    picked: dict[str, Tensor] = {}
    for key in keys:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        if rest.startswith(_VAE_PARTS):
            picked[rest] = state[key]
    logger.debug("Found %d VAE tensors under prefix %r in %s.", len(picked), prefix, label)
    return picked
