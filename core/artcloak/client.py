"""The editor plugins' side of the worker protocol: the artist's choices -> a request, the
worker's JSON lines -> progress and an outcome, and the text shown at the end.

Standard library only, like protocol.py: ``artcloak install krita|gimp`` copies this file
next to each plugin, whose Python (the editor's own) has no torch and no artcloak. The Krita
plugin (a package) imports it as a sibling module; the GIMP plug-in's folder is on sys.path,
so there it is the top-level module ``client`` beside a top-level ``protocol``. Only host
code (Qt, GIMP's gi) stays in the plugins: they show a dialog, write the image to a
temporary PNG, and either run the worker with :func:`run_worker` (blocking, GIMP) or feed a
:class:`WorkerSession` from their own process object (Krita's QProcess).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

try:  # inside the artcloak package, or the Krita plugin package
    from . import protocol
except ImportError:  # the GIMP plug-in: protocol.py sits beside this file, on sys.path
    import protocol

WORKER_ARGS = ["-m", "artcloak", "worker", "-"]
# The editor's own Python settings must not leak into the worker's (different) Python.
PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")
DEFAULT_STYLES = ("weave", "marble", "stripes", "mosaic")  # when worker.json has no list
KILL_AFTER_S = 5  # after Cancel: terminate, then kill if it has not gone by then


def private_temp_folder(prefix: str) -> str:
    """A new private temporary folder, named with this process's id. Folders of ``prefix``
    left by a process that no longer runs (a host that crashed, or a plug-in GIMP closed
    when its progress was cancelled) are removed first, so no copy of an artwork lingers
    (POSIX only: elsewhere there is no harmless way to ask whether a process runs)."""
    root = tempfile.gettempdir()
    if os.name == "posix":
        for name in os.listdir(root):
            owner = name[len(prefix) :].split("-", 1)[0] if name.startswith(prefix) else ""
            if owner.isdigit() and not process_running(int(owner)):
                shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-")


def process_running(pid: int) -> bool:
    """Whether process ``pid`` of this host runs (POSIX: on Windows os.kill would end it)."""
    try:
        os.kill(pid, 0)  # signal 0: nothing is sent, the process is only looked up
    except ProcessLookupError:
        return False
    except OSError:  # another user's process (EPERM): it exists
        return True
    return True


class PluginError(Exception):
    """Something the artist can fix; its message is shown to them as is."""


# --- the artist's choices -> a request ------------------------------------------------------


@dataclass
class Choices:
    """What the artist chose in the editor's dialog, as plain values."""

    output: str = ""
    mode: str = "cloak"
    target_kind: str = "auto"  # cloak: auto (built-in default), style (by name), image
    style: str = ""
    style_image: str = ""
    anchors: list[str] = field(default_factory=list)  # shade: images of the target concept
    intensity: str = "default"
    quality: str = "default"
    adaptive: bool = False  # the texture-shaped budget (protocol.ADAPTIVE_LABEL)
    overwrite: bool = False


def problems(choices: Choices, original: str = "") -> list[str]:
    """Everything wrong with the choices, one sentence each; empty when they can run.
    ``original``: the image's own file, which the output must never replace."""
    found = protocol.target_problems(
        choices.mode, choices.target_kind, choices.style, choices.style_image, choices.anchors
    )
    for name, allowed in (("intensity", protocol.INTENSITIES), ("quality", protocol.QUALITIES)):
        if getattr(choices, name) not in allowed:
            found.append(f"The {name} must be one of {', '.join(allowed)}.")
    return found + protocol.output_problems(choices.output, original)


@dataclass
class WorkerConfig:
    """What the installer recorded in worker.json: which Python runs the worker, the
    styles it knows, and request defaults (flat setting names, e.g. encoders, device)."""

    python: str
    styles: list[str] = field(default_factory=lambda: list(DEFAULT_STYLES))
    request: dict = field(default_factory=dict)
    artcloak: str = ""  # the version that was installed

    @classmethod
    def load(cls, plugin_dir: str, host: str) -> WorkerConfig:
        """The worker.json in ``plugin_dir``; PluginError saying what to do when it is
        missing or unusable. ``host``: krita or gimp."""
        try:
            data = protocol.read_worker_config(plugin_dir, host)
        except protocol.ProtocolError as error:
            raise PluginError(str(error)) from None
        styles = data.get("styles")
        if not (isinstance(styles, list) and styles and all(isinstance(s, str) for s in styles)):
            styles = list(DEFAULT_STYLES)
        artcloak = data.get("artcloak")
        return cls(
            python=data["python"],
            styles=styles,
            request=dict(data.get("request") or {}),
            artcloak=artcloak if isinstance(artcloak, str) else "",
        )


