"""What the real-browser tests share: Debian's chromium driven by Playwright, offline."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]  # fmt: skip
# Screenshots replace the committed ones in docs/ only when asked, so a test run leaves the
# checkout as it found it.
UPDATE_SCREENSHOTS = os.environ.get("ARTCLOAK_UPDATE_SCREENSHOTS") == "1"


def playwright_or_skip(what: str):
    """Playwright's sync API, or skip the calling test module saying what it needs."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{what} needs Debian's chromium at /usr/bin/chromium "
            "(apt-get install chromium; .ci/run installs it)",
            allow_module_level=True,
        )
    return pytest.importorskip("playwright.sync_api", reason="needs Playwright (the dev extra)")


def launched(sync_api) -> Iterator:
    """A chromium browser for a module-scoped fixture to yield."""
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()
