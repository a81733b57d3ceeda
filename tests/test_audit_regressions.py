"""Regression tests for the leak classes seen in other generators, on real builds.

Story: generators that filter pages correctly still leak restricted material through the side doors —
the search index, the sitemap, the sidebar, previous/next links, label pages, section listings, the
table of contents, the titles of link targets, attachments, feeds and diffs. Each test builds a site
where restricted material carries a canary word, insists that the build passes (the audit raises no
false alarm on honest content) and that no file of the public bundle holds the canary in any form,
and checks that the side door itself exists and works (so that a missing feature cannot pass for a
closed door).

The second half is false alarms: honest sites whose public and restricted pages share words (a
standard disclaimer, a common heading, the theme's own words) must build.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
from helpers import BASE_URL_CONFIG, build_ok, git, has_page, make_site, page, parse_links, read_tree, write_files

HOME = page("Support space", "public", "Welcome to the support space for intellectual-property offices.")


def bundle_files(site: Path, bundle: str) -> dict[str, bytes]:
    files = read_tree(site / "build" / bundle)
    assert files, f"build/{bundle} is empty"
    return files


def decoded_forms(data: bytes) -> list[str]:
    """A file as a reader or a script could see it: raw, HTML-unescaped, JSON/JS string escapes decoded."""
    text = data.decode("utf-8", errors="replace")
    forms = [text, html.unescape(text)]
    for literal in re.findall(r'"(?:\\.|[^"\\\n])*"', text):
        try:
            forms.append(json.loads(literal))
        except ValueError:
            pass
    return forms


def where(site: Path, bundle: str, needle: str) -> list[str]:
    """Every file of the bundle that holds `needle` (case-insensitive), in any decoded form."""
    lowered = needle.casefold()
    return [name for name, data in bundle_files(site, bundle).items()
            if any(lowered in form.casefold() for form in decoded_forms(data))]


def assert_nowhere(site: Path, bundle: str, *needles: str) -> None:
    for needle in needles:
        found = where(site, bundle, needle)
        assert not found, f"{needle!r} leaked into {bundle}: {found}"


def text_of(site: Path, bundle: str, path: str) -> str:
    return (site / "build" / bundle / path).read_text(encoding="utf-8")


def search_files(site: Path, bundle: str) -> dict[str, bytes]:
    return {name: data for name, data in bundle_files(site, bundle).items()
            if name.startswith("search/") and name.endswith((".js", ".json"))}


def script_files(site: Path, bundle: str) -> dict[str, bytes]:
    return {name: data for name, data in bundle_files(site, bundle).items() if name.endswith((".js", ".json", ".mjs"))}


def in_files(files: dict[str, bytes], needle: str) -> bool:
    return any(needle.casefold() in form.casefold() for data in files.values() for form in decoded_forms(data))


# -- Conditional text ---------------------------------------------------------------------------


def test_gated_block_is_in_no_search_index_or_script_of_public(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public", "Guides for everyone."),
        "content/guides/renewals.md": page("Renewals", "public", """\
Renew a trademark online zqpublicrenew before it expires.

::: audience registered

## Fee waiver zqwaiverhead

Offices may waive the renewal fee zqgatedrenew for hardship cases, with the examiner's note.

:::

::: audience internal

Staff override code zqstaffonly for the renewal desk.

