"""Mutation tests: the leak gate must be able to fail.

Story: the renderer is correct today, so an audit that never fires would look just as good as one
that works. Here a good site is built once (its build/ snapshotted byte for byte); then each test
introduces one fault of the kind that makes other generators leak — a template override, a
hand-made search index, a feed or sitemap dropped into static/, an attachment copied under another
name, a restricted URL in an attribute, a hidden block's heading printed by an override — and
insists that the build fails with exit 1, names the leaked fragment and where it came from, and
leaves the previous build/ exactly as it was. `sitegen audit` on a tampered bundle must fail too.
"""

from __future__ import annotations

import re
import shutil
from functools import partial

import numpy as np
import pytest
from helpers import build as run_build
from helpers import make_site, page, read_tree, run, write_files

from ipo_sitegen.audit import audit_folders, tokens

# A restricted page (registered) in a public section, with a slug, a distinctive sentence with an
# accent and an attachment that only it references.
ESCROW_TITLE = "Key Escrow & Recovery Plan"
ESCROW_SENTENCE = "Émile rotates the signing keys every ninety days in the basement vault."
ESCROW_SLUG = "hsm-escrow-runbook"
ESCROW_SOURCE = "content/deployment/escrow.md"
DIAGRAM = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + b"vault wiring, registered only"
# A public page with a registered block whose heading only registered readers may see.
BLOCK_HEADING = "Emergency revocation procedure"
BLOCK_SOURCE = "content/guides/getting-started.md"

FILES = {
    "content/_index.md": page("Support space", "public", "Welcome. Start with [getting started](guides/getting-started.md)."),
    "content/guides/_index.md": page("Guides", "public", "Guides for everyone."),
    "content/guides/getting-started.md": page("Getting started", "public", f"""\
Create an account on the portal, then confirm your e-mail address.

## Your first filing

Fill in the application form and pay the fee.

::: audience registered

## {BLOCK_HEADING}

Registered offices revoke a compromised certificate through the examiner desk within two hours.

:::

Registered offices can also read the [installation notes](../deployment/installation.md).
""", labels="[general]"),
    "content/deployment/_index.md": page("Deployment", "public", "How offices run the platform."),
    "content/deployment/installation.md": page("Installation", "registered", "Install the platform on two servers."),
    ESCROW_SOURCE: page(ESCROW_TITLE, "registered", f"""\
{ESCROW_SENTENCE}

![Vault diagram](vault-diagram.png)
""", slug=ESCROW_SLUG, summary='"Where the escrowed keys live"'),
    "content/deployment/vault-diagram.png": DIAGRAM,
    "content/staff/_index.md": page("Staff notes", "internal", "Work in progress, for staff only."),
}


def fragment(text: str) -> str:
    """A fragment as the audit prints it: the words, lower-cased, accents stripped, one space apart."""
    return " ".join(tokens(text))


@pytest.fixture(scope="module")
def good_site(tmp_path_factory):
    """The good site, built once; tests copy it (with its build/) and break the copy."""
    site = make_site(tmp_path_factory.mktemp("good"), FILES)
    result = run_build(site)
    assert result.exit_code == 0, result.output
    return site


@pytest.fixture
def site(good_site, tmp_path):
    copy = tmp_path / "site"
    shutil.copytree(good_site, copy, symlinks=True)
    return copy


def write(site, relative: str, data: str | bytes) -> None:
    write_files(site, {relative: data})


_LEAK = re.compile(r'^(?P<bundle>[^/\s]+)/(?P<file>\S+): error: LEAK: (?P<kind>[\w ]+?) of (?P<origin>.+) found: "(?P<fragment>.*)"')


def leak_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "LEAK" in line]


def leaks(output: str) -> list[dict]:
    return [m.groupdict() for m in map(_LEAK.match, output.splitlines()) if m]


def names_fragment(found: str, expected: str) -> bool:
    """The audit names a fragment of at least two words out of the expected text (or its start)."""
    if expected.endswith("…"):
        return found.startswith(expected[:-1])
    return len(found.split()) >= min(2, len(expected.split())) and f" {found} " in f" {expected} "