def build_request(
    choices: Choices, input_path: str, config: WorkerConfig
) -> protocol.WorkerRequest:
    """The worker request for the flattened copy of the image at ``input_path``: the
    choices, over worker.json's defaults. PluginError (every problem, one per line) when
    the choices cannot run."""
    found = problems(choices)
    if found:
        raise PluginError("\n".join(found))
    style = None
    anchors: list[str] = []
    if choices.mode == "cloak":
        if choices.target_kind == "style":
            style = choices.style.strip()
        elif choices.target_kind == "image":
            style = os.path.abspath(choices.style_image)
    else:
        anchors = [os.path.abspath(a) for a in choices.anchors]
    wire = {k: v for k, v in config.request.items() if k not in protocol.ENVELOPE}
    wire.update(  # the artist's own choices win over the defaults
        input=input_path,
        output=os.path.abspath(choices.output.strip()),
        overwrite=bool(choices.overwrite),
        mode=choices.mode,
        style=style,
        anchors=anchors,
        intensity=choices.intensity,
        quality=choices.quality,
    )
    wire.pop("adaptive", None)  # the artist's choice wins; off is the core's default
    if choices.adaptive:
        wire["adaptive"] = True
    try:
        return protocol.WorkerRequest.from_wire(wire)
    except protocol.ProtocolError as error:
        raise PluginError(str(error)) from None


# --- the worker process -------------------------------------------------------------------


def worker_command(python: str) -> tuple[str, list[str]]:
    """The program and arguments that run the worker, the request on its stdin."""
    return python, list(WORKER_ARGS)


def worker_environment(environment: dict[str, str]) -> dict[str, str]:
    """The editor's environment minus what belongs to its bundled Python (and, from an
    AppImage, its bundled libraries), so that the worker's Python starts as it would in a
    terminal. ``environment`` is left alone."""
    env = {k: v for k, v in environment.items() if k not in PYTHON_VARIABLES}
    appdir = env.get("APPDIR")
    if appdir and env.get("LD_LIBRARY_PATH"):
        kept = [p for p in env["LD_LIBRARY_PATH"].split(os.pathsep) if not p.startswith(appdir)]
        if kept:
            env["LD_LIBRARY_PATH"] = os.pathsep.join(kept)
        else:
            del env["LD_LIBRARY_PATH"]
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def start_error(python: str, reason: str, host: str) -> str:
    """What to say when the worker's Python cannot be started at all."""
    return (
        f"Could not start the artcloak worker with {python} ({reason}). Is artcloak still "
        f"installed there? Run `artcloak install {host}` again from the environment where "
        "it is installed."
    )


@dataclass
class Outcome:
    """How a run ended: ``result`` (with the result event), ``error`` or ``cancelled``."""

    kind: str
    message: str
    result: dict | None = None
    notices: list[str] = field(default_factory=list)


