"""The Krita plugin without Krita: installer, dialog values -> request, the worker session
(progress, result, error, cancel) against the real worker, and the document side with a
stand-in ``krita`` module (tests/krita_stub/krita.py).

The plugin is imported from where ``install_krita`` put it, so these tests also check the
installed layout (the plugin next to its copies of protocol.py and client.py). The Qt parts (dialog.py,
runner.py, extension.py) run in tests/test_krita_qt.py (under PyQt5 and PyQt6, with the stand-in
``krita`` module) and in tests/test_krita_real.py (inside real Krita).
"""

from __future__ import annotations

import ast
import importlib
import json
import os
import signal
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

STUB = Path(__file__).parent / "krita_stub"
PLUGIN_MODULES = ("form", "client", "document", "qt", "dialog", "runner", "extension")


@pytest.fixture(scope="module")
def installed(tmp_path_factory, tiny_models):
    root = tmp_path_factory.mktemp("profile")
    locations = installer.krita_locations(resource_dir=root / "krita", kritarc=root / "kritarc")
    options = installer.WorkerOptions(
        encoders=(str(tiny_models["diffusers_folder"]),), device="cpu"
    )
    report = installer.install_krita(locations, options)
    return SimpleNamespace(
        locations=locations, report=report, plugin=locations.pykrita / "artcloak_export"
    )


@pytest.fixture(scope="module")
def plugin(installed):
    """The installed plugin's Qt-free modules, imported from the install folder."""
    sys.path.insert(0, str(installed.locations.pykrita))
    try:
        modules = {
            name: importlib.import_module(f"artcloak_export.{name}") for name in PLUGIN_MODULES[:3]
        }
        package = importlib.import_module("artcloak_export")
        yield SimpleNamespace(package=package, **modules)
    finally:
        sys.path.remove(str(installed.locations.pykrita))
        for name in [
            n for n in sys.modules if n == "artcloak_export" or n.startswith("artcloak_export.")
        ]:
            del sys.modules[name]


@pytest.fixture
def krita_stub(monkeypatch):
    monkeypatch.syspath_prepend(str(STUB))
    monkeypatch.delitem(sys.modules, "krita", raising=False)
    import krita

    yield krita
    sys.modules.pop("krita", None)


# --- installer ---------------------------------------------------------------------------


def test_install_puts_plugin_protocol_client_and_config_in_place(installed, tiny_models):
    pykrita = installed.locations.pykrita
    files = {p.name for p in installed.plugin.iterdir()}
    assert {f"{m}.py" for m in PLUGIN_MODULES} | {
        "__init__.py",
        "protocol.py",
        "worker.json",
    } <= files
    assert (installed.plugin / "protocol.py").read_text() == Path(protocol.__file__).read_text()
    assert (installed.plugin / "client.py").read_text() == Path(core_client.__file__).read_text()
    desktop = (pykrita / "artcloak_export.desktop").read_text()
    assert "X-KDE-Library=artcloak_export" in desktop and "Krita/PythonPlugin" in desktop
    config = json.loads((installed.plugin / "worker.json").read_text())
    assert config["python"] == sys.executable
    assert config["request"] == {
        "encoders": [str(tiny_models["diffusers_folder"])],
        "device": "cpu",
    }
    assert "weave" in config["styles"]
    assert "[python]\nenable_artcloak_export=true\n" in installed.locations.kritarc.read_text()
    text = installed.report.text()
    assert "To undo:" in text and "artcloak install krita --uninstall" in text
    assert str(installed.plugin) in text and sys.executable in text


def test_installed_plugin_imports_neither_torch_nor_artcloak(installed):
    allowed = set(sys.stdlib_module_names) | {"krita", "PyQt5", "PyQt6"}
    for path in installed.plugin.glob("*.py"):
        tree = ast.parse(path.read_text(), feature_version=(3, 8))  # Krita 5.1 bundles 3.8+
        # client.py's fallback for GIMP, where protocol.py is a top-level sibling module
        allowed_here = allowed | ({"protocol"} if path.name == "client.py" else set())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            assert set(roots) <= allowed_here, f"{path.name} imports {roots}"


def test_qt_names_come_from_one_module(installed):
    for path in installed.plugin.glob("*.py"):
        if path.name != "qt.py":
            assert "PyQt" not in path.read_text(), path.name


