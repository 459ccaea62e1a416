"""Run the installed Krita plugin's Qt side (extension, dialog, runner) under PyQt5 or PyQt6,
without Krita: the stand-in ``krita`` module beside this file, a real QMainWindow with a
File menu, and real worker processes. Run by tests/test_krita_qt.py, one binding per process
(the other one is made unimportable), with QT_QPA_PLATFORM=offscreen:

    python qt_driver.py PyQt6 PYKRITA_FOLDER JOB.json

Like tests/krita_real/artcloak_test_driver, it triggers File > Export Protected… for each run
of the job, answers the dialogs as a person would (fills the export dialog and presses OK,
answers Yes to replacing a file, presses Cancel in the progress dialog when asked, closes
message boxes, recording their text) and writes what it saw to the job's result file.
"""

from __future__ import annotations

import glob
import hashlib
import importlib
import json
import os
import sys
import tempfile
import time
import traceback

import numpy as np
from PIL import Image

API = sys.argv[1]
OTHER = {"PyQt5": "PyQt6", "PyQt6": "PyQt5"}[API]
sys.modules[OTHER] = None  # importing the other binding now fails: the two never meet
QtCore = importlib.import_module(f"{API}.QtCore")
QtWidgets = importlib.import_module(f"{API}.QtWidgets")
# Scoped enum names: the only ones PyQt6 has (PyQt5 has both).
OK = QtWidgets.QDialogButtonBox.StandardButton.Ok
CANCEL = QtWidgets.QDialogButtonBox.StandardButton.Cancel
YES = QtWidgets.QMessageBox.StandardButton.Yes
TICK_MS = 50
ACTION = "artcloak_export_protected"
# Krita's File menu, by action name, around where ours goes.
FILE_MENU = ("file_new", "file_open", "file_save", "file_export_file", "file_export_advanced",
             "file_close", "file_quit")  # fmt: skip


def fingerprint(document) -> dict:
    return {
        "sha256": hashlib.sha256(document.pixels.tobytes()).hexdigest(),
        "modified": document.modified(),
        "file": document.fileName(),
        "batch": document.batchmode(),
    }


