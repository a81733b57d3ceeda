"""Search as readers use it: the demo site in real headless Chromium, driven by Playwright.

The demo site (this repository's content/) is built once into a temporary folder. Its bundles are
served over HTTP under sub-paths (/public/, /restricted/), as the reverse proxy serves them, and also
opened straight from disk (file://), as from a file share. Expected results were checked against the
demo content: "intermediate" is written only in a registered block of the public FAQ, "keycloak" only
in registered pages, "approval chain" only on "Requesting an account".

Chromium is Debian's (/usr/bin/chromium, or $SITEGEN_CHROMIUM); Playwright only drives it. Without
either, these tests skip locally and fail in CI (CI=true), where a skipped browser test would hide a
broken search.
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote

import pytest
from helpers import build_ok, copy_demo_site
from helpers import page as page_text

REPO = Path(__file__).resolve().parents[1]
@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo site built into a temporary folder; returns its build/ folder."""
    site = copy_demo_site(tmp_path_factory.mktemp("demo"))
    build_ok(site)
    return site / "build"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def server(demo):
    """http://127.0.0.1:PORT/ serving build/: the bundles sit under sub-paths, /public/ and /restricted/."""
    handler = functools.partial(_Quiet, directory=str(demo))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def page(browser):
    """A fresh tab; any script error on it fails the test."""
    context = browser.new_context()
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    tab.on("requestfailed", lambda r: errors.append(f"failed {r.url}"))
    yield tab
    context.close()
    assert errors == []


# ---- helpers ---------------------------------------------------------------------------------------
def results(tab) -> list[dict]:
    """Wait until the search page has answered what is in its box, then read the result list."""
    tab.wait_for_function("""() => document.getElementById('search-results').getAttribute('data-query')
                                   === document.getElementById('search-input').value""")
    return tab.eval_on_selector_all(".search-result", """items => items.map(item => ({
        title: item.querySelector('.search-title a').textContent,
        href: item.querySelector('.search-title a').getAttribute('href'),
        path: (item.querySelector('.search-path') || {}).textContent || '',
        snippet: item.querySelector('.search-snippet').textContent,
        marks: Array.from(item.querySelectorAll('mark'), m => m.textContent.toLowerCase()),
        labels: Array.from(item.querySelectorAll('.labels a'), a => a.textContent),
    }))""")


def titles(tab) -> list[str]:
    return [r["title"] for r in results(tab)]


def search(tab, base: str, query: str) -> list[dict]:
    tab.goto(f"{base}search/?q={quote(query)}")
    return results(tab)


def status(tab) -> str:
    return tab.inner_text("#search-status")


# ---- over HTTP, under a sub-path ---------------------------------------------------------------------
def test_a_query_returns_the_expected_page_first(page, server):
    public = server + "public/"
    found = search(page, public, "helpdesk")
    assert found[0]["title"] == "Contacting the helpdesk"
    assert "helpdesk" in found[0]["marks"] and found[0]["path"] == "Access and accounts"
    assert found[0]["labels"] == ["access", "general-public", "it-professionals", "examiners"]
    assert len(found) > 5 and status(page) == f"{len(found)} pages found"
    assert search(page, public, "Glossary")[0]["title"] == "Glossary"
    # The page whose whole title was typed comes first; a section index has no section path, the pages
    # below it show it.
    found = search(page, public, "title:workshops")
    assert [(r["title"], r["path"]) for r in found] == [
        ("Workshops", ""), ("Past workshops", "Workshops"), ("Upcoming workshops", "Workshops")]


def test_a_phrase_matches_the_words_together_and_in_order(page, server):
    found = search(page, server + "public/", '"approval chain"')
    assert [r["title"] for r in found] == ["Requesting an account"]
    assert {"approval", "chain"} <= set(found[0]["marks"])
    assert search(page, server + "public/", '"chain approval"') == []
    both_words = [r["title"] for r in search(page, server + "public/", "approval chain")]
    assert both_words[0] == "Requesting an account"  # the words in its summary and a heading


