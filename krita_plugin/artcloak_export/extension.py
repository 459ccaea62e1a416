"""The Krita extension: the File > Export Protected… action and the export it runs."""

from __future__ import annotations

import os
import sys
import traceback

from krita import Extension, InfoObject, Krita

from .client import (
    Outcome,
    PluginError,
    WorkerConfig,
    build_request,
    describe_result,
    read_report,
)
from .dialog import ExportDialog
from .document import check_document, export_to_temp, remove_temp_folder
from .form import PLUGIN_ID, FormValues, suggest_output
from .qt import QMessageBox, QTimer, accepted, run_modal
from .runner import HOST, WorkerRun

ACTION_ID = "artcloak_export_protected"
ACTION_TEXT = "Export Protected…"
EXPORT_ACTION = "file_export_file"  # Krita's File > Export…
TITLE = "Export Protected"
PLACE_DELAYS_MS = (0, 1000, 5000)
PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))


class ArtcloakExtension(Extension):
    def __init__(self, parent) -> None:
        super().__init__(parent)
        self.run: WorkerRun | None = None
        self.last_outcome: Outcome | None = None  # for scripts and tests

    def setup(self) -> None:
        pass

    def createActions(self, window) -> None:
        action = window.createAction(ACTION_ID, ACTION_TEXT, "file")
        action.setToolTip("Export a cloaked or shaded copy of the image; the document is unchanged")
        action.triggered.connect(self.export_protected)
        # Krita appends plugin actions to the end of the menu; move ours next to Export…
        # once the menus are built (and again whenever the File menu opens).
        # (The Window wrapper is gone after this call; its QMainWindow is not.)
        main_window = window.qwindow()
        for delay in PLACE_DELAYS_MS:
            QTimer.singleShot(delay, lambda: place_after_export(main_window, action))

    # the action ------------------------------------------------------------------------

    def export_protected(self) -> None:
        app = Krita.instance()
        parent = _main_window(app)
        if self.run is not None and self.run.running():
            QMessageBox.information(parent, TITLE, "An export is already running.")
            return
        try:
            self._start(app, parent)
        except PluginError as error:
            QMessageBox.warning(parent, TITLE, str(error))
        except Exception as error:  # a bug: say so in one box, details on stderr
            traceback.print_exc(file=sys.stderr)
            QMessageBox.critical(parent, TITLE, f"Export Protected failed unexpectedly: {error}")

    def _start(self, app, parent) -> None:
        document = app.activeDocument()
        check_document(document)
        config = WorkerConfig.load(PLUGIN_DIR, HOST)
        values = FormValues.from_settings(app.readSetting(PLUGIN_ID, "form", ""))
        document_path = document.fileName() or ""
        values.output = suggest_output(values, document_path)
        dialog = ExportDialog(parent, values, config.styles, document_path)
        if not accepted(run_modal(dialog)):
            return
        values, overwrite = dialog.values(), dialog.overwrite
        app.writeSetting(PLUGIN_ID, "form", values.to_settings())

        folder, source = export_to_temp(document, InfoObject)
        try:
            request = build_request(values.choices(overwrite), source, config)
        except BaseException:
            remove_temp_folder(folder)
            raise

        def done(outcome: Outcome) -> None:
            remove_temp_folder(folder)
            self._finished(app, parent, values, outcome)

        self.run = WorkerRun(parent, config.python, request, done)
        self.run.start()

    def _finished(self, app, parent, values: FormValues, outcome: Outcome) -> None:
        self.last_outcome = outcome
        if outcome.kind == "cancelled":
            QMessageBox.information(parent, TITLE, outcome.message)
            return
        if outcome.kind == "error":
            QMessageBox.warning(parent, TITLE, outcome.message)
            return
        result = outcome.result or {}
        text = describe_result(result, read_report(result), outcome.notices)
        QMessageBox.information(parent, TITLE, text)
        if values.open_result and result.get("output"):
            opened = app.openDocument(result["output"])
            window = app.activeWindow()
            if opened is not None and window is not None:
                window.addView(opened)


def _main_window(app):
    window = app.activeWindow()
    return window.qwindow() if window is not None else None


def place_after_export(main_window, action) -> bool:
    """Move ``action`` to just after File > Export… (True if it is there now).

    Cosmetic: it never raises, whatever Krita did to its menus meanwhile."""
    try:
        return _place_after_export(main_window, action)
    except RuntimeError:  # a menu or window was deleted
        return False


def _place_after_export(main_window, action) -> bool:
    if main_window is None:
        return False
    for menu_action in main_window.menuBar().actions():
        menu = menu_action.menu()
        if menu is None:
            continue
        entries = menu.actions()
        names = [entry.objectName() for entry in entries]
        if EXPORT_ACTION not in names:
            continue
        position = names.index(EXPORT_ACTION) + 1
        if position < len(entries) and entries[position] is action:
            return True  # already there
        if not menu.property("artcloak_hooked"):
            menu.setProperty("artcloak_hooked", True)
            menu.aboutToShow.connect(lambda: place_after_export(main_window, action))
        menu.removeAction(action)
        entries = menu.actions()
        names = [entry.objectName() for entry in entries]
        position = names.index(EXPORT_ACTION) + 1
        if position < len(entries):
            menu.insertAction(entries[position], action)
        else:
            menu.addAction(action)
        return True
    return False