def assert_gate_fails(site, *, bundle: str, file: str | None, kind: str | None, origin: str, fragment_text: str):
    """Build `site`; insist on exit 1, a LEAK line naming file, origin and a fragment of `fragment_text`,
    and a build/ left byte for byte as it was."""
    before = read_tree(site / "build")
    assert before, "the good build is missing"
    result = run_build(site)
    output = result.stdout + result.stderr
    assert result.exit_code == 1, f"the gate let the fault through (exit {result.exit_code}):\n{output}"
    found = leaks(output)
    assert found, f"exit 1 but no LEAK line:\n{output}"
    wanted = [leak for leak in found
              if leak["bundle"] == bundle and (file is None or leak["file"] == file)
              and leak["origin"].startswith(origin) and (kind is None or leak["kind"] == kind)
              and names_fragment(leak["fragment"], fragment_text)]
    assert wanted, (f"no LEAK line for {bundle}/{file or '*'} naming {origin} and a fragment of {fragment_text!r}:\n"
                    + "\n".join(leak_lines(output)))
    assert read_tree(site / "build") == before, "a failed build changed build/"
    return output


def test_good_site_builds_and_passes_its_own_audit(good_site):
    result = run(["audit", "--root", good_site])
    assert result.exit_code == 0, result.output
    assert "Audit passed" in result.stdout


def test_harmless_override_still_builds(site):
    """Control: an override that prints only what the bundle may see is no leak."""
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}<p>Support space · Guides for everyone.</p>{% endblock %}')
    result = run_build(site)
    assert result.exit_code == 0, result.output


def test_single_words_of_an_override_or_a_static_file_are_no_leak(site):
    """'Installation' is the title of a registered page and 'staff' the URL of an internal section:
    as ordinary words of a footer or a stylesheet, which every bundle holds by design, they are no
    leak (they failed the build with 32 LEAK lines). A title of several words is: see (a)."""
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}<p>Installation questions? Write to our staff.</p>{% endblock %}')
    write(site, "static/extra.css", ".staff { color: #333 } /* installation notes */\n")
    result = run_build(site)
    assert result.exit_code == 0, result.output


def test_a_title_broken_by_invisible_characters_is_still_found(site):
    """A browser shows Es&shy;crow and Re&#8203;covery whole, and a comment between two words as
    nothing: so does the audit (it read two words, and a phrase end at the comment)."""
    write(site, "static/notes.html", "<p>Key Es&shy;crow<!-- a comment shows nothing --> &amp; Re&#8203;covery Plan</p>\n")
    assert_gate_fails(site, bundle="public", file="notes.html", kind="title", origin=ESCROW_SOURCE, fragment_text=fragment(ESCROW_TITLE))


# (a) A template override prints a restricted page's title into every page.
def test_override_printing_a_restricted_title_fails(site):
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}<p>Key Escrow &amp; Recovery Plan</p>{% endblock %}')
    assert_gate_fails(site, bundle="public", file="guides/getting-started/index.html", kind="title",
                      origin=ESCROW_SOURCE, fragment_text=fragment(ESCROW_TITLE))


# (b) A hand-made search index in static/ (copied into every bundle) holding a restricted sentence
# as a JavaScript string with escapes.
@pytest.mark.parametrize("literal", [
    # \u00c9 for É and \" around a word
    '"\\u00c9mile rotates the signing keys every \\"ninety\\" days in the basement vault."',
    # every space escaped: no word pair is adjacent in the raw bytes, only in the decoded string
    '\'\\u00c9mile\\u0020rotates\\u0020the\\u0020signing\\u0020keys\\u0020every\\u0020ninety\\u0020days\'',
], ids=["unicode-and-quote-escapes", "escaped-spaces-single-quotes"])
def test_search_index_in_static_with_a_restricted_sentence_fails(site, literal):
    write(site, "static/search-index.js", f"var SEARCH = [{{url: 'x/', text: {literal}}}];\n")
    assert_gate_fails(site, bundle="public", file="search-index.js", kind="text", origin=ESCROW_SOURCE,
                      fragment_text=fragment(ESCROW_SENTENCE))


# (c) A feed item with the restricted title HTML-escaped inside <content type="html">.
def test_feed_in_static_with_an_escaped_restricted_title_fails(site):
    write(site, "static/extra-feed.xml", """\
<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<entry><title>Update</title>
<content type="html">&lt;p&gt;Key Escrow &amp;amp; Recovery Plan&lt;/p&gt;</content></entry>
</feed>
""")
    assert_gate_fails(site, bundle="public", file="extra-feed.xml", kind="title", origin=ESCROW_SOURCE,
                      fragment_text=fragment(ESCROW_TITLE))


