"""One run of the artcloak worker, as plain logic: the command, its environment, and what
its JSON lines mean. runner.py feeds it from a QProcess; the tests feed it from a subprocess.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from . import protocol

WORKER_ARGS = ["-m", "artcloak", "worker", "-"]
# Krita's own Python settings must not leak into the worker's (different) Python.
PYTHON_VARIABLES = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE")


def worker_command(python: str) -> tuple[str, list[str]]:
    """The program and arguments that run the worker, the request on its stdin."""
    return python, list(WORKER_ARGS)


def worker_environment(environment: dict[str, str]) -> dict[str, str]:
    """Krita's environment minus what belongs to Krita's bundled Python (and, from an
    AppImage, its bundled libraries), so that the worker's Python starts as it would in a
    terminal."""
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
        self.stray: list[str] = []  # lines that are not protocol events
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
        """The process ended (``exit_code`` None if it crashed or never started)."""
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
            status = "crashed" if exit_code is None else f"exit status {exit_code}"
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


def progress_text(event: dict) -> str:
    """One line for the progress dialog."""
    stage = event.get("stage", "")
    step, total = event.get("step", 0), event.get("total", 0)
    if stage == "optimise":
        text = f"Protecting: step {step} of {total}"
        used = event.get("budget_used")
        if isinstance(used, (int, float)):
            text += f" (budget used {used:.0%})"
        return text
    if stage == "load":
        return event.get("message") or "Loading models"
    return event.get("message") or stage.capitalize() or "Working"


def progress_fraction(event: dict) -> float | None:
    """0..1 for the optimisation, None for stages without a known length."""
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


def describe_result(result: dict, report: dict | None = None, notices: list[str] = ()) -> str:
    """The message box text: where the image is, what was measured against which budget,
    and how long it took."""
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
    if notices:
        lines += ["", *notices]
    return "\n".join(lines)
