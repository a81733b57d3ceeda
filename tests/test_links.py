"""Links and attachments: relative in every bundle, locked when the target is above the bundle.

Story: editors link pages as files (`installation.md#requirements`); readers of each bundle get
working relative links, and readers of a lower bundle get a lock instead of a broken link, without
learning anything about the page behind it.
"""

from __future__ import annotations

import re

import pytest
from helpers import (
    BASE_URL_CONFIG,
    BUNDLES,
    MEDIUM_SITE,
    PDF_REGISTERED,
    PNG_INTERNAL,
    PNG_PUBLIC,
    PNG_REGISTERED,
    all_bytes,
    build,
    build_ok,
    check_links,
    has_page,
    html,
    line_of,
    make_site,
    page,
    read_tree,
    sha256,
    write_files,
)

HOME = page("Home", "public", "Welcome.")


def anchors(text: str) -> list[tuple[str, str, set[str]]]:
    """(href, inner text, classes) of every <a> in the article body."""
    body = text[text.index('<div class="body">') : text.index("</article>")]
    found = []
    for match in re.finditer(r"<a ([^>]*)>(.*?)</a>", body, re.S):
        attrs = match.group(1)
        href = re.search(r'href="([^"]*)"', attrs)
        classes = re.search(r'class="([^"]*)"', attrs)
        found.append((href.group(1) if href else None, re.sub(r"<[^>]+>", "", match.group(2)), set(classes.group(1).split()) if classes else set()))
    return found


def link_named(text: str, words: str) -> tuple[str | None, set[str]]:
    for href, inner, classes in anchors(text):
        if inner.startswith(words):
            return href, classes
    raise AssertionError(f"no link {words!r} in the page body")


# -- Relative links -----------------------------------------------------------------------------


