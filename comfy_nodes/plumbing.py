"""What every artcloak node shares: the engine for the graph's VAE(s), autograd back on,
ComfyUI's progress bar and interrupt, the settings by the core's names, the time estimate."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import replace

import comfy.model_management as model_management
import comfy.utils
import numpy as np
import torch
from artcloak.engine import Engine, Run, check_target
from artcloak.errors import ArtcloakError
from artcloak.progress import ProgressEvent, duration
from artcloak.settings import (
    MAX_SEED,
    Mode,
    ModelSettings,
    ProtectionSettings,
    request_from_flat,
)
from comfy_api.latest import io

from .ensemble import VaeChoice
from .vae import private_encoder

CATEGORY = "artcloak"
# Tests only: a random LPIPS backbone when the ImageNet weights cannot be had. The report
# then says the budget is not perceptual.
RANDOM_LPIPS_ENV = "ARTCLOAK_TEST_RANDOM_LPIPS"
# One rule for every seed input of the pack: 0 .. the core's MAX_SEED (2**63-1), the range
# the core checks. ComfyUI's own KSampler offers up to 2**64-1; a larger seed than the core
# takes would only be refused when the node runs.
SEED_MAX = MAX_SEED
SEED_TOOLTIP = f"The same seed gives the same result on the same machine (0 to {MAX_SEED})."
# What the editor does to a seed after each run: keep it ("fixed"), so running a graph again
# protects the same way (with True the editor picks randomize: a new protection each run).
# Newer ComfyUIs name the same string io.ControlAfterGenerate.fixed. ComfyUI 0.8's editor
# ignores the mode and starts at randomize; web/seed_control.js sets the node's mode there.
SEED_CONTROL = getattr(getattr(io, "ControlAfterGenerate", None), "fixed", "fixed")
log = logging.getLogger("artcloak.comfy")
_engines: dict[int, Engine] = {}


# --------------------------------------------------------------------------- shared plumbing


def _device() -> str:
    device = model_management.get_torch_device()
    return str(device) if torch.device(device).type in ("cpu", "cuda", "mps") else "cpu"


@contextlib.contextmanager
def autograd_on():
    """Autograd back on: the optimisation differentiates through the encoder and LPIPS, and
    models created here must not be inference tensors either."""
    with torch.inference_mode(False), torch.enable_grad():
        yield


def engine_for(choices: list[VaeChoice]) -> Engine:
    """The engine for the graph's VAE(s): their private encoder copies (one per VAE, whatever
    the working resolution, which is a setting of each run) and LPIPS."""
    device = _device()
    encoders = [
        private_encoder(choice.vae, family=choice.family, config=choice.config.strip(),
                        device=device)
        for choice in choices
    ]  # fmt: skip
    key = tuple(id(encoder) for encoder in encoders)
    engine = _engines.get(key)
    if engine is None or any(a is not b for a, b in zip(engine.encoders, encoders, strict=True)):
        models = ModelSettings(
            encoders=tuple(encoder.source for encoder in encoders),
            device=device,
            lpips_random_backbone=os.environ.get(RANDOM_LPIPS_ENV) == "1",
        )
        _engines.clear()
        engine = _engines[key] = Engine(models, encoders=encoders)
    return engine


def vae_choices(vae, family: str, config: str, more_vaes) -> list[VaeChoice]:
    """The node's own VAE first, then those of more_vaes (artcloak Add VAE)."""
    if more_vaes is not None and not all(isinstance(c, VaeChoice) for c in more_vaes):
        raise ArtcloakError("more_vaes takes the output of artcloak Add VAE.")
    return [VaeChoice(vae, family, config), *(more_vaes or ())]