def test_a_label_filter_keeps_only_pages_with_that_label(page, server):
    public = server + "public/"
    labelled = search(page, public, "label:examiners")
    assert len(labelled) == 8  # as the public label page counts them
    assert all("examiners" in r["labels"] for r in labelled)
    everyone = {r["title"] for r in search(page, public, "helpdesk")}
    filtered = search(page, public, "helpdesk label:examiners")
    assert filtered and all("examiners" in r["labels"] for r in filtered)
    assert {r["title"] for r in filtered} < everyone


def test_or_exclusion_prefix_title_and_accents(page, server):
    public = server + "public/"

    def found(query: str) -> set[str]:
        return {r["title"] for r in search(page, public, query)}

    password, workshop = found("password"), found("workshop")
    assert password and workshop
    assert found("password OR workshop") == password | workshop
    assert found("workshop -password") == workshop - password
    assert found("passw*") >= password and "Frequently asked questions" in found("passw*")
    assert all("account" in t.lower() for t in found("title:account")) and found("title:account")
    assert found("markovic") == found("MARKOVIĆ") == found("Marković") == {"Contacting the helpdesk", "Requesting an account"}
    marks = search(page, public, "markovic")[0]["marks"]
    assert marks == [] or "marković" in marks  # the word is highlighted as written, accent and all


def test_a_word_only_in_restricted_content_is_found_only_in_the_restricted_bundle(page, server):
    # "intermediate" is in a registered block of a public page; "keycloak" only on registered pages.
    assert search(page, server + "public/", "intermediate") == []
    assert status(page) == "No page matches “intermediate”."
    assert search(page, server + "public/", "keycloak") == []
    found = search(page, server + "restricted/", "intermediate")
    assert [r["title"] for r in found] == ["Frequently asked questions"]
    assert "Troubleshooting a deployment" in [r["title"] for r in search(page, server + "restricted/", "keycloak")]


def test_no_results_says_so_and_offers_to_remove_filters(page, server):
    assert search(page, server + "public/", "glossary label:workshops") == []
    assert status(page) == "No page matches “glossary label:workshops”."
    hints = page.inner_text("#search-hints")
    assert "Try removing a filter or a word" in hints and "Remove label:workshops" in hints
    page.click("text=Remove label:workshops")
    assert titles(page)[0] == "Glossary"
    assert page.input_value("#search-input") == "glossary"
    assert page.evaluate("location.search") == "?q=glossary"


def test_results_follow_typing_and_the_address_can_be_bookmarked(page, server):
    restricted = server + "restricted/"
    page.goto(restricted + "search/")
    assert page.evaluate("document.activeElement.id") == "search-input"
    page.keyboard.type("keycloak", delay=20)
    found = results(page)
    assert "Troubleshooting a deployment" in [r["title"] for r in found]
    assert page.evaluate("location.search") == "?q=keycloak"
    bookmarked = page.url
    page.goto(bookmarked)
    assert [r["title"] for r in results(page)] == [r["title"] for r in found]
    # Results link to the pages of this bundle, under its sub-path.
    target = next(r for r in found if r["title"] == "Troubleshooting a deployment")
    assert target["href"] == "../deployment/troubleshooting/"
    page.click(f"text={target['title']}")
    page.wait_for_load_state()
    assert page.url == restricted + "deployment/troubleshooting/"
    assert page.inner_text("h1") == "Troubleshooting a deployment"


def test_the_header_box_and_the_slash_key(page, server):
    public = server + "public/"
    page.goto(public + "about/glossary/")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "site-search"
    page.keyboard.type('"approval chain"')
    page.keyboard.press("Enter")
    page.wait_for_url("**/search/?q=*")
    assert page.url.startswith(public + "search/")
    assert titles(page) == ["Requesting an account"]