def test_kritarc_edits_keep_everything_else(tmp_path):
    text = "[General]\nfoo=1\n\n[python]\nenable_other=true\nenable_artcloak_export=false\n\n[Zed]\nx=y\n"
    new = installer.set_ini_value(text, "python", "enable_artcloak_export", "true")
    assert (
        new
        == "[General]\nfoo=1\n\n[python]\nenable_other=true\nenable_artcloak_export=true\n\n[Zed]\nx=y\n"
    )
    removed = installer.set_ini_value(new, "python", "enable_artcloak_export", None)
    assert removed == "[General]\nfoo=1\n\n[python]\nenable_other=true\n\n[Zed]\nx=y\n"
    assert installer.set_ini_value("", "python", "k", "v") == "[python]\nk=v\n"
    assert installer.set_ini_value("[a]\nb=c\n", "python", "k", None) == "[a]\nb=c\n"


def test_uninstall_removes_only_what_install_added(tmp_path):
    locations = installer.krita_locations(
        resource_dir=tmp_path / "krita", kritarc=tmp_path / "kritarc"
    )
    locations.kritarc.write_text("[python]\nenable_other=true\n")
    (locations.pykrita / "other").mkdir(parents=True)
    installer.install_krita(locations)
    report = installer.uninstall_krita(locations)
    assert not (locations.pykrita / "artcloak_export").exists()
    assert not (locations.pykrita / "artcloak_export.desktop").exists()
    assert (locations.pykrita / "other").is_dir()
    assert locations.kritarc.read_text() == "[python]\nenable_other=true\n"
    assert any("Removed" in line for line in report.done)
    again = installer.uninstall_krita(locations)  # a second time: nothing left to remove
    assert [line for line in again.done if "Removed" in line] == []
    assert any("Nothing to remove" in line for line in again.done)


def test_removing_the_last_key_removes_its_section(tmp_path):
    remove = lambda text: installer.set_ini_value(text, "python", "k", None)  # noqa: E731
    assert remove("[python]\nk=v\n") == ""
    assert remove("[a]\nb=c\n\n[python]\nk=v\n") == "[a]\nb=c\n"
    assert remove("[python]\nk=v\n\n[a]\nb=c\n") == "[a]\nb=c\n"
    assert remove("[a]\nb=c\n\n[python]\nk=v\n\n[z]\nx=y\n") == "[a]\nb=c\n\n[z]\nx=y\n"
    assert remove("[python]\n# mine\nk=v\n") == "[python]\n# mine\n"  # not empty: kept
    assert remove("[python]\n\n[a]\nb=c\n") == "[python]\n\n[a]\nb=c\n"  # no key: untouched


def test_uninstall_leaves_no_empty_section_or_kritarc_the_install_made(tmp_path):
    locations = installer.krita_locations(
        resource_dir=tmp_path / "krita", kritarc=tmp_path / "kritarc"
    )
    installer.install_krita(locations)
    assert locations.kritarc.read_text() == "[python]\nenable_artcloak_export=true\n"
    report = installer.uninstall_krita(locations)
    assert not locations.kritarc.exists()
    assert any("held nothing else" in line for line in report.done)
    locations.kritarc.write_text("[General]\nfoo=1\n")
    installer.install_krita(locations)
    installer.uninstall_krita(locations)
    assert locations.kritarc.read_text() == "[General]\nfoo=1\n"


def test_install_refuses_a_folder_it_did_not_make(tmp_path):
    locations = installer.krita_locations(
        resource_dir=tmp_path / "krita", kritarc=tmp_path / "kritarc"
    )
    foreign = locations.pykrita / "artcloak_export"
    foreign.mkdir(parents=True)
    (foreign / "mine.py").write_text("# someone else's")
    with pytest.raises(installer.InstallError, match="not installed by artcloak"):
        installer.install_krita(locations)
    assert (foreign / "mine.py").exists()
    installer.install_krita(locations, installer.WorkerOptions(force=True))
    assert not (foreign / "mine.py").exists() and (foreign / "worker.json").exists()


def test_install_refuses_a_python_without_artcloak(tmp_path):
    locations = installer.krita_locations(
        resource_dir=tmp_path / "krita", kritarc=tmp_path / "kritarc"
    )
    with pytest.raises(installer.InstallError, match="cannot run artcloak"):
        installer.install_krita(
            locations, installer.WorkerOptions(python=str(tmp_path / "no-python"))
        )
    assert not locations.pykrita.exists()