:::
""", summary="How to renew"),
    })
    build_ok(site)
    # The door exists: the public search index holds the public words of the page.
    assert search_files(site, "public"), "no search index in build/public/search/"
    assert in_files(search_files(site, "public"), "zqpublicrenew"), "public text is not in the public search index"
    assert_nowhere(site, "public", "zqwaiverhead", "zqgatedrenew", "zqstaffonly", "Fee waiver")
    assert not in_files(script_files(site, "public"), "zqgatedrenew")
    # The restricted index holds the registered block, not the internal one.
    assert in_files(search_files(site, "restricted"), "zqgatedrenew")
    assert_nowhere(site, "restricted", "zqstaffonly")
    assert in_files(search_files(site, "internal"), "zqstaffonly")


def test_restricted_page_is_in_no_search_index_of_public(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public", "Guides for everyone."),
        "content/guides/open.md": page("Open guide", "public", "Open words zqopenword."),
        "content/guides/escrow.md": page("Escrow zqescrowtitle", "registered", "Escrow words zqescrowbody.",
                                         summary="Escrow summary zqescrowsum", labels="[zqescrowlabel]"),
    })
    build_ok(site)
    assert in_files(search_files(site, "public"), "zqopenword")
    assert_nowhere(site, "public", "zqescrowtitle", "zqescrowbody", "zqescrowsum", "zqescrowlabel", "guides/escrow")
    assert in_files(search_files(site, "restricted"), "zqescrowbody")


# -- Hidden pages in navigation and generated lists -------------------------------------------------


@pytest.fixture
def hidden_page_site(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public", "Guides for everyone."),
        "content/guides/first.md": page("First steps", "public", "Begin here.", weight=10, labels="[examiners]"),
        "content/guides/hidden.md": page("Hidden zqhiddentitle", "registered", "Hidden body zqhiddenbody.",
                                         weight=20, labels="[examiners]", summary="Hidden summary zqhiddensum",
                                         slug="zqhiddenslug"),
        "content/guides/last.md": page("Last steps", "public", "End here.", weight=30),
    })
    build_ok(site)
    return site


def test_hidden_page_is_in_no_public_file(hidden_page_site):
    assert_nowhere(hidden_page_site, "public", "zqhiddentitle", "zqhiddenbody", "zqhiddensum", "zqhiddenslug")
    # and the restricted bundle has all of it
    assert where(hidden_page_site, "restricted", "zqhiddentitle")


def test_hidden_page_not_in_public_sitemap(hidden_page_site):
    sitemap = text_of(hidden_page_site, "public", "sitemap.xml")
    assert "guides/first/" in sitemap and "guides/last/" in sitemap
    assert "zqhiddenslug" not in sitemap
    assert "zqhiddenslug" in text_of(hidden_page_site, "restricted", "sitemap.xml")


def test_hidden_page_not_in_public_sidebar_or_pager(hidden_page_site):
    first = text_of(hidden_page_site, "public", "guides/first/index.html")
    sidebar = re.search(r'<nav class="sidebar".*?</nav>', first, re.S).group(0)
    assert "Last steps" in sidebar and "zqhidden" not in sidebar
    pager = re.search(r'<nav class="pager".*?</nav>', first, re.S)
    assert pager and "Last steps" in pager.group(0), "next of 'First steps' should skip the hidden page"
    last = text_of(hidden_page_site, "public", "guides/last/index.html")
    assert "First steps" in re.search(r'<nav class="pager".*?</nav>', last, re.S).group(0)
    # in the restricted bundle the hidden page sits between them
    restricted = text_of(hidden_page_site, "restricted", "guides/first/index.html")
    assert "zqhiddentitle" in re.search(r'<nav class="pager".*?</nav>', restricted, re.S).group(0)


def test_hidden_page_not_on_public_label_page_or_section_listing(hidden_page_site):
    label = text_of(hidden_page_site, "public", "labels/examiners/index.html")
    assert "First steps" in label and "zqhidden" not in label
    assert "(1)" in text_of(hidden_page_site, "public", "labels/index.html")  # the count is of public pages only
    listing = text_of(hidden_page_site, "public", "guides/index.html")
    assert "First steps" in listing and "Last steps" in listing and "zqhidden" not in listing
    assert "zqhiddentitle" in text_of(hidden_page_site, "restricted", "labels/examiners/index.html")


def test_label_only_on_restricted_pages_has_no_public_page(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open", "public", "Open.", labels="[general]"),
        "content/guides/escrow.md": page("Escrow", "registered", "Escrow.", labels="[zqkeycustodians]"),
    })
    build_ok(site)
    assert has_page(site, "public", "labels/general/")
    assert not (site / "build" / "public" / "labels" / "zqkeycustodians").exists()
    assert_nowhere(site, "public", "zqkeycustodians")
    assert has_page(site, "restricted", "labels/zqkeycustodians/")


# -- Table of contents ------------------------------------------------------------------------------


def test_headings_of_removed_blocks_not_in_table_of_contents(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/keys.md": page("Keys", "public", """\
## Ordering a certificate

Order it online.

::: audience registered

## Revoking zqrevokehead

Call the desk.

### Recovery zqrecoverysub

Use the escrow copy.

:::

## Renewing a certificate

