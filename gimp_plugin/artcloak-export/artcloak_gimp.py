"""The GIMP plug-in's own plain logic: the procedure's arguments as data, and its
temporary folder. Everything else that needs no GIMP (the checks, the worker request,
running the worker, its progress and the closing message) is client.py's, shared with the
Krita plugin.

Nothing here imports gi, torch or artcloak: only the standard library and client.py (copied
next to this file by ``artcloak install gimp``, with protocol.py, the one definition of the
worker protocol), so all of it is tested without GIMP. artcloak-export.py only moves values
between GIMP and these functions.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import client

PROCEDURE = "plug-in-artcloak-export-protected"
HOST = "gimp"
TEMP_PREFIX = "artcloak-gimp-"


@dataclass
class Arguments(client.Choices):
    """The procedure's arguments, as plain values (GIMP's config properties, by name)."""

    open_result: bool = False


def split_paths(text: str) -> list[str]:
    """Anchor images typed into one text field: one per line or separated by os.pathsep."""
    parts = text.replace(os.pathsep, "\n").splitlines()
    return [part.strip() for part in parts if part.strip()]


class TempFolder:
    """A private temporary folder, removed with everything in it on exit (or, if GIMP closes
    the plug-in first, by the next run: ``client.private_temp_folder``)."""

    def __enter__(self) -> str:
        self.path = client.private_temp_folder(TEMP_PREFIX)
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