@pytest.mark.parametrize(
    ("system", "env", "resources", "kritarc"),
    [
        ("Linux", {}, "home/.local/share/krita", "home/.config/kritarc"),
        ("Linux", {"XDG_DATA_HOME": "/d", "XDG_CONFIG_HOME": "/c"}, "/d/krita", "/c/kritarc"),
        ("Windows", {"APPDATA": "/r", "LOCALAPPDATA": "/l"}, "/r/krita", "/l/kritarc"),
        (
            "Darwin",
            {},
            "home/Library/Application Support/krita",
            "home/Library/Preferences/kritarc",
        ),
    ],
)
def test_krita_locations_per_system(system, env, resources, kritarc):
    found = installer.krita_locations(system=system, environ=env, home=Path("home"))
    assert found.resource_dir == Path(resources) and found.kritarc == Path(kritarc)
    assert found.pykrita == Path(resources) / "pykrita"


def test_install_command(tmp_path):
    args = ["krita", "--resource-dir", str(tmp_path / "r"), "--kritarc", str(tmp_path / "rc")]
    result = CliRunner().invoke(installer.install, args)
    assert result.exit_code == 0, result.output
    assert "Enabled the plugin" in result.output and "To undo:" in result.output
    assert "--uninstall" in result.output and str(tmp_path / "r") in result.output
    result = CliRunner().invoke(installer.install, [*args, "--uninstall"])
    assert result.exit_code == 0 and "Removed" in result.output
    assert not (tmp_path / "r" / "pykrita" / "artcloak_export").exists()


# --- dialog values -> request -------------------------------------------------------------


def test_package_registers_nothing_outside_krita(plugin):
    assert plugin.package.EXTENSION is None


def test_settings_round_trip_and_survive_garbage(plugin):
    form = plugin.form
    values = form.FormValues(mode="shade", anchors=["/a.png"], intensity="high", quality="faster",
                             output="/x/y/out.webp", format="webp", open_result=False)  # fmt: skip
    back = form.FormValues.from_settings(values.to_settings())
    assert back.mode == "shade" and back.anchors == ["/a.png"] and back.intensity == "high"
    assert back.format == "webp" and back.open_result is False
    assert back.output == "/x/y"  # the folder is remembered, not the file
    assert form.FormValues.from_settings("not json") == form.FormValues()
    assert form.FormValues.from_settings("[1]") == form.FormValues()
    odd = form.FormValues.from_settings('{"mode": "melt", "intensity": 3, "open_result": "yes"}')
    assert odd == form.FormValues()


def test_suggested_output_and_format(plugin, tmp_path):
    form = plugin.form
    document = str(tmp_path / "dragon.kra")
    assert form.suggest_output(form.FormValues(), document) == str(tmp_path / "dragon-cloaked.png")
    assert (
        form.suggest_output(form.FormValues(format="jpeg"), "", home="/h")
        == "/h/untitled-cloaked.jpg"
    )
    remembered = form.FormValues(output=str(tmp_path / "sub"))
    (tmp_path / "sub").mkdir()
    assert form.suggest_output(remembered, document) == str(tmp_path / "sub" / "dragon-cloaked.png")
    shade = form.FormValues(mode="shade")
    assert form.suggest_output(shade, document) == str(tmp_path / "dragon-shaded.png")
    assert form.with_format("/a/b.png", "webp") == "/a/b.webp"
    assert form.with_format("/a/b.JPEG", "jpeg") == "/a/b.JPEG"
    assert form.with_format("/a/b.v2", "png") == "/a/b.v2.png"
    assert form.format_warning("png") == ""
    assert "weakens the protection" in form.format_warning("jpeg")


def test_problems_name_each_mistake(plugin, tmp_path):
    form = plugin.form
    out = str(tmp_path / "out.png")
    assert form.problems(form.FormValues(output=out)) == []
    assert form.problems(form.FormValues(target_kind="image", style_image="/nope.png", output=out))
    assert "at least one image" in form.problems(form.FormValues(mode="shade", output=out))[0]
    assert (
        "do not exist"
        in form.problems(form.FormValues(mode="shade", anchors=["/n.png"], output=out))[0]
    )
    assert "must end in" in form.problems(form.FormValues(output=str(tmp_path / "out.gif")))[0]
    assert "does not exist" in form.problems(form.FormValues(output="/no/such/dir/o.png"))[0]
    assert form.problems(form.FormValues(output=""))[0] == "Choose the output file."
    (tmp_path / "art.png").write_bytes(b"x")
    clash = form.problems(
        form.FormValues(output=str(tmp_path / "art.png")), str(tmp_path / "art.png")
    )
    assert "never modifies the original" in clash[0]


