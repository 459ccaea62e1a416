"""A stand-in for the parts of Krita's ``krita`` module the plugin uses.

``Document`` holds RGBA pixels in a numpy array and "exports" them as a PNG with Pillow,
recording every call, so tests can check that the plugin only reads the document.
``Krita``, ``Extension`` and ``Window`` are enough of the application for the extension to
register, add its action to a real QMainWindow's File menu and run (tests/krita_stub/
qt_driver.py, under PyQt5 or PyQt6). Nothing here imports Qt.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


class InfoObject:
    def __init__(self) -> None:
        self.properties: dict = {}

    def setProperty(self, name, value) -> None:
        self.properties[name] = value

    def property(self, name):
        return self.properties.get(name)


class Document:
    def __init__(
        self,
        pixels: np.ndarray | None = None,
        model: str = "RGBA",
        depth: str = "U8",
        file_name: str = "",
        export_works: bool = True,
    ) -> None:
        self.pixels = np.zeros((8, 8, 4), np.uint8) if pixels is None else pixels
        self.model, self.depth, self.file_name = model, depth, file_name
        self.export_works = export_works
        self.batch = False
        self.calls: list[str] = []
        self.exports: list[tuple[str, dict, bool]] = []
        self.is_modified = False

    def colorModel(self) -> str:
        return self.model

    def colorDepth(self) -> str:
        return self.depth

    def width(self) -> int:
        return self.pixels.shape[1]

    def height(self) -> int:
        return self.pixels.shape[0]

    def fileName(self) -> str:
        return self.file_name

    def modified(self) -> bool:
        return self.is_modified

    def waitForDone(self) -> None:
        self.calls.append("waitForDone")

    def batchmode(self) -> bool:
        return self.batch

    def setBatchmode(self, value: bool) -> None:
        self.batch = value

    def exportImage(self, path: str, info: InfoObject) -> bool:
        self.exports.append((path, dict(info.properties), self.batch))
        if not self.export_works:
            return False
        Image.fromarray(self.pixels, "RGBA").save(path)
        return True


class Extension:
    """Krita's base class for Python extensions (a QObject there; nothing here)."""

    def __init__(self, parent=None) -> None:
        self.parent = parent


class Window:
    """A Krita main window around a real QMainWindow (made by the test, in the Qt it runs)."""

    def __init__(self, qwindow) -> None:
        self._qwindow = qwindow
        self.views: list[Document] = []

    def qwindow(self):
        return self._qwindow

    def createAction(self, name: str, text: str, menu_location: str = "tools/scripts"):
        """As Krita does: a QAction named ``name`` at the end of the menu ``menu_location``
        (the menu bar's menu with that object name), or in no menu when there is none."""
        for menu_action in self._qwindow.menuBar().actions():
            menu = menu_action.menu()
            if menu is not None and menu.objectName() == menu_location:
                action = menu.addAction(text)
                break
        else:
            action = self._qwindow.addAction(text)
        action.setObjectName(name)
        Krita.instance().actions[name] = action
        return action

    def addView(self, document: Document) -> None:
        self.views.append(document)


class Krita:
    """The application object: one per process, reached through ``Krita.instance()``."""

    _instance: Krita | None = None

    def __init__(self) -> None:
        self.active_document: Document | None = None
        self.window: Window | None = None
        self.settings: dict[tuple[str, str], str] = {}
        self.extensions: list = []
        self.actions: dict = {}
        self.opened: list[Document] = []

    @classmethod
    def instance(cls) -> Krita:
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def addExtension(self, extension) -> None:
        self.extensions.append(extension)

    def activeDocument(self) -> Document | None:
        return self.active_document

    def activeWindow(self) -> Window | None:
        return self.window

    def documents(self) -> list[Document]:
        return [d for d in (self.active_document, *self.opened) if d is not None]

    def readSetting(self, group: str, name: str, default: str) -> str:
        return self.settings.get((group, name), default)

    def writeSetting(self, group: str, name: str, value: str) -> None:
        self.settings[(group, name)] = value

    def action(self, name: str):
        return self.actions.get(name)

    def openDocument(self, path: str) -> Document:
        pixels = np.asarray(Image.open(path).convert("RGBA"))
        document = Document(pixels, file_name=path)
        self.opened.append(document)
        return document
