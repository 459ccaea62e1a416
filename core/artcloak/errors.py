"""One exception hierarchy for the whole core.

Every error a person can cause (bad files, bad settings, missing models) is an
``ArtcloakError`` whose message is one clear sentence meant for that person.
Hosts catch ``ArtcloakError`` and show ``str(error)``; anything else is a bug.
"""

from __future__ import annotations


class ArtcloakError(Exception):
    """Base class: the message is shown to the user as it is."""


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


class BudgetError(ArtcloakError):
    """The perceptual budget cannot be met for an image."""


class Cancelled(ArtcloakError):
    """The user cancelled the work."""

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)
