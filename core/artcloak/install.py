"""``artcloak install krita|gimp``: put an editor plugin in place and point it at this Python.

An editor plugin runs in the editor's own Python, which has no torch. Installing one means:
copy the plugin's files (shipped inside this package as ``artcloak.<host>_plugin``), copy
``protocol.py`` (the one definition of the worker protocol) and ``client.py`` (the worker
client both plugins share) next to them, write ``worker.json`` (which Python runs
``artcloak worker``, and request defaults such as the encoder), then enable the plugin in
the editor's settings. Each step is reported with how
to undo it. :func:`install_plugin_files` is the part a GIMP installer reuses.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import click

from . import client, protocol
from .errors import ArtcloakError
from .report import artcloak_version

KRITA_PLUGIN = "artcloak_export"
GIMP_PLUGIN = "artcloak-export"  # GIMP 3: plug-ins/<name>/<name>.py, executable
WORKER_CONFIG = "worker.json"
MARKER = "artcloak"  # worker.json's key that says a folder is ours to replace
PLUGIN_FILE_TYPES = {".py", ".md", ".desktop"}
SHARED_MODULES = (protocol, client)  # stdlib-only modules copied next to each plugin


class InstallError(ArtcloakError):
    """The plugin cannot be installed (or removed) as asked."""


@dataclass
class InstallReport:
    """What was done, one line each, and how to undo it."""

    done: list[str] = field(default_factory=list)
    undo: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def text(self) -> str:
        lines = [*self.done]
        if self.notes:
            lines += ["", *self.notes]
        if self.undo:
            lines += ["", "To undo:", *(f"  {line}" for line in self.undo)]
        return "\n".join(lines)


# --- where things go -------------------------------------------------------------------


@dataclass
class KritaLocations:
    resource_dir: Path  # Krita's resource folder; Python plugins live in its pykrita/
    kritarc: Path  # Krita's settings file (where plugins are enabled)

    @property
    def pykrita(self) -> Path:
        return self.resource_dir / "pykrita"


def krita_locations(
    system: str | None = None,
    environ: dict[str, str] | None = None,
    home: Path | None = None,
    resource_dir: Path | None = None,
    kritarc: Path | None = None,
) -> KritaLocations:
    """Krita 5's per-user folders on Linux, Windows and macOS; explicit paths win."""
    system = system or platform.system()
    env = os.environ if environ is None else environ
    home = home or Path.home()
    if system == "Windows":
        appdata = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
        local = Path(env.get("LOCALAPPDATA") or home / "AppData" / "Local")
        default = KritaLocations(appdata / "krita", local / "kritarc")
    elif system == "Darwin":
        default = KritaLocations(
            home / "Library" / "Application Support" / "krita",
            home / "Library" / "Preferences" / "kritarc",
        )
    else:  # Linux and other XDG systems
        data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
        config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
        default = KritaLocations(data / "krita", config / "kritarc")
    return KritaLocations(resource_dir or default.resource_dir, kritarc or default.kritarc)


def plugin_source(host: str, expect: str = "*.desktop") -> Path:
    """The plugin's files as shipped inside this package (``expect``: a glob that must match)."""
    source = Path(str(resources.files(f"artcloak.{host}_plugin")))
    if not source.is_dir() or not any(source.glob(expect)):
        raise InstallError(f"This artcloak installation has no {host} plugin files ({source}).")
    return source


# --- the shared part: files and worker.json ---------------------------------------------


