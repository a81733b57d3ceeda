"""The catalogue of bad input: a clear error naming file and line, exit 1, previous output untouched.

Story: CI builds the site on every push. An editor pushes a broken page; the build must say exactly
where the problem is, and the bundles already published from the last good build must stay byte for
byte what they were.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
from helpers import (
    DEFAULT_CONFIG,
    build,
    build_ok,
    line_of,
    make_site,
    page,
    read_tree,
    run,
    tree_listing,
    write_files,
)

GOOD_SITE = {
    "content/_index.md": page("Support space", "public", "Welcome. Read the [guide](guides/guide.md)."),
    "content/guides/_index.md": page("Guides", "public", "All guides."),
    "content/guides/guide.md": page("A guide", body="## Step 1\n\nDo it.\n\n::: audience registered\n\nMembers only.\n\n:::\n"),
    "content/guides/diagram.png": b"\x89PNG\r\n\x1a\nfake image",
    "content/members/_index.md": page("Members", "registered", "For offices."),
}


@dataclass
class Case:
    """One kind of bad input: files to add (or overwrite), and where the error must point."""

    id: str
    files: dict[str, str | bytes] = field(default_factory=dict)
    path: str = ""  # the file the error must name
    needle: str | bytes | None = None  # text on the line the error must name (None: no line)
    message: str = ""  # a fragment the message must contain
    mutate: Callable[[Path], None] | None = None
    also_names: tuple[str, ...] = ()  # other files the messages must mention


def _symlink_file_outside(site: Path) -> None:
    outside = site.parent / "secrets.md"
    outside.write_text(page("Secret file outside", "public"), encoding="utf-8")
    os.symlink(outside, site / "content/guides/linked.md")


def _symlink_folder_outside(site: Path) -> None:
    outside = site.parent / "elsewhere"
    outside.mkdir()
    (outside / "page.md").write_text(page("Elsewhere", "public"), encoding="utf-8")
    os.symlink(outside, site / "content/guides/elsewhere", target_is_directory=True)


def _latin1_file_name(site: Path) -> None:
    """A file copied from an old Windows share: its name is Latin-1, not UTF-8."""
    os.makedirs(os.fsencode(site / "content/guides"), exist_ok=True)
    with open(os.fsencode(site / "content/guides") + b"/r\xe9sum\xe9.md", "wb") as file:
        file.write(page("Resume", "public").encode())


BAD_PAGE = "content/guides/bad.md"

CASES = [
    Case("malformed-yaml",
         {BAD_PAGE: "---\ntitle: Bad page\naudience: [public\nsummary: oops\n---\nBody.\n"},
         BAD_PAGE, "summary: oops", "malformed YAML"),
    Case("yaml-colon-in-value",
         {BAD_PAGE: "---\ntitle: Setup: the hard way\naudience: public\n---\nBody.\n"},
         BAD_PAGE, "title: Setup", "malformed YAML"),
    Case("front-matter-not-a-mapping",
         {BAD_PAGE: "---\n- title\n- audience\n---\nBody.\n"},
         BAD_PAGE, "- title", "key: value"),
    Case("missing-front-matter",
         {BAD_PAGE: "# Just a heading\n\nNo front matter at all.\n"},
         BAD_PAGE, "# Just a heading", "missing front matter"),
    Case("unclosed-front-matter",
         {BAD_PAGE: "---\ntitle: Never closed\naudience: public\n\nBody.\n"},
         BAD_PAGE, "---", "not closed"),
    Case("missing-title",
         {BAD_PAGE: "---\naudience: public\nsummary: no title here\n---\nBody.\n"},
         BAD_PAGE, "audience: public", "missing title"),
    Case("unknown-audience",
         {BAD_PAGE: "---\ntitle: Bad\nsummary: s\naudience: examiners\n---\nBody.\n"},
         BAD_PAGE, "audience: examiners", "unknown audience 'examiners'"),
    Case("unknown-audience-in-block",
         {BAD_PAGE: page("Bad", "public", "Intro.\n\n::: audience examiners\n\nText.\n\n:::\n")},
         BAD_PAGE, "::: audience examiners", "unknown audience 'examiners'"),
    Case("unclosed-gated-block",
         {BAD_PAGE: page("Bad", "public", "Intro.\n\n::: audience internal\n\nText.\n")},
         BAD_PAGE, "::: audience internal", "never closed"),
    Case("unknown-front-matter-key",
         {BAD_PAGE: "---\ntitle: Bad\naudience: public\nlables: [x]\n---\nBody.\n"},
         BAD_PAGE, "lables:", "unknown front-matter key 'lables'"),
    Case("front-matter-key-given-twice",  # YAML keeps the last: the page would be public
         {BAD_PAGE: "---\ntitle: Salary bands\naudience: internal\nsummary: s\naudience: public\n---\nGrade seven.\n"},
         BAD_PAGE, "audience: public", "'audience' is given twice"),
    Case("date-that-does-not-exist",
         {BAD_PAGE: "---\ntitle: Bad\naudience: public\npublish_date: 2024-02-30\n---\nBody.\n"},
         BAD_PAGE, "publish_date: 2024-02-30", "no real date"),
    Case("labels-that-differ-only-in-case",  # one label page for both: whose spelling?
         {"content/guides/one.md": "---\ntitle: One\naudience: public\nlabels: [Access]\n---\nBody.\n",
          "content/guides/two.md": "---\ntitle: Two\naudience: public\nlabels: [access]\n---\nBody.\n"},
         "content/guides/two.md", "labels: [access]", "would share one page, labels/access/", also_names=("content/guides/one.md",)),
    Case("wrong-front-matter-type",
         {BAD_PAGE: "---\ntitle: Bad\naudience: public\nweight: heavy\n---\nBody.\n"},
         BAD_PAGE, "weight: heavy", "weight"),
    Case("unknown-config-key",
         {"sitegen.toml": DEFAULT_CONFIG + 'titel = "Typo"\n'},
         "sitegen.toml", None, "titel"),
    Case("unknown-config-table",
         {"sitegen.toml": DEFAULT_CONFIG + '\n[bundle.public]\ntier = "public"\n'},
         "sitegen.toml", None, "bundle"),
    Case("wrong-config-type",
         {"sitegen.toml": DEFAULT_CONFIG + '\n[history]\nrecent = "ten"\n'},
         "sitegen.toml", None, "history.recent"),
    Case("config-negative-recent",
         {"sitegen.toml": DEFAULT_CONFIG + '\n[history]\nrecent = -2\n'},
         "sitegen.toml", "recent = -2", "must be 0 or more"),
    Case("config-base-url-not-a-web-address",  # it goes into locked links, the sitemap and robots.txt
         {"sitegen.toml": DEFAULT_CONFIG + '\n[bundles.public]\ntier = "public"\nbase_url = "javascript:alert(1)//"\n'},
         "sitegen.toml", "base_url =", "is not a web address"),
    Case("config-bundle-with-unknown-tier",
         {"sitegen.toml": DEFAULT_CONFIG + '\n[bundles.public]\ntier = "publc"\n'},
         "sitegen.toml", None, "publc"),
    Case("invalid-toml",
         {"sitegen.toml": DEFAULT_CONFIG + "\n[site\n"},
         "sitegen.toml", None, "invalid TOML"),
    Case("link-to-missing-page",
         {BAD_PAGE: page("Bad", "public", "Intro.\n\nSee [the setup](setpu.md#step-1).\n")},
         BAD_PAGE, "setpu.md", "does not exist"),
    Case("link-whose-target-is-part-of-another",  # the error names the line of `(guide)`, not of `(guide.md#…)`
         {BAD_PAGE: page("Bad", "public", "See [the guide](guide.md#step-1).\n\nAnd [the other one](guide).\n")},
         BAD_PAGE, "[the other one](guide)", "does not exist"),
    Case("raw-html-link-with-an-escaped-ampersand",  # the href is unescaped: its line was not found, and
         {BAD_PAGE: page("Bad", "public", "Intro.\n\n<p><a href=\"nowhere.md?x=1&amp;y=2\">a</a></p>\n\n[b](missing.md)\n")},
         BAD_PAGE, "nowhere.md?x=1&amp;y=2", "does not exist"),  # a second error on a line crashed the sort
    Case("link-out-of-content",
         {BAD_PAGE: page("Bad", "public", "Intro.\n\nSee [passwords](../../etc/passwd).\n")},
         BAD_PAGE, "../../etc/passwd", "leaves the content folder"),
    Case("duplicate-url-page-and-section",
         {"content/faq.md": page("FAQ", "public"), "content/faq/_index.md": page("FAQ section", "public")},
         "content/faq", None, "duplicate URL 'faq/'", also_names=("content/faq.md", "content/faq/_index.md")),
    Case("duplicate-url-two-slugs",
         {"content/guides/one.md": page("One", "public", slug="same"),
          "content/guides/two.md": page("Two", "public", slug="same")},
         "content/guides/two.md", "slug: same", "duplicate URL 'guides/same/'", also_names=("content/guides/one.md",)),
    Case("duplicate-url-by-case",
         {"content/guides/Setup.md": page("Setup A", "public"), "content/guides/setup.md": page("Setup B", "public")},
         "content/guides/", None, "duplicate URL 'guides/setup/'",
         also_names=("content/guides/Setup.md", "content/guides/setup.md")),
    Case("attachment-in-the-place-of-a-page",  # it replaced the page in cached builds, and crashed others
         {"content/guides/guide/index.html": "<p>attachment bytes</p>",
          "content/guides/other.md": page("Other", "public", "See [the file](guide/index.html).")},
         "content/guides/guide/index.html", None, "would replace the page content/guides/guide.md"),
    Case("page-at-a-generated-url",
         {"content/labels.md": page("My labels", "public")},
         "content/labels.md", None, "reserved"),
    Case("attachment-named-like-a-generated-file",
         {"content/robots.txt": "User-agent: *\nAllow: /secret/\n",
          "content/guides/robots-note.md": page("Robots", "public", "Our [robots file](../robots.txt).")},
         "content/robots.txt", None, "robots.txt"),
    Case("static-file-named-like-a-page",
         {"static/index.html": "<p>a static home page</p>"},
         "static/index.html", None, "index.html"),
    Case("invalid-utf8",
         {BAD_PAGE: b"---\ntitle: Bad\naudience: public\n---\n\nFine line.\nCaf\xe9 in Latin-1.\nAnother line.\n"},
         BAD_PAGE, b"Caf\xe9", "UTF-8"),
    Case("nul-byte",
         {BAD_PAGE: b"---\ntitle: Bad\naudience: public\n---\n\nFine.\nbinary \x00 junk\n"},
         BAD_PAGE, b"\x00", "NUL"),
    Case("file-name-not-utf8", {}, "content/guides/r\\xe9sum\\xe9.md", None, "not UTF-8", mutate=_latin1_file_name),
    Case("static-file-name-not-utf8", {}, "static/r\\xe9sum\\xe9.txt", None, "not UTF-8",
         mutate=lambda site: (os.makedirs(os.fsencode(site / "static"), exist_ok=True),
                              open(os.fsencode(site / "static") + b"/r\xe9sum\xe9.txt", "wb").close())),
    Case("symlink-file-outside-content", {}, "content/guides/linked.md", None, "symlink", mutate=_symlink_file_outside),
    Case("symlink-folder-outside-content", {}, "content/guides/elsewhere", None, "symlink", mutate=_symlink_folder_outside),
    Case("slug-escaping",
         {BAD_PAGE: "---\ntitle: Bad\naudience: public\nslug: ../../escape\n---\nBody.\n"},
         BAD_PAGE, "slug: ../../escape", "slug"),
    Case("slug-with-slash",
         {BAD_PAGE: "---\ntitle: Bad\naudience: public\nslug: a/b\n---\nBody.\n"},
         BAD_PAGE, "slug: a/b", "slug"),
    Case("file-name-not-a-url",
         {"content/guides/???.md": page("Question marks", "public")},
         "content/guides/???.md", None, "cannot become a URL"),
    Case("folder-name-not-a-url",
         {"content/%%%/page.md": page("Percent", "public")},
         "content/%%%", None, "cannot become a URL"),
]


def _expected_line(case: Case, site: Path) -> int | None:
    if case.needle is None:
        return None
    data = (site / case.path).read_bytes()
    needle = case.needle if isinstance(case.needle, bytes) else case.needle.encode()
    return data[: data.index(needle)].count(b"\n") + 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_fails_clearly_and_leaves_the_previous_build_untouched(tmp_path, case):
    site = make_site(tmp_path, GOOD_SITE)
    build_ok(site)
    snapshot = read_tree(site / "build")
    listing = tree_listing(site / "build")
    assert "public/guides/guide/index.html" in snapshot

    write_files(site, case.files)
    if case.mutate:
        case.mutate(site)
    result = build(site)

    assert result.exit_code == 1, f"exit {result.exit_code}, exception {result.exception!r}\n{result.output}"
    # The previous output is byte-identical, and no staging folder was left behind.
    assert read_tree(site / "build") == snapshot
    assert tree_listing(site / "build") == listing
    # The error is a message for an editor (not a crash), naming the file and the line.
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"crashed with {result.exception!r} instead of reporting {case.path}")
    line = _expected_line(case, site)
    where = case.path if line is None else f"{case.path}:{line}:"
    error_lines = [text for text in result.stderr.splitlines() if ": error: " in text]
    assert any(text.startswith(where) for text in error_lines), f"no error at {where!r}:\n{result.stderr}"
    assert any(case.message in text for text in error_lines), f"no {case.message!r} in:\n{result.stderr}"
    for name in case.also_names:
        assert name in result.stderr


@pytest.mark.parametrize("body, message", [
    ("{{ page.title | no_such_filter }}", "No filter named 'no_such_filter'"),
    ("{{ 1 / 0 }}", "ZeroDivisionError: division by zero"),
    ("{{ none | length }}", "TypeError"),
    ("{% macro again() %}{{ again() }}{% endmacro %}{{ again() }}", "RecursionError"),
], ids=["jinja-error", "division-by-zero", "length-of-none", "endless-macro"])
def test_an_error_a_template_raises_names_the_template_and_its_line(tmp_path, body, message):
    """Not only Jinja2's own errors: one an expression of the template raises was a traceback."""
    site = make_site(tmp_path, GOOD_SITE)
    build_ok(site)
    snapshot = read_tree(site / "build")
    write_files(site, {"templates/page.html": '{% extends "_page_frame.html" %}\n{% block after_body %}\n' + body + "\n{% endblock %}\n"})
    result = build(site)
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit)), result.output
    assert any(line.startswith("templates/page.html:3: error: template error") and message in line for line in result.stderr.splitlines()), result.stderr
    assert read_tree(site / "build") == snapshot


