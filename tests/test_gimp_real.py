"""The GIMP 3 plug-in inside real GIMP 3: the registered procedure, called non-interactively
from gimp-console's Python batch interpreter, exports a protected PNG with a tiny model.

Debian bookworm has only GIMP 2.10, so each GIMP 3 runs in a Debian chroot (tests/chroot.py:
debootstrap, then ``gimp python3 python3-gi gir1.2-gimp-3.0``; a few minutes and about 1 GB
each, once): GIMP 3.0.x from trixie and 3.2.x from sid, cached in
ARTCLOAK_GIMP3_<SUITE>_CHROOT, default /var/cache/artcloak-gimp3-<suite>. The project folder,
its Python and a temporary folder are bind-mounted into the chroot at the same paths, so the
plug-in's worker.json names a Python that runs there. Needs root (chroot, mount) and, to
build a chroot, debootstrap and the Debian mirror; skipped with the reason elsewhere.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import processes
import pytest
from artcloak import install as installer
from artcloak.testing import save_tiny_models
from chroot import ChrootError, DebianChroot
from PIL import Image

PACKAGES = ("gimp", "python3", "python3-gi", "gir1.2-gimp-3.0")
GIMP = "gimp-console"  # Debian's link to gimp-console-3.0 / -3.2
# GIMP 3.0.x (Debian trixie) and 3.2.x (sid), each in a chroot built once.
CHROOTS = {
    suite: DebianChroot(
        path=Path(
            os.environ.get(
                f"ARTCLOAK_GIMP3_{suite.upper()}_CHROOT", f"/var/cache/artcloak-gimp3-{suite}"
            )
        ),
        suite=suite,
        packages=PACKAGES,
        marker=f"usr/bin/{GIMP}",
        label=f"GIMP 3 real test on Debian {suite}'s GIMP",
    )
    for suite in ("trixie", "sid")
}
EXPECTED_VERSION = {"trixie": "3.0.", "sid": "3.2."}
PROJECT = Path(__file__).resolve().parents[1]
PYTHON_HOME = Path(os.path.realpath(sys.executable)).parents[1]  # the venv's base Python


@dataclass(frozen=True)
class GimpHost:
    """A GIMP in its chroot, and a scratch folder both sides see at the same path."""

    chroot: DebianChroot
    scratch: Path

    def command(self, *args: str) -> list[str]:
        return self.chroot.command(GIMP, *args)


@pytest.fixture(scope="module", params=list(CHROOTS))
def gimp(request):
    chroot = CHROOTS[request.param]
    chroot.ensure_or_skip(chroot.label)
    scratch = Path(tempfile.mkdtemp(prefix="artcloak-gimp3-"))
    try:
        with chroot.mounted((PROJECT, PYTHON_HOME, scratch)):
            yield GimpHost(chroot, scratch)
    except ChrootError as error:
        pytest.skip(f"{chroot.label}: cannot bind-mount into the chroot ({error})")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


SNIPPET = """
import json
from gi.repository import Gimp, Gio
args = json.loads({args!r})
image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, Gio.File.new_for_path(args["input"]))
if args["precision"]:
    image.convert_precision(getattr(Gimp.Precision, args["precision"]))
    image.clean_all()
procedure = Gimp.get_pdb().lookup_procedure("plug-in-artcloak-export-protected")
assert procedure is not None, "the procedure is not registered"
config = procedure.create_config()
config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
config.set_property("image", image)
config.set_core_object_array("drawables", image.get_layers())
config.set_property("output", Gio.File.new_for_path(args["output"]))
for name, value in args["more"].items():
    config.set_property(name, value)
values = procedure.run(config)
status = values.index(0)
message = values.index(1) if values.length() > 1 else ""
with open(args["status"], "w") as stream:
    json.dump({{"status": status.value_nick, "message": str(message or ""),
               "layers": len(image.get_layers()), "dirty": image.is_dirty()}}, stream)
