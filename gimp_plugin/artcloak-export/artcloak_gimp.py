"""The GIMP plug-in's logic as plain data: arguments -> worker request, running the worker,
reading its JSON lines, and the text shown at the end.

Nothing here imports gi, torch or artcloak: only the standard library and protocol.py (the
one definition of the worker protocol, copied next to this file by ``artcloak install
gimp``), so all of it is tested without GIMP. artcloak-export.py only moves values between
GIMP and these functions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field

import protocol

PROCEDURE = "plug-in-artcloak-export-protected"
WORKER_ARGS = ["-m", "artcloak", "worker", "-"]
# GIMP's own Python settings must not leak into the worker's (different) Python.
PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


class PluginError(Exception):
    """Something the artist can fix; its message is GIMP's error message, as is."""


@dataclass
class Arguments:
    """The procedure's arguments, as plain values (GIMP's config properties, by name)."""

    output: str = ""
    mode: str = "cloak"
    target_kind: str = "auto"  # cloak: auto (built-in default), style (by name), image
    style: str = ""
    style_image: str = ""
    anchors: list[str] = field(default_factory=list)  # shade: images of the target concept
    intensity: str = "default"
    quality: str = "default"
    overwrite: bool = False
    open_result: bool = False


def split_paths(text: str) -> list[str]:
    """Anchor images typed into one text field: one per line or separated by os.pathsep."""
    parts = text.replace(os.pathsep, "\n").splitlines()
    return [part.strip() for part in parts if part.strip()]


def problems(args: Arguments, image_path: str = "") -> list[str]:
    """Everything wrong with the arguments, one sentence each; empty when they can run."""
    found = protocol.target_problems(
        args.mode, args.target_kind, args.style, args.style_image, args.anchors
    )
    for name, allowed in (("intensity", protocol.INTENSITIES), ("quality", protocol.QUALITIES)):
        if getattr(args, name) not in allowed:
            found.append(f"The {name} must be one of {', '.join(allowed)}.")
    return found + protocol.output_problems(args.output, image_path)


@dataclass
class WorkerConfig:
    """What the installer recorded: which Python runs the worker, and request defaults."""

    python: str
    request: dict = field(default_factory=dict)
    styles: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, plugin_dir: str) -> WorkerConfig:
        try:
            data = protocol.read_worker_config(plugin_dir, "gimp")
        except protocol.ProtocolError as error:
            raise PluginError(str(error)) from None
        python, request = data["python"], data.get("request") or {}
        styles = data.get("styles")
        if not (isinstance(styles, list) and all(isinstance(s, str) for s in styles)):
            styles = []
        return cls(python=python, request=request, styles=styles)


def build_request(args: Arguments, input_path: str, config: WorkerConfig) -> protocol.WorkerRequest:
    """The worker request for the flattened copy of the image at ``input_path``;
    PluginError (every problem, one per line) when the arguments cannot run."""
    found = problems(args)
    if found:
        raise PluginError("\n".join(found))
    style = None
    anchors: list[str] = []
    if args.mode == "cloak":
        if args.target_kind == "style":
            style = args.style.strip()
        elif args.target_kind == "image":
            style = os.path.abspath(args.style_image)
    else:
        anchors = [os.path.abspath(a) for a in args.anchors]
    data = {
        "input": input_path,
        "output": os.path.abspath(args.output.strip()),
        "mode": args.mode,
        "style": style,
        "anchors": anchors,
        "intensity": args.intensity,
        "quality": args.quality,
        "overwrite": bool(args.overwrite),
    }
    for name, value in config.request.items():  # the procedure's own arguments win
        if name != "version":
            data.setdefault(name, value)
    request = protocol.WorkerRequest(**data)
    try:
        request.check()
    except protocol.ProtocolError as error:
        raise PluginError(str(error)) from None
    return request


# --- running the worker -------------------------------------------------------------------


def worker_environment(environment: dict[str, str]) -> dict[str, str]:
    """GIMP's environment minus its own Python's settings, so that the worker's Python
    starts as it would in a terminal."""
    env = {k: v for k, v in environment.items() if k not in PYTHON_VARIABLES}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


@dataclass
class Outcome:
    """How a run ended: ``result`` (with the result event), ``error`` or ``cancelled``."""

    kind: str
    message: str
    result: dict | None = None
    notices: list[str] = field(default_factory=list)