def test_relative_links_with_anchors_resolve_in_every_bundle(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", "Read [the steps](guides/steps.md#step-2)."),
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/steps.md": page("Steps", body="""\
## Step 1

Go to [step 2](#step-2), see [the reference](reference.md#options), [the section](_index.md),
[about, as a folder](../about/), [about, as a file](../about/_index.md#mission) and [deep](deep/nested/leaf.md).

## Step 2

Done.
"""),
        "content/guides/reference.md": page("Reference", body="## Options\n\nBack to [steps](steps.md#step-1)."),
        "content/guides/deep/nested/leaf.md": page("Leaf", body="Up to [steps](../../steps.md)."),
        "content/about/_index.md": page("About", "public", "## Mission\n\nHelp offices."),
    })
    build_ok(site)

    expected = {
        "step 2": "#step-2",
        "the reference": "../reference/#options",
        "the section": "../",
        "about, as a folder": "../../about/",
        "about, as a file": "../../about/#mission",
        "deep": "../deep/nested/leaf/",
    }
    for bundle in BUNDLES:
        steps = html(site, bundle, "guides/steps/")
        for words, href in expected.items():
            assert link_named(steps, words) == (href, set()), (bundle, words)
        assert link_named(html(site, bundle), "the steps")[0] == "guides/steps/#step-2"
        assert link_named(html(site, bundle, "guides/deep/nested/leaf/"), "steps")[0] == "../../../steps/"
        # The anchors exist on the target pages.
        assert 'id="options"' in html(site, bundle, "guides/reference/")
        assert 'id="mission"' in html(site, bundle, "about/")
        assert 'id="step-2"' in steps


def test_link_to_a_page_with_a_slug_uses_the_slug(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", "See [keys](admin/key-gen.md#rotate)."),
        "content/admin/_index.md": page("Admin", "public", slug="administration"),
        "content/admin/key-gen.md": page("Keys", slug="key-generation", body="## Rotate\n\nNow."),
    })
    build_ok(site)
    assert has_page(site, "public", "administration/key-generation/")
    assert link_named(html(site, "public"), "keys")[0] == "administration/key-generation/#rotate"


def test_file_names_with_spaces_and_capitals_become_clean_urls_and_links_follow(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", """\
[encoded](Office%20Guides/Key%20Setup.md#rotate) [angle](<Office Guides/Key Setup.md>) [reference][keys]

[keys]: Office%20Guides/Key%20Setup.md
"""),
        "content/Office Guides/_index.md": page("Office guides", "public"),
        "content/Office Guides/Key Setup.md": page("Key setup", body="## Rotate\n\nNow."),
    })
    build_ok(site)
    home = html(site, "public")
    assert has_page(site, "public", "office-guides/key-setup/")
    assert link_named(home, "encoded")[0] == "office-guides/key-setup/#rotate"
    assert link_named(home, "angle")[0] == "office-guides/key-setup/"
    assert link_named(home, "reference")[0] == "office-guides/key-setup/"


# -- Locked links -------------------------------------------------------------------------------


def locked_site(tmp_path, config=None):
    return make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/access/_index.md": page("Access", "public"),
        "content/access/account.md": page("Requesting an account", body="""\
Offices can [ask for an account](../members/zanzibar.md#login) today.

Staff use [the other form](../staff/okapi.md).
"""),
        "content/members/_index.md": page("Members", "registered"),
        "content/members/zanzibar.md": page("Zanzibar procedure", body="## Login\n\nStaff: [form](../staff/okapi.md)."),
        "content/staff/_index.md": page("Staff", "internal"),
        "content/staff/okapi.md": page("Okapi form"),
    }, config)


def test_locked_link_points_to_the_restricted_base_url_with_the_authors_text_only(tmp_path):
    site = locked_site(tmp_path, BASE_URL_CONFIG)
    build_ok(site)
    public = html(site, "public", "access/account/")

    href, classes = link_named(public, "ask for an account")
    assert href == "https://support.example.org/restricted/members/zanzibar/#login"
    assert "locked" in classes
    assert re.search(r'<a class="locked" href="[^"]*" data-tier="registered">ask for an account', public)
    # The target's title is never added: not in the link, not anywhere in the public bundle.
    assert "Zanzibar procedure" not in public
    assert b"Zanzibar procedure" not in all_bytes(site / "build" / "public")
    assert b"Okapi form" not in all_bytes(site / "build" / "public")
    # The internal bundle has no base_url: the lock keeps the words only, with no link at all.
    assert re.search(r'<span class="locked" data-tier="internal">the other form', public)
    assert "staff/okapi" not in public

    # In the restricted bundle the same link is an ordinary relative link.
    restricted = html(site, "restricted", "access/account/")
    assert link_named(restricted, "ask for an account") == ("../../members/zanzibar/#login", set())
    # ... while the staff page stays locked there.
    assert "Okapi form" not in restricted
    assert '<span class="locked" data-tier="internal">the other form' in restricted
    # The internal bundle sees everything as plain links.
    internal = html(site, "internal", "access/account/")
    assert link_named(internal, "the other form") == ("../../staff/okapi/", set())


def test_locked_link_without_base_url_keeps_the_text_and_no_href(tmp_path):
    site = locked_site(tmp_path)
    build_ok(site)
    public = html(site, "public", "access/account/")

    assert '<span class="locked" data-tier="registered">ask for an account' in public
    assert "zanzibar" not in public.lower()
    assert [href for href, inner, _ in anchors(public) if "account" in inner] == []


def test_links_in_raw_html_are_resolved_locked_and_checked_like_markdown_links(tmp_path):
    """Editors coming from a wiki paste HTML: `<a href="zanzibar.md">` must not stay a link to a
    source file (broken in every bundle, naming the restricted page's file in public)."""
    body = ("Use <a href='../members/zanzibar.md#login' class=\"cta\">the office form</a> today.\n\n"
            '<p>Or <a href="../access/account.md">your account page</a>.</p>\n\n'
            '<div markdown="1">\n<img src="chart.png" alt="Chart">\n</div>\n\n'
            '<P>Shouted: <A HREF="../access/account.md">the account page in capitals</A>.</P>\n\n'
            '<p>Bare: <a href=../members/zanzibar.md>the form, unquoted</a>.</p>\n\n'
            "<script>var template = '<a href=\"account.md\">x</a>';</script>\n\n<!-- <a href=\"account.md\">old link</a> -->\n")
    site = locked_site(tmp_path, BASE_URL_CONFIG)
    write_files(site, {"content/access/raw.md": page("Raw", body=body), "content/access/chart.png": PNG_PUBLIC})
    build_ok(site)
    public, restricted = html(site, "public", "access/raw/"), html(site, "restricted", "access/raw/")
    assert "zanzibar" not in re.sub(r"https://support\.example\.org/restricted/members/zanzibar/(#login)?", "", public)
    assert re.search(r'<a class="locked" href="https://support.example.org/restricted/members/zanzibar/#login" data-tier="registered">'
                     r"the office form", public)
    assert link_named(restricted, "the office form") == ("../../members/zanzibar/#login", {"cta"})
    assert link_named(restricted, "the form, unquoted")[0] == "../../members/zanzibar/"
    for text in (public, restricted):  # (a script's strings and a comment are text, not links)
        assert "<script>var template = '<a href=\"account.md\">x</a>';</script>" in text
        assert '<!-- <a href="account.md">old link</a> -->' in text
    assert re.search(r'<a class="locked" href="https://support.example.org/restricted/members/zanzibar/" data-tier="registered">the form, unquoted', public)
    for text in (public, restricted):
        assert link_named(text, "your account page")[0] == "../account/"
        assert '<img src="../chart.png" alt="Chart"' in text
        assert link_named(text, "the account page in capitals")[0] == "../account/" and "sitegen:" not in text
    assert (site / "build/public/access/chart.png").is_file()

    broken = page("Raw", body="Intro.\n\n<p>See <a href=\"nowhere.md\">this</a>.</p>\n")
    write_files(site, {"content/access/raw.md": broken})
    result = build(site)
    assert result.exit_code == 1
    assert f"content/access/raw.md:{line_of(broken, 'nowhere.md')}: error: link to a page or file that does not exist: 'nowhere.md'" in result.stderr


def test_a_link_to_an_anchor_that_does_not_exist_is_a_warning_on_its_line(tmp_path):
    target = page("Target", "public", "## Step one\n\nText.[^1]\n\nA custom place.\n{: #custom-place }\n\n"
                  "::: audience registered\n\n## Members only\n\nText.\n\n:::\n\n[^1]: A note.\n")
    linking = page("Linking", "public", "Good: [a](target.md#step-one), [b](target.md#custom-place), [c](target.md#fn:1),\n"
                   "[d](target.md#members-only), [e](#own-heading), [f](#top), [g](#old-name).\n\n## Own heading\n\n"
                   '<a name="old-name"></a>\n\n'
                   "Bad: [f](target.md#step-two)\n\nand [g](#nowhere).\n")
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/target.md": target, "content/linking.md": linking})
    result = build_ok(site)
    warnings = [line for line in result.stderr.splitlines() if "no heading or element there has that id" in line]
    assert warnings == [
        # (the heading is in a registered block: in public the link leads nowhere, and names it)
        f"content/linking.md:{line_of(linking, '#members-only')}: warning: link to '#members-only' of content/target.md: "
        "no heading or element there has that id in the public bundle, which may not see the block that holds it "
        "(use the anchor of the heading's ¶ link (its words in lower case, joined by '-'))",
        f"content/linking.md:{line_of(linking, '#step-two')}: warning: link to '#step-two' of content/target.md: "
        "no heading or element there has that id (use the anchor of the heading's ¶ link (its words in lower case, joined by '-'))",
        f"content/linking.md:{line_of(linking, '#nowhere')}: warning: link to '#nowhere' of content/linking.md: "
        "no heading or element there has that id (use the anchor of the heading's ¶ link (its words in lower case, joined by '-'))",
    ], result.stderr
    assert build(site, "--strict").exit_code == 1


def test_an_attachment_linked_by_reference_is_published_with_its_page(tmp_path):
    """`![chart][c]` … `[c]: chart.png`: the audit must know the page shows it (it failed the build as a leak)."""
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/guides/_index.md": page("Guides", "public"),
                                "content/guides/report.md": page("Report", body="See ![the chart][c] and [the PDF][d].\n\n"
                                                                 "[c]: chart.png\n  [d]: <form.pdf> \"The form\"\n"),
                                "content/guides/chart.png": PNG_PUBLIC, "content/guides/form.pdf": PDF_REGISTERED})
    build_ok(site)
    for bundle in BUNDLES:
        assert (site / "build" / bundle / "guides/chart.png").is_file() and (site / "build" / bundle / "guides/form.pdf").is_file()


def test_link_to_a_missing_page_is_an_error_naming_file_and_line(tmp_path):
    text = page("Guide", "public", "Intro.\n\nSee [setup](setpu.md#step-1) for more.\n")
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/guide.md": text})
    result = build(site)

    assert result.exit_code == 1
    assert f"content/guide.md:{line_of(text, 'setpu.md')}: error:" in result.stderr
    assert "setpu.md" in result.stderr
    assert not (site / "build").exists()


@pytest.mark.parametrize("href", ["../../etc/passwd", "../../sitegen.toml", "../../../outside.md"])
def test_link_leaving_the_content_folder_is_an_error(tmp_path, href):
    text = page("Guide", "public", f"Intro.\n\nRead [this]({href}).\n")
    site = make_site(tmp_path, {"content/_index.md": HOME, "content/guides/_index.md": page("G", "public"),
                                "content/guides/guide.md": text})
    result = build(site)

    assert result.exit_code == 1
    assert f"content/guides/guide.md:{line_of(text, href)}: error:" in result.stderr
    assert "leaves the content folder" in result.stderr


def test_link_to_a_draft_keeps_only_the_words(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", "Soon: [the new guide](next.md)."),
        "content/next.md": page("Secret next guide", "public", draft="true"),
    })
    result = build_ok(site)
    home = html(site, "public")
    assert "the new guide" in home
    assert "next/" not in home and "Secret next guide" not in home
    assert "content/_index.md" in result.stderr and "draft" in result.stderr


# -- Attachments --------------------------------------------------------------------------------


def public_hashes(site) -> set[str]:
    return {sha256(data) for data in read_tree(site / "build" / "public").values()}


def test_image_referenced_only_by_a_registered_page_stays_out_of_public(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open", body="No pictures here."),
        "content/guides/members.md": page("Members", "registered", "![Setup screen](setup.png)"),
        "content/guides/setup.png": PNG_REGISTERED,
    })
    build_ok(site)

    assert not (site / "build/public/guides/setup.png").exists()
    assert sha256(PNG_REGISTERED) not in public_hashes(site)
    assert (site / "build/restricted/guides/setup.png").read_bytes() == PNG_REGISTERED
    assert '<img alt="Setup screen" src="../setup.png"' in html(site, "restricted", "guides/members/")


def test_image_in_a_registered_section_is_not_copied_to_public_even_if_a_public_page_uses_it(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/tour.md": page("Tour", body="![Server room](../members/room.png)"),
        "content/members/_index.md": page("Members", "registered"),
        "content/members/notes.md": page("Notes", body="Nothing."),
        "content/members/room.png": PNG_INTERNAL,
    })
    build_ok(site)

    assert not (site / "build/public/members").exists()
    assert sha256(PNG_INTERNAL) not in public_hashes(site)
    tour = html(site, "public", "open/tour/")
    assert "<img" not in tour[tour.index('<div class="body">'):]
    assert "room.png" not in tour
    # The restricted bundle has the image and the public page's view of it works there.
    assert (site / "build/restricted/members/room.png").read_bytes() == PNG_INTERNAL
    assert 'src="../../members/room.png"' in html(site, "restricted", "open/tour/")


def test_unreferenced_attachment_is_in_no_bundle(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public", "Nothing attached."),
        "content/open/orphan.pdf": PDF_REGISTERED,
    })
    build_ok(site)
    for bundle in BUNDLES:
        assert not (site / "build" / bundle / "open/orphan.pdf").exists()


def test_attachment_referenced_from_a_gated_block_follows_the_block(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/page.md": page("Page", body="Hello.\n\n::: audience registered\n\n[Report](report.pdf)\n\n:::\n"),
        "content/open/report.pdf": PDF_REGISTERED,
    })
    build_ok(site)
    assert not (site / "build/public/open/report.pdf").exists()
    assert sha256(PDF_REGISTERED) not in public_hashes(site)
    assert (site / "build/restricted/open/report.pdf").read_bytes() == PDF_REGISTERED


