"""The gate: which bundle holds which page, and which part of a page.

Story: an IP office support space keeps one Markdown tree. Editors mark pages and passages with an
audience; the build must put each page and each passage only into the bundles allowed to see it.
"""

from __future__ import annotations

import re

import pytest
from helpers import (
    BUNDLES,
    GENERATED_ROOTS,
    build,
    build_ok,
    has_page,
    html,
    line_of,
    make_site,
    manifest,
    page,
)

HOME = page("Support space", "public", "Welcome to the support space.")


def pages_in(site, bundle: str) -> set[str]:
    """Pretty URLs of the content pages of a bundle (from its manifest; generated pages left out)."""
    return {
        path[: -len("index.html")]
        for path in manifest(site / "build" / bundle)["files"]
        if path.endswith("index.html") and path.split("/", 1)[0] not in GENERATED_ROOTS
    }


def body_of(site, bundle: str, url: str) -> str:
    """Only the article body of a page (no navigation), to look at what the gate left in."""
    text = html(site, bundle, url)
    return text[text.index('<div class="body">') : text.index("</article>")]


def toc_of(site, bundle: str, url: str) -> str:
    text = html(site, bundle, url)
    match = re.search(r'<aside class="toc".*?</aside>', text, re.S)
    return match.group(0) if match else ""


# -- Tiers and sections -------------------------------------------------------------------------


def test_each_bundle_holds_pages_at_or_below_its_tier(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open guide", "public"),
        "content/guides/members.md": page("Members guide", "registered"),
        "content/guides/staff.md": page("Staff guide", "internal"),
    })
    build_ok(site)

    assert pages_in(site, "public") == {"", "guides/", "guides/open/"}
    assert pages_in(site, "restricted") == {"", "guides/", "guides/open/", "guides/members/"}
    assert pages_in(site, "internal") == {"", "guides/", "guides/open/", "guides/members/", "guides/staff/"}
    # The section listing of each bundle shows only what that bundle holds.
    assert "Members guide" not in html(site, "public", "guides/")
    assert "Members guide" in html(site, "restricted", "guides/")
    assert "Staff guide" not in html(site, "restricted", "guides/")
    assert "Staff guide" in html(site, "internal", "guides/")


def test_section_audience_is_inherited_three_levels_deep(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        # public > public > public: a deep public page
        "content/open/_index.md": page("Open", "public"),
        "content/open/level2/_index.md": page("Open level 2"),
        "content/open/level2/level3/_index.md": page("Open level 3"),
        "content/open/level2/level3/leaf.md": page("Open leaf"),
        # registered at the top, nothing below: everything below is registered
        "content/members/_index.md": page("Members", "registered"),
        "content/members/level2/_index.md": page("Members level 2"),
        "content/members/level2/level3/_index.md": page("Members level 3"),
        "content/members/level2/level3/leaf.md": page("Members leaf"),
        # public at the top, internal in the middle: the most restrictive wins below it
        "content/mixed/_index.md": page("Mixed", "public"),
        "content/mixed/level2/_index.md": page("Mixed level 2", "internal"),
        "content/mixed/level2/level3/_index.md": page("Mixed level 3"),
        "content/mixed/level2/level3/leaf.md": page("Mixed leaf"),
    })
    build_ok(site)

    assert has_page(site, "public", "open/level2/level3/leaf/")
    for bundle, expected in (("public", False), ("restricted", True), ("internal", True)):
        assert has_page(site, bundle, "members/level2/level3/leaf/") is expected, bundle
        assert has_page(site, bundle, "members/level2/level3/") is expected, bundle
    assert has_page(site, "public", "mixed/")
    for bundle, expected in (("public", False), ("restricted", False), ("internal", True)):
        assert has_page(site, bundle, "mixed/level2/") is expected, bundle
        assert has_page(site, bundle, "mixed/level2/level3/leaf/") is expected, bundle


def test_folder_without_index_does_not_break_the_inherited_audience(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/members/_index.md": page("Members", "registered"),
        # members/tools/ has no _index.md, the page below asks for public
        "content/members/tools/cli.md": page("Command line", "public"),
    })
    result = build_ok(site)

    assert not has_page(site, "public", "members/tools/cli/")
    assert has_page(site, "restricted", "members/tools/cli/")
    assert "content/members/tools/cli.md" in result.stderr  # the less-restrictive warning