class WorkerSession:
    """Reads the worker's stdout as it arrives and decides what the run came to."""

    def __init__(
        self,
        on_progress: Callable[[dict], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
    ) -> None:
        self.on_progress = on_progress
        self.on_notice = on_notice
        self.pending = ""
        self.result: dict | None = None
        self.error: str | None = None
        self.notices: list[str] = []
        self.stray: list[str] = []  # lines that are not protocol events (library chatter)
        self.cancelled = False
        self.outcome: Outcome | None = None

    def feed(self, text: str) -> None:
        """Some of stdout; complete lines are handled, a partial one waits for the rest."""
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            self.handle_line(line)

    def handle_line(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            event = protocol.decode(line)
        except protocol.ProtocolError:
            self.stray.append(line)
            return
        kind = event["event"]
        if kind == "progress":
            if self.on_progress is not None:
                self.on_progress(event)
        elif kind == "notice":
            self.notices.append(str(event.get("message", "")))
            if self.on_notice is not None:
                self.on_notice(self.notices[-1])
        elif kind == "result":
            self.result = event
        elif kind == "error":
            self.error = str(event.get("message") or "The worker reported an error.")

    def cancel(self) -> None:
        """Remember that the person cancelled: the run ends as ``cancelled`` however the
        process exits."""
        self.cancelled = True

    def finish(self, exit_code: int | None, stderr: str = "", start_error: str = "") -> Outcome:
        """The process ended: ``exit_code`` None if it crashed or never started, negative
        if a signal ended it."""
        if self.pending:
            self.handle_line(self.pending)
            self.pending = ""
        if self.cancelled:
            outcome = Outcome("cancelled", "Cancelled: nothing was written.")
        elif start_error:
            outcome = Outcome("error", start_error)
        elif self.error is not None:
            outcome = Outcome("error", self.error)
        elif self.result is not None and exit_code == 0:
            outcome = Outcome("result", "", self.result)
        else:
            crashed = exit_code is None or exit_code < 0
            status = "crashed" if crashed else f"exit status {exit_code}"
            detail = _tail(stderr) or _tail("\n".join(self.stray))
            outcome = Outcome(
                "error",
                f"The artcloak worker stopped without a result ({status})."
                + (f"\n\nIts last words:\n{detail}" if detail else ""),
            )
        outcome.notices = list(self.notices)
        self.outcome = outcome
        return outcome


def _tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_worker(
    python: str,
    request: protocol.WorkerRequest,
    on_progress: Callable[[dict], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    environment: dict[str, str] | None = None,
    *,
    host: str,
) -> Outcome:
    """Run ``python -m artcloak worker -`` with the request on stdin, until it ends (for
    hosts without an event loop of their own to feed a WorkerSession). ``cancelled()`` is
    asked after each line; when true the worker is terminated (its writes are atomic, so
    nothing partial is left). ``host`` (krita or gimp) names the install command to rerun
    when the Python cannot be started."""
    program, arguments = worker_command(python)
    env = worker_environment(dict(os.environ if environment is None else environment))
    session = WorkerSession(on_progress=on_progress)
    with tempfile.TemporaryFile() as errors:
        try:
            process = subprocess.Popen(
                [program, *arguments],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except OSError as error:
            reason = error.strerror or str(error)
            return session.finish(None, start_error=start_error(python, reason, host))
        with process:
            try:
                process.stdin.write(request.to_json())
                process.stdin.close()
            except OSError:
                pass  # it died at once: its exit status and stderr say why
            for line in process.stdout:
                session.feed(line)
                if cancelled is not None and cancelled():
                    session.cancel()
                    process.terminate()
                    break
            if session.cancelled:
                try:
                    process.wait(timeout=KILL_AFTER_S)
                except subprocess.TimeoutExpired:
                    process.kill()
            exit_code = process.wait()
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace")
    return session.finish(exit_code, stderr)


# --- what the person sees -------------------------------------------------------------------


def progress_text(event: dict) -> str:
    """One line for the editor's progress display."""
    stage = str(event.get("stage", ""))
    step, total = event.get("step", 0), event.get("total", 0)
    if stage == "optimise":
        text = f"Protecting: step {step} of {total}"
        used = event.get("budget_used")
        if isinstance(used, (int, float)):
            text += f" (budget used {used:.0%})"
        left = event.get("seconds_left")
        if isinstance(left, (int, float)) and not isinstance(left, bool):
            text += f", about {_minutes(left)} left" + (" (estimated)" if step == 0 else "")
        return text
    if stage == "load":
        return event.get("message") or "Loading models"
    if stage == "file":  # its message is the worker's temporary copy of the image
        return "Reading the image"
    return event.get("message") or stage.capitalize() or "Working"


def _minutes(seconds: float) -> str:
    return f"{max(1, round(seconds))} s" if seconds < 60 else f"{round(seconds / 60)} min"


def progress_fraction(event: dict) -> float | None:
    """0..1 for the optimisation, None for stages without a known length (busy/pulse)."""
    step, total = event.get("step"), event.get("total")
    if event.get("stage") != "optimise" or not isinstance(total, int) or total <= 0:
        return None
    return max(0.0, min(1.0, step / total)) if isinstance(step, (int, float)) else None


def read_report(result: dict) -> dict:
    """The JSON report the worker wrote next to the image ({} if it cannot be read)."""
    path = result.get("report")
    if not isinstance(path, str):
        return {}
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_result(result: dict, report: dict | None = None, notices: Iterable[str] = ()) -> str:
    """The closing message: where the image is, what was measured against which budget
    (``report``: see read_report), and how long it took."""
    budget = ((report or {}).get("settings") or {}).get("budget") or {}
    lines = [f"Protected image saved to:\n{result.get('output', '?')}", ""]
    lpips = result.get("lpips")
    if isinstance(lpips, (int, float)):
        limit = budget.get("lpips")
        lines.append(
            f"Perceptual change (LPIPS): {lpips:.4f}"
            + (f" (budget {limit:g})" if isinstance(limit, (int, float)) else "")
        )
    linf = result.get("linf_255")
    if isinstance(linf, (int, float)):
        limit = budget.get("eps_255")
        lines.append(
            f"Largest pixel change: {linf:g}/255"
            + (f" (budget {limit:g}/255)" if isinstance(limit, (int, float)) else "")
        )
    psnr = result.get("psnr_db")
    if isinstance(psnr, (int, float)):
        lines.append(f"PSNR: {psnr:.1f} dB")
    for item in result.get("latent") or []:
        if isinstance(item, dict) and isinstance(item.get("distance_closed"), (int, float)):
            name = os.path.basename(str(item.get("encoder", "")).rstrip("/\\")) or "encoder"
            closed = item["distance_closed"]
            lines.append(f"Encoder moved {closed:.0%} of the way to the target ({name})")
    seconds = result.get("seconds")
    if isinstance(seconds, (int, float)):
        lines.append(f"Time: {seconds:.1f} s")
    if result.get("report"):
        lines += ["", f"Report: {result['report']}"]
    notices = list(notices)
    if notices:
        lines += ["", *notices]
    return "\n".join(lines)


def for_people(message: str, input_path: str, image_name: str) -> str:
    """The worker's message with the temporary copy's path replaced by the image's name
    (the person never saw the temporary file)."""
    return message.replace(input_path, image_name or "The image")
