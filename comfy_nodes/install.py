"""Install artcloak into a ComfyUI: the package into ComfyUI's Python, the node pack into its
``custom_nodes``.

    python comfy_nodes/install.py /path/to/ComfyUI [--python /path/to/ComfyUI/python]

ComfyUI's Python is found next to the checkout (``python_embeded`` of the portable build, a
``venv``/``.venv`` inside it) unless ``--python`` names it; otherwise this interpreter is used.
The pack is linked (``--copy`` copies it, e.g. where links are not allowed). Stdlib only.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

PACK = Path(__file__).resolve().parent
ROOT = PACK.parent  # the artcloak repository (its pyproject.toml installs the core)
NAME = "artcloak"


def find_python(comfyui: Path) -> Path:
    candidates = [
        comfyui.parent / "python_embeded" / "python.exe",
        comfyui / "venv" / "bin" / "python",
        comfyui / ".venv" / "bin" / "python",
        comfyui / "venv" / "Scripts" / "python.exe",
        comfyui / ".venv" / "Scripts" / "python.exe",
    ]
    return next((path for path in candidates if path.is_file()), Path(sys.executable))


def plan(comfyui: Path, python: Path, copy: bool) -> list[tuple[str, list[str] | None]]:
    """What install does, as (description, command or None for a file step)."""
    target = comfyui / "custom_nodes" / NAME
    return [
        (f"install artcloak from {ROOT} into {python}", [str(python), "-m", "pip", "install", str(ROOT)]),
        (f"{'copy' if copy else 'link'} {PACK} to {target}", None),
        ("check that ComfyUI's Python imports artcloak", [str(python), "-c", "import artcloak"]),
    ]  # fmt: skip


def place_pack(comfyui: Path, copy: bool) -> Path:
    target = comfyui / "custom_nodes" / NAME
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)
    if copy:
        shutil.copytree(PACK, target, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        target.symlink_to(PACK, target_is_directory=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comfyui", type=Path, help="the ComfyUI folder (with main.py)")
    parser.add_argument("--python", type=Path, help="ComfyUI's Python interpreter")
    parser.add_argument("--copy", action="store_true", help="copy the pack instead of linking")
    parser.add_argument("--skip-pip", action="store_true", help="artcloak is installed already")
    parser.add_argument("--dry-run", action="store_true", help="say what would be done")
    args = parser.parse_args(argv)
    comfyui = args.comfyui.resolve()
    if not (comfyui / "main.py").is_file() or not (comfyui / "custom_nodes").is_dir():
        print(f"{comfyui} is not a ComfyUI folder (no main.py and custom_nodes/).", file=sys.stderr)
        return 2
    python = args.python or find_python(comfyui)
    for description, command in plan(comfyui, python, args.copy):
        if args.skip_pip and command and "pip" in command:
            continue
        print(("would " if args.dry_run else "") + description)
        if args.dry_run:
            continue
        if command is None:
            place_pack(comfyui, args.copy)
        elif subprocess.run(command).returncode != 0:
            print(f"Failed: {' '.join(command)}", file=sys.stderr)
            return 1
    if not args.dry_run:
        print("Done: restart ComfyUI; the nodes are under 'artcloak' in the node menu.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
