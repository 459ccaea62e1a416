"""The wheel: what pyproject.toml ships, and `artcloak install krita|gimp` from a plain wheel.

The package list in pyproject.toml is checked against the folders on disk, and a wheel is
built offline (``pip wheel --no-deps --no-build-isolation --no-index``) from a copy of the
source, so the checkout gets no build/ folder. The wheel is installed with ``--no-deps``
into a fresh virtual environment whose only other packages are the test environment's
(through a .pth file: nothing is downloaded, and artcloak itself comes from the wheel, not
the checkout); then its `artcloak` command installs both editor plugins into a temporary
HOME, and the installed GIMP client talks to the wheel's worker from a Python without
site-packages, as an editor's Python would.
"""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest
from artcloak import install as installer

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
PACKAGE_DIRS = SETUPTOOLS["package-dir"]  # "" = "core"; the plugins at the top level
SKIP = ("__pycache__", "*.egg-info", "build", "dist", "*.pyc")


def package_folder(package: str) -> Path:
    """Where setuptools takes ``package`` from, by pyproject's package-dir."""
    parts = package.split(".")
    for size in range(len(parts), 0, -1):
        prefix = ".".join(parts[:size])
        if prefix in PACKAGE_DIRS:
            return ROOT / PACKAGE_DIRS[prefix] / Path(*parts[size:])
    return ROOT / PACKAGE_DIRS.get("", ".") / Path(*parts)


def packages_on_disk() -> set[str]:
    """Every folder of Python modules under core/artcloak, plus the plugin packages."""
    core = ROOT / PACKAGE_DIRS[""]
    found = set()
    for module in (core / "artcloak").rglob("*.py"):
        if "__pycache__" not in module.parts:
            found.add(".".join(module.parent.relative_to(core).parts))
    return found | {name for name in PACKAGE_DIRS if name}


def plugin_files(package: str) -> list[Path]:
    """The files the installer copies from a plugin package (its folder's plugin files)."""
    folder = package_folder(package)
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file()
        and p.suffix in installer.PLUGIN_FILE_TYPES
        and "__pycache__" not in p.parts
        and p != folder / "__init__.py"  # the package itself, not a plugin file
    )


# --- pyproject.toml against the folders on disk ---------------------------------------------


def test_the_package_list_matches_the_folders():
    declared = set(SETUPTOOLS["packages"])
    on_disk = packages_on_disk()
    assert declared == on_disk, (
        f"in pyproject.toml, not on disk: {sorted(declared - on_disk)}; "
        f"on disk, not in pyproject.toml: {sorted(on_disk - declared)}"
    )
    for package in declared:
        assert (package_folder(package) / "__init__.py").is_file(), package


def test_package_data_covers_every_plugin_file():
    data = SETUPTOOLS["package-data"]
    for package in ("artcloak.krita_plugin", "artcloak.gimp_plugin"):
        files = plugin_files(package)
        assert files, package
        folder = package_folder(package)
        for path in files:
            relative = path.relative_to(folder).as_posix()
            assert any(fnmatch.fnmatch(relative, glob) for glob in data[package]), relative


# --- the wheel --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built offline from a copy of the sources (the checkout is left as it is)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / PYPROJECT["project"]["readme"], source)
    for folder in set(PACKAGE_DIRS.values()):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns(*SKIP))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps",
         "--no-build-isolation", "--no-index", "-q", "-w", str(root / "dist")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (root / "dist").glob("artcloak-*.whl")
    return path


def test_the_wheel_holds_every_module_plugin_file_and_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    core = ROOT / PACKAGE_DIRS[""]
    for module in (core / "artcloak").rglob("*.py"):
        if "__pycache__" not in module.parts:
            assert module.relative_to(core).as_posix() in names, module
    for package in ("artcloak.krita_plugin", "artcloak.gimp_plugin"):
        folder, prefix = package_folder(package), package.replace(".", "/")
        for path in [folder / "__init__.py", *plugin_files(package)]:
            assert f"{prefix}/{path.relative_to(folder).as_posix()}" in names, path
    assert "artcloak/client.py" in names and "artcloak/protocol.py" in names
    for config in (core / "artcloak" / "configs").iterdir():
        assert f"artcloak/configs/{config.name}" in names, config
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "artcloak = artcloak.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


