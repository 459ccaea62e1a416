"""Atomic file writes: a temporary file beside the target, fsynced, then renamed.

A reader never sees a partial file, and a failed or interrupted write leaves nothing
behind (the temporary file is removed on any exception, SystemExit included). A process
killed outright (SIGKILL, power loss) cannot remove its temporary file; its name carries the
writer's host and process id, so any process's first write into that folder removes it
once that writer is gone.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import IO

from .client import process_running
from .errors import OutputError

log = logging.getLogger(__name__)
_HOST = re.sub(r"[^A-Za-z0-9-]", "", socket.gethostname())[:32] or "host"
# .NAME.HOST-PID.TOKEN.tmp, and .NAME.TOKEN.tmp as earlier versions named them
_RECLAIMED: set[str] = set()  # folders this process has cleared of dead writers' files
_TEMPORARY = re.compile(
    r"\.(?P<name>.+?)\.(?:(?P<host>[A-Za-z0-9-]*)-(?P<pid>[0-9]+)\.)?[0-9a-f]{8}\.tmp"
)


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write to a temporary file beside ``path``, fsync it, then rename it into place."""
    folder = path.parent
    temp = None
    if str(folder) not in _RECLAIMED:  # once per folder and process: a folder may hold
        _RECLAIMED.add(str(folder))  # thousands of outputs, each written here
        reclaim_temporaries(folder)
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
        temp = os.path.join(folder, f".{name}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(temp, flags, 0o666), temp  # the umask applies, as for any new file
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "could not create a temporary file", str(folder))


def temporaries(folder: Path, names: set[str] | None = None) -> list[tuple[Path, re.Match]]:
    """The temporary files in ``folder`` of writes to any of ``names`` (all when None),
    finished or not."""
    found = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            match = _TEMPORARY.fullmatch(entry.name)
            if match and (names is None or match["name"] in names):
                found.append((Path(entry.path), match))
    return found


def reclaim_temporaries(folder: Path) -> int:
    """Remove the temporary files in ``folder`` whose writer, a process of this host, is gone
    (killed mid-write); returns how many. A live writer's file is left alone."""
    if os.name != "posix":
        return 0  # os.kill(pid, 0) is not a liveness probe on Windows
    removed = 0
    for temp, match in temporaries(folder):
        if match["pid"] is None or match["host"] != _HOST or process_running(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            temp.unlink()
            removed += 1
    return removed


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
