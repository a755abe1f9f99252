"""Headless Chromium for the tests that look at a page as a user's browser shows it."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--allow-file-access-from-files", "--window-size=1400,1800")
# The sources of the page's images that the browser could load and draw.
LOADED_IMAGES_JS = "return [...document.images].filter(i => i.complete && i.naturalWidth > 0).map(i => i.src);"


@contextlib.contextmanager
def headless_chromium():
    """A Chrome WebDriver on a throwaway profile; skips the test, saying why, where Chromium is not installed."""
    webdriver = pytest.importorskip("selenium.webdriver")
    for program in (CHROMIUM, CHROMEDRIVER):
        if not Path(program).exists():
            pytest.skip(f"{program} is not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