def test_build_request_for_each_target(plugin, tmp_path):
    form, client = plugin.form, plugin.client
    config = client.WorkerConfig(
        python="py", request={"encoders": ["/m"], "device": "cpu", "mode": "shade"}
    )
    out = str(tmp_path / "o.png")
    style_image, anchor_a, anchor_b = (str(tmp_path / n) for n in ("s.png", "a.png", "b.png"))
    for path in (style_image, anchor_a, anchor_b):
        Path(path).write_bytes(b"x")

    def build(values, input_path="i", overwrite=False):
        return client.build_request(values.choices(overwrite), input_path, config)

    auto = build(form.FormValues(output=out), "/t/in.png")
    assert (auto.input, auto.output) == ("/t/in.png", out)
    assert (auto.settings["mode"], auto.settings["style"], auto.settings["anchors"]) == (
        "cloak",
        None,
        [],
    )
    assert auto.settings["encoders"] == ["/m"] and auto.settings["device"] == "cpu"  # worker.json
    assert (
        build(form.FormValues(target_kind="style", style="marble", output=out)).settings["style"]
        == "marble"
    )
    image = build(form.FormValues(target_kind="image", style_image=style_image, output=out))
    assert image.settings["style"] == style_image
    shade = build(
        form.FormValues(mode="shade", anchors=[anchor_a, anchor_b], style="x", output=out)
    )
    assert shade.settings["mode"] == "shade" and shade.settings["anchors"] == [anchor_a, anchor_b]
    assert shade.settings["style"] is None
    assert build(form.FormValues(output=out), overwrite=True).overwrite is True
    assert build(form.FormValues(output=out)).overwrite is False
    # what the plugin sends is what the worker accepts: one flat object, settings checked
    again = protocol.WorkerRequest.from_json(shade.to_json())  # the core's class, not the copy's
    assert again == protocol.WorkerRequest.from_wire(json.loads(shade.to_json()))
    assert again.to_wire() == shade.to_wire()
    assert json.loads(shade.to_json())["anchors"] == [anchor_a, anchor_b]
    _, run, models = read_request(shade.to_json())
    protection = run.asked
    assert protection.mode.value == "shade" and models.device == "cpu"
    # the dialog checks before it accepts; the request refuses what would not run anyway
    with pytest.raises(client.PluginError, match="at least one image"):
        build(form.FormValues(mode="shade", output=out))


def test_worker_config_errors_say_what_to_do(plugin, tmp_path):
    client = plugin.client
    with pytest.raises(client.PluginError, match="artcloak install krita"):
        client.WorkerConfig.load(str(tmp_path), "krita")
    (tmp_path / "worker.json").write_text('{"python": "p"}')
    assert client.WorkerConfig.load(str(tmp_path), "krita").styles == list(client.DEFAULT_STYLES)


# --- the worker session -------------------------------------------------------------------


def test_session_reads_lines_however_they_are_split(plugin):
    seen, notices = [], []
    session = plugin.client.WorkerSession(on_progress=seen.append, on_notice=notices.append)
    lines = [
        protocol.encode(protocol.progress("load", 0, 1, "Loading models")),
        "a stray line from a library",
        protocol.encode(protocol.progress("optimise", 2, 4, budget_used=0.5)),
        protocol.encode(protocol.notice("ICC profile kept")),
        protocol.encode(protocol.result("/o.png", lpips=0.01, linf_255=8.0, seconds=1.0)),
    ]
    text = "\n".join(lines) + "\n"
    for start in range(0, len(text), 7):  # arrives in odd pieces
        session.feed(text[start : start + 7])
    assert [e["stage"] for e in seen] == ["load", "optimise"]
    assert notices == ["ICC profile kept"]
    outcome = session.finish(0, "")
    assert outcome.kind == "result" and outcome.result["output"] == "/o.png"
    assert outcome.notices == ["ICC profile kept"]
    assert plugin.client.progress_text(seen[1]) == "Protecting: step 2 of 4 (budget used 50%)"
    assert plugin.client.progress_fraction(seen[1]) == 0.5
    assert plugin.client.progress_fraction(seen[0]) is None