image.delete()
"""


def run_in_gimp(
    gimp: GimpHost,
    profile: Path,
    source: Path,
    output: Path,
    precision: str = "",
    meanwhile: Callable[[subprocess.Popen], None] | None = None,
    **more,
) -> dict:
    """Run the procedure on ``source`` in gimp-console; ``meanwhile`` acts while it runs."""
    scratch = gimp.scratch
    status = scratch / "status.json"
    status.unlink(missing_ok=True)
    args = {
        "input": str(source),
        "output": str(output),
        "status": str(status),
        "precision": precision,
        "more": more,
    }
    snippet = SNIPPET.format(args=json.dumps(args))
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(scratch),
        "GIMP3_DIRECTORY": str(profile),
        "LANG": "C.UTF-8",
    }
    log = scratch / "gimp.log"
    with log.open("w") as output_log:
        process = subprocess.Popen(
            gimp.command("-idf", "--batch-interpreter", "python-fu-eval", "-b", "-", "--quit"),
            stdin=subprocess.PIPE, stdout=output_log, stderr=subprocess.STDOUT, text=True, env=env,
        )  # fmt: skip
        process.stdin.write(snippet)
        process.stdin.close()
        if meanwhile is not None:
            meanwhile(process)
        process.wait(timeout=600)
    said = log.read_text(errors="replace")[-3000:]
    assert status.exists(), f"gimp-console exited {process.returncode}:\n{said}"
    return json.loads(status.read_text())


@pytest.fixture(scope="module")
def profile(gimp):
    profile = gimp.scratch / "profile"
    plugins = installer.gimp_plugins_dir(profile_dir=profile)
    models = save_tiny_models(gimp.scratch / "models")  # where the chroot sees it too
    installer.install_gimp(
        plugins, installer.WorkerOptions(encoders=(str(models["diffusers_folder"]),))
    )
    config_path = plugins / "artcloak-export" / "worker.json"
    config = json.loads(config_path.read_text())
    config["request"].update(device="cpu", steps=3, resolution=64, lpips_random_backbone=True)
    config_path.write_text(json.dumps(config))
    return profile


def test_which_gimp_ran(gimp, record_property):
    """The version each chroot's GIMP reports (in the junit XML and, with -s, on the terminal)."""
    shown = subprocess.run(gimp.command("--version"), capture_output=True, text=True, timeout=60)
    version = shown.stdout.split()[-1] if shown.stdout.split() else ""
    record_property("gimp_version", version)
    print(f"\n{gimp.chroot.suite}: GIMP {version}")
    suite = next(name for name, chroot in CHROOTS.items() if chroot is gimp.chroot)
    assert version.startswith(EXPECTED_VERSION[suite]), shown.stdout + shown.stderr