class Driver:
    def __init__(self, app, job: dict, krita, package) -> None:
        self.app, self.job, self.krita, self.package = app, job, krita, package
        self.record = {"runs": [], "errors": [], "started": time.time()}
        self.run: dict | None = None
        self.spec: dict | None = None
        self.steps = self.script()
        self.busy = False
        self.pressing = False
        self.finished = False
        self.timer = QtCore.QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(TICK_MS)

    def trace(self, text: str) -> None:
        """A line in <result_file>.trace as it happens, for when something hangs."""
        with open(self.job["result_file"] + ".trace", "a", encoding="utf-8") as stream:
            stream.write(f"{time.time() - self.record['started']:7.2f} {text}\n")

    # called every TICK_MS, also inside the plugin's nested event loops -------------------

    def tick(self) -> None:
        if self.finished:
            return
        try:
            self.answer_dialogs()
            if time.time() - self.record["started"] > self.job["timeout_s"]:
                raise TimeoutError("the Qt driver timed out")
            if not self.busy:
                self.busy = True
                try:
                    next(self.steps)
                finally:
                    self.busy = False
        except StopIteration:
            self.finish()
        except Exception:
            self.record["errors"].append(traceback.format_exc())
            self.finish()

    def press(self, button) -> None:
        """Press a button once this tick is over: what it opens (another modal dialog, with
        its own event loop) must not run inside this timer's handler, which Qt would not
        call again until it returns."""
        self.pressing = True

        def now():
            self.pressing = False
            button()

        QtCore.QTimer.singleShot(0, now)

    def answer_dialogs(self) -> None:
        if self.run is None:
            return
        for dialog in self.app.topLevelWidgets():
            if (
                isinstance(dialog, QtWidgets.QProgressDialog)
                and dialog.objectName() == "artcloak_progress"
                and dialog.isVisible()
                and self.spec.get("cancel")
                and dialog.labelText().startswith("Protecting")
                and not self.run["cancelled"]
            ):
                self.run["cancelled"] = True
                self.trace("pressing Cancel in the progress dialog")
                self.press(dialog.findChild(QtWidgets.QPushButton).click)  # as a person would
        widget = self.app.activeModalWidget()
        if widget is None or self.pressing:
            return
        if widget.objectName() == "artcloak_export_dialog":
            buttons = widget.findChild(QtWidgets.QDialogButtonBox)
            if self.run["dialog"]:  # shown again after a refusal: give up, as a person might
                self.press(buttons.button(CANCEL).click)
                return
            from artcloak_export.form import FormValues

            self.trace("export dialog: filling it in and pressing OK")
            self.run["dialog"] = True
            self.run["suggested_output"] = widget.values().output
            widget.set_values(FormValues(**self.spec["form"]))
            self.run["dialog_values"] = widget.values().__dict__
            self.run["format_warning"] = widget.warning.text()
            self.run["adaptive_box"] = [widget.adaptive.text(), widget.adaptive.toolTip()]
            self.press(buttons.button(OK).click)
        elif isinstance(widget, QtWidgets.QMessageBox):
            self.trace(f"message box: {widget.text()[:70]!r}")
            self.run["messages"].append({"title": widget.windowTitle(), "text": widget.text()})
            yes = widget.button(YES)
            if yes is not None:
                self.press(yes.click)
            else:
                self.press(widget.accept)

    # the runs, step by step (each yield waits one tick) ----------------------------------

    def script(self):
        extension = self.package.EXTENSION
        for spec in self.job["runs"]:
            self.spec = spec
            self.patch_worker_config(spec.get("worker_request", {}), spec.get("worker_python"))
            pixels = np.asarray(Image.open(spec["document"]).convert("RGBA")).copy()
            document = self.krita.Document(pixels, file_name=spec.get("file_name", ""))
            self.krita.Krita.instance().active_document = document
            run = {"name": spec["name"], "before": fingerprint(document), "dialog": False,
                   "events": [], "messages": [], "cancelled": False}  # fmt: skip
            extension.last_outcome = None
            self.run = run
            self.trace(f"run {spec['name']}: triggering the action")
            QtCore.QTimer.singleShot(0, self.krita.Krita.instance().action(ACTION).trigger)
            # Done when the plugin has said something (a result, an error, a refusal) and
            # nothing is open or running any more.
            while not (extension.last_outcome is not None or run["messages"]):
                yield
            while self.app.activeModalWidget() is not None or (
                extension.run is not None and extension.run.running()
            ):
                yield
            for _ in range(3):
                yield
            outcome = extension.last_outcome
            self.trace(f"run {spec['name']}: done")
            run["outcome"] = None if outcome is None else outcome.__dict__
            run["after"] = fingerprint(document)
            run["opened"] = [d.fileName() for d in self.krita.Krita.instance().opened]
            run["temp_left"] = glob.glob(os.path.join(tempfile.gettempdir(), "artcloak-krita-*"))
            run["progress_dialogs_left"] = [
                w.objectName()
                for w in self.app.topLevelWidgets()
                if isinstance(w, QtWidgets.QProgressDialog) and w.isVisible()
            ]
            self.record["runs"].append(run)
            self.run = None
        self.record["file_menu"] = file_menu_names(self.krita.Krita.instance().window)
        self.record["settings"] = {
            "/".join(key): value for key, value in self.krita.Krita.instance().settings.items()
        }

    def progress_seen(self, dialog) -> None:
        """After each progress event: what the progress dialog shows."""
        if self.run is not None:
            event = (dialog.labelText(), dialog.value(), dialog.maximum())
            if not self.run["events"] or self.run["events"][-1] != list(event):
                self.run["events"].append(list(event))

    def patch_worker_config(self, request: dict, python: str | None) -> None:
        path = os.path.join(os.path.dirname(self.package.__file__), "worker.json")
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
        config.setdefault("original", dict(config["request"], python=config["python"]))
        base = dict(config["original"])
        config["python"] = python or base.pop("python")
        base.pop("python", None)
        config["request"] = {**base, **request}
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(config, stream)

    def finish(self) -> None:
        self.finished = True
        self.timer.stop()
        if self.run is not None:  # unfinished: keep what was seen
            self.record["runs"].append(self.run)
        with open(self.job["result_file"], "w", encoding="utf-8") as stream:
            json.dump(self.record, stream, indent=2, default=str)
        self.app.quit()


def file_menu_names(window) -> list[str]:
    for menu_action in window.qwindow().menuBar().actions():
        menu = menu_action.menu()
        if menu is not None and menu.objectName() == "file":
            return [a.objectName() for a in menu.actions()]
    return []


def main() -> None:
    pykrita, job_path = sys.argv[2], sys.argv[3]
    with open(job_path, encoding="utf-8") as stream:
        job = json.load(stream)
    app = QtWidgets.QApplication([])
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), pykrita]
    import krita

    main_window = QtWidgets.QMainWindow()
    file_menu = main_window.menuBar().addMenu("&File")
    file_menu.setObjectName("file")
    for name in FILE_MENU:
        file_menu.addAction(name).setObjectName(name)
    krita.Krita.instance().window = krita.Window(main_window)
    main_window.show()  # (the last window closing would quit the application)

    import artcloak_export  # registers the extension, as Krita does when it starts
    from artcloak_export import qt, runner

    extension = artcloak_export.EXTENSION
    assert extension in krita.Krita.instance().extensions
    extension.setup()
    extension.createActions(krita.Krita.instance().window)

    driver = Driver(app, job, krita, artcloak_export)
    progress = runner.WorkerRun._progress

    def watched(self, event):  # every event the runner shows, as the dialog shows it
        progress(self, event)
        driver.progress_seen(self.dialog)

    runner.WorkerRun._progress = watched
    driver.record.update(
        qt_api=qt.QT_API,
        qt_version=QtCore.QT_VERSION_STR,
        pyqt_version=QtCore.PYQT_VERSION_STR,
        bindings_loaded=sorted(
            name for name in ("PyQt5", "PyQt6") if sys.modules.get(name) is not None
        ),
    )
    app.exec()  # (PyQt5 5.15 has exec() too)


if __name__ == "__main__":
    main()