def test_session_outcomes_for_errors_crashes_and_cancel(plugin):
    session_class = plugin.client.WorkerSession
    errored = session_class()
    errored.feed(
        protocol.encode(protocol.error("The anchor image x.png does not exist."))
    )  # no newline
    assert errored.finish(1).message == "The anchor image x.png does not exist."
    crashed = session_class().finish(None, "Traceback ...\nMemoryError\n")
    assert crashed.kind == "error" and "stopped without a result (crashed)" in crashed.message
    assert crashed.message.endswith("MemoryError")
    silent = session_class().finish(0, "")
    assert silent.kind == "error" and "exit status 0" in silent.message
    start = session_class().finish(None, start_error="Could not start /x/python")
    assert start.kind == "error" and start.message == "Could not start /x/python"
    cancelled = session_class()
    cancelled.feed(protocol.encode(protocol.progress("optimise", 1, 9)) + "\n")
    cancelled.cancel()
    assert cancelled.finish(-15, "").kind == "cancelled"


def test_result_message_states_figures_against_the_budget(plugin):
    result = protocol.result("/o.png", report="/o.png.json", lpips=0.0312, linf_255=8.0, psnr_db=38.21,
                             latent=[{"encoder": "/m/vae/", "distance_closed": 0.42}], seconds=12.34)  # fmt: skip
    report = {"settings": {"budget": {"lpips": 0.05, "eps_255": 8.0}}}
    text = plugin.client.describe_result(result, report, ["Saved as 8-bit."])
    for part in ["/o.png", "LPIPS): 0.0312 (budget 0.05)", "8/255 (budget 8/255)", "38.2 dB",
                 "42% of the way to the target (vae)", "12.3 s", "Report: /o.png.json", "Saved as 8-bit."]:  # fmt: skip
        assert part in text
    assert "budget" not in plugin.client.describe_result(result, {})


def test_worker_environment_drops_krita_python(plugin):
    env = {"PYTHONHOME": "/k", "PYTHONPATH": "/k/lib", "PATH": "/bin", "APPDIR": "/tmp/.mount_k",
           "LD_LIBRARY_PATH": os.pathsep.join(["/tmp/.mount_k/usr/lib", "/opt/cuda/lib"])}  # fmt: skip
    clean = plugin.client.worker_environment(env)
    assert "PYTHONHOME" not in clean and "PYTHONPATH" not in clean
    assert clean["PATH"] == "/bin" and clean["LD_LIBRARY_PATH"] == "/opt/cuda/lib"
    assert clean["PYTHONIOENCODING"] == "utf-8"
    assert env["PYTHONHOME"] == "/k"  # the plugin's own environment is left alone
    assert plugin.client.worker_command("/py") == ("/py", ["-m", "artcloak", "worker", "-"])


def run_worker(plugin, request, cancel_on_progress: bool = False):
    """What runner.py does with a QProcess (feed client.WorkerSession), done with subprocess."""
    program, args = plugin.client.worker_command(sys.executable)
    session = plugin.client.WorkerSession()
    process = subprocess.Popen(
        [program, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=plugin.client.worker_environment(dict(os.environ)),
    )
    process.stdin.write(request.to_json())
    process.stdin.close()
    for line in process.stdout:
        session.feed(line)
        if cancel_on_progress and '"stage":"optimise"' in line and not session.cancelled:
            session.cancel()
            process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=300)
    return session.finish(code, process.stderr.read())


def test_real_worker_result_and_error(plugin, installed, tmp_path):
    config = plugin.client.WorkerConfig.load(str(installed.plugin), "krita")
    source = tmp_path / "in.png"
    Image.fromarray(np.full((40, 48, 4), 120, np.uint8), "RGBA").save(source)
    values = plugin.form.FormValues(output=str(tmp_path / "out.png"))
    request = plugin.client.build_request(values.choices(), str(source), config)
    request.settings.update(steps=3, resolution=64, lpips_random_backbone=True)
    outcome = run_worker(plugin, request)
    assert outcome.kind == "result", outcome.message
    assert Image.open(tmp_path / "out.png").size == (48, 40)
    assert outcome.result["linf_255"] <= 8
    anchor = tmp_path / "missing.png"
    Image.new("RGB", (8, 8)).save(anchor)
    shade = plugin.form.FormValues(
        mode="shade", anchors=[str(anchor)], output=str(tmp_path / "s.png")
    )
    request = plugin.client.build_request(shade.choices(), str(source), config)
    request.settings.update(steps=3, resolution=64, lpips_random_backbone=True)
    anchor.unlink()  # gone by the time the worker looks
    outcome = run_worker(plugin, request)
    assert outcome.kind == "error" and "missing.png" in outcome.message
    assert "Traceback" not in outcome.message and not (tmp_path / "s.png").exists()


