"""VAE encoders: what a latent diffusion model "sees" of an image.

An encoder loads from a Hugging Face hub id (through the normal local cache), a local
diffusers folder, or a single weights file such as artists and ComfyUI users already have
(a full SD checkpoint with the VAE under ``first_stage_model.``, or a VAE alone, in the
original SD ("LDM") key layout or the diffusers layout). Single files load offline with the
model configs shipped in ``artcloak/configs/``.

Pickle files (``.ckpt``, ``.pt``, ``.pth``, ``.bin``) can run code when opened: they are
refused unless explicitly allowed, and then loaded with ``torch.load(weights_only=True)``.

Every failure a user can cause ends in a :class:`~artcloak.errors.ModelLoadError` (or a
:class:`~artcloak.errors.SettingsError` for a bad argument) whose message is one sentence
saying what is wrong and what to do. Nothing here prints to stdout.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import math
import os
import re
import socket
import sys
from collections.abc import Iterator, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from artcloak.errors import ModelLoadError, SettingsError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER = "stabilityai/sd-vae-ft-mse"
FAMILIES = ("sd1", "sd2", "sdxl", "sd3", "flux")
TRAIN_RESOLUTION = {"sd1": 512, "sd2": 512, "sdxl": 1024, "sd3": 1024, "flux": 1024}
CUSTOM_FAMILY = "custom"
CUSTOM_RESOLUTION = 512

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
# Where full checkpoints keep their VAE (SD 1.x/2.x/XL/3 and ComfyUI's all-in-one files).
_VAE_PREFIXES = ("first_stage_model.", "vae.", "")
_VAE_MARKER = "encoder.conv_in.weight"
_VAE_PARTS = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
_WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors")
_PICKLE_WEIGHT_NAMES = ("diffusion_pytorch_model.bin", "diffusion_pytorch_model.fp16.bin")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")
_FAMILY_PREFIX = re.compile(r"^([A-Za-z0-9]+):(.+)$", re.DOTALL)


# --------------------------------------------------------------------------- the encoder


class VaeEncoder(torch.nn.Module):
    """A frozen VAE used as a differentiable image encoder.

    ``forward`` maps images in [0, 1], shape (B, 3, H, W), to the latent *mean*
    (B, C, H/8, W/8), unscaled (the raw output of the encoder's moments). ``decode`` maps a
    latent mean back to images in [0, 1] to show what the model sees.
    """

    source: str
    family: str
    latent_channels: int
    train_resolution: int
    scaling_factor: float
    shift_factor: float

    def __init__(self, vae: Any, *, source: str, family: str, train_resolution: int) -> None:
        super().__init__()
        self.vae = vae
        self.vae.requires_grad_(False)
        self.source = source
        self.family = family
        self.latent_channels = int(vae.config.latent_channels)
        self.train_resolution = int(train_resolution)
        self.scaling_factor = float(vae.config.scaling_factor or 1.0)
        self.shift_factor = float(getattr(vae.config, "shift_factor", None) or 0.0)
        self.eval()

    def train(self, mode: bool = True) -> VaeEncoder:
        """The encoder is frozen: it stays in eval mode whatever is asked."""
        return super().train(False)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def forward(self, images: Tensor) -> Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise SettingsError(
                f"The encoder needs images shaped (batch, 3, height, width), got {tuple(images.shape)}."
            )
        x = images.to(device=self.device, dtype=self.dtype) * 2.0 - 1.0
        moments = self.vae.encoder(x)
        if getattr(self.vae, "quant_conv", None) is not None:
            moments = self.vae.quant_conv(moments)
        mean, _logvar = torch.chunk(moments, 2, dim=1)
        return mean

    def decode(self, latent_mean: Tensor) -> Tensor:
        if latent_mean.ndim != 4 or latent_mean.shape[1] != self.latent_channels:
            raise SettingsError(
                f"The decoder needs latents shaped (batch, {self.latent_channels}, h, w), "
                f"got {tuple(latent_mean.shape)}."
            )
        z = latent_mean.to(device=self.device, dtype=self.dtype)
        images = self.vae.decode(z).sample
        return ((images + 1.0) / 2.0).clamp(0.0, 1.0)

    def extra_repr(self) -> str:
        return (
            f"source={self.source!r}, family={self.family!r}, "
            f"latent_channels={self.latent_channels}, train_resolution={self.train_resolution}"
        )


# --------------------------------------------------------------------------- devices


def choose_device(name: str | torch.device = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must be available."""
    if isinstance(name, torch.device):
        name = str(name)
    if not isinstance(name, str):
        raise SettingsError(
            f"The device must be a name such as auto, cpu, cuda or mps, not {name!r}."
        )
    text = name.strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match:
        if not torch.cuda.is_available():
            raise SettingsError(
                f"The device '{name}' was asked for but no CUDA GPU is available here; "
                "use auto or cpu."
            )
        index = int(match.group(1)) if match.group(1) is not None else None
        if index is not None and index >= torch.cuda.device_count():
            raise SettingsError(
                f"The device '{name}' does not exist: this machine has "
                f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0."
            )
        return torch.device(text)
    if text == "mps":
        if not _mps_available():
            raise SettingsError(
                "The device 'mps' was asked for but Apple's Metal (MPS) is not available here; "
                "use auto or cpu."
            )
        return torch.device("mps")
    raise SettingsError(f"Unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps.")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# --------------------------------------------------------------------------- public loading


def load_encoder(
    source: str | Path,
    *,
    device: torch.device | str = "cpu",
    config: str | Path | None = None,
    allow_pickle: bool = False,
    resolution: int | None = None,
) -> VaeEncoder:
    """Load a VAE encoder from a hub id, a diffusers folder or a single weights file.

    ``source`` may start with a family prefix (``"sdxl:/path/vae.safetensors"``).
    ``config`` is a family name (one of :data:`FAMILIES`) or a diffusers AutoencoderKL
    config (a ``.json`` file or a folder with ``config.json``). ``resolution`` overrides the
    working resolution (the shorter side the model family was trained at).
    """
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
    target = choose_device(device)
    family_hint, location = _split_family_prefix(source.strip())
    family_hint, config_dict = _resolve_config_argument(config, family_hint)

    with contextlib.redirect_stdout(sys.stderr):
        vae, family = _load_vae(location, family_hint, config_dict, allow_pickle)
        if resolution is not None:
            train_resolution = resolution
        elif family in TRAIN_RESOLUTION:
            train_resolution = TRAIN_RESOLUTION[family]
        else:
            train_resolution = CUSTOM_RESOLUTION
            logger.info(
                "Model family of %s is unknown; working at %d px (set resolution to change).",
                source,
                train_resolution,
            )
        encoder = VaeEncoder(vae, source=source, family=family, train_resolution=train_resolution)
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


def load_encoders(sources: Sequence[str] | str, **same_kwargs: Any) -> list[VaeEncoder]:
    """Load several encoders (an ensemble) with the same keyword arguments."""
    if isinstance(sources, (str, Path)):
        sources = [str(sources)]
    sources = list(sources)
    if not sources:
        raise SettingsError("No encoder was given; name at least one model.")
    return [load_encoder(source, **same_kwargs) for source in sources]


def describe_encoder(enc: VaeEncoder) -> dict:
    """Plain, JSON-able facts about an encoder, for reports."""
    encoder_parameters = sum(p.numel() for p in enc.vae.encoder.parameters())
    quant_conv = getattr(enc.vae, "quant_conv", None)
    if quant_conv is not None:
        encoder_parameters += sum(p.numel() for p in quant_conv.parameters())
    return {
        "source": enc.source,
        "family": enc.family,
        "latent_channels": int(enc.latent_channels),
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
) -> VaeEncoder:
    """Build an encoder from VAE weights already in memory (e.g. a VAE a host loaded).

    The weights may be in either key layout, with or without a ``first_stage_model.``
    prefix; the tensors are copied, so the caller's model is left untouched.
    """
    family_hint, config_dict = _resolve_config_argument(config, None)
    with contextlib.redirect_stdout(sys.stderr):
        weights = _select_vae_weights(dict(state_dict), source)
        vae, family = _build_from_weights(
            weights, source, family_hint, config_dict, keys=state_dict
        )
    if resolution is None:
        resolution = TRAIN_RESOLUTION.get(family, CUSTOM_RESOLUTION)
    encoder = VaeEncoder(vae, source=source, family=family, train_resolution=resolution)
    return encoder.to(choose_device(device))


# --------------------------------------------------------------------------- configs


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
    if match and match.group(1).lower() in FAMILIES:
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
    if text.lower() in FAMILIES:
        family = text.lower()
        if family_hint is not None and family_hint != family:
            raise SettingsError(
                f"The source says family '{family_hint}' but config says '{family}'; give one."
            )
        return family, shipped_config(family)
    path = Path(text).expanduser()
    if not path.exists():
        if text.lower().endswith(".json") or os.sep in text or "/" in text:
            raise ModelLoadError(f"The model config file {path} does not exist; check the path.")
        raise SettingsError(
            f"Unknown model config '{text}'; use a family name ({', '.join(FAMILIES)}) "
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
    if name is not None and name != "AutoencoderKL":
        return False
    return "block_out_channels" in cfg or "latent_channels" in cfg or name == "AutoencoderKL"


def _family_of_config(cfg: Mapping) -> str:
    """The shipped family a config matches (architecture and latent scaling), or custom."""
    sig = _arch_signature(cfg)
    matches = [f for f in FAMILIES if _arch_signature(shipped_config(f)) == sig]
    if not matches:
        return CUSTOM_FAMILY
    scaling = float(cfg.get("scaling_factor") or 0.18215)
    exact = [
        f
        for f in matches
        if math.isclose(float(shipped_config(f)["scaling_factor"]), scaling, rel_tol=1e-3)
    ]
    if "sd1" in exact and int(cfg.get("sample_size") or 0) == 768:
        return "sd2"
    if exact:
        return exact[0]
    return matches[0]


def _arch_signature(cfg: Mapping) -> tuple:
    return (
        tuple(cfg.get("block_out_channels") or (64,)),
        int(cfg.get("layers_per_block", 1)),
        int(cfg.get("latent_channels", 4)),
        bool(cfg.get("use_quant_conv", True)),
        int(cfg.get("norm_num_groups", 32)),
    )


# --------------------------------------------------------------------------- dispatch


def _load_vae(
    location: str, family_hint: str | None, config: dict | None, allow_pickle: bool
) -> tuple[Any, str]:
    path = Path(location).expanduser()
    if path.is_dir():
        return _load_folder(path, location, family_hint, config, allow_pickle)
    if path.is_file():
        return _load_file(path, family_hint, config, allow_pickle)
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES or location.lower().endswith(".json"):
        raise ModelLoadError(f"The model file {path} does not exist; check the path.")
    if _HUB_ID.match(location) and not location.startswith((".", "~")):
        return _load_hub(location, family_hint, config, allow_pickle)
    raise ModelLoadError(
        f"'{location}' is neither an existing file or folder nor a Hugging Face model id "
        "(owner/name); check the spelling or the path."
    )


def _load_folder(
    folder: Path,
    label: str,
    family_hint: str | None,
    config: dict | None,
    allow_pickle: bool,
) -> tuple[Any, str]:
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
    return _build_from_weights(weights, str(weights_path), family, cfg, keys=state)


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
    path: Path, family_hint: str | None, config: dict | None, allow_pickle: bool
) -> tuple[Any, str]:
    state = _read_weights_file(path, allow_pickle)
    weights = _select_vae_weights(state, str(path))
    return _build_from_weights(weights, str(path), family_hint, config, keys=state)


# --------------------------------------------------------------------------- hub


def _hub_offline() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - hub library layout changed
        return False


def _download_advice(repo_id: str) -> str:
    return (
        f"on a connected machine run `hf download {repo_id}` (older versions: "
        f"`huggingface-cli download {repo_id}`) and copy the Hugging Face cache over, "
        "or give the path of a local .safetensors VAE file instead"
    )


def _load_hub(
    repo_id: str, family_hint: str | None, config: dict | None, allow_pickle: bool
) -> tuple[Any, str]:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as error:  # pragma: no cover - diffusers depends on it
        raise ModelLoadError(
            f"Loading '{repo_id}' from the hub needs the huggingface_hub package; install it "
            "or give the path of a local .safetensors VAE file."
        ) from error

    cached = _hub_files(repo_id, allow_pickle, local_only=True)
    if cached is None:
        if _hub_offline():
            raise ModelLoadError(
                f"The model '{repo_id}' is not in the local Hugging Face cache and downloads are "
                f"off (HF_HUB_OFFLINE is set); {_download_advice(repo_id)}."
            )
        _check_hub_reachable(repo_id)
        logger.info("Downloading %s from the Hugging Face hub.", repo_id)
        cached = _hub_files(repo_id, allow_pickle, local_only=False)
        if cached is None:  # pragma: no cover - _hub_files raises instead
            raise ModelLoadError(
                f"The model '{repo_id}' could not be downloaded; {_download_advice(repo_id)}."
            )
    config_path, weights_path = cached
    folder_config = _read_json(config_path)
    state = _read_weights_file(weights_path, allow_pickle)
    weights = _select_vae_weights(state, f"{repo_id} ({weights_path.name})")
    cfg = config if config is not None else folder_config
    family = family_hint
    if family is None and config is None and "stable-diffusion-2" in repo_id.lower():
        family = "sd2" if _family_of_config(folder_config) == "sd1" else None
    return _build_from_weights(weights, repo_id, family, cfg, keys=state)


def _hub_files(repo_id: str, allow_pickle: bool, *, local_only: bool) -> tuple[Path, Path] | None:
    """(config.json, weights) of the repo's VAE (root or vae/); None when not cached."""
    from huggingface_hub import hf_hub_download

    names = _WEIGHT_NAMES + (_PICKLE_WEIGHT_NAMES if allow_pickle else ())
    pickle_seen = False
    for subfolder in (None, "vae"):
        try:
            cfg_file = hf_hub_download(
                repo_id, "config.json", subfolder=subfolder, local_files_only=local_only
            )
        except Exception as error:
            if local_only or _is_missing_entry(error):
                continue
            raise _hub_error(repo_id, error) from error
        cfg = _read_json(Path(cfg_file))
        if not _is_vae_config(cfg):
            continue
        for name in names:
            try:
                weights = hf_hub_download(
                    repo_id, name, subfolder=subfolder, local_files_only=local_only
                )
            except Exception as error:
                if local_only or _is_missing_entry(error):
                    continue
                raise _hub_error(repo_id, error) from error
            return Path(cfg_file), Path(weights)
        if not local_only and not allow_pickle:
            for name in _PICKLE_WEIGHT_NAMES:
                with contextlib.suppress(Exception):
                    from huggingface_hub import file_exists

                    if file_exists(repo_id, f"{subfolder}/{name}" if subfolder else name):
                        pickle_seen = True
        if not local_only:
            break
    if local_only:
        return None
    if pickle_seen:
        raise ModelLoadError(
            f"The model '{repo_id}' has its VAE only as a pickle (.bin), which can run "
            "arbitrary code when opened; allow it with allow_pickle=True (CLI: --allow-pickle) "
            "if you trust the source, or use a .safetensors VAE."
        )
    raise ModelLoadError(
        f"The hub model '{repo_id}' has no AutoencoderKL VAE (config.json with "
        "diffusion_pytorch_model.safetensors, at its top or in vae/); pick a VAE or pipeline repo."
    )


def _is_missing_entry(error: Exception) -> bool:
    """True when the hub answered that a file is not there (not a connection failure)."""
    try:
        from huggingface_hub.errors import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    except ImportError:  # pragma: no cover - older hub library
        from huggingface_hub.utils import (
            EntryNotFoundError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
        )
    if isinstance(error, (LocalEntryNotFoundError, RepositoryNotFoundError)):
        return False
    return isinstance(error, EntryNotFoundError)


def _hub_error(repo_id: str, error: Exception) -> ModelLoadError:
    try:
        from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError
    except ImportError:  # pragma: no cover - older hub library
        from huggingface_hub.utils import GatedRepoError, RepositoryNotFoundError
    if isinstance(error, GatedRepoError):
        return ModelLoadError(
            f"The model '{repo_id}' is gated on the Hugging Face hub; accept its licence on "
            "its hub page and log in with `hf auth login`, then try again."
        )
    if isinstance(error, RepositoryNotFoundError):
        return ModelLoadError(
            f"The model '{repo_id}' was not found on the Hugging Face hub (or it is private); "
            "check the id, or log in with `hf auth login` if it is private."
        )
    return ModelLoadError(
        f"The model '{repo_id}' is not in the local Hugging Face cache and could not be "
        f"downloaded ({_short(error)}); {_download_advice(repo_id)}."
    )


def _check_hub_reachable(repo_id: str) -> None:
    """Fail fast when the hub's host name does not even resolve (no network, no proxy)."""
    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if any(os.environ.get(name) for name in proxies):
        return
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # pragma: no cover
        endpoint = "https://huggingface.co"
    host = re.sub(r"^[a-z]+://", "", endpoint).split("/")[0].split(":")[0]
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        raise ModelLoadError(
            f"The model '{repo_id}' is not in the local Hugging Face cache and the hub "
            f"({host}) cannot be reached from here; {_download_advice(repo_id)}."
        ) from error


# --------------------------------------------------------------------------- reading weights


def _pickle_refused(path: Path) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is a pickle checkpoint ({path.suffix}), which can run arbitrary code when "
        "opened, so it is refused; use a .safetensors file instead, or if you trust its "
        "source allow it with allow_pickle=True (CLI: --allow-pickle)."
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
            f"{label} contains no VAE encoder weights (no encoder.* or first_stage_model.* "
            "keys); use a checkpoint that includes its VAE, or the separate VAE file."
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


# --------------------------------------------------------------------------- key layouts


def _is_original_layout(weights: Mapping[str, Tensor]) -> bool:
    return any(k.startswith(("encoder.down.", "encoder.mid.", "decoder.up.")) for k in weights)


_RESNET_RENAMES = {"nin_shortcut": "conv_shortcut"}
_ATTN_RENAMES = {
    "norm": "group_norm",
    "q": "to_q",
    "k": "to_k",
    "v": "to_v",
    "proj_out": "to_out.0",
}
_LEGACY_ATTN_RENAMES = {
    "query": "to_q",
    "key": "to_k",
    "value": "to_v",
    "proj_attn": "to_out.0",
}


def _original_to_diffusers(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Original SD (LDM) VAE keys -> diffusers AutoencoderKL keys."""
    up_ids = [int(m.group(1)) for k in weights if (m := re.match(r"decoder\.up\.(\d+)\.", k))]
    n_up = max(up_ids) + 1 if up_ids else 0
    out: dict[str, Tensor] = {}
    for key, tensor in weights.items():
        new_key = key
        squeeze = False
        if m := re.fullmatch(r"(encoder|decoder)\.norm_out\.(\w+)", key):
            new_key = f"{m[1]}.conv_norm_out.{m[2]}"
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"encoder.down_blocks.{m[1]}.resnets.{m[2]}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"encoder\.down\.(\d+)\.downsample\.conv\.(\w+)", key):
            new_key = f"encoder.down_blocks.{m[1]}.downsamplers.0.conv.{m[2]}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.block\.(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.resnets.{m[2]}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"decoder\.up\.(\d+)\.upsample\.conv\.(\w+)", key):
            new_key = f"decoder.up_blocks.{n_up - 1 - int(m[1])}.upsamplers.0.conv.{m[2]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.block_(\d+)\.(\w+)\.(\w+)", key):
            layer = _RESNET_RENAMES.get(m[3], m[3])
            new_key = f"{m[1]}.mid_block.resnets.{int(m[2]) - 1}.{layer}.{m[4]}"
        elif m := re.fullmatch(r"(encoder|decoder)\.mid\.attn_1\.(\w+)\.(\w+)", key):
            layer = _ATTN_RENAMES.get(m[2], m[2])
            new_key = f"{m[1]}.mid_block.attentions.0.{layer}.{m[3]}"
            squeeze = m[2] != "norm"
        if squeeze and tensor.ndim > 2:
            tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        out[new_key] = tensor
    return out


def _fix_legacy_diffusers(weights: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Old diffusers attention names (query/key/value/proj_attn) -> current ones."""
    out: dict[str, Tensor] = {}
    for key, tensor in weights.items():
        m = re.fullmatch(r"(.*\.mid_block\.attentions\.0)\.(query|key|value|proj_attn)\.(\w+)", key)
        if m:
            key = f"{m[1]}.{_LEGACY_ATTN_RENAMES[m[2]]}.{m[3]}"
            if tensor.ndim > 2:
                tensor = tensor.reshape(tensor.shape[0], tensor.shape[1])
        out[key] = tensor
    return out


# --------------------------------------------------------------------------- building


def _family_from_keys(keys: Sequence[str] | Mapping, latent_channels: int) -> str | None:
    """Guess a family from a full checkpoint's other keys and the VAE's latent channels."""
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


def _build_from_weights(
    weights: dict[str, Tensor],
    label: str,
    family_hint: str | None,
    config: dict | None,
    *,
    keys: Mapping | Sequence[str],
) -> tuple[Any, str]:
    from diffusers import AutoencoderKL

    if _is_original_layout(weights):
        weights = _original_to_diffusers(weights)
    else:
        weights = _fix_legacy_diffusers(weights)

    conv_out = weights.get("encoder.conv_out.weight")
    latent_channels = int(conv_out.shape[0]) // 2 if conv_out is not None else None

    if config is None:
        family = family_hint
        if family is None and latent_channels is not None:
            family = _family_from_keys(list(keys), latent_channels)
        if family is None:
            raise ModelLoadError(
                f"The VAE in {label} has {latent_channels} latent channels, which matches no "
                f"known model family ({', '.join(FAMILIES)}); give its config.json as config."
            )
        config = shipped_config(family)
    else:
        family = family_hint or _family_of_config(config)

    init_names = set(inspect.signature(AutoencoderKL.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in config.items() if k in init_names}
    try:
        with torch.device("meta"):
            vae = AutoencoderKL(**kwargs)
    except Exception as error:
        raise ModelLoadError(
            f"The model config for {label} does not describe a valid AutoencoderKL "
            f"({_short(error)}); give the VAE's own config.json."
        ) from error

    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    wrong = sorted(
        k for k in set(expected) & set(weights) if tuple(weights[k].shape) != expected[k]
    )
    if missing or unexpected or wrong:
        example = (missing or unexpected or wrong)[0]
        what = f"the {family} VAE config" if family in FAMILIES else "the given VAE config"
        raise ModelLoadError(
            f"The VAE weights in {label} do not fit {what} ({len(missing)} missing, "
            f"{len(unexpected)} unexpected, {len(wrong)} of the wrong shape, e.g. {example}); "
            "give the config that matches this model (a family name or its config.json)."
        )

    state = {}
    for key, tensor in weights.items():
        if not tensor.is_floating_point():
            raise ModelLoadError(
                f"The VAE weight {key} in {label} is not a floating-point tensor "
                f"({tensor.dtype}); the file is not a usable VAE."
            )
        state[key] = tensor.to(dtype=torch.float32, copy=True).contiguous()
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
    vae.eval()
    return vae, family


def _short(error: BaseException, limit: int = 160) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
