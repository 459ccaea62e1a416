"""The engine: images in, protected images and reports out. Imports no front end.

This module is the engine's one seam: front ends (CLI, worker, app, batch, install, the
ComfyUI pack) import from ``artcloak.engine`` only, never from its modules. Names load on
first use, so importing the seam imports no torch: a host can check its inputs, list styles
or refuse an output in a fraction of a second, and models load only when a run needs them.
"""

# ruff: noqa: F401  (the imports under TYPE_CHECKING are the seam's names, for type checkers)
from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

# Each exported name -> the engine module that defines it.
EXPORTS = {
    # Protecting images in memory, and a run over files.
    "Engine": "protect",
    "ImageJob": "protect",
    "ImageResult": "protect",
    "Failed": "protect",
    "Run": "run",
    "protect_files": "run",
    "FileOutcome": "image_files",
    "ReadFile": "image_files",
    "read_file": "image_files",
    "default_output": "image_files",
    "SUFFIXES": "image_files",
    "working_size": "resizing",
    # Targets.
    "available_styles": "targets",
    "check_target": "targets",
    "describe_target": "targets",
    "CATALOGUE": "targets",
    "DEFAULT_TEXTURE": "targets",
    "TEXTURES": "targets",
    "NEGATIVE_PROMPT": "targets.catalogue",
    "anchor_prompt": "targets.catalogue",
    "catalogue_names": "targets.catalogue",
    "catalogue_style": "targets.catalogue",
    # Encoders a host already holds.
    "VaeEncoder": "encoders",
    "encoder_from_state_dict": "encoders",
    # Images on disk.
    "LoadedImage": "images",
    "load_image": "images",
    "check_output_fits": "images",
    "check_output_path": "images",
    "format_for_path": "images",
    "FORMAT_EXTENSIONS": "images",
    "IMAGE_EXTENSIONS": "images",
    "LOSSLESS_EXTENSIONS": "images",
    # Checking a protection.
    "verify_files": "verify",
    "verify_images": "verify",
    "model_view": "verify",
    "viewing_encoder": "verify",
    "DEGRADATIONS": "verify",
}

__all__ = sorted(EXPORTS)


def __getattr__(name: str) -> object:
    module = EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value  # found once; later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


if TYPE_CHECKING:  # what type checkers and editors see; nothing is imported at run time
    from .encoders import VaeEncoder, encoder_from_state_dict
    from .image_files import SUFFIXES, FileOutcome, ReadFile, default_output, read_file
    from .images import (
        FORMAT_EXTENSIONS,
        IMAGE_EXTENSIONS,
        LOSSLESS_EXTENSIONS,
        LoadedImage,
        check_output_fits,
        check_output_path,
        format_for_path,
        load_image,
    )
    from .protect import Engine, Failed, ImageJob, ImageResult
    from .resizing import working_size
    from .run import Run, protect_files
    from .targets import (
        CATALOGUE,
        DEFAULT_TEXTURE,
        TEXTURES,
        available_styles,
        check_target,
        describe_target,
    )
    from .targets.catalogue import NEGATIVE_PROMPT, anchor_prompt, catalogue_names, catalogue_style
    from .verify import DEGRADATIONS, model_view, verify_files, verify_images, viewing_encoder
