"""The Krita plugin's Qt side under PyQt5 (Krita 5) and PyQt6 (Krita 6), without Krita.

One subprocess per binding (so PyQt5 and PyQt6 never meet in one process; the other one is
made unimportable there), offscreen (QT_QPA_PLATFORM=offscreen), runs
tests/krita_stub/qt_driver.py: the installed plugin registers its extension with the
stand-in ``krita`` module, adds File > Export Protected… to a real QMainWindow's File menu,
and each run triggers it, fills the real dialog, and runs a real ``artcloak worker`` on the
tiny model through the runner's QProcess and progress dialog (result, refusal, a Python
that cannot start, Cancel). Real Krita 5 runs the same plugin in tests/test_krita_real.py.

Needs PyQt5 / PyQt6 from PyPI (the dev extra); each binding is skipped, saying so, where its
wheel is not installed.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from artcloak import install as installer
from PIL import Image

DRIVER = Path(__file__).parent / "krita_stub" / "qt_driver.py"
SESSION_TIMEOUT_S = 240
EPS_255 = 8  # the default intensity's L-inf budget


def art(path: Path) -> np.ndarray:
    v, u = np.mgrid[0:40, 0:48] / 48
    rgb = np.stack([0.5 + 0.4 * np.sin(6 * u + 4 * v + p) for p in (0.2, 2.1, 4.0)], -1)
    alpha = np.full((40, 48, 1), 1.0)
    alpha[:8, :8] = 0.0  # a transparent corner
    pixels = (np.concatenate([rgb, alpha], -1) * 255).round().astype(np.uint8)
    Image.fromarray(pixels, "RGBA").save(path)
    return pixels


@pytest.fixture(scope="module", params=["PyQt5", "PyQt6"])
def session(request, tmp_path_factory, tiny_models):
    api = request.param
    if importlib.util.find_spec(api) is None:
        pytest.skip(f"{api} is not installed in this Python (pip install {api}: the dev extra)")
    root = tmp_path_factory.mktemp(api)
    locations = installer.krita_locations(resource_dir=root / "krita", kritarc=root / "kritarc")
    options = installer.WorkerOptions(
        encoders=(str(tiny_models["diffusers_folder"]),), device="cpu"
    )
    installer.install_krita(locations, options)
    config_path = locations.pykrita / "artcloak_export" / "worker.json"
    config = json.loads(config_path.read_text())
    config["request"].update(steps=3, resolution=64, lpips_random_backbone=True)
    config_path.write_text(json.dumps(config))

    out, tmp = root / "out", root / "tmp"
    out.mkdir()
    tmp.mkdir()
    pixels = art(root / "art.png")
    (out / "art-protected.png").write_bytes(b"an older export, to be replaced")
    job = {
        "result_file": str(root / "result.json"),
        "timeout_s": SESSION_TIMEOUT_S - 30,
        "runs": [
            {
                "name": "result",
                "document": str(root / "art.png"),
                "file_name": str(root / "art.kra"),
                "form": {
                    "mode": "cloak",
                    "target_kind": "style",
                    "style": "marble",
                    "output": str(out / "art-protected.png"),
                },
            },  # fmt: skip
            {
                "name": "adaptive",
                "document": str(root / "art.png"),
                "form": {"adaptive": True, "output": str(out / "art-shaped.png")},
            },
            {
                "name": "refused",
                "document": str(root / "art.png"),
                "form": {"output": str(root / "no-such-folder" / "x.png")},
            },
            {
                "name": "no_python",
                "document": str(root / "art.png"),
                "worker_python": str(root / "no-such-python"),
                "form": {"output": str(out / "no-python.png")},
            },
            {
                "name": "cancel",
                "document": str(root / "art.png"),
                "worker_request": {"steps": 5000},
                "cancel": True,
                "form": {"output": str(out / "cancelled.webp"), "format": "webp"},
            },
        ],
    }
    (root / "job.json").write_text(json.dumps(job))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TMPDIR": str(tmp)}
    env.pop("PYTHONPATH", None)
    process = subprocess.run(
        [sys.executable, str(DRIVER), api, str(locations.pykrita), str(root / "job.json")],
        env=env,
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
    )
    output = f"exit {process.returncode}\n{process.stdout[-3000:]}\n{process.stderr[-3000:]}"
    result = root / "result.json"
    assert result.is_file(), f"the {api} driver wrote no result:\n{output}"
    record = json.loads(result.read_text())
    assert record["errors"] == [], "\n".join(record["errors"]) + output
    print(f"\n{api} {record['pyqt_version']} on Qt {record['qt_version']}")
    return {
        "api": api,
        "record": record,
        "runs": {run["name"]: run for run in record["runs"]},
        "root": root,
        "out": out,
        "tmp": tmp,
        "pixels": pixels,
        "exit": process.returncode,
        "stderr": process.stderr,
    }


def assert_document_untouched(run):
    assert run["after"] == run["before"]  # pixels, modified flag, file name, batch mode


def test_one_binding_per_process(session):
    record = session["record"]
    assert record["qt_api"] == session["api"]
    assert record["bindings_loaded"] == [session["api"]]
    assert record["qt_version"].startswith("6." if session["api"] == "PyQt6" else "5.")
    assert session["exit"] == 0, session["stderr"][-3000:]


def test_action_sits_after_export_in_the_file_menu(session):
    entries = session["record"]["file_menu"]
    assert entries.index("artcloak_export_protected") == entries.index("file_export_file") + 1


def test_export_shows_progress_and_writes_the_protected_file(session):
    run = session["runs"]["result"]
    assert run["suggested_output"] == str(session["root"] / "art-cloaked.png")
    assert run["dialog_values"]["style"] == "marble" and run["format_warning"] == ""
    replace, done = run["messages"]
    assert "already exists. Replace it?" in replace["text"]  # answered Yes
    assert run["outcome"]["kind"] == "result", run["outcome"]
    labels = [label for label, _, _ in run["events"]]
    assert any(label.startswith("Protecting: step") for label in labels), labels
    steps = [(value, maximum) for label, value, maximum in run["events"] if "step" in label]
    assert all(maximum == 1000 for _, maximum in steps)  # a bar: the fraction done, in 1000ths
    values = [value for value, _ in steps]
    assert values == sorted(values) and values[-1] == 1000, steps
    assert any(maximum == 0 for _, _, maximum in run["events"])  # busy while models load
    assert "Protected image saved" in done["text"] and "budget 0.05" in done["text"]
    output = session["out"] / "art-protected.png"
    protected = np.asarray(Image.open(output))
    original = session["pixels"]
    assert protected.shape == original.shape
    np.testing.assert_array_equal(protected[..., 3], original[..., 3])
    visible = original[..., 3] > 0
    change = np.abs(protected[..., :3].astype(int) - original[..., :3].astype(int))[visible]
    assert 0 < change.max() <= EPS_255
    report = json.loads((session["out"] / "art-protected.png.json").read_text())
    assert report["target"]["style"] == "marble"
    assert run["opened"] == [str(output)]  # "Open the result as a new document"
    assert run["progress_dialogs_left"] == [] and run["temp_left"] == []
    assert_document_untouched(run)
    remembered = json.loads(session["record"]["settings"]["artcloak_export/form"])
    assert remembered["output_folder"] == str(session["out"])


def test_the_texture_shaped_budget_ticked_in_the_dialog_reaches_the_worker(session):
    """Issue 35: the dialog's check box, in the words every host uses, off unless ticked;
    ticked, the worker's engine protects with the texture-shaped budget."""
    from artcloak import protocol

    run = session["runs"]["adaptive"]
    assert run["adaptive_box"] == [protocol.ADAPTIVE_LABEL, protocol.ADAPTIVE_HELP]
    assert session["runs"]["result"]["dialog_values"]["adaptive"] is False
    assert run["dialog_values"]["adaptive"] is True
    assert run["outcome"]["kind"] == "result", run["outcome"]
    report = json.loads((session["out"] / "art-shaped.png.json").read_text())
    assert report["settings"]["adaptive"] is True and report["measured"]["within_budget"]
    flat = json.loads((session["out"] / "art-protected.png.json").read_text())
    assert flat["settings"]["adaptive"] is False
    assert run["progress_dialogs_left"] == [] and run["temp_left"] == []
    assert_document_untouched(run)