def test_a_template_that_is_not_utf8_is_an_error_on_its_line(tmp_path):
    site = make_site(tmp_path, {**GOOD_SITE, "templates/404.html": b'{% extends "base.html" %}\n{% block main %}\nP\xe1gina\n{% endblock %}\n'})
    result = build(site)
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit)), result.output
    assert "templates/404.html:3: error: invalid UTF-8" in result.stderr


def test_problems_of_one_file_with_and_without_a_line_sort_without_a_crash():
    from ipo_sitegen.errors import Problems

    problems = Problems()
    problems.error("content/a.md", 7, "second")
    problems.error("content/a.md", None, "about the whole file")
    problems.error("content/a.md", 3, "first")
    assert [p.line for p in problems.errors] == [None, 3, 7]


def test_a_link_to_a_page_with_a_query_string_resolves_to_the_page(tmp_path):
    site = make_site(tmp_path, {**GOOD_SITE, "content/guides/q.md": page("Q", "public", "[guide](guide.md?from=q#step-1)")})
    build_ok(site)
    assert 'href="../guide/#step-1"' in (site / "build/public/guides/q/index.html").read_text()


def test_warnings_are_reported_beside_the_errors(tmp_path):
    """'All problems at once': the warnings of a failed run were dropped with it."""
    site = make_site(tmp_path, {**GOOD_SITE, "content/loose/page.md": page("Loose", "public"),  # (a folder with no _index.md)
                                BAD_PAGE: page("Bad", "examiners")})
    result = build(site)
    assert result.exit_code == 1
    assert "content/guides/bad.md:3: error: unknown audience 'examiners'" in result.stderr
    assert "content/loose: warning: folder has no _index.md" in result.stderr