def test_page_asking_for_less_than_its_section_gets_the_section_tier_and_a_warning(tmp_path):
    text = page("Escapee", "public", "I would like to be public.")
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/members/_index.md": page("Members", "registered"),
        "content/members/escapee.md": text,
    })
    result = build_ok(site)

    assert not has_page(site, "public", "members/escapee/")
    assert has_page(site, "restricted", "members/escapee/")
    assert has_page(site, "internal", "members/escapee/")
    warning = f"content/members/escapee.md:{line_of(text, 'audience:')}: warning:"
    assert warning in result.stderr
    assert "registered" in result.stderr.split(warning, 1)[1].splitlines()[0]
    assert "Escapee" not in (site / "build" / "public" / "sitemap.xml").read_text()


def test_strict_turns_the_less_restrictive_warning_into_a_failure(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/members/_index.md": page("Members", "registered"),
        "content/members/escapee.md": page("Escapee", "public"),
    })
    result = build(site, "--strict")

    assert result.exit_code == 1
    assert "content/members/escapee.md:3:" in result.stderr
    assert not (site / "build" / "restricted").exists()


def test_default_deny_page_without_audience_anywhere_is_internal_only(tmp_path):
    site = make_site(tmp_path, {
        # the home page is public, but its audience does not cascade
        "content/_index.md": HOME,
        "content/loose.md": page("Loose page"),
        "content/drafts/_index.md": page("Unmarked section"),
        "content/drafts/idea.md": page("Unmarked idea"),
    })
    build_ok(site)

    for url in ("loose/", "drafts/", "drafts/idea/"):
        assert not has_page(site, "public", url), url
        assert not has_page(site, "restricted", url), url
        assert has_page(site, "internal", url), url
    assert "Loose page" not in html(site, "public")
    assert "Loose page" in html(site, "internal")


def test_unknown_audience_is_an_error_with_file_and_line(tmp_path):
    text = page("Typo", "registred", "Oops.")
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/typo.md": text})
    result = build(site)

    assert result.exit_code == 1
    assert f"content/typo.md:{line_of(text, 'audience:')}: error:" in result.stderr
    assert "registred" in result.stderr
    assert "public, registered, internal" in result.stderr  # the fix: the valid names
    assert not (site / "build").exists()


@pytest.mark.parametrize("home_audience", [None, "public"])
def test_home_page_is_in_every_bundle(tmp_path, home_audience):
    site = make_site(tmp_path, {
        "content/_index.md": page("Front door", home_audience, "Hello everyone."),
        "content/open/_index.md": page("Open", "public"),
        "content/open/page.md": page("Open page"),
    })
    build_ok(site)

    for bundle in BUNDLES:
        assert "Hello everyone." in html(site, bundle), bundle
    # ... and its audience does not cascade to the sections below it.
    assert has_page(site, "public", "open/page/")


@pytest.mark.parametrize("home_audience", ["registered", "internal"])
def test_a_home_page_for_fewer_readers_than_every_bundle_is_an_error(tmp_path, home_audience):
    """Its text would be on the open web: the home page is in every bundle."""
    text = page("Staff home", home_audience, "The restructuring cuts four departments.")
    site = make_site(tmp_path, {"content/_index.md": text, "content/open/_index.md": page("Open", "public")})
    result = build(site)
    assert result.exit_code == 1
    assert f"content/_index.md:{line_of(text, 'audience')}: error: the home page is in every bundle" in result.stderr
    assert f"::: audience {home_audience}" in result.stderr  # (what to write instead)
    assert not (site / "build").exists()


def test_a_home_page_may_ask_for_the_tier_of_the_least_restricted_bundle(tmp_path):
    """A site without a public bundle: a home page for registered readers is in all its bundles."""
    config = '[site]\ntitle = "Offices"\n\n[bundles.restricted]\ntier = "registered"\n\n[bundles.internal]\ntier = "internal"\n'
    site = make_site(tmp_path, {"content/_index.md": page("Offices home", "registered", "Hello offices."),
                                "content/open/_index.md": page("Open", "registered")}, config=config)
    build_ok(site)
    assert "Hello offices." in html(site, "restricted") and "Hello offices." in html(site, "internal")


# -- Block gating ---------------------------------------------------------------------------------

GATED_BODY = """\
Everyone reads this.

::: audience registered

Registered readers see the PELICAN paragraph.

:::

::: audience internal

Only staff see the WALRUS paragraph.

:::

Everyone reads the ending.
"""


