"""Test driver, installed only into throwaway Krita profiles by tests/test_krita_real.py.

It reads the job named by $ARTCLOAK_KRITA_TEST_JOB, then, in the running Krita GUI:
opens each run's document, triggers File > Export Protected… through its action, answers
the dialogs the way a person would (fills the export dialog and presses OK, presses Cancel
in the progress dialog when asked to, closes message boxes, recording their text), checks
the document afterwards, writes everything it saw to the job's result file and quits Krita.
"""

import glob
import hashlib
import json
import os
import sys
import tempfile
import time
import traceback

from krita import Krita

if "PyQt6.QtCore" in sys.modules and "PyQt5.QtCore" not in sys.modules:  # Krita 6
    from PyQt6.QtCore import QT_VERSION_STR, QTimer
    from PyQt6.QtWidgets import (
        QApplication,
        QDialogButtonBox,
        QMessageBox,
        QProgressDialog,
        QPushButton,
    )
else:
    from PyQt5.QtCore import QT_VERSION_STR, QTimer
    from PyQt5.QtWidgets import (
        QApplication,
        QDialogButtonBox,
        QMessageBox,
        QProgressDialog,
        QPushButton,
    )

ACTION = "artcloak_export_protected"
TICK_MS = 100


def fingerprint(document):
    document.waitForDone()
    width, height = document.width(), document.height()
    pixels = bytes(document.pixelData(0, 0, width, height))
    return {
        "sha256": hashlib.sha256(pixels).hexdigest(),
        "modified": bool(document.modified()),
        "file": document.fileName(),
        "size": [width, height],
        "model": document.colorModel(),
        "depth": document.colorDepth(),
        "layers": len(document.topLevelNodes()),
    }


def menu_entries(window):
    for menu_action in window.qwindow().menuBar().actions():
        menu = menu_action.menu()
        if menu is not None and menu.objectName() == "file":
            return [a.objectName() or a.text() for a in menu.actions()]
    return []


