"""A virtual X display for the real-host tests: Xvfb started directly.

Not `xvfb-run -a`: it picks a display from the lock files in /tmp (racy where another
server holds a number without a lock file there) and needs xauth to write a cookie file
first; a failure of either shows up only later, as a client that "could not connect to
display". Here Xvfb chooses a free display itself (-displayfd) and writes its number once
it listens; no cookie, so any local client may connect, the chroot's included (Linux's
abstract socket is shared across a chroot).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

START_TIMEOUT_S = 30.0


class DisplayError(RuntimeError):
    """Xvfb did not start, or does not accept connections; the message says which."""


@contextlib.contextmanager
def virtual_display(log_path: Path, timeout_s: float = START_TIMEOUT_S) -> Iterator[str]:
    """Start Xvfb on a free display, yield its name (":N"), stop it afterwards."""
    read_end, write_end = os.pipe()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # -noreset: the readiness probe below is a client too; when it closes, an X server
            # that resets with its last client would drop a Krita connecting meanwhile.
            ["Xvfb", "-displayfd", str(write_end), "-nolisten", "tcp", "-noreset",
             "-screen", "0", "1280x1024x24"],
            pass_fds=(write_end,),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    os.close(write_end)
    try:
        number = _read_display_number(read_end, process, log_path, timeout_s)
        _wait_until_accepting(number, process, log_path, timeout_s)
        yield f":{number}"
    finally:
        os.close(read_end)
        _stop(process)


def display_refused(log_text: str) -> bool:
    """Whether a Qt program's log says it could not reach its X display at all."""
    return "could not connect to display" in log_text


def _read_display_number(
    read_end: int, process: subprocess.Popen, log_path: Path, timeout_s: float
) -> int:
    deadline = time.monotonic() + timeout_s
    received = b""
    while not received.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DisplayError(f"Xvfb gave no display number in {timeout_s:.0f} s{_tail(log_path)}")
        ready, _, _ = select.select([read_end], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(read_end, 64)
        if not chunk:  # the pipe closed: Xvfb exited
            process.wait(timeout=5)
            raise DisplayError(f"Xvfb exited ({process.returncode}) at start{_tail(log_path)}")
        received += chunk
    return int(received.strip())


def _wait_until_accepting(
    number: int, process: subprocess.Popen, log_path: Path, timeout_s: float
) -> None:
    """Connect as a client would (abstract socket first, then the file in /tmp/.X11-unix)."""
    addresses = (f"\0/tmp/.X11-unix/X{number}", f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise DisplayError(f"Xvfb exited ({process.returncode}){_tail(log_path)}")
        for address in addresses:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                try:
                    client.connect(address)
                    return
                except OSError:
                    pass
        time.sleep(0.1)
    raise DisplayError(f"display :{number} accepts no connection{_tail(log_path)}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _tail(log_path: Path) -> str:
    try:
        text = log_path.read_text(errors="replace")[-2000:]
    except OSError:
        return ""
    return f"; Xvfb's log:\n{text}" if text.strip() else ""