def test_gated_blocks_are_removed_below_their_tier_and_marked_above(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/mixed.md": page("Mixed page", body=GATED_BODY),
    })
    build_ok(site)

    public = html(site, "public", "open/mixed/")
    restricted = html(site, "restricted", "open/mixed/")
    internal = html(site, "internal", "open/mixed/")
    for text in (public, restricted, internal):
        assert "Everyone reads this." in text and "Everyone reads the ending." in text
    assert "PELICAN" not in public and "WALRUS" not in public
    assert 'data-audience' not in public and ":::" not in public
    assert "PELICAN" in restricted and "WALRUS" not in restricted
    assert "PELICAN" in internal and "WALRUS" in internal
    assert re.search(r'<div class="gated" data-audience="registered">\s*<p>Registered readers see the PELICAN', restricted)
    assert re.search(r'<div class="gated" data-audience="internal">\s*<p>Only staff see the WALRUS', internal)
    assert ":::" not in restricted and ":::" not in internal


def test_a_block_may_be_fenced_with_more_than_three_colons(tmp_path):
    """As Pandoc's fenced divs: '::::' opens and closes like ':::' (it was four errors for two lines)."""
    body = "Public.\n\n:::: audience internal\n\nStaff-only KOALA note.\n\n::::\n\nEnd.\n"
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/open/_index.md": page("Open", "public"),
                                "content/open/k.md": page("K", body=body)})
    build_ok(site)
    assert "KOALA" not in html(site, "public", "open/k/") and "End." in html(site, "public", "open/k/")
    assert re.search(r'<div class="gated" data-audience="internal">\s*<p>Staff-only KOALA note', html(site, "internal", "open/k/"))


def test_nested_gated_blocks(tmp_path):
    body = """\
Public start.

::: audience registered

Outer KESTREL text.

::: audience internal

Inner MARMOT text.

:::

Outer KESTREL continues.

:::

::: audience internal

::: audience public

A public block inside an internal one stays internal: NARWHAL.

:::

:::

Public end.
"""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/nested.md": page("Nested", body=body),
    })
    build_ok(site)

    public = body_of(site, "public", "open/nested/")
    restricted = body_of(site, "restricted", "open/nested/")
    internal = body_of(site, "internal", "open/nested/")
    assert "Public start." in public and "Public end." in public
    assert not any(word in public for word in ("KESTREL", "MARMOT", "NARWHAL"))
    assert public.count("<p>") == 2
    assert restricted.count("KESTREL") == 2
    assert "MARMOT" not in restricted and "NARWHAL" not in restricted
    assert "MARMOT" in internal and "NARWHAL" in internal
    # The internal block sits inside the registered one in the internal bundle.
    outer = internal.index('data-audience="registered"')
    inner = internal.index('data-audience="internal"')
    assert outer < inner < internal.index("MARMOT") < internal.rindex("KESTREL")


def test_heading_inside_a_gated_block_is_absent_from_public_html_and_toc(tmp_path):
    body = """\
## Getting an account

Write to the helpdesk.

::: audience registered

## Configuring the CAPYBARA gateway

Set the key.

### CAPYBARA troubleshooting

Restart it.

:::

## Contact

Call us.
"""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/howto.md": page("How to", body=body),
    })
    build_ok(site)

    public = html(site, "public", "open/howto/")
    public_toc = toc_of(site, "public", "open/howto/")
    assert "Getting an account" in public_toc and "Contact" in public_toc
    assert "CAPYBARA" not in public
    assert "capybara" not in public.lower()  # not even as a heading id or TOC anchor
    restricted_toc = toc_of(site, "restricted", "open/howto/")
    assert "Configuring the CAPYBARA gateway" in restricted_toc
    assert 'href="#configuring-the-capybara-gateway"' in restricted_toc
    assert 'id="configuring-the-capybara-gateway"' in html(site, "restricted", "open/howto/")


def test_fenced_code_inside_a_gated_block_may_contain_triple_colons(tmp_path):
    body = """\
Public intro.

::: audience registered

Configure the IBEX daemon like this:

```text
:::
::: audience internal
IBEX config line
:::
```

Still inside the IBEX block after the code.

:::

Public outro.

```text
::: audience internal
shown to everyone as code
:::
```
"""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/code.md": page("Code", body=body),
    })
    build_ok(site)

    public = body_of(site, "public", "open/code/")
    restricted = body_of(site, "restricted", "open/code/")
    assert "IBEX" not in public
    assert "Public intro." in public and "Public outro." in public
    # code in public text is shown literally, not parsed as a gate
    assert "shown to everyone as code" in public
    assert "::: audience internal" in public
    # In the restricted bundle the whole block is there, code lines included, and closed in the right place.
    assert "IBEX config line" in restricted
    assert "Still inside the IBEX block after the code." in restricted
    gated = re.search(r'<div class="gated" data-audience="registered">(.*?)</div>\s*<p>Public outro', restricted, re.S)
    assert gated and "Still inside the IBEX block" in gated.group(1)