def test_procedure_exports_a_protected_png(gimp, profile):
    source = gimp.scratch / "art.png"
    pixels = np.random.default_rng(0).integers(0, 256, (40, 48, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:8, :8, 3] = 0  # some transparency, kept
    Image.fromarray(pixels, "RGBA").save(source)
    before = source.read_bytes()
    output = gimp.scratch / "out" / "art-protected.png"
    output.parent.mkdir()
    result = run_in_gimp(gimp, profile, source, output)
    assert result["status"] == "success", result["message"]
    assert source.read_bytes() == before and result["layers"] == 1
    written = Image.open(output)
    assert written.size == (48, 40) and written.mode == "RGBA"
    array = np.asarray(written)
    assert (array[:8, :8, 3] == 0).all()
    diff = np.abs(array[..., :3].astype(int) - pixels[..., :3].astype(int))
    opaque = pixels[..., 3] > 0  # the colour of fully transparent pixels carries nothing
    assert 0 < diff[opaque].max() <= 8
    assert not list((gimp.chroot.path / "tmp").glob("artcloak-gimp-*"))  # GIMP's temp files went


def test_cancel_closes_the_plug_in_and_its_worker_writing_nothing(gimp, profile):
    """GIMP's Cancel on a plug-in's progress closes the plug-in (it kills the process:
    gimp_plug_in_progress_cancel_callback -> gimp_plug_in_close in GIMP's source). Done here
    as GIMP does it, mid-protection: the worker goes too, nothing is written, the image keeps
    its one layer, the original file is unchanged, and the temporary copy of the image the
    closed plug-in left is removed by the next run."""
    source = gimp.scratch / "long.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(source)
    before = source.read_bytes()
    output = gimp.scratch / "long-protected.png"
    config_path = (
        installer.gimp_plugins_dir(profile_dir=profile) / "artcloak-export" / "worker.json"
    )
    config = json.loads(config_path.read_text())
    long = {**config, "request": {**config["request"], "steps": 5000}}
    closed = {}

    def cancel_like_gimp(gimp_console: subprocess.Popen) -> None:
        worker = processes.descendant(gimp_console.pid, "artcloak worker")
        plug_in = processes.parent(worker)
        time.sleep(1)  # well into the protection
        os.kill(plug_in, signal.SIGKILL)
        closed["worker"] = worker

    config_path.write_text(json.dumps(long))
    try:
        result = run_in_gimp(gimp, profile, source, output, meanwhile=cancel_like_gimp)
    finally:
        config_path.write_text(json.dumps(config))
    assert result["status"] != "success" and result["layers"] == 1, result
    deadline = time.monotonic() + 60
    while processes.alive(closed["worker"]):
        assert time.monotonic() < deadline, "the worker outlived its plug-in"
        time.sleep(0.1)
    assert not output.exists() and source.read_bytes() == before
    assert not [p for p in gimp.scratch.iterdir() if p.name.endswith(".tmp")]
    # the closed plug-in could not remove its temporary copy of the image: the next run does
    left = list((gimp.chroot.path / "tmp").glob("artcloak-gimp-*"))
    assert len(left) == 1, left
    again = run_in_gimp(gimp, profile, source, gimp.scratch / "again.png")
    assert again["status"] == "success", again["message"]
    assert not list((gimp.chroot.path / "tmp").glob("artcloak-gimp-*"))


def test_the_texture_shaped_budget_argument_reaches_the_workers_engine(gimp, profile):
    """Issue 35: the procedure's ``adaptive`` argument, set as GIMP sets it, reaches the
    worker's engine (the report says so) and the export stays within the budget."""
    source = gimp.scratch / "shaped.png"
    pixels = np.random.default_rng(1).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(source)
    output = gimp.scratch / "shaped" / "art-shaped.png"
    output.parent.mkdir()
    result = run_in_gimp(gimp, profile, source, output, adaptive=True)
    assert result["status"] == "success", result["message"]
    report = json.loads(Path(f"{output}.json").read_text())
    assert report["settings"]["adaptive"] is True and report["measured"]["within_budget"]
    written = np.asarray(Image.open(output).convert("RGB")).astype(int)
    assert np.abs(written - pixels.astype(int)).max() <= 8


def test_worker_error_becomes_execution_error(gimp, profile):
    source = gimp.scratch / "art2.png"
    Image.new("RGB", (32, 32), (100, 50, 20)).save(source)
    output = gimp.scratch / "shade.png"
    result = run_in_gimp(
        gimp, profile, source, output, **{"target-kind": "style", "style": "nosuchstyle"}
    )
    assert result["status"] == "execution-error"
    assert "nosuchstyle" in result["message"] and not output.exists()  # the worker's words
    assert "Traceback" not in result["message"]


def png_bit_depth(path: Path) -> int:
    return path.read_bytes()[24]  # IHDR's bit depth


def test_sixteen_bit_image_is_not_crushed(gimp, profile):
    source = gimp.scratch / "deep.png"
    Image.fromarray(np.full((40, 48, 3), 140, np.uint8)).save(source)
    output = gimp.scratch / "deep-protected.png"
    result = run_in_gimp(gimp, profile, source, output, precision="U16_NON_LINEAR")
    assert result["status"] == "success", result["message"]
    assert png_bit_depth(output) == 16


def test_too_small_image_error_names_the_image_not_the_temp_file(gimp, profile):
    source = gimp.scratch / "tiny.png"
    Image.new("RGB", (16, 16), (1, 2, 3)).save(source)
    result = run_in_gimp(gimp, profile, source, gimp.scratch / "tiny-protected.png")
    assert result["status"] == "execution-error"
    assert "16 x 16" in result["message"] and "artcloak-gimp-" not in result["message"]
