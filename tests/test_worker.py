"""`artcloak worker` as the plugins run it: a subprocess, a JSON request, JSON lines back."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from artcloak import protocol
from artcloak.engine.optimize import cpu_has_bf16_tiles
from PIL import Image


def request_for(source: Path, output: Path, tiny_models, **changes) -> protocol.WorkerRequest:
    settings = {
        "encoders": [str(tiny_models["diffusers_folder"])],
        "device": "cpu",
        "steps": 3,
        "resolution": 64,
        "lpips_random_backbone": True,
    }
    return protocol.WorkerRequest(str(source), str(output), settings={**settings, **changes})


def start_worker() -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "artcloak", "worker", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_worker(request: protocol.WorkerRequest) -> tuple[int, list[dict], str]:
    process = start_worker()
    out, err = process.communicate(request.to_json(), timeout=300)
    return process.returncode, [protocol.decode(line) for line in out.splitlines()], err


def test_worker_protects_and_reports(rgb_png, tiny_models):
    output = rgb_png.with_name("out.png")
    code, events, err = run_worker(request_for(rgb_png, output, tiny_models))
    assert code == 0, err
    assert [e["event"] for e in events].count("progress") >= 3
    result = events[-1]
    assert result["event"] == "result" and result["output"] == str(output)
    assert result["lpips"] <= 0.05 and result["linf_255"] <= 8
    assert Image.open(output).size == Image.open(rgb_png).size
    report = json.loads(Path(result["report"]).read_text())
    used_here = "bf16" if cpu_has_bf16_tiles() else "fp32"
    assert report["models"]["precision"] == used_here, "the precision used on the CPU, not 'auto'"


def test_worker_bad_input_is_one_error_event(tmp_path, tiny_models):
    source = tmp_path / "broken.png"
    source.write_text("not an image")
    code, events, _ = run_worker(request_for(source, tmp_path / "out.png", tiny_models))
    assert code == 1
    assert events[-1]["event"] == "error" and "broken.png" in events[-1]["message"]
    assert not (tmp_path / "out.png").exists()


def test_worker_refuses_a_malformed_request(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "artcloak", "worker", "-"],
        input='{"input": 3}',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert process.returncode == 1
    (event,) = [protocol.decode(line) for line in process.stdout.splitlines()]
    assert event["event"] == "error" and "'input'" in event["message"]


def test_terminating_the_worker_leaves_nothing_behind(rgb_png, tiny_models):
    output = rgb_png.with_name("out.png")
    process = start_worker()
    process.stdin.write(request_for(rgb_png, output, tiny_models, steps=2000).to_json())
    process.stdin.close()
    for line in process.stdout:  # wait until optimisation is under way
        if protocol.decode(line).get("stage") == "optimise":
            break
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    time.sleep(0.1)
    assert process.returncode != 0
    assert sorted(os.listdir(rgb_png.parent)) == ["art.png"]


def numeric_settings() -> list[tuple[str, type]]:
    """Every numeric setting a request can carry, by its flat name, with its type."""
    from artcloak.settings import ModelSettings, ProtectionSettings, to_flat

    flat = to_flat(ProtectionSettings(), ModelSettings())
    kinds = {}
    for name, value in flat.items():
        if type(value) in (int, float):
            kinds[name] = type(value)
    for name in ("eps_255", "lpips", "steps", "resolution"):  # None by default: the presets
        kinds[name] = int if name in ("steps", "resolution") else float
    return sorted(kinds.items())


@pytest.mark.parametrize("bad", ["10", True, -1, float("nan"), float("inf")])
def test_worker_refuses_wrong_types_and_values_of_every_number(tmp_path, bad):
    """A string, a boolean, a negative, NaN or infinity in any numeric setting is one error
    event naming the setting, before anything is read or loaded."""
    from artcloak.worker import run_worker as run_in_process

    names = numeric_settings()
    assert {"steps", "eps_255", "lpips", "seed", "resolution", "anchors_count",
            "diffusion_strength", "diffusion_steps", "diffusion_seed"} <= dict(names).keys()  # fmt: skip
    for name, _ in names:
        request = {"input": str(tmp_path / "a.png"), "output": str(tmp_path / "o.png"),
                   "version": protocol.PROTOCOL_VERSION, name: bad}  # fmt: skip
        out = io.StringIO()
        code = run_in_process(json.dumps(request), out)
        events = [protocol.decode(line) for line in out.getvalue().splitlines()]
        assert code == 1, name
        assert [event["event"] for event in events] == ["error"], name
        assert f"'{name}'" in events[0]["message"], (name, events[0]["message"])


def test_a_bad_image_is_reported_before_any_model_loads(tmp_path):
    """A missing encoder and an empty image: the image's error comes first, fast."""
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    settings = {"encoders": [str(tmp_path / "no-such-vae.safetensors")], "device": "cpu"}
    request = protocol.WorkerRequest(str(empty), str(tmp_path / "out.png"), settings=settings)
    started = time.perf_counter()
    code, events, err = run_worker(request)
    assert code == 1, err
    assert events[-1]["event"] == "error" and "empty.png" in events[-1]["message"]
    assert "no-such-vae" not in events[-1]["message"]
    assert not [e for e in events if e.get("stage") == "load"]
    assert time.perf_counter() - started < 30  # a whole Python start; the check itself is below


def test_an_output_that_cannot_store_the_image_is_refused_before_any_model_loads(tmp_path):
    """Transparency cannot go into a JPEG: the refusal comes first (a missing encoder would
    be the error if any model loaded), with no load event and nothing written."""
    import numpy as np

    source = tmp_path / "see-through.png"
    Image.fromarray(np.full((40, 48, 4), 128, np.uint8), "RGBA").save(source)
    settings = {"encoders": [str(tmp_path / "no-such-vae.safetensors")], "device": "cpu"}
    request = protocol.WorkerRequest(str(source), str(tmp_path / "out.jpg"), settings=settings)
    code, events, err = run_worker(request)
    assert code == 1, err
    assert [event["event"] for event in events] == ["error"], events
    assert "see-through.png has transparency" in events[0]["message"]
    assert "no-such-vae" not in events[0]["message"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["see-through.png"]


def test_worker_protects_with_a_tiny_autoencoder(rgb_png, tmp_path):
    """The plugins' path with a TAEF2-shaped encoder file (random weights, decoder beside it)."""
    from artcloak.testing.tae import save_tae

    encoder, _, _ = save_tae(tmp_path / "taef2", "taef2")
    output = rgb_png.with_name("out.png")
    request = request_for(rgb_png, output, {"diffusers_folder": encoder}, steps=2)
    code, events, err = run_worker(request)
    assert code == 0, err
    result = events[-1]
    assert result["event"] == "result" and Image.open(output).size == Image.open(rgb_png).size
    report = json.loads(Path(result["report"]).read_text())
    (used,) = report["models"]["encoders"]
    assert used["family"] == "taef2" and used["decoder"] is False  # protecting loads none
