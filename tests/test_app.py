"""artcloak app: the job logic (queue, worker, cancel, temporary files, limits, figures)
offline on the tiny model, without Gradio or a browser."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from artcloak.app.figures import MIN_PREVIEW_SIDE
from artcloak.app.form import STYLE_IMAGE, FormValues, style_choices
from artcloak.app.jobs import CANCELLED, DONE, FAILED, QUEUED, JobRunner
from artcloak.app.limits import Limits, check_upload
from artcloak.app.view import figures_markdown, status_html
from artcloak.engine import Engine
from artcloak.engine.resizing import working_size
from artcloak.errors import ArtcloakError, InputImageError, OutputError, SettingsError
from artcloak.settings import Mode
from conftest import painting
from PIL import Image


def rgba_png(path: Path, seed: int = 0) -> Path:
    colour = painting(seed=seed)
    alpha = np.tile(np.linspace(0, 255, colour.shape[1]).astype(np.uint8), (colour.shape[0], 1))
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(path)
    return path


def png_header(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunks = [b"IHDR" + ihdr, b"IDAT"]
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(chunk) - 4) + chunk + struct.pack(">I", zlib.crc32(chunk))
        for chunk in chunks
    )


def wait(job, runner, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not job.done:
        assert time.monotonic() < deadline, status_html(job, runner.position(job))
        time.sleep(0.05)


@pytest.fixture(scope="module")
def app_engine(tiny_model_settings):
    """The engine as ``artcloak app`` makes it: with decoders, for what the model sees."""
    return Engine(tiny_model_settings, decoders=True)


@pytest.fixture
def runner(app_engine, tmp_path):
    runner = JobRunner(app_engine, root=tmp_path / "app", resolution=64)
    yield runner
    runner.close()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_form_remembers_only_valid_values():
    assert FormValues.from_dict(None) == FormValues.from_dict({})
    values = FormValues.from_dict({"mode": "shade", "intensity": "high", "quality": "nonsense",
                                   "output_format": "JPEG", "style": "no-such-style"})  # fmt: skip
    assert (values.mode, values.intensity, values.quality) == ("shade", "high", "default")
    assert values.lossy and values.extension == ".jpg"
    assert values.style in style_choices() and values.style != STYLE_IMAGE
    assert FormValues.from_dict(values.as_dict()) == values


def test_form_says_what_is_missing(tmp_path):
    with pytest.raises(SettingsError, match="style image"):
        FormValues(style=STYLE_IMAGE).settings()
    with pytest.raises(SettingsError, match="images of the target concept"):
        FormValues(mode="shade").settings()
    anchor = rgba_png(tmp_path / "anchor.png")
    settings = FormValues(mode="shade", intensity="low").settings(anchors=[anchor], resolution=64)
    assert settings.mode is Mode.SHADE and settings.target.anchors == (anchor,)
    assert settings.budget().eps == pytest.approx(4 / 255)


def test_limits_refuse_large_files_and_bombs_from_the_header(tmp_path):
    path = rgba_png(tmp_path / "art.png")
    check_upload(path, Limits())
    with pytest.raises(InputImageError, match="art.png is .* MB; this page takes files up to"):
        check_upload(path, Limits(max_upload_mb=0.001))
    with pytest.raises(InputImageError, match=r"art.png \(96 x 72\) has more pixels"):
        check_upload(path, Limits(max_megapixels=0.001))
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(40_000, 40_000))  # 1.6 gigapixels claimed, no pixels sent
    with pytest.raises(InputImageError, match="bomb.png .*has more pixels than this page takes"):
        check_upload(bomb, Limits())
    (tmp_path / "junk.png").write_bytes(b"not an image")
    check_upload(tmp_path / "junk.png", Limits())  # left to the loader, which says why


def test_job_protects_measures_and_cleans_up(runner, fast_settings, tmp_path):
    good = rgba_png(tmp_path / "art.png")
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    before = digest(good)
    job = runner.submit([good, bad], fast_settings, ".png", owner="me")
    wait(job, runner)
    assert job.state == DONE, job.message
    assert job.message == "1 protected, 1 failed."
    assert [image.state for image in job.images] == [DONE, FAILED]
    message = job.images[1].message
    assert "broken.png" in message and str(runner.root) not in message
    assert digest(good) == before  # the original is only read
    outputs = [image.result.output for image in job.images if image.result]
    assert [p.name for p in outputs] == ["art-cloaked.png"]
    written = np.asarray(Image.open(outputs[0]))
    original = np.asarray(Image.open(good))
    assert written.shape == original.shape and np.array_equal(written[..., 3], original[..., 3])
    linf = np.abs(written[..., :3].astype(int) - original[..., :3].astype(int)).max()
    assert linf <= round(fast_settings.budget().eps * 255)
    result = job.images[0].result
    assert result.measured.within_budget is True
    for picture in (result.before, result.after, result.amplified, result.seen_before,
                    result.seen_after):  # fmt: skip
        assert picture.is_file()
    view = working_size(96, 72, 64)  # the model's view, enlarged by whole pixels for the page
    factor = MIN_PREVIEW_SIDE // max(view)
    assert Image.open(result.seen_before).size == (view[0] * factor, view[1] * factor)
    assert set(result.survival) == {"JPEG quality 90", "JPEG quality 75", "resized to half"}
    text = figures_markdown(result)
    assert "holds on the written file" in text and "after JPEG quality 75" in text
    with zipfile.ZipFile(job.zip_path) as archive:
        assert sorted(archive.namelist()) == sorted(
            [p.name for p in outputs] + [p.name + ".json" for p in outputs]
        )
    assert not job.work.exists()  # temporary copies go when the job ends
    assert 'data-state="done"' in status_html(job, 0)
    runner.close()
    assert not runner.root.exists()  # ... and everything else when the app stops


def test_cancel_a_running_job_and_a_queued_one(runner, fast_settings, tmp_path):
    art = rgba_png(tmp_path / "art.png")
    slow = runner.submit([art, art], replace(fast_settings, steps=5000), ".png", owner="a")
    queued = runner.submit([art], fast_settings, ".webp", owner="b")
    assert queued.state == QUEUED and runner.position(queued) == 1
    assert "1 job ahead" in status_html(queued, runner.position(queued))
    deadline = time.monotonic() + 60
    while slow.images[0].step < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert slow.time_left() is not None and "left" in status_html(slow, 0)
    runner.cancel_owner("b")
    assert queued.state == CANCELLED
    started = time.monotonic()
    runner.cancel(slow.id)
    wait(slow, runner, 30)
    assert slow.state == CANCELLED and time.monotonic() - started < 10
    assert [image.state for image in slow.images] == [CANCELLED, CANCELLED]
    assert not slow.work.exists() and slow.zip_path is None
    anchor = rgba_png(tmp_path / "handbag.png", seed=3)  # the worker goes on after a cancel
    shade = FormValues(mode="shade", output_format="WebP").settings(anchors=[anchor])
    after = runner.submit([art], replace(shade, steps=6, lpips=0.5, resolution=64), ".webp")
    wait(after, runner)
    assert after.state == DONE, after.message
    assert after.images[0].result.output.name == "art-shaded.webp"


def test_refused_jobs_say_why(runner, fast_settings, tmp_path):
    with pytest.raises(ArtcloakError, match="Drop one or more images"):
        runner.submit([], fast_settings)
    with pytest.raises(ArtcloakError, match="up to 100 images"):
        runner.submit([tmp_path / "x.png"] * 101, fast_settings)


def test_a_format_that_cannot_store_an_upload_is_refused_at_submission(
    runner, fast_settings, tmp_path
):
    """Transparency cannot go into a JPEG: the page says so at once, naming the upload,
    and queues nothing."""
    uploads = tmp_path / "gradio-upload-1234"
    uploads.mkdir()
    plain = uploads / "plain.png"
    Image.fromarray(painting()).save(plain)
    transparent = rgba_png(uploads / "see-through.png")
    with pytest.raises(OutputError) as refused:
        runner.submit([plain, transparent], fast_settings, ".jpg", owner="me")
    message = str(refused.value)
    assert message.startswith("see-through.png has transparency") and "PNG or WebP" in message
    assert str(uploads) not in message
    assert runner.jobs == {}
    job = runner.submit([plain, transparent], fast_settings, ".webp", owner="me")
    assert job.id in runner.jobs
    runner.cancel(job.id)


def test_help_does_not_import_gradio():
    code = (
        "import sys; from artcloak.cli import main\n"
        "try:\n    main(['app', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'gradio' not in sys.modules, 'gradio imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--no-browser" in done.stdout and "--host" in done.stdout


def test_an_unusable_encoder_stops_the_app_before_it_serves(tmp_path):
    """The models load before the page is served: a missing encoder is one line, exit 1."""
    missing = tmp_path / "no-such-vae.safetensors"
    code = (
        "from artcloak.cli import main\n"
        f"main(['app', '--no-browser', '--device', 'cpu', '--encoder', {str(missing)!r}])\n"
    )
    environment = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=environment)  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "no-such-vae" in done.stderr
    assert "serving on" not in done.stderr and done.stdout == ""
    assert [p.name for p in tmp_path.iterdir()] == [], "its temporary folder is removed"


def test_loopback_unless_asked():
    from artcloak.app.command import is_loopback, url_host

    assert all(map(is_loopback, ["127.0.0.1", "localhost", "::1", "127.0.0.2"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.5", "::", "example.org"]))
    assert url_host("0.0.0.0") == "127.0.0.1" and url_host("::1") == "[::1]"


def test_outputs_of_same_named_uploads_do_not_collide(fast_settings):
    from artcloak.app.jobs import _output_name

    job = SimpleNamespace(settings=fast_settings, extension=".png")
    taken: set[str] = set()
    names = [_output_name(name, job, taken) for name in ("art.png", "Art.PNG", "../art.png")]
    assert names == ["art-cloaked.png", "Art-cloaked-2.png", "art-cloaked-3.png"]


def test_default_style_is_the_cores():
    """The app starts on the style the CLI uses without --style (issue 30)."""
    from artcloak.app.form import default_style
    from artcloak.engine.targets import DEFAULT_TEXTURE
    from artcloak.settings import DEFAULT_STYLE

    assert default_style() == DEFAULT_STYLE == DEFAULT_TEXTURE
    assert FormValues.from_dict({}).style == DEFAULT_STYLE
    assert DEFAULT_STYLE in style_choices()


def test_the_form_keeps_the_texture_shaped_budget_off_unless_ticked():
    """Issue 35: the texture-shaped budget is off by default, remembered only as true or
    false, and reaches the settings the job runs with."""
    assert FormValues().adaptive is False and FormValues.from_dict({}).adaptive is False
    assert FormValues.from_dict({"adaptive": "yes"}).adaptive is False
    ticked = FormValues.from_dict({"adaptive": True})
    assert ticked.adaptive is True and FormValues.from_dict(ticked.as_dict()) == ticked
    assert ticked.settings().adaptive is True and FormValues().settings().adaptive is False


def test_protect_with_the_texture_shaped_budget_ticked_on_the_page(runner, engine_calls, tmp_path):
    """The page's checkbox, in the words every host uses, is wired to Protect and remembered;
    Protect with it ticked runs the engine with the texture-shaped budget."""
    gr = pytest.importorskip("gradio", reason="needs Gradio (the app extra)")
    from artcloak.app import ui
    from artcloak.protocol import ADAPTIVE_HELP, ADAPTIVE_LABEL

    events = {event.name: event for event in ui.build(runner).fns.values()}
    box = next(c for c in events["run"].inputs if getattr(c, "elem_id", None) == "adaptive")
    assert isinstance(box, gr.Checkbox) and box.value is False
    assert (box.label, box.info) == (ADAPTIVE_LABEL, ADAPTIVE_HELP)
    assert box in events["_remember"].inputs
    ticked = FormValues.from_dict({"adaptive": True, "quality": "faster"})
    remembered = events["_remember"].fn(*ticked.as_dict().values())[0]
    assert FormValues.from_dict(remembered) == ticked
    restored = events["_restore"].fn(remembered)
    assert len(restored) == len(events["_restore"].outputs) and box in events["_restore"].outputs
    assert restored[events["_restore"].outputs.index(box)] is True
    art = rgba_png(tmp_path / "art.png")
    request = SimpleNamespace(session_hash="me")
    shown = list(events["run"].fn([str(art)], None, None, *ticked.as_dict().values(), request))
    assert 'data-state="done"' in shown[-1][0], shown[-1][0]
    assert [settings.adaptive for settings in engine_calls.settings] == [True]
    assert engine_calls.shaped == 1
    (job,) = runner.jobs.values()
    assert job.images[0].result.measured.within_budget is True