Renew it yearly.
"""),
    })
    build_ok(site)
    public = text_of(site, "public", "guides/keys/index.html")
    toc = re.search(r'<aside class="toc".*?</aside>', public, re.S)
    assert toc, "no table of contents on a page with headings"
    assert "Ordering a certificate" in toc.group(0) and "Renewing a certificate" in toc.group(0)
    assert_nowhere(site, "public", "zqrevokehead", "zqrecoverysub", "revoking-zq", "recovery-zq")
    restricted_toc = re.search(r'<aside class="toc".*?</aside>', text_of(site, "restricted", "guides/keys/index.html"), re.S)
    assert "zqrevokehead" in restricted_toc.group(0) and "zqrecoverysub" in restricted_toc.group(0)


# -- Locked links -----------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [None, BASE_URL_CONFIG], ids=["no-base-url", "base-url"])
def test_locked_link_keeps_the_author_text_and_never_the_target_title(tmp_path, config):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open guide", "public", """\
Ask your office about [the escrow arrangement](../deployment/escrow.md) when you sign up.

See also [](../deployment/escrow.md) and [escrow.md](../deployment/escrow.md).
"""),
        "content/deployment/_index.md": page("Deployment", "public"),
        "content/deployment/escrow.md": page("Escrow zqtargettitle", "registered", "Escrow body zqtargetbody.",
                                             summary="Escrow summary zqtargetsum"),
    }, config)
    build_ok(site)
    body = text_of(site, "public", "guides/open/index.html")
    assert "the escrow arrangement" in body
    assert 'class="locked"' in body
    assert_nowhere(site, "public", "zqtargettitle", "zqtargetbody", "zqtargetsum")
    anchors = [link for link in parse_links(body).links if "locked" in link[3]]
    if config is None:
        assert not anchors, "without a base_url a locked link has no address to point to"
    else:
        assert anchors and all(href == "https://support.example.org/restricted/deployment/escrow/" for _, _, href, _ in anchors), anchors


# -- Attachments ------------------------------------------------------------------------------------

SECRET_PNG = b"\x89PNG\r\n\x1a\n\x00\x00zqsecretpixels" + bytes(range(200))


def test_attachment_of_a_restricted_page_in_a_public_folder_is_not_copied(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open", "public", "Nothing to see."),
        "content/guides/escrow.md": page("Escrow", "registered", "![Vault wiring](vault-zqwiring.png)"),
        "content/guides/vault-zqwiring.png": SECRET_PNG,
    })
    build_ok(site)
    public = bundle_files(site, "public")
    assert "guides/vault-zqwiring.png" not in public
    assert not [name for name, data in public.items() if SECRET_PNG in data]
    assert_nowhere(site, "public", "zqwiring", "zqsecretpixels")
    assert bundle_files(site, "restricted").get("guides/vault-zqwiring.png") == SECRET_PNG


def test_attachment_referenced_only_from_a_gated_block_is_not_copied(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open", "public", """\
Public words.

::: audience registered

![Vault wiring](vault-zqwiring.png)

:::
"""),
        "content/guides/vault-zqwiring.png": SECRET_PNG,
    })
    build_ok(site)
    public = bundle_files(site, "public")
    assert not [name for name, data in public.items() if SECRET_PNG in data]
    assert_nowhere(site, "public", "zqwiring")
    assert bundle_files(site, "restricted").get("guides/vault-zqwiring.png") == SECRET_PNG


# -- Feeds, recent changes, history and diffs (from git) --------------------------------------------


def test_gated_block_and_restricted_commit_message_not_in_public_feed_recent_or_diffs(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/renewals.md": page("Renewals", "public", "Renew online zqfirstversion."),
        "content/guides/escrow.md": page("Escrow zqescrowtitle", "registered", "Escrow body."),
    })
    git(site, "init", "-q")
    git(site, "add", "-A")
    git(site, "commit", "-q", "-m", "First version")
    write_files(site, {"content/guides/renewals.md": page("Renewals", "public", """\
Renew online zqsecondversion.

::: audience registered

Hardship waiver zqgatedwaiver for registered offices.

:::
""")})
    git(site, "commit", "-q", "-am", "Public edit zqpublicmessage", date="2024-03-02T10:00:00Z")
    write_files(site, {
        "content/guides/renewals.md": page("Renewals", "public", """\
Renew online zqsecondversion, and keep the receipt.