# (c') A sitemap line with the restricted page's URL.
def test_sitemap_in_static_with_a_restricted_url_fails(site):
    write(site, "static/extra-sitemap.xml", f"""\
<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
<url><loc>https://support.example.org/restricted/deployment/{ESCROW_SLUG}/</loc></url>
</urlset>
""")
    assert_gate_fails(site, bundle="public", file="extra-sitemap.xml", kind=None, origin=ESCROW_SOURCE,
                      fragment_text=fragment(f"deployment/{ESCROW_SLUG}"))


# (d) A restricted attachment's bytes under static/ with another name.
def test_restricted_attachment_copied_under_another_name_fails(site):
    write(site, "static/img/logo.png", DIAGRAM)
    output = assert_gate_fails(site, bundle="public", file="img/logo.png", kind="attachment",
                               origin="content/deployment/vault-diagram.png", fragment_text="file with SHA-256 …")
    # the restricted bundle may hold the diagram: no leak reported there
    assert not [line for line in leak_lines(output) if line.startswith("restricted/")], output


# (e) A template leaks a restricted URL (slug) in an attribute.
def test_override_with_a_restricted_url_in_an_attribute_fails(site):
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}'
          f'<a href="../../deployment/{ESCROW_SLUG}/">x</a>{{% endblock %}}')
    assert_gate_fails(site, bundle="public", file="guides/getting-started/index.html", kind=None,
                      origin=ESCROW_SOURCE, fragment_text=fragment(f"deployment/{ESCROW_SLUG}"))


def test_restricted_url_percent_encoded_in_an_attribute_fails(site):
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}'
          f'<a data-next="%2Fdeployment%2F{ESCROW_SLUG.replace("-", "%2D")}%2F">x</a>{{% endblock %}}')
    assert_gate_fails(site, bundle="public", file="guides/getting-started/index.html", kind=None,
                      origin=ESCROW_SOURCE, fragment_text=fragment(f"deployment/{ESCROW_SLUG}"))


# (f) The heading of a registered block printed into public by an override.
def test_override_printing_a_hidden_block_heading_fails(site):
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}'
          f'<h2>{BLOCK_HEADING}</h2>{{% endblock %}}')
    assert_gate_fails(site, bundle="public", file="guides/getting-started/index.html", kind="heading",
                      origin=f"{BLOCK_SOURCE}:", fragment_text=fragment(BLOCK_HEADING))


def test_override_printing_a_hidden_block_sentence_into_the_section_page_fails(site):
    write(site, "templates/section.html",
          '{% extends "_page_frame.html" %}{% block after_body %}'
          '<p>Registered offices revoke a compromised certificate through the examiner desk.</p>{% endblock %}')
    assert_gate_fails(site, bundle="public", file="guides/index.html", kind="text",
                      origin=f"{BLOCK_SOURCE}:",
                      fragment_text=fragment("Registered offices revoke a compromised certificate through the examiner desk"))


def test_internal_material_in_the_restricted_bundle_fails(site):
    """The gate checks every bundle, not only public: staff notes must not reach the restricted one."""
    write(site, "templates/page.html",
          '{% extends "_page_frame.html" %}{% block after_body %}<p>See the Staff notes.</p>{% endblock %}')
    output = assert_gate_fails(site, bundle="restricted", file="deployment/installation/index.html", kind="title",
                               origin="content/staff/_index.md", fragment_text="staff notes")
    assert any(line.startswith("public/") for line in leak_lines(output))


# More encodings a reader or a script decodes: the audit promises to read every file "as a browser
# would (HTML entities, attributes, JSON and JS string escapes, percent-encoded URLs)".
OVERRIDE = '{%% extends "_page_frame.html" %%}{%% block after_body %%}%s{%% endblock %%}'


@pytest.mark.parametrize("path, text, leaked_file", [
    # an HTML comment is in the page source for anyone who views it
    ("templates/page.html", OVERRIDE % "<!-- Key Escrow &amp; Recovery Plan -->", "guides/getting-started/index.html"),
    # Jinja's own tojson filter writes & as \u0026 inside an inline script
    ("templates/page.html", OVERRIDE % '<script>var related = {{ ["Key Escrow & Recovery Plan"]|tojson }};</script>',
     "guides/getting-started/index.html"),
    # Atom/RSS feeds carry HTML in CDATA sections
    ("static/extra-feed.xml", '<?xml version="1.0" encoding="utf-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><entry>'
     '<title>Update</title><content type="html"><![CDATA[<p>Key Escrow &amp; Recovery Plan</p>]]></content></entry></feed>\n',
     "extra-feed.xml"),
    # a JSON search index holding HTML text, as MkDocs-style indexes do
    ("static/search_index.json", '{"docs": [{"location": "x/", "text": "<p>Key Escrow &amp; Recovery Plan</p>"}]}\n',
     "search_index.json"),
    # \x escapes are JavaScript, and minifiers write them
    ("static/app.min.js", 'var t="Key\\x20Escrow\\x20\\x26\\x20Recovery\\x20Plan";\n', "app.min.js"),
], ids=["html-comment", "inline-script-tojson", "xml-cdata", "html-inside-json", "js-hex-escapes"])
def test_restricted_title_in_other_encodings_fails(site, path, text, leaked_file):
    write(site, path, text)
    assert_gate_fails(site, bundle="public", file=leaked_file, kind="title",
                      origin=ESCROW_SOURCE, fragment_text=fragment(ESCROW_TITLE))


