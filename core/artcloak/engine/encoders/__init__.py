"""VAE encoders: what a latent diffusion model "sees" of an image.

An encoder loads from a Hugging Face hub id (through the normal local cache), a local
diffusers folder, or a single weights file such as artists and ComfyUI users already have
(a full SD checkpoint with the VAE under ``first_stage_model.``, or a VAE alone, in the
original SD ("LDM") key layout or the diffusers layout). Single files load offline with the
model configs shipped in ``artcloak/configs/``; FLUX.2's VAE (32 latent channels, built as
diffusers' ``AutoencoderKLFlux2``) among them.

Tiny autoencoders (TAESD, TAESDXL, TAESD3, TAEF1, TAEF2, TAESana; :mod:`.tae`) load from their
encoder file (a bare ``torch.nn.Sequential`` state dict), a file holding both halves, or
diffusers' AutoencoderTiny file or folder. Their family comes from the weights (latent channels,
TAEF2's pools, TAESana's 32x layout) and the file's name (``xl``, ``f1``/``flux``), or a prefix
(``taef2:PATH``). The decoder is optional: ``decoder.safetensors`` beside ``encoder.safetensors``
(or ``taesd_decoder`` beside ``taesd_encoder``) is loaded when there; without one, the encoder
works and ``decode`` says the decoder is missing. They take RGB in [0, 1] and give the latent
directly (:class:`TaeEncoder`); every encoder has a ``downscale`` (8, or 32 for TAESana).

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
from .model import TaeEncoder, VaeEncoder

__all__ = [
    "CUSTOM_FAMILY",
    "CUSTOM_RESOLUTION",
    "DEFAULT_ENCODER",
    "FAMILIES",
    "PICKLE_SUFFIXES",
    "SAFETENSORS_SUFFIXES",
    "TRAIN_RESOLUTION",
    "TaeEncoder",
    "VaeEncoder",
    "choose_device",
    "describe_encoder",
    "encoder_from_state_dict",
    "load_encoder",
    "load_encoders",
    "shipped_config",
]