::: audience registered

Hardship waiver zqgatedwaiver for registered offices, zqgatedsecond.

:::
"""),
        "content/guides/escrow.md": page("Escrow zqescrowtitle", "registered", "Escrow body, revised."),
    })
    git(site, "commit", "-q", "-am", "Escrow and renewals zqmixedmessage", date="2024-03-03T10:00:00Z")
    build_ok(site)
    public = bundle_files(site, "public")
    # The doors exist: the feed and the diff pages show the public change.
    feed = public["feed.xml"].decode()
    assert "<title>Renewals</title>" in feed and "zqpublicmessage" in feed
    changes = {name: data for name, data in public.items() if name.startswith("changes/")}
    assert changes, "no 'view change' pages in the public bundle"
    assert in_files(changes, "zqsecondversion") and in_files(changes, "keep the receipt")
    assert in_files(public, "zqpublicmessage"), "a commit touching only public pages shows its message"
    # Nothing restricted behind them.
    assert_nowhere(site, "public", "zqgatedwaiver", "zqgatedsecond", "zqescrowtitle", "zqmixedmessage", "ana@example.org")
    # The restricted bundle shows the block in its diffs and the mixed commit's message.
    restricted = bundle_files(site, "restricted")
    assert in_files({n: d for n, d in restricted.items() if n.startswith("changes/")}, "zqgatedsecond")
    assert in_files(restricted, "zqmixedmessage")


def test_page_made_public_later_shows_no_earlier_restricted_text_in_public_history(tmp_path):
    """A draft written for registered readers, cleaned up, then published: the public bundle's history
    starts at the first public revision, so no diff shows the registered wording."""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/fees.md": page("Fee plan zqoldtitle", "registered", "Internal pricing zqoldpricing for offices."),
    })
    git(site, "init", "-q")
    git(site, "add", "-A")
    git(site, "commit", "-q", "-m", "Draft the fee plan zqdraftmessage")
    write_files(site, {"content/guides/fees.md": page("Fee plan", "public", "Fees are listed on the portal.")})
    git(site, "commit", "-q", "-am", "Publish the fee plan", date="2024-03-02T10:00:00Z")
    write_files(site, {"content/guides/fees.md": page("Fee plan", "public", "Fees are listed on the portal, per class.")})
    git(site, "commit", "-q", "-am", "Fees per class", date="2024-03-03T10:00:00Z")
    build_ok(site)
    public = bundle_files(site, "public")
    assert in_files({n: d for n, d in public.items() if n.startswith("changes/")}, "per class")
    assert_nowhere(site, "public", "zqoldtitle", "zqoldpricing", "zqdraftmessage")
    assert in_files(bundle_files(site, "restricted"), "zqoldpricing")


# -- False alarms: honest overlap between tiers must build ------------------------------------------

DISCLAIMER = ("This page is provided for information only and does not replace the official guidelines "
              "published by your intellectual-property office.")


def test_shared_disclaimer_is_not_a_leak(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open guide", "public", f"Public words.\n\n{DISCLAIMER}\n"),
        "content/guides/members.md": page("Members guide", "registered", f"Members only zqmembersbody.\n\n{DISCLAIMER}\n"),
    })
    build_ok(site)
    assert where(site, "public", "does not replace the official guidelines")
    assert_nowhere(site, "public", "zqmembersbody", "Members guide")


def test_common_heading_in_both_tiers_is_not_a_leak(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open guide", "public", "## Next steps\n\nFile the form.\n\n## Contact\n\nWrite to us.\n"),
        "content/guides/members.md": page("Members guide", "registered",
                                          "## Next steps\n\nCall the desk zqmembersbody.\n\n## Contact\n\nPhone us.\n"),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembersbody")


@pytest.mark.parametrize("title", ["Labels", "Search", "On this page", "Recently updated", "Page not found", "Sections"])
def test_restricted_page_titled_with_a_theme_word_is_not_a_leak(tmp_path, title):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/open.md": page("Open guide", "public", "## Details\n\nPublic words.", labels="[general]"),
        "content/members/_index.md": page(title, "registered", "Members only zqmembersbody."),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembersbody")


def test_restricted_title_made_of_two_public_sibling_titles_is_not_a_leak(tmp_path):
    """The sidebar and section listing show "Fees" next to "Overview": two titles, not the phrase
    "Fees overview" of the registered page."""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/fees.md": page("Fees", "public", "What things cost.", weight=1),
        "content/guides/overview.md": page("Overview", "public", "The big picture.", weight=2),
        "content/members/_index.md": page("Members", "registered"),
        "content/members/fees-overview.md": page("Fees overview", "registered", "Reduced fees zqmembersfees."),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembersfees")


def test_same_sentence_with_a_link_in_public_and_without_in_restricted_is_not_a_leak(tmp_path):
    """The public sentence links its words; the registered one does not. Same words on both pages."""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public",
                                         "Please read [the filing guide](filing.md) first before you submit anything."),
        "content/guides/filing.md": page("Filing guide", "public", "How to file."),
        "content/members/_index.md": page("Members", "registered",
                                          "Please read the filing guide first before you submit anything. zqmembers"),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembers")


def test_same_sentences_around_an_image_are_not_a_leak(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public", """\
Open the portal and sign in.

