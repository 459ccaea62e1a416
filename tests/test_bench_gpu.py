"""bench/gpu.py, the prepared device check for issue 29's GPU goals, run here on the CPU with a
tiny VAE: its figures, its report, and its refusal where torch sees no CUDA device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), *args],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_the_gpu_bench_times_one_image_and_a_batch(tmp_path, tiny_models):
    out = tmp_path / "gpu"
    done = run_bench(
        "--device", "cpu", "--size", "64", "--images", "3", "--batch-size", "2",
        "--encoder", str(tiny_models["diffusers_folder"]), "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads((out / "gpu.json").read_text())
    assert figures["device"] == "CPU" and figures["size"] == 64 and figures["batch_size"] == 2
    one, batched = figures["one_image"], figures["batched"]
    assert one["images"] == 1 and batched["images"] == 3
    assert one["encoder_passes"] == 15 and batched["encoder_passes"] == 45  # the default preset
    assert one["seconds"] > 0 and batched["seconds"] > 0
    assert one["peak_memory_gb"] is None  # no accelerator memory on a CPU
    report = (out / "gpu.md").read_text()
    assert "| one 64x64 image |" in report and "3 images in batches of 2" in report
    assert report.count("not judged on a CPU") == 2 and "met" not in report.replace(
        "not judged", ""
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="this host has a CUDA device")
def test_the_gpu_bench_refuses_in_one_line_without_cuda(tmp_path):
    done = run_bench("--out", str(tmp_path / "gpu"), cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip() == (
        "gpu bench: torch sees no CUDA device here (run it on the device machine)."
    )
    assert not (tmp_path / "gpu").exists()
