"""One exception hierarchy for the whole core.

Every error a person can cause (bad files, bad settings, missing models) is an
``ArtcloakError`` whose message is one clear sentence meant for that person.
Hosts catch ``ArtcloakError`` and show ``str(error)``; anything else is a bug.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Named:
    """Words in a message that name a setting (``setting``: its flat name, see settings.py)
    in terms any host can show; a host with its own name for it (the CLI's option) may say
    that instead."""

    setting: str
    words: str


# How the core's messages name settings, in words any host can show (the CLI says its options).
A_CONCEPT = Named("concept", "a concept")
ANCHOR_IMAGES = Named("anchors", "anchor images")
A_STYLE = Named("style", "a style")
ALLOW_REPLACING = Named("overwrite", "allow replacing it")
SWITCHED_OFF = Named("diffusion_enabled", "switched off")
AS_THE_DIFFUSION_MODEL = Named("diffusion", "as the diffusion model")
AS_THE_DIFFUSION_CONFIG = Named("diffusion_config", "as the diffusion config")
AS_THE_ENCODER = Named("encoders", "as the encoder")
AS_THE_ENCODER_CONFIG = Named("encoder_config", "as the encoder config")
ALLOW_PICKLES = Named("allow_pickle", "allow pickles (the allow_pickle setting)")


class ArtcloakError(Exception):
    """Base class: the message is shown to the user as it is (or ``said`` in a host's terms)."""

    def __init__(self, *args: object, named: tuple[Named, ...] = ()) -> None:
        super().__init__(*args)
        self.named = named

    def said(self, names: Mapping[str, str]) -> str:
        """The message with each named setting in a host's own terms (``names``: flat name ->
        the host's words, e.g. ``{"encoders": "with --encoder PATH"}``)."""
        return say(str(self), self.named, names)


def say(text: str, named: tuple[Named, ...], names: Mapping[str, str]) -> str:
    """``text`` with each of its ``named`` settings in a host's own terms (see ``said``)."""
    for setting in named:
        if setting.setting in names:
            text = text.replace(setting.words, names[setting.setting])
    return text


class InputImageError(ArtcloakError):
    """An input image cannot be read or is not supported."""


class OutputError(ArtcloakError):
    """An output cannot be written (exists, same as input, bad format, no space)."""


class ModelLoadError(ArtcloakError):
    """An encoder or LPIPS model cannot be loaded (missing, wrong, offline)."""


class SettingsError(ArtcloakError):
    """A setting or combination of settings is invalid."""


class TargetError(ArtcloakError):
    """A protection target (style image, texture, anchor) is unusable."""


class Cancelled(ArtcloakError):
    """The user cancelled the work."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)
