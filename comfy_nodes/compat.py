"""Does the artcloak that ComfyUI's Python imports belong with this node pack?

The pack calls the core directly, so the two must come from the same artcloak. install.py
installs the core editable from the checkout the pack is linked from (``pip install -e``):
a ``git pull`` then updates both. Installs made otherwise drift apart: a core copied into
site-packages (a plain ``pip install``) stays old after a pull; a copied pack (``--copy``)
stays old while an editable core moves on. This module finds out which, when ComfyUI loads
the pack, and says how to fix it. Stdlib only (install.py uses it too).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

PROBLEM: str | None = None  # set when ComfyUI loads the pack; the nodes add it to reports
STAMP = "core_stamp.json"  # written into a copied pack by install.py: the core it went with
_SKIP = {"__pycache__", "krita_plugin", "gimp_plugin"}  # installed inside artcloak, not in core/


def fingerprint(package: Path) -> str:
    """A hash of the core's Python sources (``*.py`` under the ``artcloak`` package folder,
    by relative path and content): equal for a checkout's ``core/artcloak`` and the same
    code installed into site-packages."""
    digest = hashlib.sha256()
    files = sorted(
        path
        for path in package.rglob("*.py")
        if not _SKIP.intersection(path.relative_to(package).parts[:-1])
    )
    for path in files:
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def checkout_of(pack: Path) -> Path | None:
    """The artcloak checkout this pack folder sits in (it has ``core/artcloak``), or None
    for a copied pack."""
    root = pack.resolve().parent
    return root if (root / "core" / "artcloak" / "__init__.py").is_file() else None


def project_version(checkout: Path) -> str | None:
    """The ``[project] version`` of the checkout's pyproject.toml."""
    try:
        text = (checkout / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r'^\[project\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.M | re.S)
    return match.group(1) if match else None


def core_problem(pack: Path, core: Path, installed_version: str | None) -> str | None:
    """Why the artcloak package at ``core`` (the folder of ``artcloak/__init__.py`` that
    ComfyUI's Python imports) may not fit the node pack at ``pack``, with the fix; None
    when it fits (or nothing can be told)."""
    pack, core = pack.resolve(), core.resolve()
    checkout = checkout_of(pack)
    if checkout is not None:
        own = (checkout / "core" / "artcloak").resolve()
        if core != own:
            same = fingerprint(core) == fingerprint(own)
            return (
                f"ComfyUI's Python imports artcloak from {core}, not from the checkout this "
                f"node pack is in ({checkout}); "
                + ("the two are the same today, but a git pull will update only the pack. "
                   if same else "the two differ (after a git pull?), so the nodes may fail. ")
                + f"Fix: with ComfyUI's Python run 'python -m pip install -e {checkout}' "
                f"(or 'python {checkout / 'comfy_nodes' / 'install.py'} /path/to/ComfyUI'), "
                "then restart ComfyUI."
            )  # fmt: skip
        version = project_version(checkout)
        if installed_version and version and installed_version != version:
            return (
                f"The checkout {checkout} is artcloak {version}, but ComfyUI's Python has it "
                f"installed as {installed_version}: its dependencies may have changed. Fix: "
                f"run 'python {checkout / 'comfy_nodes' / 'install.py'} /path/to/ComfyUI' "
                "again, then restart ComfyUI."
            )
        return None
    stamp = read_stamp(pack)
    if stamp is None:
        return None
    if stamp.get("fingerprint") != fingerprint(core):
        source = stamp.get("checkout") or "the artcloak checkout"
        return (
            f"This copy of the node pack ({pack}) was installed with another version of the "
            f"artcloak core than the one ComfyUI's Python imports ({core}), e.g. after a git "
            f"pull. Fix: run 'python comfy_nodes/install.py /path/to/ComfyUI --copy' again "
            f"from {source} (or install without --copy, which links the pack), then restart "
            "ComfyUI."
        )
    return None


def check_at_load(pack: Path, artcloak_file: str) -> str | None:
    """``core_problem`` for the artcloak that was imported, kept in ``PROBLEM``. A check
    that cannot read a file says nothing rather than stopping the pack from loading."""
    global PROBLEM
    try:
        from importlib.metadata import PackageNotFoundError, version

        try:
            installed = version("artcloak")
        except PackageNotFoundError:
            installed = None
        PROBLEM = core_problem(pack, Path(artcloak_file).parent, installed)
    except OSError:
        PROBLEM = None
    return PROBLEM


def read_stamp(pack: Path) -> dict | None:
    try:
        stamp = json.loads((pack / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) else None


def write_stamp(pack: Path, checkout: Path) -> None:
    """Record in a copied pack which core it was installed with."""
    stamp = {
        "fingerprint": fingerprint(checkout / "core" / "artcloak"),
        "checkout": str(checkout),
        "version": project_version(checkout),
    }
    (pack / STAMP).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
