"""``artcloak worker``: one request in (JSON), protocol events out (JSON lines).

Plugins in Krita and GIMP start this as a subprocess of the Python that has artcloak
installed. Terminating it cancels the work; nothing partial is left behind, because
outputs are written to a temporary name and renamed only when complete.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import TextIO

from . import protocol
from .errors import ArtcloakError
from .settings import (
    DEFAULT_ENCODER,
    Diffusion,
    FileRequest,
    Intensity,
    Mode,
    ModelSettings,
    OutputSettings,
    ProtectionSettings,
    Quality,
    Target,
)


def settings_from(request: protocol.WorkerRequest) -> tuple[ProtectionSettings, ModelSettings]:
    protection = ProtectionSettings(
        mode=Mode(request.mode),
        target=Target(
            style=request.style,
            anchors=tuple(Path(a) for a in request.anchors),
            concept=request.concept,
            anchor_count=request.anchors_count,
            diffusion=Diffusion(
                model=request.diffusion,
                config=request.diffusion_config,
                enabled=not request.no_diffusion,
            ),
        ),
        intensity=Intensity(request.intensity),
        quality=Quality(request.quality),
        eps=None if request.eps_255 is None else request.eps_255 / 255,
        lpips=request.lpips,
        steps=request.steps,
        seed=request.seed,
        resolution=request.resolution,
        robust=request.robust,
        adaptive=request.adaptive,
    )
    models = ModelSettings(
        encoders=tuple(request.encoders) or (DEFAULT_ENCODER,),
        encoder_config=request.encoder_config,
        device=request.device,
        lpips_random_backbone=request.lpips_random_backbone,
    )
    return protection, models


def run_worker(text: str, out: TextIO) -> int:
    """Run one request; returns the exit status (0 after a result, 1 after an error)."""
    from .engine.files import protect_files
    from .engine.protect import Engine
    from .progress import Listener

    signal.signal(signal.SIGTERM, _exit_on_terminate)
    started = time.perf_counter()

    def send(event: dict) -> None:
        out.write(protocol.encode(event) + "\n")
        out.flush()

    def on_event(event) -> None:
        extra = {} if event.budget_used is None else {"budget_used": round(event.budget_used, 4)}
        send(protocol.progress(event.stage, event.step, event.total, event.message, **extra))

    try:
        request = protocol.WorkerRequest.from_json(text)
        protection, models = settings_from(request)
        if protection.target.concept is None:  # a concept's anchors are checked once generated
            protection.check()
        file_request = FileRequest(
            Path(request.input),
            Path(request.output),
            None if request.keep_mask is None else Path(request.keep_mask),
        )
        send(protocol.progress("load", 0, 1, "Loading models"))
        engine = Engine(models)
        output = OutputSettings(overwrite=request.overwrite)
        (outcome,) = protect_files(engine, [file_request], protection, output, Listener(on_event))
    except (ArtcloakError, protocol.ProtocolError) as error:
        send(protocol.error(str(error)))
        return 1
    if not outcome.ok:
        send(protocol.error(outcome.message))
        return 1
    for message in outcome.notices:
        send(protocol.notice(message))
    measured = outcome.report["measured"]
    send(
        protocol.result(
            request.output,
            report=request.output + ".json",
            lpips=measured["lpips"],
            linf_255=measured["linf_255"],
            psnr_db=measured["psnr_db"],
            latent=outcome.report["latent"],
            seconds=round(time.perf_counter() - started, 3),
        )
    )
    return 0


def _exit_on_terminate(signum, frame) -> None:
    # Raise SystemExit so that temporary files are removed on the way out.
    sys.exit(128 + signum)
