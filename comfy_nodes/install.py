"""Install artcloak into a ComfyUI: the package into ComfyUI's Python, the node pack into its
``custom_nodes``.

    python comfy_nodes/install.py /path/to/ComfyUI [--python /path/to/ComfyUI/python]

ComfyUI's Python is found next to the checkout (``python_embeded`` of the portable build, a
``venv``/``.venv`` inside it) unless ``--python`` names it; otherwise this interpreter is used.
The core is installed editable (``pip install -e``) and the pack linked, so both are this
checkout and a ``git pull`` updates both (``--no-editable`` copies the core into
site-packages; ``--copy`` copies the pack, e.g. where links are not allowed, and records
which core it went with). When ComfyUI loads the pack it checks that they still belong
together (``compat.py``) and logs how to fix it if not. Stdlib only.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
ROOT = PACK.parent  # the artcloak repository (its pyproject.toml installs the core)
NAME = "artcloak"
WHERE = "import artcloak, pathlib; print(pathlib.Path(artcloak.__file__).resolve().parent)"


def _compat():
    """compat.py beside this file (this script runs alone, not as part of the package)."""
    spec = importlib.util.spec_from_file_location("artcloak_comfy_compat", PACK / "compat.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_python(comfyui: Path) -> Path:
    candidates = [
        comfyui.parent / "python_embeded" / "python.exe",
        comfyui / "venv" / "bin" / "python",
        comfyui / ".venv" / "bin" / "python",
        comfyui / "venv" / "Scripts" / "python.exe",
        comfyui / ".venv" / "Scripts" / "python.exe",
    ]
    return next((path for path in candidates if path.is_file()), Path(sys.executable))


def plan(
    comfyui: Path, python: Path, copy: bool, editable: bool = True
) -> list[tuple[str, list[str] | None]]:
    """What install does, as (description, command or None for a file step)."""
    target = comfyui / "custom_nodes" / NAME
    how = (
        " (editable: a git pull updates it)"
        if editable
        else " (a copy: reinstall after a git pull)"
    )
    pip = [str(python), "-m", "pip", "install", *(["-e"] if editable else []), str(ROOT)]
    return [
        (f"install artcloak from {ROOT} into {python}{how}", pip),
        (f"{'copy' if copy else 'link'} {PACK} to {target}", None),
        ("check that ComfyUI's Python imports artcloak" + (f" from {ROOT}" if editable else ""),
         [str(python), "-c", WHERE]),
    ]  # fmt: skip


def place_pack(comfyui: Path, copy: bool) -> Path:
    target = comfyui / "custom_nodes" / NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if copy:
        compat = _compat()
        shutil.copytree(PACK, target, ignore=shutil.ignore_patterns("__pycache__", compat.STAMP))
        compat.write_stamp(target, ROOT)  # the core this copy goes with, checked at load
    else:
        target.symlink_to(PACK, target_is_directory=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comfyui", type=Path, help="the ComfyUI folder (with main.py)")
    parser.add_argument("--python", type=Path, help="ComfyUI's Python interpreter")
    parser.add_argument("--copy", action="store_true", help="copy the pack instead of linking")
    parser.add_argument(
        "--no-editable", dest="editable", action="store_false",
        help="copy the core into site-packages instead of an editable install of this checkout",
    )  # fmt: skip
    parser.add_argument("--skip-pip", action="store_true", help="artcloak is installed already")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    args = parser.parse_args(argv)
    comfyui = args.comfyui.resolve()
    if not (comfyui / "main.py").is_file() or not (comfyui / "custom_nodes").is_dir():
        print(f"{comfyui} is not a ComfyUI folder (no main.py and custom_nodes/).", file=sys.stderr)
        return 2
    python = args.python or find_python(comfyui)
    for description, command in plan(comfyui, python, args.copy, args.editable):
        if args.skip_pip and command and "pip" in command:
            continue
        print(("would " if args.dry_run else "") + description)
        if args.dry_run:
            continue
        if command is None:
            place_pack(comfyui, args.copy)
            continue
        done = subprocess.run(
            command, stdout=subprocess.PIPE if command[-1] == WHERE else None, text=True
        )
        if done.returncode != 0:
            print(f"Failed: {' '.join(command)}", file=sys.stderr)
            return 1
        if command[-1] == WHERE and args.editable:
            imported = Path(done.stdout.strip())
            if imported != (ROOT / "core" / "artcloak").resolve():
                print(
                    f"ComfyUI's Python imports artcloak from {imported}, not from {ROOT}: "
                    f"uninstall that one ('{python} -m pip uninstall artcloak'), then run "
                    "this again.",
                    file=sys.stderr,
                )
                return 1
    if not args.dry_run:
        print("Done: restart ComfyUI; the nodes are under 'artcloak' in the node menu.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