# ---- from a file share: file:// -----------------------------------------------------------------------
def test_search_works_from_file_urls(page, demo):
    public = (demo / "public").as_uri() + "/"
    page.goto(public + "search/index.html?q=helpdesk")
    found = results(page)
    assert found[0]["title"] == "Contacting the helpdesk"
    assert found[0]["href"] == "../access/helpdesk/index.html"  # a folder would show a directory listing
    page.click("text=Contacting the helpdesk")
    page.wait_for_load_state()
    assert page.url == public + "access/helpdesk/index.html"
    assert page.inner_text("h1") == "Contacting the helpdesk"

    # The header box of any page reaches the search page too.
    page.keyboard.press("/")
    page.keyboard.type("approval chain")
    page.keyboard.press("Enter")
    page.wait_for_url("**/search/index.html?q=*")
    assert titles(page)[0] == "Requesting an account"

    restricted = (demo / "restricted").as_uri() + "/"
    page.goto(restricted + "search/index.html?q=intermediate")
    assert titles(page) == ["Frequently asked questions"]


# ---- ranking ---------------------------------------------------------------------------------------
def test_words_inside_chinese_and_japanese_text_are_found(page, site_factory):
    """The offices of Tokyo, Beijing and Daejeon search in their own scripts, which put no spaces
    between words: a word is found inside a sentence, and voiced kana match as typed."""
    site = site_factory({
        "content/_index.md": page_text("Home", "public", "Welcome."),
        "content/jp.md": page_text("出願ガイド", "public", "東京特許許可局の日本語テキストです。データベースで検索します。"),
        "content/cn.md": page_text("专利指南", "public", "国家知识产权局受理发明专利申请。"),
        "content/other.md": page_text("Other", "public", "Nothing in those scripts."),
    })
    build_ok(site)
    def found(query: str) -> list[str]:
        page.goto((site / "build" / "public").as_uri() + f"/search/index.html?q={quote(query)}")
        return sorted(titles(page))

    for query, expected in (("特許", ["出願ガイド"]), ("日本語", ["出願ガイド"]), ("データベース", ["出願ガイド"]),
                            ("です", ["出願ガイド"]), ("专利", ["专利指南"]), ("知识产权", ["专利指南"]), ("局", ["专利指南", "出願ガイド"]),
                            ("す", ["出願ガイド"]), ("请", ["专利指南"])):  # (letters that end a run: they begin no pair)
        assert found(query) == sorted(expected), query
    assert found("特许") == []  # (simplified 许 is another letter than 許)


def test_ranking_is_title_then_headings_then_labels_then_body_then_recency(page, site_factory):
    site = site_factory({
        "content/_index.md": page_text("Home", "public", "Welcome."),
        "content/a-body-old.md": page_text("Crossing guide", "public", "Watch for a zebra here."),
        "content/b-label.md": page_text("Road signs", "public", "Signs and markings.", labels="[zebra]"),
        "content/c-heading.md": page_text("Road works", "public", "Intro.\n\n## Zebra crossings\n\nText."),
        "content/d-title.md": page_text("Zebra care", "public", "About the animal."),
    })
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(site), "GIT_AUTHOR_NAME": "Ann",
           "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_COMMITTER_NAME": "Ann", "GIT_COMMITTER_EMAIL": "ann@example.org"}

    def commit(message: str, when: str) -> None:
        dated = {**env, "GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when}
        subprocess.run(["git", "add", "-A"], cwd=site, env=dated, check=True)
        subprocess.run(["git", "commit", "-q", "-m", message], cwd=site, env=dated, check=True)

    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=site, env=env, check=True)
    commit("First pages", "2026-01-05T10:00:00+00:00")
    (site / "content" / "z-body-new.md").write_text(page_text("Pedestrians", "public", "A zebra is safer."), encoding="utf-8")
    commit("A newer page", "2026-02-01T10:00:00+00:00")
    build_ok(site)
    page.goto((site / "build" / "public").as_uri() + "/search/index.html?q=zebra")
    assert titles(page) == ["Zebra care", "Road works", "Road signs", "Pedestrians", "Crossing guide"]