# -- `sitegen audit` on built folders ---------------------------------------------------------------


def test_audit_of_a_bundle_with_a_restricted_page_copied_in_fails(site):
    public = site / "build" / "public"
    stolen = (site / "build" / "restricted" / "deployment" / ESCROW_SLUG / "index.html").read_bytes()
    for copy in ("copied", "copied-again"):  # the second copy's pieces are all known to the scanner by then
        (public / "deployment" / copy).mkdir(parents=True)
        (public / "deployment" / copy / "index.html").write_bytes(stolen)
    result = run(["audit", "--root", site, public])
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    for copy in ("copied", "copied-again"):
        here = [leak for leak in leaks(output) if leak["file"] == f"deployment/{copy}/index.html"
                and leak["bundle"] == "public" and leak["origin"] == ESCROW_SOURCE]
        assert any(leak["kind"] == "title" and leak["fragment"] == fragment(ESCROW_TITLE) for leak in here), output
        assert any(leak["kind"] == "text" and names_fragment(leak["fragment"], fragment(ESCROW_SENTENCE)) for leak in here), output
    assert "not in manifest.json" in output  # the file was added after the build
    assert "Audit passed" not in output


def test_audit_without_folders_checks_every_bundle(site):
    (site / "build" / "public" / "notes.txt").write_text(f"{ESCROW_TITLE}\n", encoding="utf-8")
    result = run(["audit", "--root", site])
    output = result.stdout + result.stderr
    assert result.exit_code == 1, output
    assert any(line.startswith("public/notes.txt:") for line in leak_lines(output)), output


def test_audit_of_the_restricted_bundle_ignores_registered_material(site):
    restricted = site / "build" / "restricted"
    result = run(["audit", "--root", site, restricted])
    assert result.exit_code == 0, result.stdout + result.stderr


def test_audit_folders_api_reports_leak_fields(site):
    public = site / "build" / "public"
    shutil.copy(site / "content" / "deployment" / "vault-diagram.png", public / "diagram-copy.png")
    (public / "extra.html").write_text(f"<p>{BLOCK_HEADING}</p>", encoding="utf-8")
    leaks, notes = audit_folders(site, [public])
    found = {(leak.bundle, leak.file, leak.kind) for leak in leaks}
    assert ("public", "diagram-copy.png", "attachment") in found, leaks
    assert ("public", "extra.html", "heading") in found, leaks
    heading = next(leak for leak in leaks if leak.file == "extra.html")
    assert heading.fragment == fragment(BLOCK_HEADING)
    assert re.match(rf"{re.escape(BLOCK_SOURCE)}:\d+ \(registered block\)$", heading.origin), heading.origin
    assert any("diagram-copy.png" in note for note in notes), notes


def test_fingerprints_made_over_worker_processes_are_the_same(good_site, monkeypatch):
    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site

    config, site, gate, _ = read_site(good_site)
    serial = audit.Secrets(config, site, gate).for_bundles(config.bundles, 1)
    monkeypatch.setattr(audit, "PARALLEL_TEXT", 0)  # share out even this small site's texts
    parallel = audit.Secrets(config, site, gate).for_bundles(config.bundles, 2)
    assert len(serial["public"].phrases.hashes) > 10
    for bundle in config.bundles:
        mine, theirs = serial[bundle.name], parallel[bundle.name]
        assert mine.phrases.hashes.tolist() == theirs.phrases.hashes.tolist(), bundle.name
        assert mine.phrases.origins.tolist() == theirs.phrases.origins.tolist(), bundle.name
        assert mine.hashes == theirs.hashes, bundle.name


