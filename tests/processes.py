"""Processes as the kill tests see them (Linux: /proc and pgrep)."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path


def children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(child) for child in found.stdout.split()]


def descendant(root: int, command_part: str, timeout: float = 300) -> int:
    """The first process under ``root`` whose command line holds ``command_part``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pending = children(root)
        while pending:
            pid = pending.pop()
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                if command_part.encode() in cmdline:
                    return pid
            pending.extend(children(pid))
        time.sleep(0.1)
    raise AssertionError(f"no '{command_part}' process under {root}")


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def parent(pid: int) -> int:
    return int(_stat_fields(pid)[1])


def alive(pid: int) -> bool:
    """Running, not exited (a zombie waiting to be reaped counts as gone)."""
    try:
        return _stat_fields(pid)[0] != "Z"
    except FileNotFoundError:
        return False
