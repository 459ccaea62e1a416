"""artcloak app end to end in a real browser: Debian's chromium driven by Playwright, against
``artcloak app`` running on the tiny model. Upload, protect, download and check the file;
a corrupt file's message; cancel a slow job; settings remembered; no request leaves the
machine; Ctrl+C stops the server and removes its temporary files. Takes the README's
screenshot; it replaces docs/app-screenshot.png only with ARTCLOAK_UPDATE_SCREENSHOTS=1, so a
test run leaves the checkout as it found it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from artcloak.settings import QUALITY_EFFORT, Quality
from browser import UPDATE_SCREENSHOTS, launched, playwright_or_skip
from conftest import painting
from PIL import Image

SCREENSHOT = Path(__file__).resolve().parent.parent / "docs" / "app-screenshot.png"

sync_api = playwright_or_skip("the real-browser test of artcloak app")
pytest.importorskip("gradio", reason="needs Gradio (the app extra: pip install -e '.[app]')")


class Server:
    def __init__(self, models: Path, temp: Path) -> None:
        self.temp = temp
        self.log = temp.parent / "app.log"
        command = [sys.executable, "-m", "artcloak", "app", "--no-browser", "--encoder",
                   str(models), "--device", "cpu", "--lpips-random-backbone", "--resolution", "64"]  # fmt: skip
        environment = {**os.environ, "TMPDIR": str(temp)}
        with self.log.open("w") as log:
            self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log,
                                            text=True, env=environment)  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(
            target=lambda: lines.put(self.process.stdout.readline()), daemon=True
        ).start()
        try:
            self.url = lines.get(timeout=180).strip()
        except queue.Empty:
            self.stop()
            pytest.fail(f"artcloak app printed no URL in 180 s:\n{self.log.read_text()}")
        if not self.url.startswith("http://127.0.0.1:"):
            pytest.fail(f"artcloak app did not start:\n{self.log.read_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # Ctrl+C
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@pytest.fixture(scope="module")
def server(tiny_models, tmp_path_factory):
    server = Server(tiny_models["diffusers_folder"], tmp_path_factory.mktemp("app-tmp"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser():
    yield from launched(sync_api)


@pytest.fixture
def page(browser, server):
    """A fresh page that refuses and records every request leaving the machine."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.outside = []

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith((server.url, "data:", "blob:")):
            request_route.continue_()
        else:
            page.outside.append(url)
            request_route.abort()

    page.route("**/*", route)
    page.goto(server.url)
    page.wait_for_selector("#protect")
    yield page
    assert page.outside == [], f"requests outside the machine: {page.outside}"
    context.close()


def upload(page, paths: list[Path]) -> None:
    page.set_input_files("#images input[type=file]", [str(p) for p in paths])
    for path in paths:
        page.wait_for_selector(f"#images >> text={path.stem}", state="attached")


def rgba_art(path: Path, width: int = 192, height: int = 144) -> Path:
    colour = painting(width, height)
    alpha = np.tile(np.linspace(40, 255, width).astype(np.uint8), (height, 1))
    Image.fromarray(np.dstack([colour, alpha]), "RGBA").save(path)
    return path


def test_protect_download_check_and_screenshot(page, tmp_path):
    from artcloak.engine.budget import load_lpips, measure
    from artcloak.settings import LpipsNet

    art = rgba_art(tmp_path / "art.png")
    upload(page, [art])
    page.get_by_label(f"faster ({QUALITY_EFFORT[Quality.FASTER].steps} steps)").check()
    page.click("#protect")
    page.wait_for_selector(".artcloak-status[data-state=done]")
    assert "1 protected." in page.inner_text("#status")
    page.wait_for_function(  # every picture of the result shown
        "() => { const images = [...document.querySelectorAll('.artcloak-result img')];"
        " return images.length >= 5 && images.every(i => i.complete && i.naturalWidth > 0); }"
    )
    with page.expect_download() as download_info:
        page.click(".artcloak-download")
    downloaded = tmp_path / "downloaded.png"
    download_info.value.save_as(downloaded)
    assert download_info.value.suggested_filename == "art-cloaked.png"
    original, protected = np.asarray(Image.open(art)), np.asarray(Image.open(downloaded))
    assert protected.shape == original.shape == (144, 192, 4)  # size and alpha kept
    assert np.array_equal(protected[..., 3], original[..., 3])  # alpha bit-exact
    assert 0 < np.abs(protected[..., :3].astype(int) - original[..., :3]).max() <= 8  # 8/255
    lpips = load_lpips(LpipsNet.ALEX, __import__("torch").device("cpu"), random_backbone=True)
    assert measure(lpips, original[..., :3], protected[..., :3], 255).lpips <= 0.05
    with page.expect_download() as zip_info:
        page.click("#download-all")
    assert zip_info.value.suggested_filename == "artcloak-protected.zip"
    page.get_by_text("Budget").first.scroll_into_view_if_needed()
    shot = SCREENSHOT if UPDATE_SCREENSHOTS else tmp_path / SCREENSHOT.name
    page.screenshot(path=str(shot), full_page=True)
    assert Image.open(shot).size[0] > 0
    page.reload()  # settings are remembered between visits
    page.wait_for_selector("#protect")
    page.wait_for_function("() => document.querySelector('input[value=faster]')?.checked")


def test_corrupt_file_gets_a_clear_message(page, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"this is not the rest of a PNG file" * 4)
    upload(page, [broken])
    page.click("#protect")
    page.wait_for_selector(".artcloak-status[data-state=failed]")
    text = page.inner_text("#status")
    assert "broken.png" in text and "not an image artcloak can read" in text, text
    assert "artcloak-app-" not in text  # names the upload, not a temporary copy


def test_cancel_a_slow_job(page, tmp_path):
    # Enough images that the job is still running when the page first shows it (4 at the
    # slower preset's steps once finished before the status showed them running).
    images = [rgba_art(tmp_path / f"slow{i}.png") for i in range(16)]
    upload(page, images)
    page.get_by_label(f"slower ({QUALITY_EFFORT[Quality.SLOWER].steps} steps)").check()
    page.click("#protect")
    page.wait_for_selector(".artcloak-status tr[data-state=running] >> text=steps")
    page.click("#cancel")
    page.wait_for_selector(".artcloak-status[data-state=cancelled]", timeout=30_000)
    assert "Cancelled" in page.inner_text("#status")


def test_ctrl_c_stops_and_removes_temporary_files(server):
    assert server.stop() == 0
    assert "stopped" in server.log.read_text()
    assert not list(server.temp.glob("artcloak-app-*")), "temporary files left behind"