def test_audit_scans_again_only_the_files_changed_since_they_were_found_clean(site, monkeypatch):
    from ipo_sitegen import audit

    scanned: list[str] = []
    scan_file = audit.Scanner.file
    monkeypatch.setattr(audit.Scanner, "file", lambda self, name, *rest: scanned.append(name) or scan_file(self, name, *rest))
    public = site / "build" / "public"
    assert audit_folders(site, [public]) == ([], [])
    assert scanned == []  # the build found every file clean with these fingerprints: only read and hashed
    (public / "extra.html").write_text(f"<p>{ESCROW_SENTENCE}</p>", encoding="utf-8")
    found, notes = audit_folders(site, [public])
    assert scanned == ["extra.html"] and [leak.file for leak in found] == ["extra.html"], (scanned, found)
    scanned.clear()
    found, notes = audit_folders(site, [public], cached=False)
    assert len(scanned) == len(list(public.rglob("*.*"))) and [leak.file for leak in found] == ["extra.html"]


def test_a_verdict_is_not_reused_once_the_bundle_may_hold_less(site):
    # The same bytes, found clean by the build, leak once their page is made registered: the audit
    # must scan them again, not take the build's word for them.
    assert run(["audit", "--root", site]).exit_code == 0
    write(site, "content/guides/_index.md", page("Guides", "registered", "Guides for everyone."))
    result = run(["audit", "--root", site, site / "build" / "public"])
    output = result.stdout + result.stderr
    assert result.exit_code == 1 and any(line.startswith("public/guides/") for line in leak_lines(output)), output


def _public_prints(site):
    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site

    config, pages, gate, _ = read_site(site)
    return audit.Secrets(config, pages, gate).for_bundles(config.bundles)["public"]


def test_a_full_builds_verdicts_outlive_new_secrets_while_the_bundle_shows_what_it_showed(site, monkeypatch):
    # A sentence added to an internal page widens what the public bundle must not hold, but the
    # public bundle still shows everything it showed when the (full) build found its files clean:
    # no public file is scanned again, by the audit or by the next build.
    from ipo_sitegen import audit

    scanned = []
    scan_file = audit.Scanner.file
    monkeypatch.setattr(audit.Scanner, "file", lambda self, name, *rest: scanned.append(name) or scan_file(self, name, *rest))
    before = _public_prints(site)
    write(site, "content/staff/_index.md", page("Staff notes", "internal", "Work in progress, for staff only.\n\n"
                                                 "The archive migration rehearsal starts on Friday night at the northern data centre."))
    after = _public_prints(site)
    assert after.digest() != before.digest() and np.isin(before.shown, after.shown).all()  # (what this test is about)
    public = site / "build" / "public"
    assert audit_folders(site, [public]) == ([], []) and scanned == []
    assert run_build(site).exit_code == 0 and scanned == []
    # …and the verdicts are still of use after that build.
    assert audit_folders(site, [public]) == ([], []) and scanned == []


def test_a_full_builds_verdicts_outlive_text_the_bundle_no_longer_shows_if_it_holds_no_secret(site, monkeypatch):
    # A public sentence is reworded (the public bundle no longer shows the old one) and an internal
    # page gains a sentence: the old wording, kept by the full build, holds nothing the public
    # bundle must not, so no public file is scanned again, as if only the internal edit were made.
    from ipo_sitegen import audit

    scanned = []
    scan_file = audit.Scanner.file
    monkeypatch.setattr(audit.Scanner, "file", lambda self, name, *rest: scanned.append(name) or scan_file(self, name, *rest))
    write(site, BLOCK_SOURCE, FILES[BLOCK_SOURCE].replace("Fill in the application form", "Complete the application form"))
    write(site, "content/staff/_index.md", page("Staff notes", "internal", "Work in progress, for staff only.\n\n"
                                                 "The archive migration rehearsal starts on Friday night at the northern data centre."))
    assert audit_folders(site, [site / "build" / "public"]) == ([], []) and scanned == []


def test_a_full_builds_verdicts_go_once_text_the_bundle_showed_is_secret(site):
    # The full build wrote a public sentence into the page that shows it. An edit moves the sentence
    # into a registered page; the page file, had an update missed it, would still hold it: the text
    # the public bundle no longer shows now holds a secret, so its files are scanned again.
    sentence = "Create an account on the portal, then confirm your e-mail address."
    stale = "guides/getting-started/index.html"
    assert sentence in (site / "build" / "public" / stale).read_text(encoding="utf-8")
    write(site, BLOCK_SOURCE, FILES[BLOCK_SOURCE].replace(sentence + "\n", ""))
    write(site, ESCROW_SOURCE, FILES[ESCROW_SOURCE].replace(ESCROW_SENTENCE, f"{ESCROW_SENTENCE}\n\n{sentence}"))
    found, _ = audit_folders(site, [site / "build" / "public"])
    assert stale in [leak.file for leak in found], found


