"""What a bundle contains: reproducible, relocatable, self-describing, and free of leaks.

Story: CI publishes build/public to the open web and build/restricted behind a proxy. Each bundle
must work from any mount point, be byte-identical when rebuilt from the same commit, describe itself
(manifest, sitemap, robots.txt), and contain nothing above its tier, in any file.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import (
    BASE_URL_CONFIG,
    BUNDLES,
    GENERATED_ROOTS,
    MEDIUM_SITE,
    build_ok,
    has_page,
    html,
    make_site,
    manifest,
    page,
    parse_links,
    read_tree,
    resolve_in_bundle,
    run,
    sha256,
)

SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
PAGE_URLS = {
    "public": {"", "guides/", "guides/getting-started/", "guides/advanced/", "guides/advanced/performance-tuning/",
               "about/", "about/team/"},
    "restricted": {"guides/installation/", "members/", "members/portal/"},
    "internal": {"staff/", "staff/roster/"},
}


def expected_pages(bundle: str) -> set[str]:
    """The pretty URLs of MEDIUM_SITE's pages in a bundle (each tier adds to the one below)."""
    urls: set[str] = set()
    for name in BUNDLES[: BUNDLES.index(bundle) + 1]:
        urls |= PAGE_URLS[name]
    return urls


def many_pages_site(tmp_path, count: int = 60, config=None, name="site"):
    """The medium site plus enough pages to make the renderer use its worker processes."""
    files = dict(MEDIUM_SITE)
    files["content/bulk/_index.md"] = page("Bulk", "public", "Many pages.")
    for i in range(count):
        audience = ("public", "registered", "internal")[i % 3]
        files[f"content/bulk/page-{i:03d}.md"] = page(
            f"Bulk page {i}", audience,
            f"## Part {i}\n\nText {i}, see [next](page-{(i + 1) % count:03d}.md#part-{(i + 1) % count}).\n\n"
            f"::: audience internal\n\nStaff note {i}.\n\n:::\n",
            labels=f"[bulk-{i % 4}]", weight=str(i))
    return make_site(tmp_path, files, config, name)


# -- Reproducible -----------------------------------------------------------------------------


def test_two_builds_of_the_same_tree_are_byte_identical(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE, BASE_URL_CONFIG)
    build_ok(site)
    first = read_tree(site / "build")
    build_ok(site)
    second = read_tree(site / "build")

    assert len(first) > 40
    assert first.keys() == second.keys()
    for path in first:
        assert first[path] == second[path], path


def test_serial_and_parallel_builds_into_other_folders_are_byte_identical(tmp_path):
    # Large enough that rendering, writing and the audit all use worker processes.
    site = many_pages_site(tmp_path, count=540)
    copy = many_pages_site(tmp_path, count=540, name="checkout-2")  # the same commit checked out elsewhere
    build_ok(site, "--jobs", "1", "--out", str(tmp_path / "serial"))
    build_ok(copy, "--jobs", "2", "--out", str(tmp_path / "parallel"))

    serial = read_tree(tmp_path / "serial")
    parallel = read_tree(tmp_path / "parallel")
    assert "public/bulk/page-059/index.html" not in serial  # 59 % 3 == 2: internal
    assert "internal/bulk/page-059/index.html" in serial
    assert serial == parallel
    assert not (site / "build").exists()


