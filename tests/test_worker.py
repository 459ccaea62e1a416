"""`artcloak worker` as the plugins run it: a subprocess, a JSON request, JSON lines back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from artcloak import protocol
from PIL import Image


def request_for(source: Path, output: Path, tiny_models, **changes) -> protocol.WorkerRequest:
    fields = {
        "input": str(source),
        "output": str(output),
        "encoders": [str(tiny_models["diffusers_folder"])],
        "device": "cpu",
        "steps": 3,
        "resolution": 64,
        "lpips_random_backbone": True,
    }
    return protocol.WorkerRequest(**{**fields, **changes})


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
    assert Path(result["report"]).exists()


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
