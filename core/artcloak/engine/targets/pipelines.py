"""Diffusers pipelines that generate targets: from a hub id, a diffusers folder or one file.

SD 1.x/2.x and SDXL text-to-image pipelines load with diffusers' auto pipelines; the img2img
pipeline shares their components. A single checkpoint (``.safetensors``) loads with
``from_single_file`` and a diffusers config folder: a family name (``sd1``, ``sd2``,
``sdxl``) picks the one shipped with artcloak, so it works offline. Loaded pipelines are kept
per process, so a batch loads its model once.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...errors import (
    AS_THE_DIFFUSION_CONFIG,
    AS_THE_DIFFUSION_MODEL,
    SWITCHED_OFF,
    ModelLoadError,
    SettingsError,
)
from ...settings import DEFAULT_DIFFUSION, Diffusion
from .pipeline_configs import PIPELINE_FAMILIES, pipeline_config_folder

log = logging.getLogger(__name__)

DIFFUSION_ENV = "ARTCLOAK_DIFFUSION"
SINGLE_FILE_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
SUPPORTED_PIPELINES = ("StableDiffusionPipeline", "StableDiffusionXLPipeline")


_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*/[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class DiffusionUnavailable(ModelLoadError):
    """No diffusion model can be had (not named and not cached, or switched off)."""


@dataclass
class DiffusionModel:
    """A loaded text-to-image pipeline and its img2img twin, with an identity for cache keys."""

    source: str
    identity: dict
    text2img: Any
    _img2img: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.text2img.set_progress_bar_config(disable=True)

    @property
    def img2img(self) -> Any:
        if self._img2img is None:
            from diffusers import AutoPipelineForImage2Image

            self._img2img = AutoPipelineForImage2Image.from_pipe(self.text2img)
            self._img2img.set_progress_bar_config(disable=True)
        return self._img2img

    def describe(self) -> dict:
        return {"model": self.source, "pipeline": type(self.text2img).__name__}


_LOADED: dict[tuple, DiffusionModel] = {}


def diffusion_source(diffusion: Diffusion) -> tuple[str, bool]:
    """(source, named): the model asked for (setting or environment) or the default."""
    if diffusion.model:
        return diffusion.model, True
    from_env = os.environ.get(DIFFUSION_ENV, "").strip()
    if from_env:
        return from_env, True
    return DEFAULT_DIFFUSION, False


def load_diffusion(diffusion: Diffusion, device: torch.device) -> DiffusionModel:
    """The pipeline for ``diffusion``; DiffusionUnavailable when none is to be had.

    A model the user named that cannot be loaded is an error (ModelLoadError); the default
    model is used only when it is already in the local Hugging Face cache.
    """
    if not diffusion.enabled:
        raise DiffusionUnavailable("target generation is switched off", named=(SWITCHED_OFF,))
    source, named = diffusion_source(diffusion)
    key = (source, diffusion.config, str(device))
    if key not in _LOADED:
        dtype = torch.float16 if device.type == "cuda" else None  # None: fp32, as saved
        _quiet_loading()
        try:
            pipeline, identity = _load(source, diffusion.config, dtype, local_only=not named)
        except ModelLoadError as error:
            if named:
                raise
            log.info("The default diffusion model is not loadable: %s", error)
            raise DiffusionUnavailable(
                f"none was named, and the default {source} is not in the local Hugging Face "
                "cache; name one as the diffusion model (hub id, diffusers folder or "
                f".safetensors checkpoint) or set {DIFFUSION_ENV}",
                named=(AS_THE_DIFFUSION_MODEL,),
            ) from None
        if type(pipeline).__name__ not in SUPPORTED_PIPELINES:
            raise ModelLoadError(
                f"{source} is a {type(pipeline).__name__}; artcloak generates targets with "
                "Stable Diffusion 1.x/2.x and SDXL pipelines."
            )
        identity["dtype"] = str(dtype or torch.float32)  # fp16 and fp32 make other pixels
        _LOADED[key] = DiffusionModel(source, identity, pipeline.to(device))
        log.info("Loaded the diffusion pipeline %s.", source)
    return _LOADED[key]


def _quiet_loading() -> None:
    """No loading bars from diffusers/transformers: artcloak shows its own progress."""
    from diffusers.utils import logging as diffusers_logging
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
    if not log.isEnabledFor(logging.INFO):  # their advice is noise unless asked for (-v)
        for library in (diffusers_logging, transformers_logging, hub_logging):
            library.set_verbosity_error()


def _dtype_argument(dtype: torch.dtype | None) -> dict:
    return {} if dtype is None else {"torch_dtype": dtype}


def _load(source: str, config: str | None, dtype: torch.dtype | None, local_only: bool) -> tuple:
    path = Path(source).expanduser()
    if path.is_dir():
        return _from_folder(path, dtype), {"folder": str(path.resolve()), **_stamp(path)}
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelLoadError(
            f"{path.name} is a pickle checkpoint, which can run code when loaded; give a "
            ".safetensors checkpoint or a diffusers folder for target generation."
        )
    if path.suffix.lower() in SINGLE_FILE_SUFFIXES:
        if not path.is_file():
            raise ModelLoadError(f"The diffusion checkpoint {path} does not exist; check the path.")
        identity = {"file": str(path.resolve()), **_stamp(path), "config": config}
        return _from_single_file(path, config, dtype), identity
    if not _HUB_ID.match(source):
        raise ModelLoadError(
            f"The diffusion model {source} is neither a folder, a .safetensors file nor a hub id."
        )
    return _from_hub(source, dtype, local_only), {"hub": source}


def _stamp(path: Path) -> dict:
    """Size and modification time of the weights, so a changed model changes cache keys."""
    files = [path] if path.is_file() else sorted(path.rglob("*.safetensors"))
    return {"weights": [[str(f.relative_to(path)) if f != path else f.name,
                         f.stat().st_size, f.stat().st_mtime_ns] for f in files]}  # fmt: skip


def _from_folder(path: Path, dtype: torch.dtype | None) -> Any:
    from diffusers import AutoPipelineForText2Image

    if not (path / "model_index.json").is_file():
        raise ModelLoadError(
            f"The folder {path} is not a diffusers pipeline (no model_index.json); give a "
            "Stable Diffusion pipeline folder, a .safetensors checkpoint or a hub id."
        )
    try:
        return AutoPipelineForText2Image.from_pretrained(
            str(path), **_dtype_argument(dtype), local_files_only=True, safety_checker=None
        )
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelLoadError(
            f"The diffusion pipeline in {path} could not be loaded: {error}"
        ) from None


def _from_hub(repo_id: str, dtype: torch.dtype | None, local_only: bool) -> Any:
    """From the local Hugging Face cache; if it is not there and not ``local_only``, download."""
    from diffusers import AutoPipelineForText2Image

    advice = (
        f"on a connected machine run `hf download {repo_id}`, or give a local .safetensors "
        "checkpoint or diffusers folder as the diffusion model"
    )
    for cached_only in (True,) if local_only else (True, False):
        if not cached_only and not _hub_reachable():
            raise ModelLoadError(
                f"The diffusion model '{repo_id}' is not in the local Hugging Face cache and the "
                f"hub cannot be reached from here; {advice}.",
                named=(AS_THE_DIFFUSION_MODEL,),
            )
        try:
            return AutoPipelineForText2Image.from_pretrained(
                repo_id, **_dtype_argument(dtype), local_files_only=cached_only,
                safety_checker=None,
            )  # fmt: skip
        except Exception as error:  # the hub libraries raise many kinds; all mean "not loadable"
            failure = error
    where = "in the local Hugging Face cache" if local_only else "loadable from the hub"
    raise ModelLoadError(
        f"The diffusion model '{repo_id}' is not {where} ({type(failure).__name__}); {advice}.",
        named=(AS_THE_DIFFUSION_MODEL,),
    )


def _hub_reachable() -> bool:
    """False when downloads are off or the hub's host name does not resolve (and no proxy)."""
    import socket

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    proxies = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
    if any(os.environ.get(name) for name in proxies):
        return True
    host = re.sub(r"^[a-z]+://", "", constants.ENDPOINT).split("/")[0].split(":")[0]
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _from_single_file(path: Path, config: str | None, dtype: torch.dtype | None) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    family = (config or _guess_family(path)).strip()
    if family.lower() in PIPELINE_FAMILIES:
        config_source = str(pipeline_config_folder(family.lower()))
    elif Path(family).expanduser().is_dir():
        config_source = str(Path(family).expanduser())
    else:
        raise SettingsError(
            f"Unknown diffusion config '{family}'; use {', '.join(PIPELINE_FAMILIES)} or a "
            "diffusers config folder."
        )
    is_xl = family.lower() == "sdxl" or _folder_is_xl(Path(config_source))
    pipeline_class = StableDiffusionXLPipeline if is_xl else StableDiffusionPipeline
    try:
        return pipeline_class.from_single_file(
            str(path), config=config_source, **_dtype_argument(dtype), local_files_only=True,
            safety_checker=None,
        )  # fmt: skip
    except Exception as error:  # diffusers' conversions raise many kinds, its own included
        message = str(getattr(error, "message", None) or error).strip().splitlines()[0]
        raise ModelLoadError(
            f"The checkpoint {path.name} could not be loaded as a {family} pipeline ({message}); "
            "name its family (sd1, sd2 or sdxl) as the diffusion config, or give a diffusers "
            "folder.",
            named=(AS_THE_DIFFUSION_CONFIG,),
        ) from None


def _folder_is_xl(folder: Path) -> bool:
    index = folder / "model_index.json"
    return index.is_file() and "XL" in index.read_text("utf-8")


def _guess_family(path: Path) -> str:
    """sdxl when the checkpoint has a second text encoder, else sd1 (or sd2 by its width)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as weights:
            keys = list(weights.keys())
            if any(key.startswith("conditioner.embedders.1.") for key in keys):
                return "sdxl"
            if any(key.startswith("cond_stage_model.model.") for key in keys):
                return "sd2"
    except (OSError, ValueError) as error:
        raise ModelLoadError(f"{path.name} is not a readable .safetensors file: {error}") from None
    return "sd1"
