"""Load encoders from the Hugging Face hub through its local cache, with offline advice."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from pathlib import Path
from typing import Any

from artcloak.errors import ALLOW_PICKLES, AS_THE_ENCODER, ModelLoadError

from .build import _build_from_weights
from .configs import _family_of_config, _is_vae_config, _read_json
from .files import _PICKLE_WEIGHT_NAMES, _WEIGHT_NAMES, _read_weights_file, _select_vae_weights
from .messages import _short

logger = logging.getLogger(__name__)


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _hub_offline() -> bool:
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    try:
        from huggingface_hub import constants

        return bool(constants.HF_HUB_OFFLINE)
    except Exception:  # pragma: no cover - hub library layout changed
        return False


_LOCAL_FILE = (
    f"a local .safetensors file {AS_THE_ENCODER.words} instead (a VAE or a full checkpoint)"
)


def _download_advice(repo_id: str) -> str:
    return (
        f"on a connected machine run `hf download {repo_id}` (older versions: "
        f"`huggingface-cli download {repo_id}`) and copy its Hugging Face cache folder to "
        f"{_cache_folder()} here, or give {_LOCAL_FILE}"
    )


def _not_loaded(message: str) -> ModelLoadError:
    """A ModelLoadError whose advice names the encoder setting."""
    return ModelLoadError(message, named=(AS_THE_ENCODER,))


def _cache_folder() -> str:
    """Where the hub library looks for downloaded models (HF_HUB_CACHE / HF_HOME honoured)."""
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except (ImportError, AttributeError):  # pragma: no cover - older hub library
        return "~/.cache/huggingface/hub"


def _load_hub(
    repo_id: str,
    family_hint: str | None,
    config: dict | None,
    allow_pickle: bool,
    encoder_only: bool,
) -> tuple[Any, str]:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as error:  # pragma: no cover - diffusers depends on it
        raise _not_loaded(
            f"Loading '{repo_id}' from the hub needs the huggingface_hub package; install it "
            f"or give {_LOCAL_FILE}."
        ) from error

    cached = _hub_files(repo_id, allow_pickle, local_only=True)
    if cached is None:
        if _hub_offline():
            raise _not_loaded(
                f"The model '{repo_id}' is not in the local Hugging Face cache and downloads are "
                f"off (HF_HUB_OFFLINE is set); {_download_advice(repo_id)}."
            )
        _check_hub_reachable(repo_id)
        logger.info("Downloading %s from the Hugging Face hub.", repo_id)
        cached = _hub_files(repo_id, allow_pickle, local_only=False)
        if cached is None:  # pragma: no cover - _hub_files raises instead
            raise _not_loaded(
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
    return _build_from_weights(weights, repo_id, family, cfg, keys=state, encoder_only=encoder_only)


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
            "arbitrary code when opened; if you trust the source, allow pickles (the "
            "allow_pickle setting), or use a .safetensors VAE.",
            named=(ALLOW_PICKLES,),
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
    return _not_loaded(
        f"The model '{repo_id}' is not in the local Hugging Face cache and could not be "
        f"downloaded ({_short(error)}); {_download_advice(repo_id)}."
    )


def _check_hub_reachable(repo_id: str) -> None:
    """Fail fast when the hub's host name does not even resolve (no network, no proxy)."""
    try:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    except Exception:  # pragma: no cover
        endpoint = "https://huggingface.co"
    host = _host_of(endpoint)
    if not reachable(endpoint):
        raise _not_loaded(
            f"The model '{repo_id}' is not in the local Hugging Face cache and the hub "
            f"({host}) cannot be reached from here; {_download_advice(repo_id)}."
        )


def reachable(url: str) -> bool:
    """False when the URL's host name does not even resolve (no network); True behind a proxy."""
    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if any(os.environ.get(name) for name in proxies):
        return True
    try:
        socket.getaddrinfo(_host_of(url), 443)
    except OSError:
        return False
    return True


def _host_of(url: str) -> str:
    return re.sub(r"^[a-z]+://", "", url).split("/")[0].split(":")[0]