def test_public_image_next_to_a_public_page_is_published(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/open/_index.md": page("Open", "public"),
        "content/open/page.md": page("Page", body="![Diagram](diagram.png)"),
        "content/open/diagram.png": PNG_PUBLIC,
    })
    build_ok(site)
    for bundle in BUNDLES:
        assert (site / "build" / bundle / "open/diagram.png").read_bytes() == PNG_PUBLIC
        assert 'src="../diagram.png"' in html(site, bundle, "open/page/")


# -- The link checker ---------------------------------------------------------------------------


@pytest.mark.parametrize("config", [None, BASE_URL_CONFIG], ids=["no-base-url", "base-url"])
def test_every_relative_link_in_every_bundle_points_to_a_file_of_that_bundle(tmp_path, config):
    site = make_site(tmp_path, MEDIUM_SITE, config)
    build_ok(site)

    checked = sum(check_links(site / "build" / bundle) for bundle in BUNDLES)
    assert checked > 100  # the checker really looked at the links of the medium site

    # Sanity: what each bundle holds, so the check above was run on the right trees.
    assert not (site / "build/public/members").exists()
    assert (site / "build/restricted/members/report.pdf").read_bytes() == PDF_REGISTERED
    assert (site / "build/internal/staff/rack.png").read_bytes() == PNG_INTERNAL
    assert (site / "build/public/guides/diagram.png").read_bytes() == PNG_PUBLIC
    assert has_page(site, "public", "guides/advanced/performance-tuning/")
