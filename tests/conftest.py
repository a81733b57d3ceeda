"""Fixtures for the ipo-sitegen suite; the helpers themselves live in helpers.py."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from helpers import make_site as _make_site  # noqa: E402


@pytest.fixture
def site_factory(tmp_path):
    """make_site bound to this test's tmp_path: site_factory(files, config=None, name="site")."""

    def factory(files, config=None, name="site"):
        return _make_site(tmp_path, files, config, name)

    return factory


CHROMIUM = os.environ.get("SITEGEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed: python3 -m pip install -e '.[test]'"
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM}: apt-get install chromium (or set SITEGEN_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser():
    """Real headless Debian Chromium driven by Playwright: fails in CI when missing, skips locally."""
    missing = _browser_missing()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
        yield chromium
        chromium.close()
