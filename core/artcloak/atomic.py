"""Atomic file writes: a temporary file beside the target, fsynced, then renamed.

A reader never sees a partial file, and a failed or interrupted write leaves nothing
behind (the temporary file is removed on any exception, SystemExit included).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .errors import OutputError

log = logging.getLogger(__name__)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it into place."""
    folder = path.parent
    temp = None
    try:
        fd, temp = _create_temp(folder, path.name)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
        temp = None
    except OSError as e:
        log.debug("writing %s failed", path, exc_info=True)
        raise OutputError(_write_failure(path, e)) from e
    finally:
        if temp is not None:
            with contextlib.suppress(OSError):
                os.unlink(temp)
    _fsync_folder(folder)


def _create_temp(folder: Path, name: str) -> tuple[int, str]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp  # the umask applies, as for any new file
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a temporary file", str(folder))


def _fsync_folder(folder: Path) -> None:
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_failure(path: Path, e: OSError) -> str:
    reasons = {
        errno.ENOSPC: "the disk is full; free some space or choose another folder",
        errno.EACCES: "permission denied; choose a folder you can write to",
        errno.EPERM: "permission denied; choose a folder you can write to",
        errno.EROFS: "the disk is read-only; choose another folder",
        errno.ENOENT: "its folder does not exist; create it or choose another folder",
        errno.EISDIR: "a folder has that name; choose another file name",
    }
    reason = reasons.get(e.errno or 0)
    if reason is None:
        reason = f"{e.strerror or e}; check the folder and try again"
    return f"Could not write {path}: {reason}."