def test_a_verdict_is_not_reused_once_text_the_bundle_showed_is_secret(site):
    # A public sentence is taken out of its page, and a later edit puts it into a registered page.
    # A file left from when the sentence was public (as an update that missed a dependency would
    # leave one) was found clean twice, but it must be scanned again, and fail, the third time.
    public = site / "build" / "public"
    sentence = "Create an account on the portal, then confirm your e-mail address."
    (public / "stale.html").write_text(f"<p>{sentence}</p>", encoding="utf-8")
    assert audit_folders(site, [public])[0] == []  # the sentence is public
    started = FILES[BLOCK_SOURCE].replace(sentence + "\n", "")
    write(site, BLOCK_SOURCE, started)
    assert sentence not in started and audit_folders(site, [public])[0] == []  # nowhere in the site: no secret
    write(site, ESCROW_SOURCE, FILES[ESCROW_SOURCE].replace(ESCROW_SENTENCE, f"{ESCROW_SENTENCE}\n\n{sentence}"))
    found, _ = audit_folders(site, [public])
    assert "stale.html" in [leak.file for leak in found], found


def _signature(prints) -> dict:
    """What fingerprints say, whatever the numbering of their origins."""
    return {name: (p.phrases.hashes.tobytes(), p.phrases.lengths.tobytes(), [p.origins[o] for o in p.phrases.origins.tolist()],
                   sorted(p.hashes.items()), p.shown.tobytes()) for name, p in prints.items()}


def _holds_at_least(prints, anew) -> bool:
    """Fingerprints that may hold more than those made from nothing (Fingerprints.exact False):
    every phrase of those, and the same attachments and shown texts."""
    mine = _signature(prints)
    return all(set(np.frombuffer(anew[name][0], np.uint64).tolist()) <= set(p.phrases.hashes.tolist())
               and mine[name][3:] == anew[name][3:] for name, p in prints.items())


def test_fingerprints_from_what_an_earlier_audit_worked_out_are_those_made_anew(site):
    # `serve` hands each settle what the last one worked out, and a build what the last one saved:
    # the table is taken over when its inputs are the same, and what each shown text was found to
    # hold whatever the table; after an edit of secret text the phrases of what changed are merged
    # into the earlier table. Asked for exact fingerprints, they must be those made from nothing,
    # whatever the edit. Otherwise they may hold more (a new secret phrase that a text looked up
    # before holds, a phrase gone from the site) and then say they may; they never hold less.
    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site

    started = FILES[BLOCK_SOURCE]
    quoted = "Create an account on the portal, then confirm your e-mail address."  # (a public sentence)
    assert quoted in started
    edits = [
        ("a public sentence added", True, True, lambda: write(site, BLOCK_SOURCE, started + "\nOffices can print the receipt.\n")),
        ("a registered sentence quoted in public", True, True,
         lambda: write(site, BLOCK_SOURCE, started + f"\nOffices can print the receipt.\n\n{ESCROW_SENTENCE}\n")),
        ("the quote taken out again", True, True, lambda: write(site, BLOCK_SOURCE, started + "\nOffices can print the receipt.\n")),
        ("a public page added", True, True, lambda: write(site, "content/guides/fees.md", page("Fees", "public", "Fees are due at filing."))),
        ("an internal page edited", False, True, lambda: write(site, "content/staff/_index.md", page("Staff notes", "internal", "The rota changes."))),
        ("a public sentence quoted in an internal page", False, False,
         lambda: write(site, "content/staff/_index.md", page("Staff notes", "internal", f"The rota changes.\n\n{quoted}"))),
        ("a registered block edited", False, True, lambda: write(site, BLOCK_SOURCE, started.replace("within two hours", "within one hour"))),
        ("a page made registered", False, True, lambda: write(site, "content/guides/fees.md", page("Fees", "registered", "Fees are due at filing."))),
    ]
    config, pages, gate, _ = read_site(site)
    secrets = audit.Secrets(config, pages, gate, keep=True)
    secrets.for_bundles(config.bundles)
    table_file = site / ".sitegen-cache" / "secrets.npz"
    for what, same_table, as_anew, edit in edits:
        written = table_file.stat().st_mtime_ns if table_file.exists() else None
        secrets.known().save(site, table=not secrets.table_taken)  # (as a build does, for the next one)
        assert (table_file.stat().st_mtime_ns == written) == secrets.table_taken, what  # (a table taken over is there already)
        edit()
        config, pages, gate, _ = read_site(site)
        known = secrets.known()
        anew = _signature(audit.Secrets(config, pages, gate).for_bundles(config.bundles))
        for exactly in (True, False):  # (the last, merged into the earlier tables, is handed to the next edit)
            secrets = audit.Secrets(config, pages, gate, known=lambda key: known, keep=True, exact=exactly)
            assert (secrets.phrases is known.phrases) == (same_table and (known.exact or not exactly)), what
            assert secrets.table_exact == (exactly or same_table and known.exact), what  # (else merged into the earlier table)
            saved = audit.Secrets(config, pages, gate, known=partial(audit.KnownSecrets.load, site), exact=exactly)
            assert (audit.KnownSecrets.load(site, saved.key).key == saved.key) == same_table, what
            for prints in (secrets.for_bundles(config.bundles), saved.for_bundles(config.bundles)):
                if exactly:
                    assert _signature(prints) == anew and all(p.exact for p in prints.values()), what
                else:
                    assert _holds_at_least(prints, anew), what
                    assert not all(p.exact for p in prints.values()) or _signature(prints) == anew, what
                    assert as_anew or _signature(prints) != anew, what
    # What was found is read back by the same code only; a damaged file of it reads as nothing found.
    secrets.known().save(site, table=not secrets.table_taken)
    loaded = audit.KnownSecrets.load(site, secrets.key)
    assert loaded is not None and loaded.phrases is not None and loaded.found and loaded.checked
    (site / ".sitegen-cache" / "secrets-found.npz").write_bytes(b"not an archive")
    loaded = audit.KnownSecrets.load(site, secrets.key)
    assert loaded is not None and loaded.phrases is not None and not loaded.found and not loaded.checked


