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
from .engine import Run
from .errors import ArtcloakError
from .settings import FileRequest, ModelSettings, OutputSettings, request_from_flat


def read_request(text: str) -> tuple[protocol.WorkerRequest, Run, ModelSettings]:
    """The request, its run (each setting's type and range, and its target, checked) and its
    models (checked by the engine that takes them); ProtocolError or SettingsError naming the
    first problem. Loads no model."""
    request = protocol.WorkerRequest.from_json(text)
    protection, models = request_from_flat(request.settings, check=False)
    return request, Run(protection), models


def run_worker(text: str, out: TextIO) -> int:
    """Run one request; returns the exit status (0 after a result, 1 after an error)."""
    from .engine import Engine, protect_files
    from .progress import Listener, as_protocol

    signal.signal(signal.SIGTERM, _exit_on_terminate)
    started = time.perf_counter()

    def send(event: dict) -> None:
        out.write(protocol.encode(event) + "\n")
        out.flush()

    def on_event(event) -> None:
        send(as_protocol(event))

    try:
        request, run, models = read_request(text)
        file_request = FileRequest(
            Path(request.input),
            Path(request.output),
            None if request.keep_mask is None else Path(request.keep_mask),
        )
        engine = Engine(models)
        output = OutputSettings(overwrite=request.overwrite)
        (outcome,) = protect_files(engine, [file_request], run, output, Listener(on_event))
    except (ArtcloakError, protocol.ProtocolError) as error:
        send(protocol.error(str(error)))
        return 1
    if not outcome.ok:
        send(protocol.error(outcome.message))
        return 1
    for message in outcome.notices:
        send(protocol.notice(message))
    measured = outcome.report.measured
    send(
        protocol.result(
            request.output,
            report=request.output + ".json",
            lpips=measured.lpips,
            linf_255=measured.linf_255,
            psnr_db=measured.psnr_db,
            latent=[shift.as_dict() for shift in outcome.report.latent],
            seconds=round(time.perf_counter() - started, 3),
        )
    )
    return 0


def _exit_on_terminate(signum, frame) -> None:
    # Raise SystemExit so that temporary files are removed on the way out.
    sys.exit(128 + signum)
