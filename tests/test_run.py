"""One run, one check: every host checks a run's settings and target once (``engine.Run``),
before any model loads; a bad value is refused the same way in each."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from artcloak import protocol
from artcloak.engine import Run
from artcloak.errors import SettingsError, TargetError
from artcloak.settings import ProtectionSettings, Target
from conftest import painting
from PIL import Image


def two_images(folder: Path) -> list[Path]:
    folder.mkdir()
    paths = [folder / "a.png", folder / "b.png"]
    for seed, path in enumerate(paths):
        Image.fromarray(painting(seed=seed)).save(path)
    return paths


def test_a_cli_run_checks_once(tmp_path, cli_model_args, checks):
    from artcloak.cli import main

    folder = tmp_path / "in"
    two_images(folder)
    with pytest.raises(SystemExit) as exit_:
        main(["cloak", str(folder), *cli_model_args, "--steps", "2", "--batch-size", "1"])
    assert exit_.value.code == 0
    assert (checks.settings, checks.target) == (1, 1)


def test_a_worker_run_checks_once(tmp_path, tiny_model_settings, checks):
    from artcloak.worker import run_worker

    (source,) = two_images(tmp_path / "in")[:1]
    settings = {"steps": 2, "resolution": 64, "lpips": 0.5, "device": "cpu",
                "encoders": list(tiny_model_settings.encoders), "lpips_random_backbone": True}  # fmt: skip
    request = protocol.WorkerRequest(str(source), str(tmp_path / "out.png"), settings=settings)
    out = io.StringIO()
    assert run_worker(request.to_json(), out) == 0, out.getvalue()
    assert (checks.settings, checks.target) == (1, 1)


def test_a_batch_run_checks_once(tmp_path, tiny_model_settings, checks):
    from artcloak.batch import run_batch

    two_images(tmp_path / "src")
    settings = ProtectionSettings(steps=2, resolution=64, lpips=0.5)
    summary = run_batch(tmp_path / "src", tmp_path / "dest", settings, tiny_model_settings)
    assert summary.done == 2
    assert (checks.settings, checks.target) == (1, 1)


def test_an_app_job_checks_once(tmp_path, engine, checks):
    from artcloak.app.jobs import JobRunner

    runner = JobRunner(engine, root=tmp_path / "app", resolution=64)
    try:
        job = runner.submit(two_images(tmp_path / "in"), ProtectionSettings(steps=2, lpips=0.5))
        deadline = time.monotonic() + 120
        while not job.done:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert job.state == "done", job.message
    finally:
        runner.close()
    assert (checks.settings, checks.target) == (1, 1)


@pytest.mark.parametrize(
    "settings, error, message",
    [
        (ProtectionSettings(eps_255=-1), SettingsError, "eps_255"),
        (ProtectionSettings(target=Target(style="no-such-style")), TargetError, "no-such-style"),
    ],
)
def test_a_run_refuses_bad_settings_when_made(settings, error, message):
    with pytest.raises(error, match=message):
        Run(settings)


def test_a_run_over_other_files_is_not_checked_again(checks):
    run = Run(ProtectionSettings())
    other = run.with_sources([Path("a.png")])
    assert other.asked is run.asked and other.sources == [Path("a.png")]
    assert (checks.settings, checks.target) == (1, 1)
