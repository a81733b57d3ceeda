"""Shared helpers for the ipo-sitegen test suite: tiny sites written to disk, the CLI run in-process.

Tests import these directly (`from helpers import ...`); conftest.py exposes the common ones as
fixtures too.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

from click.testing import CliRunner, Result

from ipo_sitegen.cli import main
from ipo_sitegen.discover import RESERVED_ROOT

# First URL segments the generator writes itself (labels/, recent/, assets/...): not content pages.
GENERATED_ROOTS = frozenset(RESERVED_ROOT) - {"index.html"}

# The contract's default: three tiers, three bundles, no base_url.
DEFAULT_CONFIG = """\
[site]
title = "Test Space"
language = "en"
"""

# The same bundles with base URLs, as the demo site and the DESIGN example configure them.
BASE_URL_CONFIG = """\
[site]
title = "Test Space"

[bundles.public]
tier = "public"
base_url = "https://support.example.org/"

[bundles.restricted]
tier = "registered"
base_url = "https://support.example.org/restricted/"

[bundles.internal]
tier = "internal"
"""

BUNDLES = ("public", "restricted", "internal")


def page(title: str, audience: str | None = None, body: str = "", **front_matter) -> str:
    """The text of a Markdown page with front matter (extra keys are written as given)."""
    lines = ["---", f"title: {title}"]
    if audience is not None:
        lines.append(f"audience: {audience}")
    for key, value in front_matter.items():
        lines.append(f"{key}: {value}")
    lines += ["---", "", body.strip("\n"), ""]
    return "\n".join(lines)


def make_site(tmp_path: Path, files: dict[str, str | bytes], config: str | None = None, name: str = "site") -> Path:
    """Write sitegen.toml and `files` (paths relative to the site root) under tmp_path/name."""
    site = tmp_path / name
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitegen.toml").write_text(DEFAULT_CONFIG if config is None else config, encoding="utf-8")
    write_files(site, files)
    return site


def write_files(site: Path, files: dict[str, str | bytes]) -> None:
    for relative, data in files.items():
        path = site / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")


def git(root: Path, *args: str, date: str = "2024-03-01T10:00:00Z") -> None:
    """Run git in `root` as the editor Ana, at a fixed date (commits are reproducible)."""
    env = {**os.environ, "GIT_AUTHOR_NAME": "Ana Editor", "GIT_AUTHOR_EMAIL": "ana@example.org",
           "GIT_COMMITTER_NAME": "Ana Editor", "GIT_COMMITTER_EMAIL": "ana@example.org",
           "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                   cwd=root, env=env, check=True, capture_output=True)


def run(args: list[str], env: dict[str, str] | None = None) -> Result:
    """Run `sitegen ARGS` in-process; stdout and stderr stay separate (result.stdout / result.stderr).

    SOURCE_DATE_EPOCH is unset unless `env` sets it, so the caller's environment cannot move embargo dates.
    """
    environment: dict[str, str | None] = {"SOURCE_DATE_EPOCH": None, **(env or {})}
    return CliRunner().invoke(main, [str(a) for a in args], env=environment, catch_exceptions=True)


def build(site: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    """`sitegen build --root SITE -q [EXTRA...]`."""
    return run(["build", "--root", str(site), "-q", *extra], env=env)


def build_ok(site: Path, *extra: str, env: dict[str, str] | None = None) -> Result:
    """Build and insist that it succeeded, showing the errors otherwise."""
    result = build(site, *extra, env=env)
    assert result.exit_code == 0, f"build failed ({result.exit_code}):\n{result.output}\n{result.exception!r}"
    return result


def read_tree(directory: Path) -> dict[str, bytes]:
    """Every file under `directory` (hidden ones too), as posix path -> bytes."""
    if not directory.exists():
        return {}
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def tree_listing(directory: Path) -> list[str]:
    """Every entry (files and folders) under `directory`, to catch stray staging folders."""
    return sorted(p.relative_to(directory).as_posix() + ("/" if p.is_dir() else "") for p in directory.rglob("*"))


def all_text(bundle_dir: Path) -> str:
    """Every byte of every file of a bundle as one text (undecodable bytes replaced), for greps."""
    return "\n".join(data.decode("utf-8", errors="replace") for data in read_tree(bundle_dir).values())


def all_bytes(bundle_dir: Path) -> bytes:
    return b"\n".join(read_tree(bundle_dir).values())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def html(site: Path, bundle: str, url: str = "") -> str:
    """The HTML of the page at pretty URL `url` ("" for the home page) in build/<bundle>/."""
    return (site / "build" / bundle / url / "index.html").read_text(encoding="utf-8")


def has_page(site: Path, bundle: str, url: str) -> bool:
    return (site / "build" / bundle / url / "index.html").is_file()


def manifest(bundle_dir: Path) -> dict:
    return json.loads((bundle_dir / "manifest.json").read_text(encoding="utf-8"))


def line_of(text: str, needle: str) -> int:
    """1-based line number of the first line of `text` containing `needle`."""
    for number, line in enumerate(text.split("\n"), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in the text")


class LinkCollector(HTMLParser):
    """Collects (tag, attribute, value, classes) for every href and src in a document, and ids."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str, set[str]]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        if values.get("id"):
            self.ids.add(values["id"])
        for name in ("href", "src"):
            if values.get(name) is not None:
                self.links.append((tag, name, values[name], classes))

    handle_startendtag = handle_starttag