def test_tables_merged_edit_after_edit_hold_every_phrase_a_table_made_anew_holds(site):
    # Random edits of every kind, one after another, each merged into the table the last one left
    # (see Secrets.__init__): the fingerprints hold at least those made from nothing, and those
    # asked exact are those made from nothing.
    import random

    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site

    rng = random.Random(11)
    sentences = ["Create an account on the portal, then confirm your e-mail address.", ESCROW_SENTENCE,
                 "Install the platform on two servers.", "The night shift rotates the archive tapes every week.",
                 "Offices print the filing receipt for their records.", "Work in progress, for staff only."]
    sources = ["content/guides/fees.md", "content/deployment/keys.md", "content/staff/rota.md", ESCROW_SOURCE]

    def edit() -> str:
        source, tier = rng.choice(sources), rng.choice(["public", "registered", "internal"])
        chosen = rng.sample(sentences, rng.randint(0, 3))
        if rng.random() < 0.2 and (site / source).exists():
            (site / source).unlink()
            return f"removed {source}"
        if rng.random() < 0.3:
            chosen.append(f"::: audience {rng.choice(['registered', 'internal'])}\n\n{rng.choice(sentences)}\n\n:::")
        write(site, source, page(rng.choice(["Fees", "Key rota", "Night shift", ESCROW_TITLE]), tier, "\n\n".join(chosen) or "Empty."))
        return f"{source} as {tier}: {chosen}"

    config, pages, gate, _ = read_site(site)
    secrets = audit.Secrets(config, pages, gate, keep=True)
    secrets.for_bundles(config.bundles)
    merges = 0
    for _ in range(16):
        what = edit()
        known = secrets.known()
        config, pages, gate, _ = read_site(site)
        anew = _signature(audit.Secrets(config, pages, gate).for_bundles(config.bundles))
        exact = audit.Secrets(config, pages, gate, known=lambda key: known, keep=True, exact=True)
        assert exact.table_exact and _signature(exact.for_bundles(config.bundles)) == anew, what
        secrets = audit.Secrets(config, pages, gate, known=lambda key: known, keep=True)
        merges += not secrets.table_exact
        assert _holds_at_least(secrets.for_bundles(config.bundles), anew), what
    assert merges >= 8  # (the edits were merged, not made anew)