class Driver:
    def __init__(self, job_path):
        with open(job_path, encoding="utf-8") as stream:
            self.job = json.load(stream)
        self.record = {"runs": [], "errors": [], "started": time.time()}
        self.run = None  # the record of the current run
        self.spec = None
        self.steps = self.script()
        self.busy = False
        self.quitting = False
        self.last_modal = None
        self.timer = QTimer()
        self.timer.timeout.connect(self.tick)
        self.timer.start(TICK_MS)

    def trace(self, text):
        """A line in <result_file>.trace as it happens, for when Krita hangs."""
        with open(self.job["result_file"] + ".trace", "a", encoding="utf-8") as stream:
            stream.write(f"{time.time() - self.record['started']:7.2f} {text}\n")

    # called every TICK_MS, also inside the plugin's nested event loops -------------------

    def tick(self):
        try:
            self.answer_dialogs()
            if time.time() - self.record["started"] > self.job.get("timeout_s", 240):
                raise TimeoutError("the driver timed out")
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

    def answer_dialogs(self):
        widget = QApplication.activeModalWidget()
        if self.quitting:
            if isinstance(widget, QMessageBox):
                self.record["errors"].append("asked on quit: " + widget.text())
                for button in widget.buttons():
                    if widget.buttonRole(button) == QMessageBox.ButtonRole.DestructiveRole:
                        button.click()
                        return
                widget.reject()
            return
        if self.run is None:
            return
        progress = [
            w
            for w in QApplication.topLevelWidgets()
            if isinstance(w, QProgressDialog) and w.objectName() == "artcloak_progress"
        ]
        for dialog in progress:
            if dialog.isVisible():
                label = dialog.labelText()
                if not self.run["progress"] or self.run["progress"][-1] != label:
                    self.run["progress"].append(label)
                if (
                    self.spec.get("cancel")
                    and label.startswith("Protecting")
                    and not self.run["cancelled"]
                ):
                    self.run["cancelled"] = True
                    self.trace(f"pressing Cancel at {label!r}")
                    dialog.findChild(QPushButton).click()  # as a person would
        if widget is None:
            return
        if widget is not self.last_modal:
            self.last_modal = widget
            self.trace(f"modal: {type(widget).__name__} {widget.objectName()!r}")
        if widget.objectName() == "artcloak_export_dialog" and not self.run["dialog"]:
            from artcloak_export.form import FormValues

            self.trace("export dialog: filling it in and pressing OK")
            self.run["dialog"] = True
            self.run["suggested_output"] = widget.values().output
            widget.set_values(FormValues(**self.spec["form"]))
            self.run["format_warning"] = widget.warning.text()
            buttons = widget.findChild(QDialogButtonBox)
            buttons.button(QDialogButtonBox.StandardButton.Ok).click()
        elif isinstance(widget, QMessageBox):
            self.trace(f"message box: {widget.text()[:60]!r}")
            self.run["messages"].append({"title": widget.windowTitle(), "text": widget.text()})
            widget.accept()

    # the test, step by step (each yield waits one tick) ----------------------------------

    def script(self):
        app = Krita.instance()
        self.record["krita_version"] = app.version()
        self.record["qt_version"] = QT_VERSION_STR
        self.record["python_version"] = sys.version.split()[0]
        while app.activeWindow() is None:
            yield
        window = app.activeWindow()
        for _ in range(5):
            yield
        import artcloak_export
        import artcloak_export.qt

        self.record["plugin_qt_api"] = artcloak_export.qt.QT_API
        extension = artcloak_export.EXTENSION
        for spec in self.job["runs"]:
            self.spec = spec
            if "worker_request" in spec or "worker_python" in spec:
                self.patch_worker_config(spec.get("worker_request", {}), spec.get("worker_python"))
            self.trace(f"run {spec['name']}: opening")
            if "open" in spec:
                document = app.openDocument(spec["open"])
            else:
                new = spec["new_document"]
                document = app.createDocument(
                    new["width"], new["height"], "new", new["model"], new["depth"], "", 300.0
                )
                if "pixels" in new:  # raw bytes in Krita's channel order (BGRA)
                    with open(new["pixels"], "rb") as stream:
                        data = stream.read()
                    document.topLevelNodes()[0].setPixelData(
                        data, 0, 0, new["width"], new["height"]
                    )
                if new.get("hidden_layer"):  # an opaque black layer on top, hidden
                    layer = document.createNode("hidden", "paintlayer")
                    black = bytes(layer.pixelData(0, 0, new["width"], new["height"]))
                    pixel_size = len(black) // (new["width"] * new["height"])
                    opaque_black = b"\x00" * (pixel_size * 3 // 4) + b"\xff" * (pixel_size // 4)
                    layer.setPixelData(
                        opaque_black * (new["width"] * new["height"]),
                        0, 0, new["width"], new["height"],
                    )  # fmt: skip
                    layer.setVisible(False)
                    document.rootNode().addChildNode(layer, None)
                if "pixels" in new or new.get("hidden_layer"):
                    document.refreshProjection()
                    document.waitForDone()
            window.addView(document)
            for _ in range(3):
                yield
            run = {
                "name": spec["name"],
                "before": fingerprint(document),
                "dialog": False,
                "progress": [],
                "messages": [],
                "cancelled": False,
            }
            extension.last_outcome = None
            self.run = run
            started = time.time()
            self.trace(f"run {spec['name']}: triggering the action")
            QTimer.singleShot(0, app.action(ACTION).trigger)
            # Done when the plugin has said something (a result, an error, a refusal) and
            # nothing is open or running any more.
            while not (extension.last_outcome is not None or run["messages"]):
                yield
            while QApplication.activeModalWidget() is not None or (
                extension.run is not None and extension.run.running()
            ):
                yield
            for _ in range(3):
                yield
            outcome = extension.last_outcome
            self.trace(f"run {spec['name']}: done")
            run["seconds"] = round(time.time() - started, 2)
            run["outcome"] = None if outcome is None else outcome.__dict__
            run["after"] = fingerprint(document)
            run["documents"] = [d.fileName() for d in app.documents()]
            run["temp_left"] = glob.glob(os.path.join(tempfile.gettempdir(), "artcloak-krita-*"))
            self.record["runs"].append(run)
            self.run = None
        self.record["file_menu"] = menu_entries(window)

    def patch_worker_config(self, request, python):
        """Per-run changes to what the installer recorded (more steps, a broken Python)."""
        import artcloak_export.extension as extension

        path = os.path.join(extension.PLUGIN_DIR, "worker.json")
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
        config["request"].update(request)
        if python:
            config["python"] = python
        with open(path, "w", encoding="utf-8") as stream:
            json.dump(config, stream)

    def finish(self):
        if self.quitting:
            return
        self.quitting = True
        if self.run is not None:  # unfinished: keep what was seen
            self.record["runs"].append(self.run)
        self.record["seconds"] = round(time.time() - self.record["started"], 2)
        path = self.job["result_file"]
        with open(path + ".part", "w", encoding="utf-8") as stream:
            json.dump(self.record, stream, indent=2, default=str)
        os.replace(path + ".part", path)
        # Everything is recorded: let Krita quit without asking to save the test documents.
        for document in Krita.instance().documents():
            document.setModified(False)
        QTimer.singleShot(0, Krita.instance().action("file_quit").trigger)


_job = os.environ.get("ARTCLOAK_KRITA_TEST_JOB")
DRIVER = Driver(_job) if _job else None
