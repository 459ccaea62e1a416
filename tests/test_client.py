"""client.py, the worker client both editor plugins share: stdlib only, importable as a copied
sibling of protocol.py (inside a plugin package, or as a top-level module), and its logic
(choices -> request, a worker process -> outcome) without an editor.

The plugins' own tests (test_krita_plugin.py, test_gimp_plugin.py) run it from where the
installer put it, against the real worker; here a stand-in worker (a shell script) makes
every ending quick to reach.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from artcloak import client, protocol

CLIENT_FILE = Path(client.__file__)
PROTOCOL_FILE = Path(protocol.__file__)
needs_sh = pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")


def test_client_module_uses_only_the_standard_library_and_protocol():
    tree = ast.parse(CLIENT_FILE.read_text(), feature_version=(3, 8))  # Krita 5.1 bundles 3.8+
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # only its sibling: the file is copied next to protocol.py
                assert (node.level, node.module) == (1, None), ast.dump(node)
                assert [alias.name for alias in node.names] == ["protocol"]
            else:
                imported.add(node.module.split(".")[0])
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    assert imported - stdlib == {"protocol"}  # the top-level sibling, in GIMP's plug-in folder
    assert "torch" not in imported and "artcloak" not in imported


def _run_isolated(folder: Path, script: str) -> str:
    """Run ``script`` in a Python without site-packages (no torch, no artcloak)."""
    run = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=folder, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    return run.stdout.strip()


def test_client_runs_as_a_top_level_sibling_of_protocol(tmp_path):
    """GIMP: the plug-in folder is on sys.path; client imports the protocol beside it."""
    shutil.copy(PROTOCOL_FILE, tmp_path / "protocol.py")
    shutil.copy(CLIENT_FILE, tmp_path / "client.py")
    script = (
        "import client, protocol, sys;"
        "assert client.protocol is protocol, client.protocol;"
        "assert 'artcloak' not in sys.modules and 'torch' not in sys.modules;"
        "r = client.build_request(client.Choices(output='o.png'), 'i.png',"
        " client.WorkerConfig(python='p', request={'device': 'cpu'}));"
        "print(r.to_json())"
    )
    wire = json.loads(_run_isolated(tmp_path, script))
    assert wire["device"] == "cpu" and wire["mode"] == "cloak" and wire["version"] == 2


def test_client_runs_inside_a_plugin_package(tmp_path):
    """Krita: the plugin is a package; client imports its sibling relatively."""
    package = tmp_path / "some_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    shutil.copy(PROTOCOL_FILE, package / "protocol.py")
    shutil.copy(CLIENT_FILE, package / "client.py")
    script = (
        "import sys; from some_plugin import client, protocol;"
        "assert client.protocol is protocol;"
        "assert 'protocol' not in sys.modules and 'artcloak' not in sys.modules;"
        "print(client.progress_text({'stage': 'optimise', 'step': 1, 'total': 4}))"
    )
    assert _run_isolated(tmp_path, script) == "Protecting: step 1 of 4"


def test_inside_the_package_it_uses_the_package_protocol():
    assert client.protocol is protocol


# --- choices -> request ----------------------------------------------------------------


def test_choices_win_over_worker_json_defaults(tmp_path):
    anchor = tmp_path / "cow.png"
    anchor.write_bytes(b"x")
    config = client.WorkerConfig(
        python="p",
        request={"device": "cpu", "mode": "cloak", "intensity": "low", "diffusion_enabled": False},
    )
    choices = client.Choices(output=str(tmp_path / "o.png"), mode="shade", anchors=[str(anchor)])
    request = client.build_request(choices, "/t/in.png", config)
    assert request.settings == {
        "device": "cpu",
        "diffusion_enabled": False,
        "mode": "shade",
        "style": None,
        "anchors": [str(anchor)],
        "intensity": "default",
        "quality": "default",
    }
    assert (request.input, request.output, request.overwrite) == (
        "/t/in.png",
        str(tmp_path / "o.png"),
        False,
    )
    wire = json.loads(request.to_json())
    assert wire["diffusion_enabled"] is False and "settings" not in wire  # one flat object


def test_envelope_names_in_defaults_are_never_sent(tmp_path):
    config = client.WorkerConfig(python="p", request={"version": 1, "input": "x", "seed": 3})
    request = client.build_request(client.Choices(output=str(tmp_path / "o.png")), "i", config)
    assert request.version == protocol.PROTOCOL_VERSION and request.input == "i"
    assert request.settings["seed"] == 3


def test_request_paths_are_absolute_and_the_style_trimmed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("style.png").write_bytes(b"x")
    config = client.WorkerConfig(python="p")
    image = client.build_request(
        client.Choices(output=" o.png ", target_kind="image", style_image="style.png"), "i", config
    )
    assert image.output == str(tmp_path / "o.png")
    assert image.settings["style"] == str(tmp_path / "style.png")
    named = client.build_request(
        client.Choices(output="o.png", target_kind="style", style=" ink "), "i", config
    )
    assert named.settings["style"] == "ink"


def test_every_problem_is_named_at_once(tmp_path):
    choices = client.Choices(output="", mode="shade", intensity="max", quality="best")
    found = client.problems(choices)
    assert len(found) == 4
    assert any("anchor" in p for p in found) and any("intensity" in p for p in found)
    assert any("quality" in p for p in found) and "Choose the output file." in found
    with pytest.raises(client.PluginError) as refused:
        client.build_request(choices, "i", client.WorkerConfig(python="p"))
    assert str(refused.value).split("\n") == found


def test_worker_config_load(tmp_path):
    with pytest.raises(client.PluginError, match="artcloak install gimp"):
        client.WorkerConfig.load(str(tmp_path), "gimp")
    (tmp_path / "worker.json").write_text(
        json.dumps(
            {"python": "/py", "styles": ["ink"], "request": {"device": "cpu"}, "artcloak": "0.1.0"}
        )  # fmt: skip
    )
    config = client.WorkerConfig.load(str(tmp_path), "krita")
    assert (config.python, config.styles, config.request, config.artcloak) == (
        "/py",
        ["ink"],
        {"device": "cpu"},
        "0.1.0",
    )
    (tmp_path / "worker.json").write_text('{"python": "/py", "styles": [], "artcloak": 3}')
    config = client.WorkerConfig.load(str(tmp_path), "krita")
    assert config.styles == list(client.DEFAULT_STYLES) and config.artcloak == ""


# --- a worker process -> outcome ------------------------------------------------------------


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable that stands in for the worker's Python: it ignores its arguments,
    keeps the request it read and runs ``body`` (sh)."""
    path = tmp_path / "fake-python"
    path.write_text("#!/bin/sh\n" + f'cat > "{tmp_path}/request.json"\n' + textwrap.dedent(body))
    path.chmod(0o755)
    return str(path)


