"""A real ComfyUI for the real-ComfyUI tests, the way a user sets one up.

ComfyUI is not on PyPI. ``ARTCLOAK_COMFYUI`` names a checkout to use (and
``ARTCLOAK_COMFYUI_PYTHON`` its Python, with artcloak installed); without it, the ComfyUI
0.8.0 checkout in ``../shared/hosts`` (beside this repository, as on the project's CI) is
unpacked into ``.cache/`` here, given its own ``venv`` with ComfyUI's ``requirements.txt``
from PyPI (about 1 min, 6.4 GB), and artcloak installed into it with
``comfy_nodes/install.py``. That folder is reused by later runs of this checkout (it is
git-ignored; delete it to start afresh) and never needed: without either, ``skip_reason()``
says what is missing and where it comes from.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED_TARBALL = ROOT.parent / "shared" / "hosts" / "comfyui-0.8.0.tar.gz"
CACHE = ROOT / ".cache"
PIP_TIMEOUT_S = 1200
MISSING = (
    "ComfyUI is not on PyPI: set ARTCLOAK_COMFYUI to a ComfyUI checkout (and "
    "ARTCLOAK_COMFYUI_PYTHON to its Python, with its requirements and artcloak installed), or "
    f"put the project's comfyui-0.8.0.tar.gz (from ../shared/hosts) at {SHARED_TARBALL}"
)


class ComfyUISetupError(Exception):
    """The shared ComfyUI could not be set up; the message says which step and why."""


@dataclass(frozen=True)
class ComfyUIHost:
    checkout: Path  # holds main.py
    python: Path  # ComfyUI's Python, which imports artcloak


def skip_reason() -> str | None:
    if os.environ.get("ARTCLOAK_COMFYUI") or SHARED_TARBALL.is_file():
        return None
    return MISSING


def comfyui_host() -> ComfyUIHost:
    """The ComfyUI to test against: the one named by the environment, else the shared one,
    set up here on first use (under a lock, so two test runs never build it at once)."""
    named = os.environ.get("ARTCLOAK_COMFYUI")
    if named:
        python = os.environ.get("ARTCLOAK_COMFYUI_PYTHON", sys.executable)
        return ComfyUIHost(Path(named), Path(python))
    folder = CACHE / f"comfyui-{_fingerprint()}"
    ready = folder / ".ready"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not ready.exists():
            _build(folder)
            ready.touch()
    checkout = folder / "comfyui-0.8.0"
    return ComfyUIHost(checkout, checkout / "venv" / "bin" / "python")


def _fingerprint() -> str:
    """Changes when the tarball or artcloak's own requirements do."""
    digest = hashlib.sha256(SHARED_TARBALL.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:12]


def _build(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    with tarfile.open(SHARED_TARBALL) as archive:
        archive.extractall(folder, filter="data")
    checkout = folder / "comfyui-0.8.0"
    if not (checkout / "main.py").is_file():
        raise ComfyUISetupError(f"{SHARED_TARBALL} did not unpack to a ComfyUI checkout")
    venv = checkout / "venv"  # where install.py looks for ComfyUI's Python
    _run("create ComfyUI's venv", [sys.executable, "-m", "venv", str(venv)])
    python = str(venv / "bin" / "python")
    _run(
        "install ComfyUI's requirements",
        [python, "-m", "pip", "install", "--quiet", "-r", str(checkout / "requirements.txt")],
    )
    _run(
        "install artcloak with comfy_nodes/install.py",
        [python, str(ROOT / "comfy_nodes" / "install.py"), str(checkout)],
    )


def _run(step: str, command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-3000:]
        raise ComfyUISetupError(f"could not {step} (exit {done.returncode}):\n{tail}")