def test_the_audit_over_worker_processes_finds_a_leak_in_any_file(tmp_path):
    site = many_pages_site(tmp_path, count=540)
    build_ok(site, "--jobs", "2")
    files = sorted((site / "build/public/bulk").rglob("index.html"))
    assert len(files) > 150
    for victim in (files[0], files[len(files) // 2], files[-1]):  # whichever worker's share they fall in
        original = victim.read_text(encoding="utf-8")
        victim.write_text(original.replace("</main>", "<p>Staff note 7.</p></main>"), encoding="utf-8")
        result = run(["audit", "--root", str(site)])  # every bundle: enough files for worker processes
        assert result.exit_code == 1, result.output
        where = victim.relative_to(site / "build").as_posix()
        assert f'{where}: error: LEAK: text of content/bulk/page-007.md' in result.output, result.output
        victim.write_text(original, encoding="utf-8")


# -- Pretty, relative, relocatable -------------------------------------------------------------


def test_every_page_is_a_folder_with_index_html(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)

    for bundle in BUNDLES:
        files = read_tree(site / "build" / bundle)
        html_files = {path for path in files if path.endswith(".html")}
        assert all(path == "404.html" or path.endswith("/index.html") or path == "index.html" for path in html_files), bundle
        pages = {path[: -len("index.html")] for path in html_files
                 if path != "404.html" and path.split("/", 1)[0] not in GENERATED_ROOTS}
        assert pages == expected_pages(bundle), bundle


@pytest.mark.parametrize("config", [None, BASE_URL_CONFIG], ids=["no-base-url", "base-url"])
def test_no_link_is_absolute_or_points_into_the_build_machine(tmp_path, config):
    site = make_site(tmp_path, MEDIUM_SITE, config)
    build_ok(site)
    machine_paths = [str(site), str(site.resolve()), str(tmp_path)]

    for bundle in BUNDLES:
        bundle_dir = site / "build" / bundle
        for path, data in read_tree(bundle_dir).items():
            for machine in machine_paths + [str(bundle_dir)]:
                assert machine.encode() not in data, f"{bundle}/{path} contains the build path {machine}"
            if not path.endswith(".html"):
                continue
            for tag, attribute, value, _ in parse_links(data.decode()).links:
                assert not value.startswith("/"), f"{bundle}/{path}: {tag} {attribute}={value!r} is root-absolute"
                assert not value.startswith("file:"), f"{bundle}/{path}: {value!r}"


def test_assets_are_fingerprinted_and_used_by_every_page(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)

    for bundle in BUNDLES:
        files = read_tree(site / "build" / bundle)
        css = [p for p in files if re.fullmatch(r"assets/style\.[0-9a-f]{8,}\.css", p)]
        js = [p for p in files if re.fullmatch(r"assets/site\.[0-9a-f]{8,}\.js", p)]
        assert len(css) == 1 and len(js) == 1, bundle
        for asset in css + js:
            digest = asset.split(".")[1]
            assert sha256(files[asset]).startswith(digest), asset  # the name changes with the content
        index = files["guides/advanced/performance-tuning/index.html"].decode()
        assert f'href="../../../{css[0]}"' in index
        assert f'src="../../../{js[0]}"' in index


# -- Sitemap, robots.txt, manifest, 404 ---------------------------------------------------------


def test_sitemap_is_xml_with_absolute_urls_when_base_url_is_set(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE, BASE_URL_CONFIG)
    build_ok(site)
    bases = {"public": "https://support.example.org/", "restricted": "https://support.example.org/restricted/"}

    for bundle, base in bases.items():
        root = ET.parse(site / "build" / bundle / "sitemap.xml").getroot()
        assert root.tag == f"{SITEMAP_NS}urlset"
        locs = [loc.text for loc in root.iter(f"{SITEMAP_NS}loc")]
        assert sorted(locs) == sorted(base + url for url in expected_pages(bundle)), bundle
    public_sitemap = (site / "build/public/sitemap.xml").read_text()
    assert "members" not in public_sitemap and "staff" not in public_sitemap


def test_sitemap_without_base_url_has_relative_urls_to_real_pages(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)

    for bundle in BUNDLES:
        root = ET.parse(site / "build" / bundle / "sitemap.xml").getroot()
        locs = [loc.text or "" for loc in root.iter(f"{SITEMAP_NS}loc")]
        assert len(locs) == len(expected_pages(bundle)), bundle
        files = read_tree(site / "build" / bundle)
        for loc in locs:
            assert "://" not in loc and not loc.startswith("/"), loc
            assert resolve_in_bundle("sitemap.xml", loc or "./") in files, loc


def test_robots_txt_allows_public_and_disallows_everything_else(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE, BASE_URL_CONFIG)
    build_ok(site)

    public = (site / "build/public/robots.txt").read_text().splitlines()
    assert "User-agent: *" in public
    assert "Disallow: /" not in public
    assert "Sitemap: https://support.example.org/sitemap.xml" in public
    for bundle in ("restricted", "internal"):
        lines = [line for line in (site / "build" / bundle / "robots.txt").read_text().splitlines() if not line.startswith("#")]
        assert lines == ["User-agent: *", "Disallow: /"], bundle
        assert '<meta name="robots" content="noindex, nofollow">' in (site / "build" / bundle / "index.html").read_text()
    assert "noindex" not in (site / "build/public/index.html").read_text()


def test_manifest_lists_every_other_file_with_its_sha256(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)
    tiers = {"public": "public", "restricted": "registered", "internal": "internal"}

    for bundle in BUNDLES:
        files = read_tree(site / "build" / bundle)
        data = manifest(site / "build" / bundle)
        assert set(data) == {"bundle", "tier", "files"}
        assert data["bundle"] == bundle and data["tier"] == tiers[bundle]
        expected = {path: sha256(content) for path, content in files.items() if path != "manifest.json"}
        assert data["files"] == expected, bundle
        assert list(data["files"]) == sorted(data["files"])  # stable order for diffs


def test_404_page_exists_in_every_bundle_and_links_home(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)
    for bundle in BUNDLES:
        text = (site / "build" / bundle / "404.html").read_text()
        assert "Page not found" in text
        files = read_tree(site / "build" / bundle)
        hrefs = [value for _, _, value, _ in parse_links(text).links if not value.startswith("#")]
        assert hrefs, bundle
        for href in hrefs:
            assert resolve_in_bundle("404.html", href) in files, (bundle, href)


def test_label_pages_list_only_what_the_bundle_holds(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site)

    public_index = (site / "build/public/labels/index.html").read_text()
    assert "general-public" in public_index and "it-professionals" in public_index
    assert "staff-only" not in public_index
    assert not (site / "build/public/labels/staff-only").exists()
    assert (site / "build/internal/labels/staff-only/index.html").is_file()
    it_public = (site / "build/public/labels/it-professionals/index.html").read_text()
    assert "Tuning" in it_public and "Installation" not in it_public
    it_restricted = (site / "build/restricted/labels/it-professionals/index.html").read_text()
    assert "Tuning" in it_restricted and "Installation" in it_restricted


def test_out_never_replaces_a_folder_it_did_not_write_nor_writes_into_the_sources(tmp_path):
    """`--out ../userdir` where userdir/public/ holds someone's photos: a build replaces a bundle's
    folder whole, so it must refuse, not delete them. Bundles inside content/ would be read back as
    pages and attachments (the internal one too). Each is a usage error (exit 2)."""
    site = make_site(tmp_path, MEDIUM_SITE)
    photos = tmp_path / "userdir/public/photos"
    photos.mkdir(parents=True)
    (photos / "wedding.jpg").write_bytes(b"precious")
    result = run(["build", "--root", str(site), "-q", "--out", str(tmp_path / "userdir")])
    assert result.exit_code == 2 and "is not the 'public' bundle of an earlier build" in result.stderr, result.output
    assert (photos / "wedding.jpg").read_bytes() == b"precious" and not (tmp_path / "userdir/internal").exists()
    for inside in ("content", "content/guides/out", "static/out", ".git", ".sitegen-cache/out"):
        result = run(["build", "--root", str(site), "-q", "--out", str(site / inside)])
        assert result.exit_code == 2 and "bundles there would be read back as site files" in result.stderr, (inside, result.output)
    # A bundle named like a source folder, written beside it (--out .), would be read back as templates.
    config = (site / "sitegen.toml").read_text()
    (site / "sitegen.toml").write_text(config + '\n[bundles.templates]\ntier = "internal"\n')
    result = run(["build", "--root", str(site), "-q", "--out", str(site)])
    assert result.exit_code == 2 and "would be written over" in result.stderr, result.output
    assert not (site / "templates").exists()
    (site / "sitegen.toml").write_text(config)
    (tmp_path / "a-file").write_text("x")
    result = run(["build", "--root", str(site), "-q", "--out", str(tmp_path / "a-file/out")])
    assert result.exit_code == 2 and "cannot make the output folder" in result.stderr and result.exception is None or isinstance(result.exception, SystemExit)
    assert not list((site / "content").rglob("manifest.json"))
    build_ok(site, "--out", str(tmp_path / "published"))
    build_ok(site, "--out", str(tmp_path / "published"))  # (its own bundles it replaces)


def test_static_files_are_copied_hidden_ones_too_but_not_links_or_litter(tmp_path):
    """.well-known/security.txt and .nojekyll are meant to be published; .DS_Store, .gitkeep and
    editor backups are not; a link may point anywhere, so it is not followed but named."""
    outside = tmp_path / "outside.txt"
    outside.write_text("not the site's")
    site = make_site(tmp_path, {**MEDIUM_SITE, "static/.well-known/security.txt": "Contact: mailto:security@example.org\n",
                                "static/.nojekyll": "", "static/css/.DS_Store": b"\x00\x01", "static/img/.gitkeep": "",
                                "static/css/extra.css~": "old", "static/css/._extra.css": b"\x00\x05", "static/css/extra.css": "p { margin: 0 }\n"})
    (site / "static/linked.txt").symlink_to(outside)
    (site / "static/linked-folder").symlink_to(tmp_path, target_is_directory=True)
    result = build_ok(site)
    for bundle in BUNDLES:
        files = read_tree(site / "build" / bundle)
        assert files[".well-known/security.txt"].startswith(b"Contact:") and ".nojekyll" in files and "css/extra.css" in files
        assert not any(name.endswith((".DS_Store", ".gitkeep", "~", "._extra.css")) or name.startswith("linked") for name in files), bundle
    assert "static/linked.txt: warning: a link in static/ is not copied" in result.stderr
    assert "static/linked-folder: warning: a link in static/ is not copied" in result.stderr


def test_labels_in_any_script_get_their_own_page(tmp_path):
    """An office in Tokyo or Athens labels its pages in its own script: each label gets a page of its
    own, linked from the page (letters with no ASCII form add a digest to the URL)."""
    site = make_site(tmp_path, {
        "content/_index.md": page("Home", "public", "Welcome."),
        "content/a.md": "---\ntitle: Tokyo\naudience: public\nlabels: [日本, Ελλάδα, examiners]\n---\nText.\n",
        "content/b.md": "---\ntitle: Athens\naudience: public\nlabels: [Ελλάδα, Straße]\n---\nText.\n",
    })
    build_ok(site)
    labels = site / "build/public/labels"
    pages = {folder.name: (folder / "index.html").read_text(encoding="utf-8") for folder in labels.iterdir() if folder.is_dir()}
    assert len(pages) == 4 and "examiners" in pages
    by_name = {name: next(folder for folder, text in pages.items() if f"Label: {name}" in text) for name in ("日本", "Ελλάδα", "Straße")}
    assert len(set(by_name.values())) == 3 and by_name["Straße"].startswith("strae-")
    assert "Tokyo" in pages[by_name["Ελλάδα"]] and "Athens" in pages[by_name["Ελλάδα"]] and "Athens" not in pages[by_name["日本"]]
    tokyo = html(site, "public", "a/")
    assert f'href="../labels/{by_name["日本"]}/"' in tokyo


def test_out_option_writes_the_bundles_elsewhere(tmp_path):
    site = make_site(tmp_path, MEDIUM_SITE)
    build_ok(site, "--out", str(tmp_path / "published"))
    assert not (site / "build").exists()
    for bundle in BUNDLES:
        assert (tmp_path / "published" / bundle / "index.html").is_file()
        assert json.loads((tmp_path / "published" / bundle / "manifest.json").read_text())["bundle"] == bundle


@pytest.mark.parametrize("elsewhere", [False, True], ids=["beside the cache", "on another file system"])
def test_the_replaced_output_goes_in_the_background_and_leaves_nothing_behind(tmp_path, elsewhere):
    # The last output, replaced, is moved into the cache's trash and removed by a detached process;
    # where it cannot be moved there (another file system: /dev/shm is a tmpfs), it is removed at once.
    if elsewhere and not Path("/dev/shm").is_dir():
        pytest.skip("no /dev/shm here")
    site = make_site(tmp_path, MEDIUM_SITE)
    out = Path(tempfile.mkdtemp(dir="/dev/shm")) / "out" if elsewhere else site / "build"
    try:
        for text in ("Guides for everyone.", "Guides for every office."):
            (site / "content/guides/_index.md").write_text(page("Guides", "public", text), encoding="utf-8")
            build_ok(site, "--out", str(out))
            assert sorted(p.name for p in out.iterdir()) == sorted(BUNDLES)  # (no staging or retired folder left)
            assert text in (out / "public/guides/index.html").read_text(encoding="utf-8")
        trash = site / ".sitegen-cache" / "trash"
        deadline = time.monotonic() + 30
        while trash.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not trash.exists()
    finally:
        if elsewhere:
            shutil.rmtree(out.parent, ignore_errors=True)


# -- The leak check -----------------------------------------------------------------------------

REGISTERED_CANARIES = ["Quokka", "Axolotl", "Pangolin", "Tapir", "Wombat", "jerboa", "Fennec", "Caracal",
                       "dugong", "serval", "Binturong", "gecko", "Gecko-bytes"]
INTERNAL_CANARIES = ["Manatee", "Aardvark", "Chinchilla", "Lemur", "Kinkajou", "vicuna", "Meerkat", "quoll",
                     "Tarsier", "Hyrax", "Hyrax-bytes", "Dhole"]

LEAK_SITE = {
    "content/_index.md": page("Support space", "public", """\
Welcome. Offices see more in the [members area](members/overview.md).

::: audience registered

Binturong: registered news on the home page.

:::

::: audience internal

Tarsier: staff news on the home page.

:::
"""),
    "content/guides/_index.md": page("Guides", "public", "Guides for everyone.", labels="[general]"),
    "content/guides/open.md": page("Open guide", body="""\
## Public heading

Public words.

::: audience registered

## Wombat heading

Tapir registered passage, with a [chart](gecko-chart.png).

:::

::: audience internal

### Kinkajou heading

Lemur internal passage, see the [ops notes](../quoll-ops/notes.md).

:::
""", labels="[general]"),
    "content/guides/gecko-chart.png": b"\x89PNG\r\n\x1a\nGecko-bytes registered chart",
    # A registered section whose title, folder and pages are all canaries.
    "content/serval-zone/_index.md": page("Caracal section", "registered", "Registered section."),
    "content/serval-zone/quokka.md": page("Quokka procedures", body="""\
## Pangolin step

Axolotl registered body.

::: audience internal

Chinchilla internal block inside a registered page.

:::
""", summary="Fennec summary", labels="[jerboa]", slug="dugong-procedures"),
    # The page the public home links to: a neutral URL, a canary title.
    "content/members/_index.md": page("Members", "registered"),
    "content/members/overview.md": page("Quokka overview for members", body="Axolotl details."),
    # Internal only.
    "content/quoll-ops/_index.md": page("Manatee operations", "internal", "Aardvark internal section."),
    "content/quoll-ops/notes.md": page("Dhole notes", body="## Kinkajou list\n\n![Hyrax photo](hyrax.png)",
                                       summary="Meerkat summary", labels="[vicuna]"),
    "content/quoll-ops/hyrax.png": b"\x89PNG\r\n\x1a\nHyrax-bytes internal photo",
}


def corpus(bundle_dir) -> bytes:
    """Every file name and every byte of a bundle, lower-cased, for canary greps."""
    files = read_tree(bundle_dir)
    return ("\n".join(files).encode() + b"\n" + b"\n".join(files.values())).lower()


@pytest.mark.parametrize("config", [None, BASE_URL_CONFIG], ids=["no-base-url", "base-url"])
def test_no_canary_leaks_into_a_lower_bundle(tmp_path, config):
    site = make_site(tmp_path, LEAK_SITE, config)
    build_ok(site)
    public = corpus(site / "build/public")
    restricted = corpus(site / "build/restricted")
    internal = corpus(site / "build/internal")

    assert b"public words" in public and b"welcome" in public  # the greps look at real output
    leaked_public = [c for c in REGISTERED_CANARIES + INTERNAL_CANARIES if c.lower().encode() in public]
    assert leaked_public == [], f"build/public contains {leaked_public}"
    leaked_restricted = [c for c in INTERNAL_CANARIES if c.lower().encode() in restricted]
    assert leaked_restricted == [], f"build/restricted contains {leaked_restricted}"
    assert [c for c in REGISTERED_CANARIES if c.lower().encode() not in restricted] == []
    assert [c for c in REGISTERED_CANARIES + INTERNAL_CANARIES if c.lower().encode() not in internal] == []
    # The public home still links to the members area, locked, without its title.
    home = (site / "build/public/index.html").read_text()
    assert "members area" in home and 'class="locked"' in home
    assert has_page(site, "internal", "serval-zone/dugong-procedures/")


@pytest.mark.parametrize("hashes", [{}, {"b/index.html": "ab" * 32, "a/ü \"x\".png": "cd" * 32, "a": "ef" * 32}], ids=["empty", "files"])
def test_the_manifest_is_the_indented_json_of_its_sorted_files(hashes: dict[str, str]) -> None:
    from ipo_sitegen.write import manifest_text

    expected = json.dumps({"bundle": "pub\"lic", "tier": "tiér", "files": dict(sorted(hashes.items()))}, indent=1) + "\n"
    assert manifest_text("pub\"lic", "tiér", hashes) == expected


def test_a_build_with_unchanged_inputs_verifies_the_output_and_rebuilds_what_was_touched(tmp_path):
    """A second build with the same inputs only checks the output against its manifests; a file
    edited, removed or added by hand in a bundle makes it build again, which restores the bundle."""
    from ipo_sitegen.build import Options, build

    site = make_site(tmp_path, MEDIUM_SITE)
    assert build(site, Options()).plan is not None
    before = read_tree(site / "build")
    assert build(site, Options()).plan is None  # nothing changed: verified, not built
    page = site / "build/public/guides/index.html"
    touches = [lambda: page.write_bytes(page.read_bytes().replace(b"</body>", b"<p>edited by hand</p></body>")),
               page.unlink,
               lambda: (site / "build/public/extra.html").write_text("added by hand")]
    for touch in touches:
        touch()
        assert build(site, Options()).plan is not None, touch
        assert read_tree(site / "build") == before
        assert build(site, Options()).plan is None


def test_the_theme_environment_reads_dicts_as_jinja2_does():
    # Keys are read without a failed attribute lookup first (speed); what a template gets must be
    # Jinja2's own answer, method names and missing keys included.
    from jinja2 import Environment, StrictUndefined, UndefinedError

    from ipo_sitegen.render import _ThemeEnvironment

    data = {"site": {"title": "T", "items": [1, 2], "keys": "k", "get": "g"}, "rows": [{"page": "p", "current": True}]}
    source = ("{{ site.title }} {{ site['items'] }} {{ site.items() | list | length }} {{ site.keys is callable }} "
              "{{ site['keys'] }} {{ site.get('title') }} {% for r in rows %}{{ r.page }}{{ r.current }}{% endfor %} "
              "{{ site.missing is defined }} {{ site.__class__.__name__ }}")
    ours = _ThemeEnvironment(undefined=StrictUndefined).from_string(source).render(data)
    assert ours == Environment(undefined=StrictUndefined).from_string(source).render(data)
    assert ours.startswith("T [1, 2] 4 True k T pTrue False dict")
    with pytest.raises(UndefinedError):
        _ThemeEnvironment(undefined=StrictUndefined).from_string("{{ site.missing }}").render(data)
