"""The GIMP 3 plug-in without GIMP: installer, arguments -> request, the worker run
(progress, result, error, cancel) against the real worker, and the plug-in file's shape.

The logic modules (artcloak_gimp.py and the shared client.py) are imported from where
``install_gimp`` put them, next to their copy of protocol.py, so these tests also check the
installed layout. The gi parts
(artcloak-export.py) need real GIMP 3: see tests/test_gimp_real.py when present.
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from artcloak import client as core_client
from artcloak import install as installer
from artcloak import protocol
from artcloak.worker import read_request
from click.testing import CliRunner
from PIL import Image

NAME = "artcloak-export"


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tiny_models):
    profile = tmp_path_factory.mktemp("gimp-profile")
    plugins = installer.gimp_plugins_dir(profile_dir=profile)
    options = installer.WorkerOptions(
        encoders=(str(tiny_models["diffusers_folder"]),), device="cpu"
    )
    report = installer.install_gimp(plugins, options)
    return SimpleNamespace(plugins=plugins, report=report, plugin=plugins / NAME)


SIBLINGS = ("artcloak_gimp", "client", "protocol")  # top-level modules in the plug-in folder


@pytest.fixture(scope="module")
def logic(installed):
    """artcloak_gimp.py, imported from the install folder (with its client.py and protocol.py)."""
    sys.path.insert(0, str(installed.plugin))
    saved = {name: sys.modules.pop(name) for name in SIBLINGS if name in sys.modules}
    try:
        yield importlib.import_module("artcloak_gimp")
    finally:
        sys.path.remove(str(installed.plugin))
        for name in SIBLINGS:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


@pytest.fixture(scope="module")
def client(logic):
    """The installed client.py, as the plug-in imports it (a top-level module)."""
    assert logic.client.__file__.startswith(str(logic.__file__).rsplit(os.sep, 1)[0])
    return logic.client


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "in.png"
    Image.fromarray(np.full((40, 48, 4), 120, np.uint8), "RGBA").save(path)
    return path


# --- installer ---------------------------------------------------------------------------


def test_install_puts_plugin_protocol_client_and_config_in_place(installed, tiny_models):
    files = {p.name for p in installed.plugin.iterdir()}
    assert files == {f"{NAME}.py", "artcloak_gimp.py", "client.py", "protocol.py", "worker.json"}
    script = installed.plugin / f"{NAME}.py"
    assert script.stat().st_mode & stat.S_IXUSR, "GIMP runs only executable plug-ins"
    assert (installed.plugin / "protocol.py").read_text() == Path(protocol.__file__).read_text()
    assert (installed.plugin / "client.py").read_text() == Path(core_client.__file__).read_text()
    config = json.loads((installed.plugin / "worker.json").read_text())
    assert config["python"] == sys.executable
    assert config["request"] == {
        "encoders": [str(Path(tiny_models["diffusers_folder"]).resolve())],
        "device": "cpu",
    }
    text = installed.report.text()
    assert str(installed.plugin) in text and "To undo:" in text and "--uninstall" in text


def test_plugin_files_import_neither_torch_nor_artcloak(installed):
    allowed = set(sys.stdlib_module_names) | {"gi", "protocol", "client", "artcloak_gimp"}
    for path in installed.plugin.glob("*.py"):
        tree = ast.parse(path.read_text(), feature_version=(3, 10))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed, f"{path.name} imports {roots}"
    for logic_file in ("artcloak_gimp.py", "client.py"):
        logic_tree = ast.parse((installed.plugin / logic_file).read_text())
        imported = {
            alias.name for node in ast.walk(logic_tree) if isinstance(node, ast.Import)
            for alias in node.names
        }  # fmt: skip
        assert "gi" not in imported, logic_file


def test_plugin_registers_the_procedure_under_file_export(installed):
    text = (installed.plugin / f"{NAME}.py").read_text()
    assert text.startswith("#!/usr/bin/env python3")
    for piece in (
        "Gimp.PlugIn",
        'add_menu_path("<Image>/File/Export")',
        "Export Protected…",
        "GimpUi.ProcedureDialog",
        "EXECUTION_ERROR",
        "Gimp.progress_update",
        "Gimp.main(",
    ):
        assert piece in text, piece
    for argument in ("output", "protection", "target-kind", "style", "style-image",
                     "anchors", "intensity", "render-quality", "overwrite", "open-result"):  # fmt: skip
        assert f'"{argument}"' in text, argument


def test_gimp_profile_paths_per_system(tmp_path):
    home = Path("/home/a")
    linux = installer.gimp_plugins_dir("Linux", {}, home)
    assert linux == home / ".config" / "GIMP" / "3.0" / "plug-ins"
    assert installer.gimp_plugins_dir("Linux", {"XDG_CONFIG_HOME": "/x"}, home) == Path(
        "/x/GIMP/3.0/plug-ins"
    )
    windows = installer.gimp_plugins_dir("Windows", {"APPDATA": "C:/Users/a/AppData/Roaming"})
    assert windows == Path("C:/Users/a/AppData/Roaming/GIMP/3.0/plug-ins")
    mac = installer.gimp_plugins_dir("Darwin", {}, home)
    assert mac == home / "Library" / "Application Support" / "GIMP" / "3.0" / "plug-ins"
    assert installer.gimp_plugins_dir("Linux", {"GIMP3_DIRECTORY": "/g"}, home) == Path(
        "/g/plug-ins"
    )
    assert installer.gimp_plugins_dir(profile_dir=tmp_path) == tmp_path / "plug-ins"


def test_install_command_and_uninstall(tmp_path):
    runner = CliRunner()
    from artcloak.install import install

    result = runner.invoke(install, ["gimp", "--profile-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    plugin = tmp_path / "plug-ins" / NAME
    assert (plugin / f"{NAME}.py").is_file() and "Export Protected" in result.output
    assert f'--profile-dir "{tmp_path}"' in result.output
    again = runner.invoke(install, ["gimp", "--profile-dir", str(tmp_path)])  # replaces its own
    assert again.exit_code == 0, again.output
    removed = runner.invoke(install, ["gimp", "--profile-dir", str(tmp_path), "--uninstall"])
    assert removed.exit_code == 0 and not plugin.exists()
    assert (tmp_path / "plug-ins").is_dir()  # only our folder went


def test_install_command_imports_no_torch(tmp_path):
    """`artcloak install` (both hosts, and --uninstall) runs without importing torch: it only
    copies files and writes settings, so it is quick and works where torch is broken."""
    script = (
        "import sys\n"
        "from artcloak.cli import main\n"
        "for argv in sys.argv[1:]:\n"
        "    try:\n"
        "        main(argv.split('|'))\n"
        "    except SystemExit as exit:\n"
        "        assert not exit.code, (argv, exit.code)\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    krita = f"install|krita|--resource-dir|{tmp_path / 'r'}|--kritarc|{tmp_path / 'rc'}"
    gimp = f"install|gimp|--profile-dir|{tmp_path / 'g'}"
    commands = [krita, gimp, f"{krita}|--uninstall", f"{gimp}|--uninstall"]
    done = subprocess.run([sys.executable, "-c", script, *commands], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "r").is_dir() and (tmp_path / "g" / "plug-ins").is_dir()


def test_install_refuses_a_folder_it_did_not_make(tmp_path):
    foreign = tmp_path / "plug-ins" / NAME
    foreign.mkdir(parents=True)
    (foreign / "mine.py").write_text("")
    with pytest.raises(installer.InstallError, match="not installed by artcloak"):
        installer.install_gimp(tmp_path / "plug-ins")
    with pytest.raises(installer.InstallError, match="not installed by artcloak"):
        installer.uninstall_gimp(tmp_path / "plug-ins")
    assert (foreign / "mine.py").exists()


# --- arguments -> request -----------------------------------------------------------------


def test_problems_name_each_mistake(logic, client, tmp_path):
    args, problems = logic.Arguments, client.problems
    assert problems(args(output=str(tmp_path / "a.png"))) == []
    assert any("output file" in p for p in problems(args()))
    assert any(".png" in p for p in problems(args(output=str(tmp_path / "a.tif"))))
    assert any("folder" in p for p in problems(args(output="/no/such/dir/a.png")))
    same = tmp_path / "art.png"
    assert any("replace" in p for p in problems(args(output=str(same)), str(same)))
    out = str(tmp_path / "o.png")
    assert any("style" in p for p in problems(args(output=out, target_kind="style")))
    assert any("style image" in p for p in problems(args(output=out, target_kind="image")))
    assert any("anchor" in p for p in problems(args(output=out, mode="shade")))
    missing = problems(args(output=out, mode="shade", anchors=["/no/cow.png"]))
    assert any("/no/cow.png" in p for p in missing)
    assert any("protection" in p for p in problems(args(output=out, mode="blur")))
    assert any("intensity" in p for p in problems(args(output=out, intensity="max")))


def test_split_paths(logic):
    text = f"/a.png\n /b.png \n\n/c.png{os.pathsep}/d.png"
    assert logic.split_paths(text) == ["/a.png", "/b.png", "/c.png", "/d.png"]


def test_build_request_for_each_target(logic, client, installed, tmp_path, source):
    config = client.WorkerConfig.load(str(installed.plugin), "gimp")
    out = str(tmp_path / "o.png")
    auto = client.build_request(logic.Arguments(output=out), str(source), config)
    assert (auto.settings["mode"], auto.settings["style"], auto.settings["anchors"]) == (
        "cloak",
        None,
        [],
    )
    assert auto.settings["device"] == "cpu" and len(auto.settings["encoders"]) == 1  # worker.json
    named = client.build_request(
        logic.Arguments(output=out, target_kind="style", style=" marble "), str(source), config
    )
    assert named.settings["style"] == "marble"
    image = client.build_request(
        logic.Arguments(output=out, target_kind="image", style_image=str(source)),
        str(source),
        config,
    )
    assert image.settings["style"] == str(source)
    shade = client.build_request(
        logic.Arguments(output=out, mode="shade", anchors=[str(source)], intensity="high"),
        str(source),
        config,
    )
    assert shade.settings["anchors"] == [str(source)] and shade.settings["style"] is None
    assert shade.settings["intensity"] == "high"
    assert json.loads(shade.to_json())["anchors"] == [str(source)]  # flat on the wire
    # what the plug-in sends is what the worker accepts
    assert protocol.WorkerRequest.from_json(shade.to_json()).settings["anchors"] == [str(source)]
    request, run, _ = read_request(shade.to_json())
    protection = run.asked
    assert request.input == str(source) and protection.intensity.value == "high"
    with pytest.raises(client.PluginError, match="output file"):
        client.build_request(logic.Arguments(), str(source), config)


def test_worker_config_errors_say_what_to_do(client, tmp_path):
    with pytest.raises(client.PluginError, match="artcloak install gimp"):
        client.WorkerConfig.load(str(tmp_path), "gimp")
    (tmp_path / "worker.json").write_text('{"python": "p", "request": {"version": 1}}')
    with pytest.raises(client.PluginError, match="reinstall the plug-in"):
        client.WorkerConfig.load(str(tmp_path), "gimp")


# --- protocol lines -> outcome --------------------------------------------------------------


def test_events_and_outcomes(client):
    seen_progress = []
    lines = [
        protocol.encode(protocol.progress("load", 0, 0, "Loading the encoder")),
        "some stray log line",
        protocol.encode(protocol.progress("optimise", 2, 4)),
        protocol.encode(protocol.notice("Saved as PNG.")),
        protocol.encode(protocol.result("/o.png", lpips=0.01, linf_255=3, seconds=1.5)),
    ]

    def session(lines, on_progress=None):
        read = client.WorkerSession(on_progress=on_progress)
        read.feed("\n".join(lines))
        return read

    outcome = session(lines, seen_progress.append).finish(0)
    assert [e["stage"] for e in seen_progress] == ["load", "optimise"]
    assert client.progress_fraction(seen_progress[0]) is None
    assert client.progress_fraction(seen_progress[1]) == 0.5
    assert client.progress_text(seen_progress[1]) == "Protecting: step 2 of 4"
    assert client.progress_text(seen_progress[0]) == "Loading the encoder"
    assert outcome.kind == "result" and outcome.notices == ["Saved as PNG."]
    text = client.describe_result(
        outcome.result, client.read_report(outcome.result), outcome.notices
    )
    assert "/o.png" in text and "0.0100" in text and "3/255" in text and "Saved as PNG." in text
    # a result without exit 0 is not a result
    assert session(lines).finish(1).kind == "error"
    error = session([protocol.encode(protocol.error("The image is empty."))])
    assert error.finish(2).message == "The image is empty."
    crashed = session(["boom"]).finish(-9, "Killed\n")
    assert crashed.kind == "error" and "crashed" in crashed.message and "Killed" in crashed.message


def test_messages_name_the_image_not_the_temp_copy(client):
    said = client.for_people(
        "/tmp/artcloak-gimp-x/image.png is too small.", "/tmp/artcloak-gimp-x/image.png", "art.xcf"
    )
    assert said == "art.xcf is too small."
    assert client.for_people("/t/i.png is empty", "/t/i.png", "") == "The image is empty"


def test_missing_python_says_how_to_fix(logic, client, tmp_path, source):
    request = client.protocol.WorkerRequest(input=str(source), output=str(tmp_path / "o.png"))
    outcome = client.run_worker(str(tmp_path / "no-python"), request, host=logic.HOST)
    assert outcome.kind == "error" and "artcloak install gimp" in outcome.message


def test_worker_environment_drops_gimp_python(client):
    env = client.worker_environment({"PYTHONPATH": "/gimp", "PYTHONHOME": "/g", "HOME": "/h"})
    assert env == {"HOME": "/h", "PYTHONIOENCODING": "utf-8"}


def test_temp_folder_is_removed(logic):
    with logic.TempFolder() as folder:
        Path(folder, "image.png").write_bytes(b"x")
    assert not os.path.exists(folder)


# --- the real worker -----------------------------------------------------------------------


def tiny(request):
    request.settings.update(steps=3, resolution=64, lpips_random_backbone=True)
    return request


def test_real_worker_result_and_error(logic, client, installed, tmp_path, source):
    config = client.WorkerConfig.load(str(installed.plugin), "gimp")
    before = source.read_bytes()
    request = tiny(
        client.build_request(logic.Arguments(output=str(tmp_path / "out.png")), str(source), config)
    )
    progress = []
    outcome = client.run_worker(config.python, request, progress.append, host=logic.HOST)
    assert outcome.kind == "result", outcome.message
    assert progress and Image.open(tmp_path / "out.png").size == (48, 40)
    assert outcome.result["linf_255"] <= 8 and source.read_bytes() == before
    anchor = tmp_path / "cow.png"
    args = logic.Arguments(output=str(tmp_path / "s.png"), mode="shade", anchors=[str(anchor)])
    Image.new("RGB", (8, 8)).save(anchor)
    request = tiny(client.build_request(args, str(source), config))
    anchor.unlink()  # gone by the time the worker looks
    outcome = client.run_worker(config.python, request, host=logic.HOST)
    assert outcome.kind == "error" and "cow.png" in outcome.message, outcome.message
    assert "Traceback" not in outcome.message and not (tmp_path / "s.png").exists()


def test_real_worker_cancel_leaves_no_output(logic, client, installed, tmp_path, source):
    config = client.WorkerConfig.load(str(installed.plugin), "gimp")
    (tmp_path / "out").mkdir()
    args = logic.Arguments(output=str(tmp_path / "out" / "art.png"))
    request = tiny(client.build_request(args, str(source), config))
    request.settings["steps"] = 5000
    progress = []
    outcome = client.run_worker(
        config.python,
        request,
        progress.append,
        cancelled=lambda: any(e.get("stage") == "optimise" for e in progress),
        host=logic.HOST,
    )
    assert outcome.kind == "cancelled"
    assert list((tmp_path / "out").iterdir()) == []


def test_the_texture_shaped_budget_is_an_argument_that_reaches_the_workers_engine(
    logic, client, installed, tmp_path, source
):
    """Issue 35: the procedure has a texture-shaped budget argument (a check box in its
    dialog), off by default and in the words every host uses; turned on, the worker's engine
    protects with it and the report says so."""
    text = (installed.plugin / f"{NAME}.py").read_text()
    tuples = [node for node in ast.walk(ast.parse(text)) if isinstance(node, ast.Tuple)]
    (argument,) = [item for item in tuples
                   if len(item.elts) > 1 and getattr(item.elts[1], "value", None) == "adaptive"]  # fmt: skip
    kind, _, label, help_text, default = (ast.unparse(item) for item in argument.elts)
    assert (kind, default) == ("'boolean'", "False")
    assert (label, help_text) == ("client.protocol.ADAPTIVE_LABEL", "client.protocol.ADAPTIVE_HELP")
    assert 'adaptive=config.get_property("adaptive")' in text
    assert logic.Arguments().adaptive is False
    config = client.WorkerConfig.load(str(installed.plugin), "gimp")
    args = logic.Arguments(output=str(tmp_path / "out.png"), adaptive=True)
    request = client.build_request(args, str(source), config)
    assert read_request(request.to_json())[1].asked.adaptive is True
    outcome = client.run_worker(config.python, tiny(request), host=logic.HOST)
    assert outcome.kind == "result", outcome.message
    assert outcome.result["linf_255"] <= 8
    assert client.read_report(outcome.result)["settings"]["adaptive"] is True
