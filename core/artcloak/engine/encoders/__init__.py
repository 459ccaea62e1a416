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

from ...settings import DEFAULT_ENCODER
from .configs import (
    CUSTOM_FAMILY,
    CUSTOM_RESOLUTION,
    FAMILIES,
    TRAIN_RESOLUTION,
    shipped_config,
)
from .devices import choose_device
from .files import PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES
from .loading import describe_encoder, encoder_from_state_dict, load_encoder, load_encoders
from .model import VaeEncoder

__all__ = [
    "CUSTOM_FAMILY",
    "CUSTOM_RESOLUTION",
    "DEFAULT_ENCODER",
    "FAMILIES",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "TRAIN_RESOLUTION",
    "VaeEncoder",
    "choose_device",
    "describe_encoder",
    "encoder_from_state_dict",
    "load_encoder",
    "load_encoders",
    "shipped_config",
]
