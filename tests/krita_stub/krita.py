"""A stand-in for the parts of Krita's ``krita`` module the plugin's document code uses.

``Document`` holds RGBA pixels in a numpy array and "exports" them as a PNG with Pillow,
recording every call, so tests can check that the plugin only reads the document.
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