@pytest.fixture(scope="module")
def fresh(wheel, tmp_path_factory):
    """A new venv with the wheel installed (--no-deps); its dependencies are this Python's."""
    if sys.platform == "win32":
        pytest.skip("the fresh-venv check uses bin/ paths")
    root = tmp_path_factory.mktemp("fresh")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # The dependencies (click, torch, ...) from this test environment, after the wheel's own
    # site-packages: .pth files in that folder (e.g. an editable artcloak) are not read.
    Path(site, "artcloak-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home = root / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "XDG_", "GIMP3_", "VIRTUAL_ENV"))
        and k not in ("APPDATA", "LOCALAPPDATA")
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / "data"),
        XDG_CONFIG_HOME=str(home / "config"),
        PYTHONNOUSERSITE="1",
    )
    home.mkdir()
    return SimpleNamespace(venv=venv, python=python, site=Path(site), home=home, env=env)


def run_fresh(fresh, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), env=fresh.env, cwd=fresh.home, capture_output=True, text=True, timeout=timeout
    )


def test_artcloak_comes_from_the_wheel(fresh):
    found = run_fresh(fresh, str(fresh.python), "-c", "import artcloak; print(artcloak.__file__)")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()).parent == fresh.site / "artcloak"


@pytest.fixture(scope="module")
def plugins(fresh):
    """`artcloak install krita` and `artcloak install gimp`, with the wheel's command."""
    command = str(fresh.venv / "bin" / "artcloak")
    reports = {}
    for host in ("krita", "gimp"):
        done = run_fresh(fresh, command, "install", host)
        assert done.returncode == 0, done.stdout + done.stderr
        reports[host] = done.stdout
    environ, home = fresh.env, Path(fresh.env["HOME"])
    krita = installer.krita_locations(system="Linux", environ=environ, home=home)
    gimp = installer.gimp_plugins_dir(system="Linux", environ=environ, home=home)
    return SimpleNamespace(
        reports=reports,
        krita=krita,
        krita_plugin=krita.pykrita / installer.KRITA_PLUGIN,
        gimp_plugin=gimp / installer.GIMP_PLUGIN,
    )


def shipped(package: str) -> set[str]:
    return {p.name for p in plugin_files(package)}


def test_install_krita_from_the_wheel(fresh, plugins):
    folder = plugins.krita_plugin
    assert str(folder) in plugins.reports["krita"] and "To undo:" in plugins.reports["krita"]
    files = {p.name for p in folder.iterdir()}
    assert shipped("artcloak.krita_plugin") - {"artcloak_export.desktop"} <= files
    assert {"__init__.py", "protocol.py", "client.py", "worker.json"} <= files
    assert (plugins.krita.pykrita / "artcloak_export.desktop").is_file()
    assert "enable_artcloak_export=true" in plugins.krita.kritarc.read_text()
    for name in ("protocol.py", "client.py"):  # the wheel's copies, byte for byte
        assert (folder / name).read_bytes() == (fresh.site / "artcloak" / name).read_bytes()
    config = json.loads((folder / "worker.json").read_text())
    assert config["python"] == str(fresh.python) and config["request"] == {}
    assert config["styles"] and config["protocol"] == 2


def test_install_gimp_from_the_wheel(fresh, plugins):
    folder = plugins.gimp_plugin
    assert str(folder) in plugins.reports["gimp"]
    files = {p.name for p in folder.iterdir()}
    assert files == shipped("artcloak.gimp_plugin") | {"protocol.py", "client.py", "worker.json"}
    assert os.access(folder / "artcloak-export.py", os.X_OK)
    for name in ("protocol.py", "client.py"):
        assert (folder / name).read_bytes() == (fresh.site / "artcloak" / name).read_bytes()
    assert json.loads((folder / "worker.json").read_text())["python"] == str(fresh.python)


def test_installed_gimp_client_reaches_the_wheels_worker(fresh, plugins, tmp_path):
    """The plug-in folder's client.py, in a Python without site-packages (an editor's),
    reads worker.json and runs the wheel's worker, which answers with an error event."""
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import client;"
        "config = client.WorkerConfig.load(sys.argv[1], 'gimp');"
        "request = client.build_request(client.Choices(output=sys.argv[3]), sys.argv[2], config);"
        "outcome = client.run_worker(config.python, request, host='gimp');"
        "print(outcome.kind); print(outcome.message)"
    )
    missing, output = tmp_path / "no-such-image.png", tmp_path / "out.png"
    run = run_fresh(
        fresh,
        sys.executable, "-S", "-c", script, str(plugins.gimp_plugin), str(missing), str(output),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    kind, message = run.stdout.split("\n", 1)
    assert kind == "error" and "no-such-image.png" in message, run.stdout
    assert "Traceback" not in message and not output.exists()
