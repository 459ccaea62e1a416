"""The worker protocol: stdlib only, strict requests, one event per line."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from artcloak import protocol

PROTOCOL_FILE = Path(protocol.__file__)


def test_protocol_module_uses_only_the_standard_library():
    tree = ast.parse(PROTOCOL_FILE.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports: the file is copied next to plugins"
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}


def read(data: dict | str):
    from artcloak.worker import read_request

    request, run, models = read_request(data if isinstance(data, str) else json.dumps(data))
    return request, run.asked, models


def test_robust_and_adaptive_reach_the_protection_settings():
    request = protocol.WorkerRequest(
        input="i.png", output="o.png", settings={"robust": True, "adaptive": True}
    )
    _, protection, _ = read(request.to_json())
    assert protection.robust and protection.adaptive
    assert not read({"input": "i.png", "output": "o.png", "version": 2})[1].robust


def test_request_round_trips():
    request = protocol.WorkerRequest(input="in.png", output="out.png", keep_mask="m.png",
                                     settings={"mode": "shade", "anchors": ["a.png"], "seed": 3})  # fmt: skip
    assert protocol.WorkerRequest.from_json(request.to_json()) == request
    assert json.loads(request.to_json())["anchors"] == ["a.png"]  # flat on the wire


@pytest.mark.parametrize(
    "data, message",
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"output": "o.png"}', "'input'"),
        ('{"input": "i.png", "output": "o.png", "mode": "blur"}', "'mode' must be one of"),
        ('{"input": "i.png", "output": "o.png", "intensity": "max"}', "'intensity'"),
        ('{"input": "i.png", "output": "o.png", "colour": 1}', "Unknown setting"),
        ('{"input": "i.png", "output": "o.png", "version": 99}', "reinstall"),
        ('{"input": "i.png", "output": "o.png", "anchors": "a.png"}', "'anchors' must be a list"),
        ('{"input": "i.png", "output": "o.png", "anchors": [3]}', "'anchors' must be a file path"),
        ('{"input": "i.png", "output": "o.png", "seed": "1"}', "integer"),
        ('{"input": "i.png", "output": "o.png", "overwrite": 1}', "'overwrite' must be true"),
        (
            '{"input": "i.png", "output": "o.png", "robust": "yes"}',
            "'robust' must be true or false",
        ),
    ],
)
def test_bad_requests_are_refused_with_a_reason(data, message):
    from artcloak.errors import SettingsError

    with pytest.raises((protocol.ProtocolError, SettingsError), match=message):
        read(data)


def test_events_are_single_lines_that_decode_back():
    events = [
        protocol.progress("optimise", 3, 50, "step", loss=0.5),
        protocol.notice("CMYK converted"),
        protocol.result("out.png", lpips=0.04, linf_255=8),
        protocol.error("The file is truncated.\nSecond line"),
    ]
    for event in events:
        line = protocol.encode(event)
        assert "\n" not in line
        assert protocol.decode(line) == event


@pytest.mark.parametrize("line", ["hello", '{"event": "dance"}', "[]"])
def test_decode_refuses_lines_that_are_not_events(line):
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(line)


def test_protocol_file_runs_without_the_package(tmp_path):
    """Plugins import the copied file in a Python without torch: no site-packages here."""
    (tmp_path / "artcloak_protocol.py").write_text(PROTOCOL_FILE.read_text())
    script = (
        "import artcloak_protocol as p, json;"
        "print(p.decode(json.dumps({'event': 'result', 'output': 'x.png'}))['output'])"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", script], cwd=tmp_path, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "x.png"


def test_worker_config_errors_say_what_to_do(tmp_path):
    with pytest.raises(protocol.ProtocolError, match="artcloak install krita"):
        protocol.read_worker_config(str(tmp_path), "krita")
    (tmp_path / "worker.json").write_text("{")
    with pytest.raises(protocol.ProtocolError, match="Cannot read"):
        protocol.read_worker_config(str(tmp_path), "gimp")
    (tmp_path / "worker.json").write_text('{"python": "p", "request": {"output": "x.png"}}')
    with pytest.raises(protocol.ProtocolError, match="cannot use as defaults"):
        protocol.read_worker_config(str(tmp_path), "krita")
    (tmp_path / "worker.json").write_text('{"request": {}}')
    with pytest.raises(protocol.ProtocolError, match="which Python"):
        protocol.read_worker_config(str(tmp_path), "gimp")
    (tmp_path / "worker.json").write_text('{"python": "p", "request": {"device": "cpu"}}')
    assert protocol.read_worker_config(str(tmp_path), "gimp")["request"] == {"device": "cpu"}


def test_output_problems_protect_the_original(tmp_path):
    original = tmp_path / "art.png"
    original.write_bytes(b"x")
    assert protocol.output_problems(str(tmp_path / "out.png"), str(original)) == []
    assert protocol.output_problems("  ") == ["Choose the output file."]
    assert any("replace" in p for p in protocol.output_problems(str(original), str(original)))
    assert any(".png" in p for p in protocol.output_problems(str(tmp_path / "out.gif")))
    assert any("folder" in p for p in protocol.output_problems("/no/such/dir/out.png"))


def test_plugin_defaults_are_the_cores():
    """The plugins cannot import settings; protocol's copies of its default style, output
    suffixes and choices (what Krita and GIMP show, suggest and send) must be the core's."""
    from artcloak.engine.images.formats import EXTENSIONS
    from artcloak.settings import (
        DEFAULT_STYLE,
        MAX_TEXT,
        OUTPUT_SUFFIXES,
        Intensity,
        Mode,
        Quality,
    )

    assert protocol.DEFAULT_STYLE == DEFAULT_STYLE
    assert {mode.value: s for mode, s in OUTPUT_SUFFIXES.items()} == protocol.OUTPUT_SUFFIXES
    for copied, enum in ((protocol.MODES, Mode), (protocol.INTENSITIES, Intensity),
                         (protocol.QUALITIES, Quality)):  # fmt: skip
        assert copied == tuple(member.value for member in enum)
    assert set(protocol.OUTPUT_EXTENSIONS) <= set(EXTENSIONS)  # plugins offer what the core writes
    assert protocol.MAX_PATH == MAX_TEXT  # the envelope's paths, the settings' texts


def test_dormant_names_are_gone():
    """Issue 30: code no caller used was removed, not left to drift."""
    from artcloak import errors
    from artcloak.batch.ray_runner import RayRunner
    from artcloak.engine.targets import pipelines

    assert not hasattr(errors, "BudgetError")
    assert not hasattr(pipelines, "forget_loaded")
    assert not hasattr(RayRunner, "pids")


def test_the_texture_shaped_budgets_words_are_for_a_setting_off_by_default():
    """Issue 35: every host shows the texture-shaped budget in protocol's words; they name
    what it does and that it does not stop mimicry better than the default (the bench)."""
    from artcloak.settings import FLAT_NAMES, ProtectionSettings

    assert "adaptive" in FLAT_NAMES and ProtectionSettings().adaptive is False
    assert "texture" in protocol.ADAPTIVE_LABEL and "flat colour" in protocol.ADAPTIVE_HELP
    assert "does not stop mimicry better" in protocol.ADAPTIVE_HELP