def parse_links(text: str) -> LinkCollector:
    collector = LinkCollector()
    collector.feed(text)
    collector.close()
    return collector


def resolve_in_bundle(file_path: str, href: str) -> str | None:
    """The bundle-relative file a relative `href` in `file_path` points at (a folder means its index.html).

    None when the link climbs above the bundle root.
    """
    target = href.split("#", 1)[0].split("?", 1)[0]
    if not target:
        return file_path
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(file_path), target))
    if joined == ".." or joined.startswith("../"):
        return None
    if target.endswith("/") or joined == ".":
        joined = posixpath.join("" if joined == "." else joined, "index.html")
    return joined



def check_links(bundle_dir: Path) -> int:
    """Assert that every relative href and src of every HTML file in the bundle points to a file of
    the bundle (and, with a fragment, to an id in it); return how many links were checked."""
    files = read_tree(bundle_dir)
    documents = {path: data.decode("utf-8") for path, data in files.items() if path.endswith(".html")}
    ids = {path: parse_links(text).ids for path, text in documents.items()}
    checked = 0
    for path, text in documents.items():
        for tag, attribute, value, classes in parse_links(text).links:
            if "locked" in classes or value.startswith(("http://", "https://", "#", "mailto:")):
                continue
            target = resolve_in_bundle(path, value)
            where = f"{bundle_dir.name}/{path}: {tag} {attribute}={value!r}"
            assert target is not None, f"{where} climbs out of the bundle"
            assert target in files, f"{where} -> {target} is not in {bundle_dir.name}"
            fragment = value.partition("#")[2]
            if fragment and target.endswith(".html"):
                assert fragment in ids[target], f"{where}: no id {fragment!r} in {target}"
            checked += 1
    return checked

# A medium site shared by the link checker and the reproducibility tests: every tier, nested
# sections, a slug, labels, cross links with anchors, locked links, images and a PDF.
PNG_PUBLIC = b"\x89PNG\r\n\x1a\n" + b"public diagram" * 8
PNG_REGISTERED = b"\x89PNG\r\n\x1a\n" + b"registered setup screen" * 8
PNG_INTERNAL = b"\x89PNG\r\n\x1a\n" + b"internal rack photo" * 8
PDF_REGISTERED = b"%PDF-1.4\n" + b"registered annual report\n" * 8

MEDIUM_SITE: dict[str, str | bytes] = {
    "content/_index.md": page("IP Office Support", "public", """\
Welcome. Start with the [getting started guide](guides/getting-started.md) or read [about us](about/).

::: audience registered

Offices can go straight to the [member portal](members/portal.md#login).

:::
"""),
    "content/guides/_index.md": page("Guides", "public", "Step-by-step guides.", summary="How to do things"),
    "content/guides/getting-started.md": page("Getting started", body="""\
## First steps

See the [requirements](installation.md#requirements) and the [tuning notes](advanced/tuning.md#cache-size).

![Overview diagram](diagram.png)

Back to [the guides](_index.md), to [the team](../about/team.md#who-we-are) or [home](../_index.md).
Members use [the portal](../members/portal.md#login). External: [WIPO](https://www.wipo.int/).
Jump to [first steps](#first-steps).
""", labels="[general-public, beginners]", weight=10),
    "content/guides/installation.md": page("Installation", "registered", """\
## Requirements

Four cores. ![Setup screen](setup.png)

Then read [getting started](getting-started.md#first-steps).
""", labels="[it-professionals]", weight=20),
    "content/guides/diagram.png": PNG_PUBLIC,
    "content/guides/setup.png": PNG_REGISTERED,
    "content/guides/advanced/_index.md": page("Advanced", body="Deeper topics, see [parent](../_index.md)."),
    "content/guides/advanced/tuning.md": page("Tuning", body="""\
## Cache size

Bigger is better. Related: [installation](../installation.md) and [portal](../../members/portal.md).
""", slug="performance-tuning", labels="[it-professionals]"),
    "content/about/_index.md": page("About", "public", "About the project. [Team](team.md)."),
    "content/about/team.md": page("Team", body="## Who we are\n\nA small team. [Home](../_index.md).", labels="[general-public]"),
    "content/members/_index.md": page("Members", "registered", "For offices. [Portal](portal.md)."),
    "content/members/portal.md": page("Member portal", body="""\
## Login

Use your office account. The [annual report](report.pdf) is here.

::: audience internal

Staff: see the [roster](../staff/roster.md).

:::

Staff pages: [roster](../staff/roster.md).
"""),
    "content/members/report.pdf": PDF_REGISTERED,
    "content/staff/_index.md": page("Staff", "internal", "Staff only."),
    "content/staff/roster.md": page("Roster", body="![Rack](rack.png)\n\nBack to the [portal](../members/portal.md#login).", labels="[staff-only]"),
    "content/staff/rack.png": PNG_INTERNAL,
}


def copy_demo_site(target_parent: Path) -> Path:
    """A copy of this repository's demo site (content/, sitegen.toml, templates/, static/)."""
    repo = Path(__file__).resolve().parent.parent
    site = target_parent / "site"
    site.mkdir()
    shutil.copytree(repo / "content", site / "content")
    shutil.copy(repo / "sitegen.toml", site / "sitegen.toml")
    for optional in ("templates", "static"):
        if (repo / optional).is_dir():
            shutil.copytree(repo / optional, site / optional)
    return site