def show_on_node(text: str) -> None:
    """Text under the running node (ComfyUI's progress text), where ComfyUI can show it."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:
        return
    context = get_executing_context()
    server = getattr(PromptServer, "instance", None)
    if context is None or server is None:
        return
    with contextlib.suppress(Exception):  # a display nicety: never fail a run for it
        server.send_progress_text(text, context.node_id)


class NodeProgress:
    """Optimisation steps -> ComfyUI's progress bar; ComfyUI's interrupt -> Cancelled. After
    the first step, the time it took gives a measured estimate of the rest."""

    def __init__(self, steps: int, chunks: int, mode: Mode, groups: dict, batch: int) -> None:
        self.steps, self.total, self.mode = steps, max(1, steps * chunks), mode
        self.groups, self.batch = groups, batch
        self.bar = comfy.utils.ProgressBar(self.total)
        self.started: float | None = None
        self.estimate: float | None = None

    def on_event(self, event: ProgressEvent) -> None:
        if event.stage != "optimise":
            return
        if event.step == 0 and self.started is None:
            self.started = time.perf_counter()
            if event.seconds_left is not None:
                self._announce(event.seconds_left)
        elif event.step == 1 and self.started is not None and self.bar.current == 0:
            took = time.perf_counter() - self.started
            text = (f"artcloak {self.mode.value}: step 1 took {took:.1f} s; about "
                    f"{duration(took * (self.total - 1))} left at most (measured)")  # fmt: skip
            log.info(text)
            show_on_node(text)
        if event.step > 0:
            self.bar.update(1)
            if event.step == event.total < self.steps:  # the loop stopped early
                self.bar.update(self.steps - event.total)

    def _announce(self, first_chunk_seconds: float) -> None:
        """The core's estimate for the first chunk, for the whole run (by pixels), logged and
        shown on the node before the first step."""
        (width, height), count = next(iter(self.groups.items()))
        per_pixel = first_chunk_seconds / (min(count, self.batch) * width * height)
        pixels = sum(n * w * h for (w, h), n in self.groups.items())
        self.estimate = per_pixel * pixels
        text = estimate_text(self.mode, self.estimate, self.steps, self.groups)
        log.info(text)
        show_on_node(text)

    @staticmethod
    def should_cancel() -> bool:
        return model_management.processing_interrupted()


def raise_interrupted() -> None:
    """Tell ComfyUI the way its own nodes do that the run was interrupted."""
    model_management.throw_exception_if_processing_interrupted()
    raise model_management.InterruptProcessingException()


def node_settings(values: dict, images: tuple[np.ndarray, ...] = ()) -> ProtectionSettings:
    """A node's settings: its inputs by the core's flat names, with the target images it was
    given; types checked, values not yet (see ``checked_settings`` and ``node_run``)."""
    settings = request_from_flat(values, check=False)[0]  # the target images come next
    if images:
        settings = replace(settings, target=replace(settings.target, images=tuple(images)))
    return settings


def checked_settings(values: dict, images: tuple[np.ndarray, ...] = ()) -> ProtectionSettings:
    """``node_settings`` checked by the core (SettingsError/TargetError with the core's
    message, which ComfyUI shows as the node's error)."""
    settings = node_settings(values, images)
    check_target(settings.target, settings.mode)
    settings.check()
    return settings


def node_run(values: dict, images: tuple[np.ndarray, ...] = ()) -> Run:
    """A protecting node's run: ``node_settings``, checked once by the core's ``Run``."""
    return Run(node_settings(values, images))


def flat_values(mode: Mode, intensity, quality="default", seed=0, eps=0.0, lpips=0.0, steps=0,
            resolution=0, adaptive=False) -> dict:  # fmt: skip
    """The protection inputs by the core's flat names; 0 (a number widget's default) means
    the preset's value."""
    return {"mode": mode.value, "intensity": intensity, "quality": quality, "seed": seed,
            "eps_255": eps or None, "lpips": lpips or None, "steps": steps or None,
            "resolution": resolution or None, "adaptive": adaptive}  # fmt: skip


# --------------------------------------------------------------------------- the time estimate


def work_groups(engine: Engine, jobs, settings) -> dict[tuple[int, int], int]:
    """Images per working size (width, height), as the engine groups them."""
    return {size: len(indices) for size, indices in engine.work_groups(jobs, settings).items()}


def estimate_text(mode: Mode, seconds: float, steps: int, groups: dict) -> str:
    (width, height), *_ = groups
    return (f"artcloak {mode.value}: about {duration(seconds)} for {steps} steps on "
            f"{sum(groups.values())} image(s) at {width}x{height} (an estimate from the first "
            "encoder pass; the run may stop sooner when it converges)")  # fmt: skip
