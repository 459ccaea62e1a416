"""Choose the device encoders run on."""

from __future__ import annotations

import re

import torch

from artcloak.errors import SettingsError


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