def read_events(lines, on_progress: Callable[[dict], None] | None = None) -> dict:
    """Go through the worker's stdout lines; returns {result, error, notices, stray}."""
    seen: dict = {"result": None, "error": None, "notices": [], "stray": []}
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            event = protocol.decode(line)
        except protocol.ProtocolError:
            seen["stray"].append(line)
            continue
        kind = event["event"]
        if kind == "progress" and on_progress is not None:
            on_progress(event)
        elif kind == "notice":
            seen["notices"].append(str(event.get("message", "")))
        elif kind == "result":
            seen["result"] = event
        elif kind == "error":
            seen["error"] = str(event.get("message") or "The worker reported an error.")
    return seen


def outcome_of(seen: dict, exit_code: int | None, stderr: str = "") -> Outcome:
    """What a finished run came to, from what read_events saw and the exit status."""
    if seen["error"] is not None:
        outcome = Outcome("error", seen["error"])
    elif seen["result"] is not None and exit_code == 0:
        outcome = Outcome("result", "", seen["result"])
    else:
        status = "crashed" if exit_code is None or exit_code < 0 else f"exit status {exit_code}"
        detail = _tail(stderr) or _tail("\n".join(seen["stray"]))
        outcome = Outcome(
            "error",
            f"The artcloak worker stopped without a result ({status})."
            + (f" Its last words: {detail}" if detail else ""),
        )
    outcome.notices = list(seen["notices"])
    return outcome


def for_people(message: str, input_path: str, image_name: str) -> str:
    """The worker's message with the temporary copy's path replaced by the image's name
    (the person never saw the temporary file)."""
    return message.replace(input_path, image_name or "The image")


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_worker(
    python: str,
    request: protocol.WorkerRequest,
    on_progress: Callable[[dict], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    environment: dict[str, str] | None = None,
) -> Outcome:
    """Run ``python -m artcloak worker -`` with the request on stdin, until it ends.
    ``cancelled()`` is asked after each line; when true the worker is terminated (its
    writes are atomic, so nothing partial is left)."""
    env = worker_environment(dict(os.environ if environment is None else environment))
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                [python, *WORKER_ARGS],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as error:
            return Outcome(
                "error",
                f"Could not start the artcloak worker with {python} ({error.strerror}). Is "
                "artcloak still installed there? Run `artcloak install gimp` again from that "
                "environment.",
            )
        with process:
            seen, was_cancelled = _talk(process, request, on_progress, cancelled)
            if was_cancelled:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
                return Outcome("cancelled", "Cancelled: nothing was written.")
            exit_code = process.wait()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    return outcome_of(seen, exit_code, stderr)


def _talk(process, request, on_progress, cancelled) -> tuple[dict, bool]:
    stop = {"cancelled": False}

    def lines():
        for line in process.stdout:
            yield line
            if cancelled is not None and cancelled():
                stop["cancelled"] = True
                return

    try:
        process.stdin.write(request.to_json())
        process.stdin.close()
    except OSError:
        pass  # it died at once: its exit status and stderr say why
    seen = read_events(lines(), on_progress)
    return seen, stop["cancelled"]


class TempFolder:
    """A private temporary folder, removed with everything in it on exit."""

    def __enter__(self) -> str:
        self.path = tempfile.mkdtemp(prefix="artcloak-gimp-")
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# --- what the person sees ---------------------------------------------------------------


def progress_text(event: dict) -> str:
    """One line for GIMP's progress bar."""
    stage = event.get("stage", "")
    if stage == "optimise":
        return f"Protecting: step {event.get('step', 0)} of {event.get('total', 0)}"
    return event.get("message") or str(stage).capitalize() or "Working"


def progress_fraction(event: dict) -> float | None:
    """0..1 for the optimisation, None for stages without a known length (pulse)."""
    step, total = event.get("step"), event.get("total")
    if event.get("stage") != "optimise" or not isinstance(total, int) or total <= 0:
        return None
    return max(0.0, min(1.0, step / total)) if isinstance(step, (int, float)) else None


def describe_result(result: dict, notices: list[str] = ()) -> str:
    """Where the image is and what was measured (GIMP shows it as a message)."""
    lines = [f"Protected image saved to {result.get('output', '?')}"]
    lpips = result.get("lpips")
    if isinstance(lpips, (int, float)):
        lines.append(f"Perceptual change (LPIPS): {lpips:.4f}")
    linf = result.get("linf_255")
    if isinstance(linf, (int, float)):
        lines.append(f"Largest pixel change: {linf:g}/255")
    seconds = result.get("seconds")
    if isinstance(seconds, (int, float)):
        lines.append(f"Time: {seconds:.1f} s")
    if result.get("report"):
        lines.append(f"Report: {result['report']}")
    return "\n".join([*lines, *notices])