def test_a_command_run_outside_a_site_says_so_without_a_traceback(tmp_path):
    result = run(["new", "guides/setup.md", "--root", str(tmp_path)])
    assert result.exit_code == 1 and (result.exception is None or isinstance(result.exception, SystemExit)), result.output
    assert "sitegen.toml: error: no sitegen.toml in" in result.stderr and "sitegen init" in result.stderr


def test_check_command_reports_the_same_errors_without_writing(tmp_path):
    site = make_site(tmp_path, {**GOOD_SITE, BAD_PAGE: page("Bad", "examiners")})
    result = run(["check", "--root", str(site), "-q"])
    assert result.exit_code == 1
    assert "content/guides/bad.md:3: error: unknown audience 'examiners'" in result.stderr
    assert not (site / "build").exists()


def test_two_errors_in_two_files_are_both_reported_in_one_run(tmp_path):
    first = "---\ntitle: First\naudience: registred\n---\nBody.\n"
    second = page("Second", "public", "Intro.\n\nSee [nothing](nothing-here.md).\n")
    site = make_site(tmp_path, GOOD_SITE)
    build_ok(site)
    snapshot = read_tree(site / "build")

    write_files(site, {"content/guides/first.md": first, "content/members/second.md": second})
    result = build(site)

    assert result.exit_code == 1
    assert f"content/guides/first.md:{line_of(first, 'audience')}: error: unknown audience 'registred'" in result.stderr
    assert f"content/members/second.md:{line_of(second, 'nothing-here.md')}: error:" in result.stderr
    assert "2 problem(s)" in result.stderr
    assert read_tree(site / "build") == snapshot


