"""File > Export Protected… in real Krita, under Xvfb, with a tiny test model.

The plugin is installed with `artcloak install krita` into a throwaway profile
(XDG_CONFIG_HOME / XDG_DATA_HOME), next to a small driver plugin (tests/krita_real/) that
triggers the action, answers the dialogs as a person would and records what it saw.
One Krita session checks: an 8-bit RGBA export, a 16-bit RGBA export, the refusal of a
32-bit float document, and Cancel; each time the document must be left unchanged and the
temporary files removed.

Each test runs once for each Krita:
- ``installed``: the Krita on this machine (Debian bookworm's is 5.1.5). Needs `krita` and
  `Xvfb` (Debian: apt-get install krita xvfb).
- ``trixie`` (Krita 5.2.x), ``sid`` (5.3.x) and ``experimental`` (6.0.x: Qt 6, PyQt6): that
  Debian suite's Krita in a chroot built with debootstrap (tests/chroot.py; a few minutes and
  1-2 GB each, once, cached in ARTCLOAK_KRITA_<NAME>_CHROOT, default
  /var/cache/artcloak-krita-<name>). The project, its Python and pytest's temporary folder
  are bind-mounted into the chroot at the same paths, so the plugin's worker.json names a
  Python that runs there. Needs root and debootstrap.
Each is skipped, with the reason, where it cannot run; each prints the Krita version it ran.
All draw on an Xvfb of this machine's (tests/xserver.py).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
from artcloak.install import set_ini_value
from chroot import ChrootError, DebianChroot
from PIL import Image
from xserver import DisplayError, display_refused, virtual_display

MISSING = [tool for tool in ("krita", "Xvfb") if shutil.which(tool) is None]
SKIP_REASON = (
    f"real-Krita test not run: {', '.join(MISSING)} not installed "
    "(Debian: apt-get install krita xvfb)"
)
if MISSING:  # also in pytest's warnings summary, which is shown without -rs
    warnings.warn(SKIP_REASON, stacklevel=1)


def _krita_chroot(name: str, suite: str, pyqt: str, take_from: str | None = None) -> DebianChroot:
    variable = f"ARTCLOAK_KRITA_{name.upper()}_CHROOT"
    return DebianChroot(
        path=Path(os.environ.get(variable, f"/var/cache/artcloak-krita-{name}")),
        suite=suite,
        packages=("krita", pyqt),  # no X server: Krita uses this machine's Xvfb
        marker="usr/bin/krita",
        label=f"real-Krita test on Debian {name}'s Krita",
        take_from=take_from,
    )


# Debian's Krita releases beside the installed one (bookworm's 5.1.5 on CI): trixie 5.2.9,
# sid 5.3.x and experimental's 6.0.x (Qt 6, with PyQt6), each in a chroot built once.
CHROOTS = {
    "trixie": _krita_chroot("trixie", "trixie", "python3-pyqt5"),
    "sid": _krita_chroot("sid", "sid", "python3-pyqt5"),
    "experimental": _krita_chroot("experimental", "sid", "python3-pyqt6", "experimental"),
}
PROJECT = Path(__file__).resolve().parents[1]
PYTHON_HOME = Path(os.path.realpath(sys.executable)).parents[1]  # the venv's base Python
DRIVER = Path(__file__).parent / "krita_real"
KRITA_TIMEOUT_S = 180
EPS_255 = 8  # the default intensity's L-inf budget


def install_command(args: list[str]) -> list[str]:
    """`artcloak install …` through the CLI once it is registered there, else the command object."""
    from artcloak.cli import cli

    if "install" in cli.commands:
        return [sys.executable, "-m", "artcloak", "install", *args]
    code = "import sys; from artcloak.install import install; install(sys.argv[1:])"
    return [sys.executable, "-c", code, *args]


def rgba8(path: Path) -> np.ndarray:
    rng = np.random.default_rng(1)
    v, u = np.mgrid[0:72, 0:96] / 96
    image = np.stack([0.5 + 0.4 * np.sin(6 * u + 4 * v + p) for p in rng.random(3) * 6], -1)
    alpha = np.full((72, 96, 1), 1.0)
    alpha[:12, :12] = 0.0  # a transparent corner
    alpha[-12:, -12:] = 0.5
    pixels = (np.concatenate([image, alpha], -1) * 255).round().astype(np.uint8)
    Image.fromarray(pixels, "RGBA").save(path)
    return pixels


def rgba16(path: Path) -> np.ndarray:
    """Raw 16-bit pixels in Krita's channel order (BGRA, native endian) for a new document.

    (Krita 5.1.5 under Xvfb hangs opening a 16-bit PNG written by OpenCV, so the 16-bit
    document is made inside Krita instead.)"""
    v, u = np.mgrid[0:64, 0:80] / 80
    rgb = np.stack([0.5 + 0.4 * np.sin(5 * u + 3 * v + p) for p in (0.3, 1.9, 4.1)], -1)
    pixels = np.concatenate([rgb, np.ones((64, 80, 1))], -1)
    pixels = (pixels * 65535).round().astype(np.uint16)
    path.write_bytes(np.ascontiguousarray(pixels[..., [2, 1, 0, 3]]).tobytes())
    return pixels


def read_rgba(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None and image.ndim == 3 and image.shape[2] == 4, path
    return cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)


@pytest.fixture(scope="module", params=["installed", *CHROOTS])
def krita(request, tmp_path_factory):
    """How to start a Krita (a command line, and the environment it may keep), and which one.

    ``installed``: the one on PATH. The others: that Debian suite's, in its chroot, with the
    project, its Python and pytest's temporary folder mounted at the same paths."""
    if request.param == "installed":
        if MISSING:
            pytest.skip(SKIP_REASON)
        yield {"name": "installed", "command": ["krita"], "keep_env": True,
               "package": _package_version(["dpkg-query", "-W", "-f", "${Version}", "krita"])}  # fmt: skip
        return
    chroot = CHROOTS[request.param]
    chroot.ensure_or_skip(chroot.label)
    basetemp = tmp_path_factory.getbasetemp().resolve()
    try:
        with chroot.mounted((PROJECT, PYTHON_HOME, basetemp)):
            yield {"name": request.param, "keep_env": False, "command": chroot.command("krita"),
                   "package": chroot.package_version("krita")}  # fmt: skip
    except ChrootError as error:
        pytest.skip(f"{chroot.label}: cannot enter the chroot: {error}")