def line(event: dict) -> str:
    return protocol.encode(event).replace("'", "'\"'\"'")  # quoted for sh's '...'


def a_request(tmp_path: Path) -> protocol.WorkerRequest:
    return client.build_request(
        client.Choices(output=str(tmp_path / "o.png")),
        "in.png",
        client.WorkerConfig(python="p", request={"device": "cpu"}),
    )


@needs_sh
def test_run_worker_sends_the_request_and_reads_the_result(tmp_path):
    python = fake_python(
        tmp_path,
        f"""
        echo '{line(protocol.progress("load", 0, 1, "Loading models"))}'
        echo 'library chatter'
        echo '{line(protocol.progress("optimise", 3, 4, budget_used=0.25))}'
        echo '{line(protocol.notice("ICC profile kept"))}'
        echo '{line(protocol.result("/o.png", lpips=0.02, seconds=1.0))}'
        """,
    )
    progress = []
    sent = a_request(tmp_path)
    outcome = client.run_worker(python, sent, progress.append, host="gimp")
    assert outcome.kind == "result" and outcome.result["output"] == "/o.png"
    assert outcome.notices == ["ICC profile kept"]
    assert [client.progress_text(e) for e in progress] == [
        "Loading models",
        "Protecting: step 3 of 4 (budget used 25%)",
    ]
    assert client.progress_fraction(progress[1]) == 0.75
    before = protocol.progress("optimise", 0, 50, seconds_left=372.0)
    assert client.progress_text(before) == "Protecting: step 0 of 50, about 6 min left (estimated)"
    reading = protocol.progress("file", 1, 1, "/tmp/artcloak-krita-x/input.png")
    assert client.progress_text(reading) == "Reading the image"  # not the temporary path
    after = protocol.progress("optimise", 9, 20, seconds_left=41.2)
    assert client.progress_text(after) == "Protecting: step 9 of 20, about 41 s left"
    received = json.loads((tmp_path / "request.json").read_text())
    assert protocol.WorkerRequest.from_wire(received) == sent