@pytest.mark.parametrize(
    "body, needle, message",
    [
        ("Intro.\n\n::: audience registered\n\nNever closed.\n", "::: audience registered", "never closed"),
        ("Intro.\n\n:::\n\nStray closer.\n", ":::", "never opened"),
        ("Intro.\n\n::: audience secret\n\nHidden.\n\n:::\n", "::: audience secret", "unknown audience 'secret'"),
        # Python-Markdown would render these markers as text of the quote, list or definition, and the block with them.
        ("> ::: audience internal\n> The root password is hunter2.\n> :::\n", "> ::: audience", "inside a quote, list or definition"),
        ("- Step one.\n- ::: audience internal\n\n  hunter2\n\n  :::\n", "- ::: audience", "inside a quote, list or definition"),
        ("Term\n:   ::: audience internal\n\n    hunter2\n\n    :::\n", ":   ::: audience", "inside a quote, list or definition"),
    ],
    ids=["unclosed", "stray-close", "unknown-tier", "in-a-quote", "in-a-list-item", "in-a-definition"],
)
def test_broken_gated_block_is_an_error_with_the_line(tmp_path, body, needle, message):
    text = page("Broken", "public", body)
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/broken.md": text})
    result = build(site)

    assert result.exit_code == 1
    assert f"content/broken.md:{line_of(text, needle)}: error:" in result.stderr
    assert message in result.stderr
    assert not (site / "build").exists()


UNSEEN_MARKERS = {
    # A block nested in a list item: the marker is indented, so it is not at the start of the line.
    "indented-in-a-list": """\
- First step.

    ::: audience internal

    The OCELOT password is on the wiki.

    :::

- Second step.
""",
    # A code fence the editor forgot to close: Markdown renders the rest as text, not as code.
    "after-an-unclosed-fence": """\
Run this:

```bash
echo start

::: audience internal

The OCELOT password is on the wiki.

:::

End.
""",
    # A fence indented by two spaces is not a fence for the Markdown renderer.
    "inside-an-indented-fence": """\
Public.

  ```
::: audience internal
The OCELOT password is on the wiki.
:::
  ```

End.
""",
}


@pytest.mark.parametrize("body", UNSEEN_MARKERS.values(), ids=UNSEEN_MARKERS.keys())
def test_gated_text_the_gate_does_not_recognise_is_never_published(tmp_path, body):
    """A `::: audience` passage must be gated or reported, never rendered as public text.

    Whatever the gate decides is code or not a marker, the public HTML must not show the text of a
    passage the editor marked internal: either the build refuses it, or the passage is cut.
    """
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/steps.md": page("Steps", body=body),
    })
    result = build(site)

    if result.exit_code == 0:
        assert "OCELOT" not in html(site, "public", "open/steps/")
        assert "OCELOT" not in html(site, "restricted", "open/steps/")
    else:
        assert result.exit_code == 1
        assert "content/open/steps.md" in result.stderr


def test_an_indented_gated_block_stays_inside_its_admonition_or_list_item(tmp_path):
    """Indented like the text around it, a block is part of the admonition or list item: where it
    may be seen, its text is rendered there (not as a code block after it); elsewhere it is cut."""
    body = ("!!! warning\n    Public warning.\n\n    ::: audience internal\n\n    Staff-only PUFFIN advice.\n\n    :::\n\n"
            "    Public end of the warning.\n\n- First step.\n\n    ::: audience registered\n\n    Registered MARTEN detail.\n\n"
            "    :::\n\n- Second step.\n")
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/open/_index.md": page("Open", "public"),
                                "content/open/steps.md": page("Steps", body=body)})
    build_ok(site)
    public, internal = body_of(site, "public", "open/steps/"), body_of(site, "internal", "open/steps/")
    assert "PUFFIN" not in public and "MARTEN" not in public and "Public end of the warning." in public
    assert "<pre>" not in internal and ":::" not in internal
    admonition = re.search(r'<div class="admonition warning">(.*?)</div>', internal, re.S)
    assert admonition and "<p>Staff-only PUFFIN advice.</p>" in admonition.group(1) and "Public end of the warning." in admonition.group(1)
    first = re.search(r"<li>(.*?)</li>", internal, re.S)
    assert first and "First step." in first.group(1) and "<p>Registered MARTEN detail.</p>" in first.group(1)


