"""Run the worker in a QProcess (Krita stays responsive) behind a progress dialog with Cancel.

What the worker's lines mean is client.py's WorkerSession (shared with the GIMP plug-in);
this module only connects it to a QProcess and a QProgressDialog."""

from __future__ import annotations

import os
from collections.abc import Callable

from . import protocol
from .client import (
    KILL_AFTER_S,
    Outcome,
    WorkerSession,
    progress_fraction,
    progress_text,
    start_error,
    worker_command,
    worker_environment,
)
from .qt import NOT_RUNNING, WINDOW_MODAL, QProcess, QProcessEnvironment, QProgressDialog, QTimer

HOST = "krita"
KILL_AFTER_MS = KILL_AFTER_S * 1000  # after Cancel: terminate, then kill if it has not gone by then
BAR_STEPS = 1000


class WorkerRun:
    """One worker process; ``on_done(outcome)`` is called exactly once when it has ended."""

    def __init__(
        self,
        parent,
        python: str,
        request: protocol.WorkerRequest,
        on_done: Callable[[Outcome], None],
    ) -> None:
        self.python = python
        self.request = request
        self.on_done = on_done
        self.done = False
        self.session = WorkerSession(on_progress=self._progress)
        self.process = QProcess(parent)
        environment = QProcessEnvironment()
        for name, value in worker_environment(dict(os.environ)).items():
            environment.insert(name, value)
        self.process.setProcessEnvironment(environment)
        self.process.started.connect(self._send_request)
        self.process.readyReadStandardOutput.connect(self._read)
        self.process.finished.connect(self._finished)
        self.process.errorOccurred.connect(self._error)

        self.dialog = QProgressDialog("Starting artcloak…", "Cancel", 0, 0, parent)
        self.dialog.setObjectName("artcloak_progress")
        self.dialog.setWindowTitle("Export Protected")
        self.dialog.setWindowModality(WINDOW_MODAL)
        self.dialog.setMinimumDuration(0)
        self.dialog.setAutoClose(False)
        self.dialog.setAutoReset(False)
        self.dialog.canceled.connect(self.cancel)

    def start(self) -> None:
        program, arguments = worker_command(self.python)
        self.dialog.show()
        self.process.start(program, arguments)

    def running(self) -> bool:
        return not self.done

    def cancel(self) -> None:
        if self.done or self.session.cancelled:
            return
        self.session.cancel()
        self.dialog.setLabelText("Cancelling…")
        self.process.terminate()
        QTimer.singleShot(KILL_AFTER_MS, self._kill_if_running)

    # QProcess signals ---------------------------------------------------------------

    def _send_request(self) -> None:
        self.process.write(self.request.to_json().encode("utf-8"))
        self.process.closeWriteChannel()

    def _read(self) -> None:
        data = bytes(self.process.readAllStandardOutput())
        self.session.feed(data.decode("utf-8", "replace"))

    def _progress(self, event: dict) -> None:
        if self.session.cancelled:
            return
        self.dialog.setLabelText(progress_text(event))
        fraction = progress_fraction(event)
        if fraction is None:
            self.dialog.setMaximum(0)  # busy indicator
        else:
            self.dialog.setMaximum(BAR_STEPS)
            self.dialog.setValue(int(fraction * BAR_STEPS))

    def _finished(self, exit_code: int, exit_status) -> None:
        self._read()
        stderr = bytes(self.process.readAllStandardError()).decode("utf-8", "replace")
        crashed = exit_status == QProcess.ExitStatus.CrashExit
        self._end(self.session.finish(None if crashed else exit_code, stderr))

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            message = start_error(self.python, self.process.errorString(), HOST)
            self._end(self.session.finish(None, start_error=message))

    def _kill_if_running(self) -> None:
        if self.process.state() != NOT_RUNNING:
            self.process.kill()

    def _end(self, outcome: Outcome) -> None:
        if self.done:
            return
        self.done = True
        self.dialog.hide()
        self.dialog.deleteLater()
        self.process.deleteLater()
        self.on_done(outcome)
