"""Model configs shipped with artcloak, and the model family a config or checkpoint is."""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from artcloak.errors import ModelLoadError, SettingsError

from .messages import _short
from .tae import TAE_FAMILIES

# Full VAEs with a config shipped in artcloak/configs/. FLUX.2's (AutoencoderKLFlux2) also holds
# a batch norm over 2x2-patchified latents that its pipeline applies after encoding; the latent
# the engine attacks is the 32-channel mean before that patchify and batch norm.
FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux", "flux2")
TRAIN_RESOLUTION = {
    "sd1": 512,
    "sd2": 512,
    "sdxl": 1024,
    "sd3": 1024,
    "flux": 1024,
    "flux2": 1024,
    **{name: tae.train_resolution for name, tae in TAE_FAMILIES.items()},
}
_VAE_CLASSES = ("AutoencoderKL", "AutoencoderKLFlux2")
CUSTOM_FAMILY = "custom"
CUSTOM_RESOLUTION = 512

_FAMILY_PREFIX = re.compile(r"^([A-Za-z0-9]+):(.+)$", re.DOTALL)


def shipped_config(family: str) -> dict:
    """The shipped diffusers AutoencoderKL config of a model family (a fresh copy)."""
    if family not in FAMILIES:
        raise SettingsError(f"Unknown model family '{family}'; use one of {', '.join(FAMILIES)}.")
    return json.loads(_shipped_config_text(family))


@functools.cache
def _shipped_config_text(family: str) -> str:
    return resources.files("artcloak").joinpath("configs", f"{family}.json").read_text("utf-8")


def _split_family_prefix(source: str) -> tuple[str | None, str]:
    match = _FAMILY_PREFIX.match(source)
    if match and (match.group(1).lower() in FAMILIES or match.group(1).lower() in TAE_FAMILIES):
        return match.group(1).lower(), match.group(2)
    return None, source


def _resolve_config_argument(
    config: str | Path | None, family_hint: str | None
) -> tuple[str | None, dict | None]:
    """Turn the ``config`` argument into (family, config dict or None)."""
    if config is None:
        return family_hint, None
    if isinstance(config, Mapping):
        return family_hint, dict(config)
    text = str(config).strip()
    if text.lower() in FAMILIES or text.lower() in TAE_FAMILIES:
        family = text.lower()
        if family_hint is not None and family_hint != family:
            raise SettingsError(
                f"The source says family '{family_hint}' but config says '{family}'; give one."
            )
        return family, (None if family in TAE_FAMILIES else shipped_config(family))
    path = Path(text).expanduser()
    if not path.exists():
        if text.lower().endswith(".json") or os.sep in text or "/" in text:
            raise ModelLoadError(f"The model config file {path} does not exist; check the path.")
        raise SettingsError(
            f"Unknown model config '{text}'; use a family name "
            f"({', '.join((*FAMILIES, *TAE_FAMILIES))}) "
            "or the path of a config.json."
        )
    return family_hint, _read_config_file(path)


def _read_config_file(path: Path) -> dict:
    if path.is_dir():
        for candidate in (path / "config.json", path / "vae" / "config.json"):
            if candidate.is_file():
                cfg = _read_json(candidate)
                if _is_vae_config(cfg):
                    return cfg
        raise ModelLoadError(
            f"The folder {path} has no AutoencoderKL config.json (nor vae/config.json); "
            "point at a diffusers VAE folder or a config .json file."
        )
    cfg = _read_json(path)
    if not _is_vae_config(cfg):
        raise ModelLoadError(
            f"The config {path} is not a diffusers AutoencoderKL config; "
            "give the VAE's config.json (from its vae/ folder) or a family name."
        )
    return cfg


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ModelLoadError(
            f"The model config {path} cannot be read as JSON ({_short(error)}); "
            "fix or replace the file."
        ) from error
    if not isinstance(data, dict):
        raise ModelLoadError(f"The model config {path} is not a JSON object; replace the file.")
    return data


def _is_vae_config(cfg: Mapping) -> bool:
    name = cfg.get("_class_name")
    if name is not None and name not in _VAE_CLASSES:
        return False
    return "block_out_channels" in cfg or "latent_channels" in cfg or name in _VAE_CLASSES


def _family_of_config(cfg: Mapping) -> str:
    """The shipped family a config matches (architecture and latent scaling), or custom."""
    sig = _arch_signature(cfg)
    matches = [f for f in FAMILIES if _arch_signature(shipped_config(f)) == sig]
    if not matches:
        return CUSTOM_FAMILY
    scaling = _scaling(cfg)
    exact = [f for f in matches if math.isclose(_scaling(shipped_config(f)), scaling, rel_tol=1e-3)]
    if "sd1" in exact and int(cfg.get("sample_size") or 0) == 768:
        return "sd2"
    if exact:
        return exact[0]
    return matches[0]


def _scaling(cfg: Mapping) -> float:
    """The latent scaling of a config (FLUX.2's has none: its batch norm scales instead)."""
    return float(cfg.get("scaling_factor") or 0.18215)


def _arch_signature(cfg: Mapping) -> tuple:
    return (
        tuple(cfg.get("block_out_channels") or (64,)),
        int(cfg.get("layers_per_block", 1)),
        int(cfg.get("latent_channels", 4)),
        bool(cfg.get("use_quant_conv", True)),
        int(cfg.get("norm_num_groups", 32)),
    )


# --------------------------------------------------------------------------- family from checkpoint keys


def _family_from_keys(keys: Sequence[str] | Mapping, latent_channels: int) -> str | None:
    """Guess a family from a full checkpoint's other keys and the VAE's latent channels."""
    if latent_channels == 32:
        return "flux2"
    if latent_channels == 16:
        if any("double_blocks." in k for k in keys):
            return "flux"
        return "sd3"
    if latent_channels == 4:
        if any(k.startswith("conditioner.embedders.1.") for k in keys):
            return "sdxl"
        if any(k.startswith("cond_stage_model.model.") for k in keys):
            return "sd2"
        return "sd1"
    return None