@pytest.mark.parametrize("chroot", CHROOTS.values(), ids=list(CHROOTS))
def test_the_chroots_install_no_x_server(chroot):
    """Krita in a chroot draws on this machine's Xvfb (tests/xserver.py: no cookie, and
    Linux's abstract socket is shared across a chroot), so a chroot needs neither Xvfb nor
    xauth: listing them would only make every fresh build download and unpack them."""
    assert not {"xvfb", "xauth", "xserver-xorg-core"} & set(chroot.packages), chroot.packages


def _package_version(command: list[str]) -> str:
    found = subprocess.run(command, capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else ""


@pytest.fixture(scope="module")
def krita_session(krita, tmp_path_factory, tiny_models):
    """Install, run Krita once with all the runs, return what the driver recorded."""
    root = tmp_path_factory.mktemp(f"krita-{krita['name']}").resolve()
    profile = {
        "HOME": str(root / "home"),
        "XDG_CONFIG_HOME": str(root / "config"),
        "XDG_DATA_HOME": str(root / "data"),
        "XDG_CACHE_HOME": str(root / "cache"),
        "TMPDIR": str(root / "tmp"),
    }
    env = {**os.environ, **profile}
    for name in ("home", "config", "data", "cache", "tmp", "out"):
        (root / name).mkdir()

    started = time.perf_counter()
    installed = subprocess.run(
        install_command(
            ["krita", "--encoder", str(tiny_models["diffusers_folder"]), "--device", "cpu"]
        ),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    install_seconds = time.perf_counter() - started
    assert installed.returncode == 0, installed.stderr
    pykrita = root / "data" / "krita" / "pykrita"
    kritarc = root / "config" / "kritarc"
    assert (pykrita / "artcloak_export" / "protocol.py").is_file()
    assert (pykrita / "artcloak_export" / "client.py").is_file()
    assert "enable_artcloak_export=true" in kritarc.read_text()

    # Test-only settings: the tiny model's fast path, and the driver plugin.
    config_path = pykrita / "artcloak_export" / "worker.json"
    config = json.loads(config_path.read_text())
    config["request"].update(steps=3, resolution=64, lpips_random_backbone=True)
    config_path.write_text(json.dumps(config))
    shutil.copytree(DRIVER / "artcloak_test_driver", pykrita / "artcloak_test_driver")
    shutil.copy(DRIVER / "artcloak_test_driver.desktop", pykrita)
    kritarc.write_text(
        set_ini_value(kritarc.read_text(), "python", "enable_artcloak_test_driver", "true")
    )

    images = {"rgba8": rgba8(root / "art8.png"), "rgba16": rgba16(root / "art16.raw")}
    out = root / "out"
    job = {
        "result_file": str(root / "result.json"),
        "timeout_s": KRITA_TIMEOUT_S - 30,
        "runs": [
            {
                "name": "rgba8",
                "open": str(root / "art8.png"),
                "form": {"mode": "cloak", "output": str(out / "art8-protected.png")},
            },
            {
                "name": "rgba16",
                "new_document": {
                    "width": 80,
                    "height": 64,
                    "model": "RGBA",
                    "depth": "U16",
                    "pixels": str(root / "art16.raw"),
                    "hidden_layer": True,
                },
                "form": {
                    "mode": "cloak",
                    "target_kind": "style",
                    "style": "marble",
                    "output": str(out / "art16-protected.png"),
                    "open_result": False,
                },
            },  # fmt: skip
            {
                "name": "float",
                "new_document": {"width": 32, "height": 32, "model": "RGBA", "depth": "F32"},
                "form": {"output": str(out / "float-protected.png")},
            },
            {
                "name": "worker_error",
                "open": str(root / "art8.png"),
                "worker_request": {"encoders": [str(root / "no-such-model")]},
                "form": {"output": str(out / "worker-error.png")},
            },
            {
                "name": "no_python",
                "open": str(root / "art8.png"),
                "worker_python": str(root / "no-such-python"),
                "form": {"output": str(out / "no-python.png")},
            },
            {
                "name": "cancel",
                "open": str(root / "art8.png"),
                "worker_python": sys.executable,
                "worker_request": {
                    "steps": 5000,
                    "encoders": [str(tiny_models["diffusers_folder"])],
                },
                "cancel": True,
                # WebP: lossy (the form warns) and, unlike JPEG, able to hold the art's alpha
                "form": {"output": str(out / "cancelled.webp"), "format": "webp"},
            },
        ],
    }
    (root / "job.json").write_text(json.dumps(job))
    env["ARTCLOAK_KRITA_TEST_JOB"] = str(root / "job.json")
    if not krita["keep_env"]:  # nothing of this machine's environment inside the chroot
        env = {**profile, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
               "ARTCLOAK_KRITA_TEST_JOB": env["ARTCLOAK_KRITA_TEST_JOB"]}  # fmt: skip

    started = time.perf_counter()
    returncode, log_tail = run_krita([*krita["command"], "--nosplash"], env, root)
    krita_seconds = time.perf_counter() - started
    result_file = root / "result.json"
    trace = root / "result.json.trace"
    trace = trace.read_text() if trace.exists() else "(none)"
    assert result_file.is_file(), f"no result; driver trace:\n{trace}\nKrita's log:\n{log_tail}"
    record = json.loads(result_file.read_text())
    assert record["errors"] == [], "\n".join(record["errors"])
    print(
        f"\n{krita['name']} Krita {record['krita_version']} (Debian package {krita['package']}, "
        f"Qt {record['qt_version']}, Python {record['python_version']}): install "
        f"{install_seconds:.1f} s, Krita session {krita_seconds:.1f} s"
    )
    return {
        "krita": krita,
        "record": record,
        "runs": {run["name"]: run for run in record["runs"]},
        "root": root,
        "out": out,
        "images": images,
        "krita_exit": returncode,
    }


def run_krita(command: list[str], env: dict[str, str], root: Path) -> tuple[int, str]:
    """Run Krita on a display of its own; its exit status and the end of its log.

    Once more on a fresh display if Krita could not reach the first one at all (then it
    did nothing: the display, not the plugin, failed)."""
    for attempt in (1, 2):
        log_path = root / f"krita-{attempt}.log"
        try:
            with virtual_display(root / f"xvfb-{attempt}.log") as display:
                returncode = _run_logged(command, {**env, "DISPLAY": display}, log_path)
        except DisplayError as error:
            pytest.fail(f"no X display for Krita: {error}")
        log_tail = log_path.read_text(errors="replace")[-3000:]
        if not display_refused(log_tail):
            break
        print(f"\nKrita could not reach its X display (attempt {attempt}):\n{log_tail}")
    return returncode, log_tail


def _run_logged(command: list[str], env: dict[str, str], log_path: Path) -> int:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            return process.wait(timeout=KRITA_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            return process.wait()


def test_krita_quits_by_itself(krita_session):
    assert krita_session["krita_exit"] == 0


def test_which_krita_ran(krita_session, record_property):
    """The version each Krita reports (in the junit XML and, with -s, on the terminal)."""
    record = krita_session["record"]
    record_property("krita_version", record["krita_version"])
    record_property("krita_package", krita_session["krita"]["package"])
    name = krita_session["krita"]["name"]
    expected = {"installed": "5.", "trixie": "5.2", "sid": "5.3", "experimental": "6."}
    assert record["krita_version"].startswith(expected[name])
    # the plugin drives the Qt binding its Krita loaded: PyQt6 in Krita 6, PyQt5 before
    qt6 = record["krita_version"].startswith("6.")
    assert record["plugin_qt_api"] == ("PyQt6" if qt6 else "PyQt5")
    assert record["qt_version"].startswith("6." if qt6 else "5.")


def test_action_sits_after_export_in_the_file_menu(krita_session):
    entries = krita_session["record"]["file_menu"]
    assert "artcloak_export_protected" in entries
    assert entries.index("artcloak_export_protected") == entries.index("file_export_file") + 1


def assert_document_untouched(run):
    assert run["after"] == run["before"]  # pixels, modified flag, file name, layers


def test_rgba8_export_writes_a_protected_png(krita_session):
    run = krita_session["runs"]["rgba8"]
    assert run["dialog"] is True
    assert run["suggested_output"] == str(krita_session["root"] / "art8-cloaked.png")
    assert run["format_warning"] == ""
    assert run["outcome"]["kind"] == "result", run["outcome"]
    assert any(label.startswith("Protecting: step") for label in run["progress"])
    output = krita_session["out"] / "art8-protected.png"
    original = krita_session["images"]["rgba8"]
    protected = read_rgba(output)
    assert protected.dtype == np.uint8 and protected.shape == original.shape
    np.testing.assert_array_equal(protected[..., 3], original[..., 3])  # alpha kept
    visible = original[..., 3] > 0
    change = np.abs(protected[..., :3].astype(int) - original[..., :3].astype(int))
    assert change[visible].max() <= EPS_255  # the L-inf budget held, on the written file
    assert change[visible].max() > 0  # and something was done
    result = run["outcome"]["result"]
    assert result["lpips"] <= 0.05 and result["linf_255"] <= EPS_255
    (message,) = run["messages"]
    assert "Protected image saved" in message["text"] and "budget 0.05" in message["text"]
    assert str(output) in run["documents"]  # opened as a new document
    assert run["before"]["modified"] is False
    assert_document_untouched(run)
    assert run["temp_left"] == []


def test_rgba16_export_keeps_16_bits(krita_session):
    run = krita_session["runs"]["rgba16"]
    assert run["before"]["depth"] == "U16" and run["before"]["model"] == "RGBA"
    assert run["before"]["layers"] == 2  # the picture, and a hidden black layer on top
    # the output folder chosen last time is remembered; an unsaved document is "untitled"
    assert run["suggested_output"] == str(krita_session["out"] / "untitled-cloaked.png")
    assert run["outcome"]["kind"] == "result", run["outcome"]
    original = krita_session["images"]["rgba16"]
    protected = read_rgba(krita_session["out"] / "art16-protected.png")
    assert protected.dtype == np.uint16 and protected.shape == original.shape
    change = np.abs(protected.astype(int) - original.astype(int))
    assert 0 < change.max() <= EPS_255 * 257 + 1  # the hidden black layer is not in it
    assert len(np.unique(protected[..., 0] % 257)) > 1  # not 8-bit values scaled up
    report = json.loads((krita_session["out"] / "art16-protected.png.json").read_text())
    assert report["target"]["style"] == "marble"
    assert len(run["documents"]) == len(krita_session["runs"]["rgba8"]["documents"]) + 1
    assert_document_untouched(run)
    assert run["temp_left"] == []


def test_float_document_is_refused_in_one_message(krita_session):
    run = krita_session["runs"]["float"]
    assert run["dialog"] is False and run["outcome"] is None
    (message,) = run["messages"]
    assert "32-bit float" in message["text"] and "Convert Image Color Space" in message["text"]
    assert "Traceback" not in message["text"]
    assert_document_untouched(run)
    assert run["temp_left"] == []
    assert not (krita_session["out"] / "float-protected.png").exists()


def test_cancel_leaves_nothing(krita_session):
    run = krita_session["runs"]["cancel"]
    assert "weakens the protection" in run["format_warning"]  # WebP was chosen
    assert run["cancelled"] is True
    assert run["outcome"]["kind"] == "cancelled", run["outcome"]
    (message,) = run["messages"]
    assert message["text"].startswith("Cancelled")
    assert not any(p.name.startswith("cancelled") for p in krita_session["out"].iterdir())
    assert_document_untouched(run)
    assert run["temp_left"] == []


def test_worker_error_is_shown_as_its_message(krita_session):
    run = krita_session["runs"]["worker_error"]
    assert run["outcome"]["kind"] == "error"
    (message,) = run["messages"]
    assert "no-such-model" in message["text"] and "Traceback" not in message["text"]
    assert not (krita_session["out"] / "worker-error.png").exists()
    assert_document_untouched(run)
    assert run["temp_left"] == []


def test_missing_worker_python_says_how_to_fix_it(krita_session):
    run = krita_session["runs"]["no_python"]
    assert run["outcome"]["kind"] == "error"
    (message,) = run["messages"]
    assert "Could not start the artcloak worker" in message["text"]
    assert "artcloak install krita" in message["text"]
    assert_document_untouched(run)
    assert run["temp_left"] == []