def install_plugin_files(
    package: Path,
    destination: Path,
    python: str,
    request_defaults: dict,
    force: bool = False,
) -> list[str]:
    """Copy the plugin package ``package`` to ``destination`` (replacing an earlier
    artcloak install), add protocol.py, client.py and worker.json. Returns what was done."""
    if destination.exists() and not _is_ours(destination) and not force:
        raise InstallError(
            f"{destination} exists and was not installed by artcloak; move it away "
            "(or pass --force to replace it)."
        )
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    shared = {Path(module.__file__).name: Path(module.__file__) for module in SHARED_MODULES}
    for item in sorted(package.iterdir()):
        if item.is_file() and item.suffix in PLUGIN_FILE_TYPES and item.name not in shared:
            shutil.copy2(item, destination / item.name)
    for name, path in shared.items():
        shutil.copy2(path, destination / name)
    config = {
        MARKER: artcloak_version(),
        "python": python,
        "protocol": protocol.PROTOCOL_VERSION,
        "styles": _styles(),
        "request": request_defaults,
    }
    (destination / WORKER_CONFIG).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return [
        f"Copied the plugin to {destination}",
        f"Recorded the Python that runs the worker: {python} (in {destination / WORKER_CONFIG})",
    ]


def _is_ours(folder: Path) -> bool:
    try:
        return MARKER in json.loads((folder / WORKER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError):
        return False


def _styles() -> list[str]:
    from .engine import available_styles

    return available_styles()


def check_python(python: str) -> None:
    """The worker's Python must exist and have artcloak."""
    if python == sys.executable:
        return
    try:
        subprocess.run(
            [python, "-c", "import artcloak.protocol"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (OSError, subprocess.SubprocessError):
        raise InstallError(
            f"{python} cannot run artcloak; give the Python of the environment where "
            "artcloak is installed."
        ) from None


def request_defaults(encoders: tuple[str, ...], device: str | None) -> dict:
    defaults: dict = {}
    if encoders:
        defaults["encoders"] = [str(Path(e).resolve()) if Path(e).exists() else e for e in encoders]
    if device:
        defaults["device"] = device
    return defaults


@dataclass(frozen=True)
class WorkerOptions:
    """What every plugin installer is told: the Python that runs the plugin's worker (this one
    unless named), the encoders and device it protects with, and whether to replace a plugin
    folder artcloak did not install."""

    python: str | None = None
    encoders: tuple[str, ...] = ()
    device: str | None = None
    force: bool = False


def _install_package(
    host: str, expect: str, destination: Path, options: WorkerOptions
) -> tuple[Path, InstallReport]:
    """Check the worker's Python, then copy ``host``'s plugin package to ``destination`` with a
    worker.json for it. Returns the shipped plugin folder and a report that starts with what
    was copied."""
    python = options.python or sys.executable
    check_python(python)
    source = plugin_source(host, expect)
    defaults = request_defaults(options.encoders, options.device)
    copied = install_plugin_files(
        source / destination.name, destination, python, defaults, options.force
    )
    return source, InstallReport(done=copied)


# --- settings files (Krita's kritarc is KConfig: INI-like groups) -----------------------


def set_ini_value(text: str, section: str, key: str, value: str | None) -> str:
    """``text`` with ``key=value`` set in ``[section]`` (removed when value is None, and the
    section with it when nothing else is left in it); every other line is kept as it was."""
    lines = text.splitlines()
    header = f"[{section}]"
    start = next((i for i, line in enumerate(lines) if line.strip() == header), None)
    if start is None:
        if value is None:
            return text
        if lines and lines[-1].strip():
            lines.append("")
        lines += [header, f"{key}={value}"]
        return "\n".join(lines) + "\n"
    end = next(
        (i for i in range(start + 1, len(lines)) if lines[i].strip().startswith("[")), len(lines)
    )
    found = [i for i in range(start + 1, end) if lines[i].split("=", 1)[0].strip() == key]
    for i in reversed(found):
        del lines[i]
        end -= 1
    if value is not None:
        position = end
        while position > start + 1 and not lines[position - 1].strip():
            position -= 1
        lines.insert(position, f"{key}={value}")
    elif found and not any(line.strip() for line in lines[start + 1 : end]):
        del lines[start:end]  # the section held only this key: remove it too
        while lines and not lines[-1].strip():
            del lines[-1]
    return "\n".join(lines) + "\n" if lines else ""


def _edit_settings(path: Path, section: str, key: str, value: str | None) -> bool:
    """Set (or remove) the key in the file; whether the file changed."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    new = set_ini_value(text, section, key, value)
    if new != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(new, encoding="utf-8")
    return new != text


# --- Krita ------------------------------------------------------------------------------


def install_krita(
    locations: KritaLocations, options: WorkerOptions = WorkerOptions()
) -> InstallReport:
    """Install the Krita plugin into ``locations`` and enable it in kritarc."""
    destination = locations.pykrita / KRITA_PLUGIN
    source, report = _install_package("krita", "*.desktop", destination, options)
    desktop = locations.pykrita / f"{KRITA_PLUGIN}.desktop"
    shutil.copy2(source / f"{KRITA_PLUGIN}.desktop", desktop)
    report.done.append(f"Copied {desktop.name} to {locations.pykrita}")
    _edit_settings(locations.kritarc, "python", f"enable_{KRITA_PLUGIN}", "true")
    report.done.append(
        f"Enabled the plugin in {locations.kritarc} ([python] enable_{KRITA_PLUGIN}=true)"
    )
    report.notes += [
        "Restart Krita, then use File > Export Protected…",
        "If Krita was running, quit it and run this command again: Krita rewrites kritarc "
        "when it quits. (Or enable 'artcloak: Export Protected' in Settings > Configure "
        "Krita > Python Plugin Manager.)",
    ]
    report.undo += [
        "artcloak install krita --uninstall" + _location_options(locations),
        f"or by hand: delete {destination} and {desktop}, and the line "
        f"enable_{KRITA_PLUGIN}=true in {locations.kritarc}",
    ]
    return report


def uninstall_krita(locations: KritaLocations) -> InstallReport:
    report = InstallReport()
    destination = locations.pykrita / KRITA_PLUGIN
    if destination.exists():
        if not _is_ours(destination):
            raise InstallError(f"{destination} was not installed by artcloak; left it alone.")
        shutil.rmtree(destination)
        report.done.append(f"Removed {destination}")
    desktop = locations.pykrita / f"{KRITA_PLUGIN}.desktop"
    if desktop.exists():
        desktop.unlink()
        report.done.append(f"Removed {desktop}")
    if locations.kritarc.exists() and _edit_settings(
        locations.kritarc, "python", f"enable_{KRITA_PLUGIN}", None
    ):
        report.done.append(f"Removed enable_{KRITA_PLUGIN} from {locations.kritarc}")
        if not locations.kritarc.read_text(encoding="utf-8").strip():
            locations.kritarc.unlink()  # nothing else was in it: the install made it
            report.done.append(f"Removed {locations.kritarc}, which held nothing else")
    if not report.done:
        report.done.append(f"Nothing to remove: the plugin is not in {locations.pykrita}.")
    return report


def _location_options(locations: KritaLocations) -> str:
    default = krita_locations()
    options = ""
    if locations.resource_dir != default.resource_dir:
        options += f' --resource-dir "{locations.resource_dir}"'
    if locations.kritarc != default.kritarc:
        options += f' --kritarc "{locations.kritarc}"'
    return options


# --- GIMP 3 -----------------------------------------------------------------------------


def gimp_plugins_dir(
    system: str | None = None,
    environ: dict[str, str] | None = None,
    home: Path | None = None,
    profile_dir: Path | None = None,
) -> Path:
    """GIMP 3.0's per-user plug-ins folder on Linux, Windows and macOS (``profile_dir``, the
    GIMP profile folder, wins; so does GIMP's own GIMP3_DIRECTORY variable)."""
    if profile_dir is not None:
        return profile_dir / "plug-ins"
    system = system or platform.system()
    env = os.environ if environ is None else environ
    home = home or Path.home()
    if env.get("GIMP3_DIRECTORY"):
        return Path(env["GIMP3_DIRECTORY"]) / "plug-ins"
    if system == "Windows":
        base = Path(env.get("APPDATA") or home / "AppData" / "Roaming")
    elif system == "Darwin":
        base = home / "Library" / "Application Support"
    else:
        base = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    return base / "GIMP" / "3.0" / "plug-ins"


def install_gimp(plugins_dir: Path, options: WorkerOptions = WorkerOptions()) -> InstallReport:
    """Install the GIMP 3 plug-in into ``plugins_dir``."""
    destination = plugins_dir / GIMP_PLUGIN
    expect = f"{GIMP_PLUGIN}/{GIMP_PLUGIN}.py"
    _source, report = _install_package("gimp", expect, destination, options)
    script = destination / f"{GIMP_PLUGIN}.py"
    script.chmod(script.stat().st_mode | 0o111)  # GIMP runs only executable plug-ins
    report.done.append(f"Made {script.name} executable")
    report.notes.append("Restart GIMP 3, then use File > Export > Export Protected…")
    report.undo += [
        "artcloak install gimp --uninstall" + _gimp_options(plugins_dir),
        f"or by hand: delete {destination}",
    ]
    return report


def uninstall_gimp(plugins_dir: Path) -> InstallReport:
    report = InstallReport()
    destination = plugins_dir / GIMP_PLUGIN
    if destination.exists():
        if not _is_ours(destination):
            raise InstallError(f"{destination} was not installed by artcloak; left it alone.")
        shutil.rmtree(destination)
        report.done.append(f"Removed {destination}")
    else:
        report.done.append(f"Nothing to remove: the plug-in is not in {plugins_dir}.")
    return report


def _gimp_options(plugins_dir: Path) -> str:
    if plugins_dir == gimp_plugins_dir():
        return ""
    return f' --profile-dir "{plugins_dir.parent}"'


# --- the command ------------------------------------------------------------------------


def plugin_options(command):
    """The options every plugin installer takes: who runs the worker, with what, and undo."""
    options = [
        click.option(
            "--python",
            metavar="PATH",
            help="Python that runs the worker (default: this one, where artcloak is installed).",
        ),
        click.option(
            "--encoder",
            "encoders",
            multiple=True,
            metavar="SOURCE",
            help="Encoder(s) the plugin protects against (default: artcloak's default).",
        ),
        click.option("--device", help="Device for the worker: auto, cpu, cuda, cuda:N or mps."),
        click.option(
            "--force", is_flag=True, help="Replace a plugin folder artcloak did not install."
        ),
        click.option("--uninstall", is_flag=True, help="Remove the plugin (and disable it)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.group()
def install() -> None:
    """Install the editor plugins (Krita, GIMP 3) that run artcloak from this Python."""


@install.command()
@click.option(
    "--resource-dir",
    type=click.Path(path_type=Path),
    help="Krita's resource folder (default: the per-user one for this system).",
)
@click.option(
    "--kritarc",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Krita's settings file (default: the per-user one for this system).",
)
@plugin_options
def krita(resource_dir, kritarc, python, encoders, device, force, uninstall) -> None:
    """Install File > Export Protected… into Krita 5.1+ (or remove it with --uninstall)."""
    locations = krita_locations(resource_dir=resource_dir, kritarc=kritarc)
    if uninstall:
        _say(lambda: uninstall_krita(locations), "the plugin files")
    else:
        options = WorkerOptions(python, tuple(encoders), device, force)
        _say(lambda: install_krita(locations, options), "the plugin files")


@install.command()
@click.option(
    "--profile-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="GIMP 3's profile folder, which holds plug-ins/ (default: the per-user one).",
)
@plugin_options
def gimp(profile_dir, python, encoders, device, force, uninstall) -> None:
    """Install File > Export > Export Protected… into GIMP 3 (or remove it with --uninstall)."""
    plugins_dir = gimp_plugins_dir(profile_dir=profile_dir)
    if uninstall:
        _say(lambda: uninstall_gimp(plugins_dir), "the plug-in files")
    else:
        options = WorkerOptions(python, tuple(encoders), device, force)
        _say(lambda: install_gimp(plugins_dir, options), "the plug-in files")


def _say(action: Callable[[], InstallReport], files: str) -> None:
    """Run an install or uninstall and print what it did; a write error is one line."""
    try:
        report = action()
    except OSError as error:
        raise InstallError(f"Cannot write {error.filename or files}: {error.strerror}.") from None
    click.echo(report.text())