![Sign-in screen](sign-in.png)

Then choose a new application form.
"""),
        "content/guides/sign-in.png": b"\x89PNG\r\n\x1a\n\x00public screenshot",
        "content/members/_index.md": page("Members", "registered",
                                          "Open the portal and sign in. Then choose a new application form. zqmembers"),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembers")


def test_restricted_page_showing_a_public_image_is_not_a_leak(tmp_path):
    """A registered page shows a screenshot that public pages show too; its path is no secret."""
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/office-setup/_index.md": page("Office setup", "public",
                                                      "![Login](login-screen-example.png)"),
        "content/guides/office-setup/login-screen-example.png": b"\x89PNG\r\n\x1a\n\x00login screenshot",
        "content/members/_index.md": page("Members", "registered",
                                          "![Login](../guides/office-setup/login-screen-example.png) zqmembers"),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembers")


def test_restricted_page_linking_to_a_public_section_index_is_not_a_leak(tmp_path):
    site = make_site(tmp_path, {
        "content/_index.md": HOME,
        "content/guides/_index.md": page("Guides", "public"),
        "content/guides/office-setup-and-login/_index.md": page("Office setup", "public", "Setup."),
        "content/members/_index.md": page("Members", "registered",
                                          "Read [setup](../guides/office-setup-and-login/_index.md). zqmembers"),
    })
    build_ok(site)
    assert_nowhere(site, "public", "zqmembers")


def test_headings_are_found_as_a_line_anchored_pattern_finds_them():
    # The audit finds headings with a pattern that starts with a literal newline (fast); it must
    # find what the plain line-anchored pattern does, in any arrangement of marks, spaces and lines.
    import random

    from ipo_sitegen.audit import _headings

    plain = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
    pieces = ["#", "##", " ", "  ", "\n", "\n\n", "a", "b c", "\t", "\r", "\u00a0", "x#", "# ", "\n#", "###### ", "####### "]
    rng = random.Random(5)
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert _headings(text) == plain.findall(text), repr(text)


def test_word_keys_hash_each_word_as_its_own_characters_say():
    # word_keys hashes every word from one running sum over the whole text, with powers split in
    # chunks: a word's key must still be the polynomial hash of its own characters alone, wherever it
    # stands (across a chunk's end, after astral characters, at the start and end of the text).
    import random

    import numpy as np

    from ipo_sitegen.audit import _BASE, _MULT, _NO_WORD, _STEP, _mix, word_keys

    def key(word: str) -> int:
        value = sum(ord(char) * pow(int(_BASE), k, 1 << 64) for k, char in enumerate(word)) % (1 << 64)
        mixed = int(_mix(np.array([(value + len(word) * int(_MULT[0])) % (1 << 64)], np.uint64))[0])
        return 1 if mixed == _NO_WORD else mixed

    rng = random.Random(7)
    alphabet = "abcxyz09éß\U0001d400" + "      .,\n"
    for length in (0, 1, 5, _STEP - 1, _STEP, _STEP + 3, 3 * _STEP + 11):
        text = "".join(rng.choice(alphabet) for _ in range(length))
        keys, starts, ends = word_keys(text)
        words = re.findall(r"[^\W_]+", text)
        assert [text[s:e] for s, e in zip(starts.tolist(), ends.tolist())] == words
        assert keys.tolist() == [key(word) for word in words]
