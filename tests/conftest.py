"""Shared fixtures: tiny models saved once per session, small images, fast settings."""

from __future__ import annotations

import faulthandler
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from artcloak.engine import Engine, check_target
from artcloak.settings import ModelSettings, ProtectionSettings
from artcloak.testing import save_tiny_models
from comfyui_host import ComfyUIHost, ComfyUISetupError, comfyui_host, skip_reason
from PIL import Image

# Tiny models: one thread is as fast, and several threads per process oversubscribe a shared
# 2-core machine (measured tens of times slower; see the README's batch section).
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def not_artcloaks_own_process(monkeypatch):
    """The CLI run in this process (``artcloak.cli.main``) leaves pytest's malloc as it is."""
    monkeypatch.setattr("artcloak.cli.own_process", lambda: None)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    return save_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def real_comfyui() -> ComfyUIHost:
    """A real ComfyUI with artcloak installed (see comfyui_host.py), or a skip saying why."""
    reason = skip_reason()
    if reason:
        pytest.skip(f"real-ComfyUI test skipped: {reason}")
    try:
        return comfyui_host()
    except ComfyUISetupError as error:
        pytest.fail(f"the real ComfyUI could not be set up: {error}")


@pytest.fixture(scope="session")
def tiny_model_settings(tiny_models) -> ModelSettings:
    return ModelSettings(
        encoders=(str(tiny_models["diffusers_folder"]),),
        device="cpu",
        lpips_random_backbone=True,
    )


@pytest.fixture(scope="session")
def engine(tiny_model_settings) -> Engine:
    return Engine(tiny_model_settings)


@pytest.fixture
def fast_settings() -> ProtectionSettings:
    return ProtectionSettings(steps=6, resolution=64, lpips=0.5)


def painting(width: int = 96, height: int = 72, seed: int = 0) -> np.ndarray:
    """A smooth, colourful uint8 H x W x 3 test picture."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:height, 0:width] / max(width, height)
    phases = rng.random(3) * 6
    image = np.stack([0.5 + 0.4 * np.sin(6 * u + 4 * v + p) for p in phases], axis=-1)
    return (image * 255).round().astype(np.uint8)


@pytest.fixture
def rgb_png(tmp_path) -> Path:
    path = tmp_path / "art.png"
    Image.fromarray(painting()).save(path)
    return path


@pytest.fixture
def cli_model_args(tiny_models) -> list[str]:
    """CLI options that make the command run on the tiny model, offline, in seconds."""
    return [
        "--encoder", str(tiny_models["diffusers_folder"]),
        "--device", "cpu",
        "--lpips-random-backbone",
        "--resolution", "64",
    ]  # fmt: skip


@dataclass
class Checks:
    """How many times the settings' and the target's checks ran."""

    settings: int = 0
    target: int = 0


@pytest.fixture
def checks(monkeypatch) -> Checks:
    """Counts ``ProtectionSettings.check`` and ``check_target``, wherever a module took it."""
    counted = Checks()
    check_settings = ProtectionSettings.check

    def settings_check(self) -> None:
        counted.settings += 1
        check_settings(self)

    def target_check(target, mode) -> None:
        counted.target += 1
        check_target(target, mode)

    monkeypatch.setattr(ProtectionSettings, "check", settings_check)
    for name, module in list(sys.modules.items()):
        if name.startswith(("artcloak", "comfy_nodes")) and (
            getattr(module, "check_target", None) is check_target
        ):
            monkeypatch.setattr(module, "check_target", target_check)
    return counted


@dataclass
class EngineCalls:
    """What the engine was asked to protect with, and how often it shaped a budget to texture."""

    settings: list[ProtectionSettings] = field(default_factory=list)
    shaped: int = 0


@pytest.fixture
def engine_calls(monkeypatch) -> EngineCalls:
    """Records every ``Engine.protect_checked`` call's settings (whichever host in this process
    made it) and counts the texture-shaped budgets the engine computed."""
    from artcloak.engine import protect

    calls = EngineCalls()
    protect_checked, budget_shares = protect.Engine.protect_checked, protect.budget_shares

    def recording(self, jobs, settings, *args, **kwargs):
        calls.settings.append(settings)
        return protect_checked(self, jobs, settings, *args, **kwargs)

    def counting(base):
        calls.shaped += 1
        return budget_shares(base)

    monkeypatch.setattr(protect.Engine, "protect_checked", recording)
    monkeypatch.setattr(protect, "budget_shares", counting)
    return calls


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """A crash after the last test (in some library's exit handlers) prints every thread's stack.

    pytest's own faulthandler stops at this point; without this a crash there is a bare exit 139.
    """
    faulthandler.enable(file=sys.__stderr__, all_threads=True)