# -- Drafts and embargoes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{"draft": "true"}, {"publish_date": "2999-01-01"}, {"expiry_date": "2000-01-01"}],
    ids=["draft", "publish-in-future", "expired"],
)
def test_drafts_and_embargoed_pages_only_with_drafts_flag(tmp_path, extra):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/live.md": page("Live page", publish_date="2001-01-01", expiry_date="2998-12-31"),
        "content/open/held.md": page("Held back page", **extra),
    })
    build_ok(site)
    for bundle in BUNDLES:
        assert not has_page(site, bundle, "open/held/"), bundle
        assert "Held back page" not in html(site, bundle, "open/"), bundle
    assert has_page(site, "public", "open/live/")

    build_ok(site, "--drafts")
    for bundle in BUNDLES:
        assert has_page(site, bundle, "open/held/"), bundle


def test_draft_section_hides_every_page_below_it(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/soon/_index.md": page("Coming soon", "public", draft="true"),
        "content/soon/feature.md": page("New feature"),
    })
    build_ok(site)
    for bundle in BUNDLES:
        assert not has_page(site, bundle, "soon/feature/")
        assert not has_page(site, bundle, "soon/")


def test_embargo_follows_source_date_epoch(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/launch.md": page("Launch notice", publish_date="2020-06-01"),
    })
    build_ok(site, env={"SOURCE_DATE_EPOCH": "1577836800"})  # 2020-01-01
    assert not has_page(site, "public", "open/launch/")
    build_ok(site, env={"SOURCE_DATE_EPOCH": "1609459200"})  # 2021-01-01
    assert has_page(site, "public", "open/launch/")


# -- Custom tiers and bundle selection ---------------------------------------------------------

FOUR_TIERS = """\
[site]
title = "Four tiers"

[audiences]
tiers = ["public", "partner", "member", "staff"]

[bundles.www]
tier = "public"

[bundles.partners]
tier = "partner"

[bundles.members]
tier = "member"

[bundles.staff]
tier = "staff"
"""


def test_four_custom_tiers_each_get_their_bundle(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", "Hi."),
        "content/docs/_index.md": page("Docs", "public"),
        "content/docs/a.md": page("Tier A", "public"),
        "content/docs/b.md": page("Tier B", "partner"),
        "content/docs/c.md": page("Tier C", "member", "Body.\n\n::: audience staff\n\nSTAFFONLY note.\n\n:::\n"),
        "content/docs/d.md": page("Tier D", "staff"),
        "content/e/_index.md": page("Default deny"),
    }, FOUR_TIERS)
    build_ok(site)

    expected = {
        "www": {"a"},
        "partners": {"a", "b"},
        "members": {"a", "b", "c"},
        "staff": {"a", "b", "c", "d"},
    }
    assert sorted(p.name for p in (site / "build").iterdir()) == sorted(expected)
    for bundle, names in expected.items():
        held = {url.split("/")[1] for url in pages_in(site, bundle) if url.startswith("docs/") and url != "docs/"}
        assert held == names, bundle
        assert manifest(site / "build" / bundle)["tier"] == {"www": "public", "partners": "partner", "members": "member", "staff": "staff"}[bundle]
    # no audience anywhere: the most restrictive of the four tiers
    assert [b for b in expected if has_page(site, b, "e/")] == ["staff"]
    assert "STAFFONLY" not in html(site, "members", "docs/c/")
    assert "STAFFONLY" in html(site, "staff", "docs/c/")
    assert (site / "build" / "partners" / "robots.txt").read_text().count("Disallow: /") == 1


def test_page_audiences_are_checked_against_the_configured_tiers(tmp_path):
    """An unknown tier in a page is judged against the configured tiers, not the defaults."""
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public"),
        "content/x.md": page("X", "registered"),
    }, FOUR_TIERS)
    result = build(site)
    assert result.exit_code == 1
    assert "content/x.md:3:" in result.stderr and "'registered'" in result.stderr


def test_bundle_option_builds_only_that_bundle(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/members/_index.md": page("Members", "registered"),
    })
    build_ok(site, "--bundle", "public")
    assert sorted(p.name for p in (site / "build").iterdir() if not p.name.startswith(".")) == ["public"]
    assert has_page(site, "public", "open/")

    # A later full build then a public-only build leaves the other bundles as they were.
    build_ok(site)
    before = (site / "build" / "restricted" / "manifest.json").read_bytes()
    build_ok(site, "--bundle", "public")
    assert (site / "build" / "restricted" / "manifest.json").read_bytes() == before
    assert has_page(site, "restricted", "members/")