def test_errors_in_hidden_bundles_are_still_reported(tmp_path):
    """A broken link inside an internal-only block is an error even if public is fine."""
    text = page("Mixed", "public", "Intro.\n\n::: audience internal\n\n[notes](staff-notes.md)\n\n:::\n")
    site = make_site(tmp_path, {**GOOD_SITE, "content/guides/mixed.md": text})
    result = build(site)
    assert result.exit_code == 1
    assert f"content/guides/mixed.md:{line_of(text, 'staff-notes.md')}: error:" in result.stderr


def test_a_page_file_with_an_upper_case_extension_is_a_warning(tmp_path):
    """Guide.MD from a Windows share is not read as a page: the editor is told, not left guessing."""
    site = make_site(tmp_path, {**GOOD_SITE, "content/guides/Legacy.MD": page("Legacy", "public")})
    result = build_ok(site)
    assert "content/guides/Legacy.MD: warning: not read as a page: page files end in '.md' (lower case)" in result.stderr
    assert build(site, "--strict").exit_code == 1


def test_fixing_the_error_lets_the_next_build_through(tmp_path):
    site = make_site(tmp_path, {**GOOD_SITE, BAD_PAGE: page("Bad", "examiners")})
    assert build(site).exit_code == 1
    assert not (site / "build").exists()

    write_files(site, {BAD_PAGE: page("Good now", "public")})
    build_ok(site)
    assert (site / "build/public/guides/bad/index.html").is_file()