def test_sitegen_audit_confirms_a_leak_that_fingerprints_holding_too_much_find(site, monkeypatch):
    # `sitegen audit` takes the fingerprints the last build saved, which may hold more than they
    # should (Fingerprints.exact False: a public sentence now quoted in an internal page, looked
    # up in an earlier table). What they find is confirmed with exact fingerprints: the public page
    # that shows the sentence is no leak; a file holding a registered sentence still is.
    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site

    quoted = "Create an account on the portal, then confirm your e-mail address."
    public = site / "build" / "public"
    assert quoted in (public / "guides" / "getting-started" / "index.html").read_text(encoding="utf-8")
    config, pages, gate, _ = read_site(site)
    secrets = audit.Secrets(config, pages, gate, keep=True)
    secrets.for_bundles(config.bundles)
    known = secrets.known()
    write(site, "content/staff/_index.md", page("Staff notes", "internal", f"Work in progress, for staff only.\n\n{quoted}"))
    config, pages, gate, _ = read_site(site)
    loose = audit.Secrets(config, pages, gate, known=lambda key: known).for_bundles(config.bundles)
    assert not loose["public"].exact
    monkeypatch.setattr(audit.SavedFingerprints, "get", lambda self, bundles: loose)
    for verdicts in (site / ".sitegen-cache").glob("audit-*.npz"):
        verdicts.unlink()  # (every file is scanned)
    confirming = []
    confirm = audit.confirmed
    # (records the leaks that exact fingerprints were made to confirm)
    monkeypatch.setattr(audit, "confirmed", lambda leaks, jobs, exact: confirm(leaks, jobs, lambda: confirming.append([leak.file for leak in leaks]) or exact()))
    assert audit_folders(site, [public]) == ([], [])
    assert confirming and "guides/getting-started/index.html" in confirming[0], confirming
    (public / "stale.html").write_text(f"<p>{ESCROW_SENTENCE}</p>", encoding="utf-8")
    found, _ = audit_folders(site, [public])
    assert [leak.file for leak in found] == ["stale.html"], found


def test_saved_fingerprints_are_the_ones_made_and_only_for_the_same_site(site):
    from ipo_sitegen import audit
    from ipo_sitegen.build import read_site, site_fingerprint

    config, pages, gate, _ = read_site(site)
    made = audit.Secrets(config, pages, gate).for_bundles(config.bundles)
    key = site_fingerprint(site)
    audit.SavedFingerprints(site, key).put(made)
    names = [bundle.name for bundle in config.bundles]
    loaded = audit.SavedFingerprints(site, key).get(names)
    assert loaded is not None and len(made["public"].phrases.hashes) > 10
    for name in names:
        assert loaded[name].digest() == made[name].digest() and loaded[name].origins == made[name].origins
    write(site, "content/guides/_index.md", page("Guides", "registered", "Guides for everyone."))
    assert audit.SavedFingerprints(site, site_fingerprint(site)).get(names) is None  # another site state
    (site / ".sitegen-cache" / "fingerprints.npz").write_bytes(b"not an archive")
    assert audit.SavedFingerprints(site, key).get(names) is None


def test_the_same_bytes_are_judged_again_under_a_name_that_decodes_them_otherwise(site):
    # JSON escapes hide the sentence from a reader of the .txt file but not from a script loading
    # the .json one: a verdict on the bytes as text must not clear them as JSON.
    words = ESCROW_SENTENCE.split()[1:9]
    escaped = " ".join(f"\\u{ord(word[0]):04x}{word[1:]}" for word in words)
    data = f'{{"note": "{escaped}"}}'.encode()
    public = site / "build" / "public"
    (public / "a.txt").write_bytes(data)
    assert audit_folders(site, [public])[0] == []  # clean as text, and remembered so
    (public / "b.json").write_bytes(data)
    found, _ = audit_folders(site, [public])
    assert [leak.file for leak in found] == ["b.json"], found


def test_the_texts_a_full_build_keeps_read_back_by_digest_and_nothing_from_a_damaged_file(tmp_path):
    import random

    from ipo_sitegen import audit

    rng = random.Random(5)  # texts over several compressed runs, one empty
    texts = list(dict.fromkeys(["", *("".join(rng.choice("abcdé xyz\n") for _ in range(rng.randint(1, 300_000))) for _ in range(30))]))
    digests = audit._digests(texts)
    audit.save_shown(tmp_path, texts, digests)
    picked = rng.sample(range(len(texts)), 12)
    assert audit._ShownTexts(tmp_path).get(digests[picked]) == [texts[n] for n in picked]
    assert audit._ShownTexts(tmp_path).get(np.array([12345], np.uint64)) is None  # never kept
    kept = tmp_path / ".sitegen-cache" / "shown-texts.bin"
    data = bytearray(kept.read_bytes())
    data[10] ^= 0xFF  # (inside the first compressed run)
    kept.write_bytes(bytes(data))
    assert audit._ShownTexts(tmp_path).get(digests[:3]) is None