@needs_sh
def test_run_worker_reports_the_worker_error_and_its_last_words(tmp_path):
    errored = fake_python(
        tmp_path, f"echo '{line(protocol.error('No such style: ink.'))}'\nexit 1\n"
    )
    assert client.run_worker(errored, a_request(tmp_path), host="gimp").message == (
        "No such style: ink."
    )
    died = fake_python(
        tmp_path, "echo 'Traceback (most recent call last):' >&2\necho boom >&2\nexit 3\n"
    )
    outcome = client.run_worker(died, a_request(tmp_path), host="gimp")
    assert outcome.kind == "error" and "exit status 3" in outcome.message
    assert outcome.message.endswith("boom")
    killed = fake_python(tmp_path, f"echo '{line(protocol.result('/o.png'))}'\nkill -9 $$\n")
    outcome = client.run_worker(killed, a_request(tmp_path), host="gimp")
    assert outcome.kind == "error" and "(crashed)" in outcome.message  # no exit 0, no result


@needs_sh
def test_run_worker_cancel_terminates_the_worker(tmp_path):
    python = fake_python(
        tmp_path,
        f"""
        while true; do
          echo '{line(protocol.progress("optimise", 1, 9))}'
          sleep 0.05
        done
        """,
    )
    seen = []
    outcome = client.run_worker(
        python, a_request(tmp_path), seen.append, cancelled=lambda: len(seen) >= 2, host="krita"
    )
    assert outcome.kind == "cancelled" and outcome.message.startswith("Cancelled")
    assert len(seen) == 2


def test_run_worker_without_a_python_says_how_to_fix(tmp_path):
    outcome = client.run_worker(str(tmp_path / "no-python"), a_request(tmp_path), host="krita")
    assert outcome.kind == "error"
    assert "Could not start the artcloak worker" in outcome.message
    assert "artcloak install krita" in outcome.message


def test_worker_environment_keeps_the_callers_and_drops_the_editors_python():
    env = {"PYTHONHOME": "/k", "PATH": "/bin", "APPDIR": "/app",
           "LD_LIBRARY_PATH": os.pathsep.join(["/app/lib", "/opt/lib"])}  # fmt: skip
    clean = client.worker_environment(env)
    assert clean == {"PATH": "/bin", "APPDIR": "/app", "LD_LIBRARY_PATH": "/opt/lib",
                     "PYTHONIOENCODING": "utf-8"}  # fmt: skip
    assert env["PYTHONHOME"] == "/k"
    only_bundled = client.worker_environment({"APPDIR": "/app", "LD_LIBRARY_PATH": "/app/lib"})
    assert "LD_LIBRARY_PATH" not in only_bundled


def test_result_text_reads_the_report_for_the_budget(tmp_path):
    report = tmp_path / "o.png.json"
    report.write_text(json.dumps({"settings": {"budget": {"lpips": 0.05, "eps_255": 8}}}))
    result = protocol.result("/o.png", report=str(report), lpips=0.01, linf_255=4.0)
    text = client.describe_result(result, client.read_report(result), ["Saved as 8-bit."])
    assert "(budget 0.05)" in text and "4/255 (budget 8/255)" in text
    assert text.endswith("Saved as 8-bit.")
    assert client.read_report({"report": str(tmp_path / "missing.json")}) == {}
    assert "budget" not in client.describe_result(result)


@pytest.mark.skipif(os.name != "posix", reason="reclaiming needs a harmless liveness check")
def test_a_temp_folder_left_by_a_dead_plugin_is_reclaimed(tmp_path, monkeypatch):
    """A plug-in GIMP closed (or a host that crashed) leaves its copy of the image in its
    temporary folder; the next plug-in run removes it, never a running process's folder."""
    from artcloak import client

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    left = tmp_path / f"artcloak-gimp-{dead}-abc"
    live = tmp_path / f"artcloak-gimp-{os.getppid()}-def"  # the test runner's parent: running
    other = tmp_path / "artcloak-gimp-unnamed"  # an older scheme's: kept
    for folder in (left, live, other):
        folder.mkdir()
        (folder / "image.png").write_bytes(b"a copy of the artwork")
    made = Path(client.private_temp_folder("artcloak-gimp-"))
    assert made.is_dir() and made.name.startswith(f"artcloak-gimp-{os.getpid()}-")
    assert not left.exists() and live.exists() and other.exists()


def test_the_texture_shaped_budget_is_the_artists_choice(tmp_path):
    """Issue 35: sent only when ticked (off is the core's default), whatever worker.json says."""
    config = client.WorkerConfig(python="p", request={"adaptive": True, "device": "cpu"})
    output = str(tmp_path / "o.png")
    off = client.build_request(client.Choices(output=output), "i", config)
    assert "adaptive" not in off.settings and off.settings["device"] == "cpu"
    on = client.build_request(client.Choices(output=output, adaptive=True), "i", config)
    assert on.settings["adaptive"] is True
