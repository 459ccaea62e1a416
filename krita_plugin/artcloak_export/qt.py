"""Every Qt name the plugin uses, imported in this one place.

Krita 5 ships PyQt5; Krita 6 moves to PyQt6. Only this module knows which one is loaded,
and it smooths over the renamed enums the plugin needs. The binding is the one Krita itself
has loaded (its ``krita`` module imports it first): a Python that also has the other one
installed must never load Qt 5 into a Qt 6 process, or the reverse.
tests/test_krita_qt.py runs the dialog, runner and extension under each.
"""

from __future__ import annotations

import sys

_HOST_RUNS_QT6 = "PyQt6.QtCore" in sys.modules and "PyQt5.QtCore" not in sys.modules

try:
    if _HOST_RUNS_QT6:
        raise ImportError("Krita runs PyQt6")
    from PyQt5 import QtCore, QtWidgets

    QT_API = "PyQt5"
except ImportError:  # Krita 6
    from PyQt6 import QtCore, QtWidgets  # type: ignore

    QT_API = "PyQt6"

# The same names under either binding: the rest of the plugin imports them from here.
QProcess = QtCore.QProcess
QProcessEnvironment = QtCore.QProcessEnvironment
Qt = QtCore.Qt
QTimer = QtCore.QTimer
QApplication = QtWidgets.QApplication
QButtonGroup = QtWidgets.QButtonGroup
QCheckBox = QtWidgets.QCheckBox
QComboBox = QtWidgets.QComboBox
QDialog = QtWidgets.QDialog
QDialogButtonBox = QtWidgets.QDialogButtonBox
QFileDialog = QtWidgets.QFileDialog
QFormLayout = QtWidgets.QFormLayout
QHBoxLayout = QtWidgets.QHBoxLayout
QLabel = QtWidgets.QLabel
QLineEdit = QtWidgets.QLineEdit
QMenu = QtWidgets.QMenu
QMessageBox = QtWidgets.QMessageBox
QProgressDialog = QtWidgets.QProgressDialog
QPushButton = QtWidgets.QPushButton
QRadioButton = QtWidgets.QRadioButton
QStackedWidget = QtWidgets.QStackedWidget
QVBoxLayout = QtWidgets.QVBoxLayout
QWidget = QtWidgets.QWidget

# PyQt6 only has the scoped enum names; PyQt5 has both, so use the scoped ones everywhere.
WINDOW_MODAL = Qt.WindowModality.WindowModal
OK_CANCEL = QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
NOT_RUNNING = QProcess.ProcessState.NotRunning
YES = QMessageBox.StandardButton.Yes
NO = QMessageBox.StandardButton.No


def run_modal(dialog) -> int:
    """``exec()`` in PyQt6 and in PyQt5 (where ``exec_`` is the old spelling)."""
    return dialog.exec() if hasattr(dialog, "exec") else dialog.exec_()


def accepted(code: int) -> bool:
    return code == QDialog.DialogCode.Accepted or code == 1


__all__ = [
    "NO",
    "NOT_RUNNING",
    "OK_CANCEL",
    "QT_API",
    "WINDOW_MODAL",
    "YES",
    "QApplication",
    "QButtonGroup",
    "QCheckBox",
    "QComboBox",
    "QDialog",
    "QDialogButtonBox",
    "QFileDialog",
    "QFormLayout",
    "QHBoxLayout",
    "QLabel",
    "QLineEdit",
    "QMenu",
    "QMessageBox",
    "QProcess",
    "QProcessEnvironment",
    "QProgressDialog",
    "QPushButton",
    "QRadioButton",
    "QStackedWidget",
    "QTimer",
    "QVBoxLayout",
    "QWidget",
    "accepted",
    "run_modal",
]