def test_real_worker_cancel_leaves_no_output(plugin, installed, tmp_path):
    config = plugin.client.WorkerConfig.load(str(installed.plugin), "krita")
    source = tmp_path / "in.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(source)
    values = plugin.form.FormValues(output=str(tmp_path / "out" / "art.png"))
    (tmp_path / "out").mkdir()
    request = plugin.client.build_request(values.choices(), str(source), config)
    request.settings.update(steps=5000, resolution=64, lpips_random_backbone=True)
    outcome = run_worker(plugin, request, cancel_on_progress=True)
    assert outcome.kind == "cancelled"
    assert list((tmp_path / "out").iterdir()) == []


# --- the document side, with the stand-in krita module ------------------------------------


@pytest.mark.parametrize("depth", ["U8", "U16"])
def test_rgba_integer_documents_are_accepted(plugin, krita_stub, depth):
    plugin.document.check_document(krita_stub.Document(depth=depth))


@pytest.mark.parametrize(
    ("model", "depth", "said"),
    [("RGBA", "F32", "RGB/Alpha, 32-bit float"), ("RGBA", "F16", "16-bit float"),
     ("CMYKA", "U8", "CMYK/Alpha, 8-bit integer"), ("GRAYA", "U16", "Grayscale/Alpha")],
)  # fmt: skip
def test_other_documents_are_refused_with_how_to_convert(plugin, krita_stub, model, depth, said):
    with pytest.raises(plugin.client.PluginError) as refused:
        plugin.document.check_document(krita_stub.Document(model=model, depth=depth))
    assert said in str(refused.value) and "Convert Image Color Space" in str(refused.value)


def test_no_document_is_refused(plugin):
    with pytest.raises(plugin.client.PluginError, match="no active document"):
        plugin.document.check_document(None)


def test_export_writes_a_lossless_png_and_leaves_the_document(
    plugin, krita_stub, monkeypatch, tmp_path
):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    document = krita_stub.Document(pixels.copy())
    folder, path = plugin.document.export_to_temp(document, krita_stub.InfoObject)
    assert Path(folder).parent == tmp_path and Path(path).parent == Path(folder)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), pixels)
    (_, options, batch_during_export) = document.exports[0]
    assert options["alpha"] is True and options["indexed"] is False and batch_during_export is True
    assert document.batchmode() is False  # restored
    assert document.calls == ["waitForDone"]
    np.testing.assert_array_equal(document.pixels, pixels)
    plugin.document.remove_temp_folder(folder)
    assert list(tmp_path.iterdir()) == []


def test_failed_export_says_so_and_leaves_no_temp(plugin, krita_stub, monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    document = krita_stub.Document(export_works=False)
    document.batch = True
    with pytest.raises(plugin.client.PluginError, match="could not export"):
        plugin.document.export_to_temp(document, krita_stub.InfoObject)
    assert list(tmp_path.iterdir()) == []
    assert document.batchmode() is True


def test_the_texture_shaped_budget_reaches_the_workers_engine(plugin, installed, tmp_path):
    """Issue 35: the dialog's texture-shaped budget is off by default and remembered; ticked,
    the request asks for it, the worker's engine protects with it and the report says so."""
    form, client = plugin.form, plugin.client
    assert form.FormValues().adaptive is False
    assert form.FormValues.from_settings(form.FormValues(adaptive=True).to_settings()).adaptive
    assert form.FormValues.from_settings('{"adaptive": "yes"}').adaptive is False
    config = client.WorkerConfig.load(str(installed.plugin), "krita")
    source = tmp_path / "in.png"
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(source)
    flat = client.build_request(
        form.FormValues(output=str(tmp_path / "f.png")).choices(), "i", config
    )
    assert read_request(flat.to_json())[1].asked.adaptive is False
    values = form.FormValues(adaptive=True, output=str(tmp_path / "out.png"))
    request = client.build_request(values.choices(), str(source), config)
    assert request.settings["adaptive"] is True
    assert read_request(request.to_json())[1].asked.adaptive is True
    request.settings.update(steps=3, resolution=64, lpips_random_backbone=True)
    outcome = run_worker(plugin, request)
    assert outcome.kind == "result", outcome.message
    assert outcome.result["linf_255"] <= 8
    report = json.loads(Path(outcome.result["report"]).read_text())
    assert report["settings"]["adaptive"] is True