def test_dialog_refuses_a_missing_folder_and_nothing_runs(session):
    run = session["runs"]["refused"]
    (message,) = run["messages"]
    assert "does not exist" in message["text"]
    assert run["outcome"] is None and run["before"] == run["after"]
    assert run["temp_left"] == []


def test_a_worker_python_that_cannot_start_is_one_message(session):
    run = session["runs"]["no_python"]
    assert run["outcome"]["kind"] == "error"
    (message,) = run["messages"]
    assert "Could not start the artcloak worker" in message["text"]
    assert "artcloak install krita" in message["text"] and "Traceback" not in message["text"]
    assert not (session["out"] / "no-python.png").exists()
    assert run["progress_dialogs_left"] == [] and run["temp_left"] == []


def test_cancel_stops_the_worker_and_leaves_nothing(session):
    run = session["runs"]["cancel"]
    assert "weakens the protection" in run["format_warning"]  # WebP was chosen
    assert run["cancelled"] is True
    assert run["outcome"]["kind"] == "cancelled", run["outcome"]
    (message,) = run["messages"]
    assert message["text"].startswith("Cancelled")
    assert not any(p.name.startswith("cancelled") for p in session["out"].iterdir())
    assert run["progress_dialogs_left"] == [] and run["temp_left"] == []
    assert_document_untouched(run)


SHIM_PROBE = """
import importlib, sys
importlib.import_module(sys.argv[1] + ".QtCore")  # what Krita's own `krita` module does first
sys.path.insert(0, sys.argv[2])
from artcloak_export import qt
print(qt.QT_API, sorted(m for m in ("PyQt5", "PyQt6") if m in sys.modules))
"""


@pytest.mark.parametrize("host_api", ["PyQt5", "PyQt6"])
def test_the_shim_takes_the_binding_krita_loaded(host_api, tmp_path):
    """Where both bindings are installed (a system Python with PyQt5 beside Krita 6's
    PyQt6), the plugin must use the Qt that Krita runs, never load the other into it."""
    missing = [api for api in ("PyQt5", "PyQt6") if importlib.util.find_spec(api) is None]
    if missing:
        pytest.skip(f"needs both PyQt5 and PyQt6 installed; {', '.join(missing)} is not")
    locations = installer.krita_locations(resource_dir=tmp_path / "krita", kritarc=tmp_path / "rc")
    installer.install_krita(locations)
    probe = subprocess.run(
        [sys.executable, "-c", SHIM_PROBE, host_api, str(locations.pykrita)],
        env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split(maxsplit=1) == [host_api, f"['{host_api}']\n"]
