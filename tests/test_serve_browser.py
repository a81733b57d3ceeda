"""`sitegen serve` in a real browser: live reload, the error overlay and the audience bar.

A real `sitegen serve` subprocess (see test_serve.py) and Debian's headless Chromium driven by
Playwright. Files are edited on disk exactly as an editor would; the tests never reload the page
themselves, so every new text they see arrived through the live-reload events.

Chromium is /usr/bin/chromium (or $SITEGEN_CHROMIUM); `playwright install` is never used. Without
Playwright or Chromium these tests skip locally and fail in CI (CI=true).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from test_serve import BROKEN_LINE, BROKEN_SETUP, ServeProcess, setup_page, small_site


@pytest.fixture
def live(tmp_path):
    """A small site (see test_serve.SMALL_SITE) served by `sitegen serve`; stopped at teardown."""
    site = small_site(tmp_path)
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    server = ServeProcess(site, tmpdir=tmpdir)
    try:
        yield server
    finally:
        server.kill()

WAIT = 15_000  # milliseconds for a rebuild to reach the page


@pytest.fixture
def tab(browser):
    """A fresh tab; script errors on it fail the test."""
    context = browser.new_context()
    context.set_default_timeout(WAIT)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    yield tab
    context.close()
    assert errors == []


def path_of(tab) -> str:
    return urlsplit(tab.url).path


def test_an_edit_on_disk_shows_up_in_the_open_page(live, tab):
    tab.goto(live.base + "/public/guides/setup/")
    tab.get_by_text("Original setup text.").wait_for()
    tab.evaluate("window.__notReloaded = true")
    (live.site / "content/guides/setup.md").write_text(setup_page("Text typed in the editor."), encoding="utf-8")
    tab.get_by_text("Text typed in the editor.").wait_for(timeout=WAIT)
    assert tab.evaluate("window.__notReloaded === undefined"), "the page changed without being reloaded"
    assert path_of(tab) == "/public/guides/setup/"
    assert tab.locator("#sitegen-live-bar").is_visible()
    # A second save reloads it again.
    (live.site / "content/guides/setup.md").write_text(setup_page("And typed again."), encoding="utf-8")
    tab.get_by_text("And typed again.").wait_for(timeout=WAIT)


def test_a_broken_file_shows_the_overlay_and_the_fix_clears_it(live, tab, browser):
    tab.goto(live.base + "/public/guides/setup/")
    tab.get_by_text("Original setup text.").wait_for()
    (live.site / "content/guides/setup.md").write_text(BROKEN_SETUP, encoding="utf-8")
    overlay = tab.locator("#sitegen-overlay")
    overlay.wait_for(state="visible", timeout=WAIT)
    text = overlay.inner_text()
    assert f"content/guides/setup.md:{BROKEN_LINE}:" in text, text
    assert "YAML" in text
    # Underneath, the last good version is still there.
    assert tab.get_by_text("Original setup text.").count() == 1
    # A page opened while the site is broken shows the overlay too.
    other = tab.context.new_page()
    other.goto(live.base + "/restricted/guides/setup/")
    other.locator("#sitegen-overlay").wait_for(state="visible", timeout=WAIT)
    assert f"content/guides/setup.md:{BROKEN_LINE}:" in other.locator("#sitegen-overlay").inner_text()
    # Fixing the file clears it: the page reloads with the new text.
    (live.site / "content/guides/setup.md").write_text(setup_page("Fixed in the editor."), encoding="utf-8")
    tab.get_by_text("Fixed in the editor.").wait_for(timeout=WAIT)
    assert tab.locator("#sitegen-overlay").count() == 0
    other.get_by_text("Fixed in the editor.").wait_for(timeout=WAIT)
    assert other.locator("#sitegen-overlay").count() == 0


def test_the_bar_switches_audience_on_the_same_page(live, tab):
    secret = "Registered-only setup detail."
    tab.goto(live.base + "/public/guides/setup/")
    bar = tab.locator("#sitegen-live-bar")
    bar.wait_for(state="visible")
    assert re.sub(r"\s+", " ", bar.inner_text()).strip() == "viewing as: public | restricted | internal"
    assert tab.get_by_text(secret).count() == 0
    bar.get_by_role("link", name="restricted").click()
    tab.wait_for_url("**/restricted/guides/setup/")
    tab.get_by_text(secret).wait_for(state="visible")
    assert path_of(tab) == "/restricted/guides/setup/"
    tab.locator("#sitegen-live-bar").get_by_role("link", name="public").click()
    tab.wait_for_url("**/public/guides/setup/")
    assert path_of(tab) == "/public/guides/setup/"
    tab.get_by_text("Original setup text.").wait_for()
    assert tab.get_by_text(secret).count() == 0


def test_the_bar_goes_to_the_bundle_home_when_the_page_is_not_in_it(live, tab):
    tab.goto(live.base + "/restricted/guides/install/")
    tab.get_by_text("Install text for registered offices.").wait_for()
    tab.locator("#sitegen-live-bar").get_by_role("link", name="public").click()
    tab.wait_for_url(lambda url: urlsplit(url).path == "/public/")
    assert tab.get_by_text("Install text for registered offices.").count() == 0
    tab.locator("#sitegen-live-bar").get_by_role("link", name="internal").click()
    tab.wait_for_url(lambda url: urlsplit(url).path == "/internal/")
