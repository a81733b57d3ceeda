"""Recently updated, page history, feeds and diffs from real git repositories with fixed dates."""

from __future__ import annotations

import os
import random
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from helpers import check_links, read_tree

from ipo_sitegen import history as history_module
from ipo_sitegen.build import Options, build
from ipo_sitegen.changes import diff_rows
from ipo_sitegen.history import read_git

ATOM = "{http://www.w3.org/2005/Atom}"
CONFIG = """\
[site]
title = "History Test"

[bundles.public]
tier = "public"
base_url = "https://example.org/"

[bundles.restricted]
tier = "registered"
base_url = "https://example.org/restricted/"

[bundles.internal]
tier = "internal"
"""


class Repo:
    """A real git repository in a temp dir; each commit gets a fixed author and date."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.day = 0
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")
        (root / "sitegen.toml").write_text(CONFIG)
        (root / ".mailmap").write_text("Ann Example <ann@example.org> <ann.old@example.org>\n")

    def git(self, *args: str, env: dict | None = None) -> str:
        full = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(self.root), **(env or {})}
        return subprocess.run(["git", *args], cwd=self.root, env=full, check=True, capture_output=True, text=True).stdout

    def write(self, path: str, text: str) -> None:
        target = self.root / "content" / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)

    def commit(self, message: str, author: str = "Ann Example", email: str = "ann@example.org") -> str:
        self.day += 1
        date = f"2026-03-{self.day:02d}T10:00:00+00:00"
        env = {"GIT_AUTHOR_NAME": author, "GIT_AUTHOR_EMAIL": email, "GIT_AUTHOR_DATE": date,
               "GIT_COMMITTER_NAME": author, "GIT_COMMITTER_EMAIL": email, "GIT_COMMITTER_DATE": date}
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message, env=env)
        return self.git("rev-parse", "HEAD").strip()


def page(title: str, audience: str | None, body: str) -> str:
    meta = f"title: {title}\n" + (f"audience: {audience}\n" if audience else "")
    return f"---\n{meta}---\n{body}\n"


def all_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix in (".html", ".xml", ".json", ".js", ".txt"))


@pytest.fixture()
def story(tmp_path: Path) -> Repo:
    """The history every test below reads: renames, tier changes, mixed commits, a merge."""
    repo = Repo(tmp_path / "site")
    repo.write("_index.md", page("Home", "public", "Welcome."))
    repo.write("guide/_index.md", page("Guide", "public", "Guides."))
    repo.write("guide/intro.md", page("Introduction", None, "Hello offices.\n\nSecond paragraph."))
    repo.write("ops/_index.md", page("Operations", "registered", "Ops."))
    repo.write("ops/keys.md", page("Key ceremony", None, "Generate keys with the hardware module wobblefrost."))
    repo.commit("Start the support space", author="Ann Example", email="ann.old@example.org")
    # A commit touching a public and a restricted page: its message must not reach public.
    repo.write("guide/intro.md", page("Introduction", None, "Hello offices, welcome.\n\nSecond paragraph."))
    repo.write("ops/keys.md", page("Key ceremony", None, "Generate keys with the hardware module zanzibarquill."))
    repo.commit("Rotate keys for the staff-only page", author="Bob Builder", email="bob@example.org")
    # A restricted block added to a public page.
    repo.write("guide/intro.md", page("Introduction", None,
                                      "Hello offices, welcome.\n\nSecond paragraph.\n\n::: audience registered\n\nThe vault code is quorraplinth.\n\n:::\n"))
    repo.commit("Add the vault note", author="Cleo Writer", email="cleo@example.org")
    # A page that is restricted first and becomes public later, then is renamed.
    repo.write("guide/faq.md", page("Questions", "registered", "Early draft answer mentioning gorbleblat."))
    repo.commit("Draft the questions for offices")
    repo.write("guide/faq.md", page("Questions", "public", "Public answers for everyone."))
    repo.commit("Publish the questions")
    repo.git("mv", "content/guide/faq.md", "content/guide/questions.md")
    repo.commit("Rename the questions page")
    # A merge: a side branch edits the introduction, main merges it (first-parent view).
    repo.git("checkout", "-q", "-b", "side")
    repo.write("guide/intro.md", page("Introduction", None,
                                      "Hello offices, welcome aboard.\n\nSecond paragraph.\n\n::: audience registered\n\nThe vault code is quorraplinth.\n\n:::\n"))
    repo.commit("Polish the welcome", author="Dan Side", email="dan@example.org")
    repo.git("checkout", "-q", "main")
    repo.day += 1
    env = {"GIT_AUTHOR_NAME": "Ann Example", "GIT_AUTHOR_EMAIL": "ann@example.org", "GIT_AUTHOR_DATE": "2026-03-20T10:00:00+00:00",
           "GIT_COMMITTER_NAME": "Ann Example", "GIT_COMMITTER_EMAIL": "ann@example.org", "GIT_COMMITTER_DATE": "2026-03-20T10:00:00+00:00"}
    repo.git("merge", "-q", "--no-ff", "side", "-m", "Merge the welcome polish", env=env)
    return repo


def built(repo: Repo) -> Path:
    build(repo.root, Options(jobs=1))
    return repo.root / "build"


def test_history_is_read_with_renames_and_first_parent_merges(story: Repo) -> None:
    log = read_git(story.root, use_cache=False)
    subjects = [c.subject for c in log.commits]
    assert subjects[0] == "Start the support space"
    assert "Merge the welcome polish" in subjects
    assert "Polish the welcome" not in subjects  # first-parent view of the main line
    assert all("@" not in c.author for c in log.commits)
    assert {c.author for c in log.commits} >= {"Ann Example", "Bob Builder", "Cleo Writer"}  # .mailmap applied


def test_page_shows_last_updated_with_date_and_author(story: Repo) -> None:
    out = built(story)
    intro = (out / "public/guide/intro/index.html").read_text()
    assert '<time datetime="2026-03-20T10:00:00Z">20 March 2026</time>' in intro
    assert "by Ann Example" in intro
    history = (out / "public/history/guide+intro.html").read_text()
    assert history.index("20 March 2026") < history.index("2 March 2026") < history.index("1 March 2026")


def test_commit_messages_only_where_every_touched_page_is_visible(story: Repo) -> None:
    out = built(story)
    assert "Rotate keys for the staff-only page" not in all_text(out / "public")
    assert "Rotate keys for the staff-only page" in all_text(out / "restricted")
    assert "Start the support space" not in all_text(out / "public")  # it created a registered page too
    assert "Publish the questions" in all_text(out / "public")


@pytest.mark.parametrize("hidden", ["publish_date: 2099-01-01", "draft: true"], ids=["embargoed", "draft"])
def test_a_message_about_a_page_no_bundle_shows_is_in_no_bundle(story: Repo, hidden: str) -> None:
    """A commit that adds an embargoed (or draft) page beside a public edit: its message speaks of
    the embargoed page, which no bundle shows, so no bundle shows the message either."""
    story.write("guide/fees.md", f"---\ntitle: Fee notice\naudience: public\n{hidden}\n---\nFees rise by forty percent.\n")
    story.write("guide/intro.md", page("Introduction", None, "Hello offices, welcome aboard, all of you."))
    story.commit("Embargoed: fees rise forty percent in March")
    out = built(story)
    for bundle in ("public", "restricted", "internal"):
        assert "fees rise forty percent" not in all_text(out / bundle), bundle
    assert "Hello offices, welcome aboard, all of you." in (out / "public/guide/intro/index.html").read_text()


def test_restricted_block_never_reaches_a_public_diff(story: Repo) -> None:
    out = built(story)
    public = all_text(out / "public")
    assert "quorraplinth" not in public
    assert "quorraplinth" in all_text(out / "restricted")
    # The commit that only added the restricted block changed nothing the public can see.
    assert "Add the vault note" not in public
    assert "2026-03-03" not in re.sub(r"changes/\w+", "", (out / "public/history/guide+intro.html").read_text())


def test_page_moved_from_restricted_to_public_starts_its_public_history_when_published(story: Repo) -> None:
    out = built(story)
    public = all_text(out / "public")
    assert "gorbleblat" not in public and "Draft the questions" not in public
    history = (out / "public/history/guide+questions.html").read_text()
    assert "4 March 2026" not in history  # restricted then
    assert "5 March 2026" in history and "6 March 2026" not in history  # the rename changed no text
    first = next((out / "public/changes").glob("*+guide+questions.html"))
    assert "First published" in first.read_text()
    restricted = (out / "restricted/history/guide+questions.html").read_text()
    assert "4 March 2026" in restricted and "5 March 2026" in restricted



def test_history_and_change_pages_are_files_whose_links_all_resolve(story: Repo) -> None:
    """History and change pages are single files (history/guide+intro.html, changes/<commit>+guide+intro.html,
    history/_home.html), so links to and from them, which are relative, must be checked from a file."""
    out = built(story)
    for bundle in ("public", "restricted", "internal"):
        assert check_links(out / bundle) > 50
        folders = [p for p in (out / bundle / "changes").rglob("*") if p.is_dir()]
        folders += [p for p in (out / bundle / "history").rglob("*") if p.is_dir()]
        assert folders == []
    home = (out / "public/history/_home.html").read_text()
    assert 'href="../"' in home  # back to the home page
    change = next((out / "public/changes").glob("*+guide+intro.html")).read_text()
    assert 'href="../history/guide+intro.html"' in change and 'href="../guide/intro/"' in change

def test_diffs_mark_insertions_and_deletions(story: Repo) -> None:
    out = built(story)
    diffs = [p.read_text() for p in (out / "public/changes").glob("*+guide+intro.html")]
    changed = [d for d in diffs if "<ins>" in d]
    assert any("<del>Hello offices.</del>" in d and "<ins>Hello offices, welcome.</ins>" in d for d in changed)



def test_diff_rows_account_for_every_line_of_both_texts_in_order() -> None:
    """Random edits (the head and tail of each text are taken off before difflib runs): every
    line of the old text is shown as equal or deleted, or folded, in order, and so is every line of
    the new one; shown lines hold the right text; a fold hides more than one line."""
    rng = random.Random(8)
    for _ in range(400):
        old = [rng.choice("abcdefgh") for _ in range(rng.randrange(0, 40))]
        new = list(old)
        for _ in range(rng.randrange(0, 4)):
            at = rng.randrange(0, len(new) + 1)
            if rng.random() < 0.5 and at < len(new):
                del new[at : at + rng.randrange(1, 4)]
            else:
                new[at:at] = [rng.choice("abcdefghxyz") for _ in range(rng.randrange(1, 4))]
        rows = diff_rows("\n".join(old), "\n".join(new))
        seen_old: list[int] = []
        seen_new: list[int] = []
        for number, row in enumerate(rows):
            if row.kind == "fold":
                hidden = int(row.text.split()[0])
                assert hidden > 1
                assert number == 0 or rows[number - 1].kind == "equal"  # context, unless at the top
                assert number + 1 == len(rows) or rows[number + 1].kind == "equal"  # and unless at the end
                start_old, start_new = (seen_old or [0])[-1], (seen_new or [0])[-1]
                seen_old += range(start_old + 1, start_old + hidden + 1)
                seen_new += range(start_new + 1, start_new + hidden + 1)
                continue
            if row.old is not None:
                assert old[row.old - 1] == row.text
                seen_old.append(row.old)
            if row.new is not None:
                assert new[row.new - 1] == row.text
                seen_new.append(row.new)
            assert (row.kind == "equal") == (row.old is not None and row.new is not None)
        assert seen_old == list(range(1, len(old) + 1)), (old, new, rows)
        assert seen_new == list(range(1, len(new) + 1)), (old, new, rows)

def test_feed_is_valid_atom_and_safe(story: Repo) -> None:
    out = built(story)
    for bundle, base in (("public", "https://example.org/"), ("restricted", "https://example.org/restricted/"), ("internal", "")):
        root = ET.parse(out / bundle / "feed.xml").getroot()
        assert root.tag == f"{ATOM}feed"
        for required in ("id", "title", "updated"):
            assert root.find(f"{ATOM}{required}") is not None
        entries = root.findall(f"{ATOM}entry")
        assert entries
        ids = [e.findtext(f"{ATOM}id") for e in entries]
        assert len(ids) == len(set(ids))
        for entry in entries:
            for required in ("id", "title", "updated"):
                assert entry.findtext(f"{ATOM}{required}")
            href = entry.find(f"{ATOM}link").get("href")
            assert href, "an empty link is the feed itself (the home page's entry, without a base_url)"
            assert href.startswith(base) and "://" in href if base else not href.startswith(("/", "http"))
        updated = [e.findtext(f"{ATOM}updated") for e in entries]
        assert updated == sorted(updated, reverse=True)
    public_feed = (out / "public/feed.xml").read_text()
    assert "Key ceremony" not in public_feed and "Rotate keys" not in public_feed


def test_no_email_address_in_any_bundle(story: Repo) -> None:
    out = built(story)
    for path in out.rglob("*"):
        if path.is_file():
            assert b"@example.org" not in path.read_bytes(), path


def test_home_page_lists_recent_changes(story: Repo) -> None:
    out = built(story)
    home = (out / "public/index.html").read_text()
    section = home[home.index("Recently updated"):]
    assert "view change" in section and "Introduction" in section
    assert "Key ceremony" not in home
    recent = (out / "public/recent/index.html").read_text()
    assert "20 March 2026" in recent


def test_history_cache_is_keyed_by_head(story: Repo) -> None:
    first = read_git(story.root)
    cache = list((story.root / ".sitegen-cache").glob("history-*.pickle"))
    assert len(cache) == 1 and first.head in cache[0].name
    story.write("guide/new.md", page("New page", None, "Fresh."))
    story.commit("Add a new page")
    second = read_git(story.root)
    assert second.head != first.head and len(second.commits) == len(first.commits) + 1
    cache = list((story.root / ".sitegen-cache").glob("history-*.pickle"))
    assert len(cache) == 1 and second.head in cache[0].name  # the last HEAD's only: the cache does not grow with every commit
    assert (story.root / ".sitegen-cache" / ".gitignore").read_text() == "*\n"


def test_uncommitted_page_has_no_date_and_is_reported(story: Repo) -> None:
    story.write("guide/wip.md", page("Work in progress", None, "Not committed."))
    result = build(story.root, Options(jobs=1))
    assert any("not committed yet" in w.message and "guide/wip.md" in w.message for w in result.warnings)
    assert "Last updated" not in (story.root / "build/public/guide/wip/index.html").read_text()


def test_shallow_clone_is_reported_and_strict_fails(story: Repo, tmp_path: Path) -> None:
    clone = tmp_path / "shallow"
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{story.root}", str(clone)], check=True)
    result = build(clone, Options(jobs=1))
    assert any("shallow" in w.message and "fetch-depth: 0" in w.hint for w in result.warnings)
    from ipo_sitegen.errors import BuildError

    with pytest.raises(BuildError):
        build(clone, Options(jobs=1, strict=True))


def test_not_a_repository_is_reported(tmp_path: Path) -> None:
    site = tmp_path / "plain"
    (site / "content").mkdir(parents=True)
    (site / "sitegen.toml").write_text(CONFIG)
    (site / "content/_index.md").write_text(page("Home", "public", "Hi."))
    result = build(site, Options(jobs=1))
    assert any("not a git repository" in w.message for w in result.warnings)


def test_history_builds_are_reproducible(story: Repo, tmp_path: Path) -> None:
    first = built(story)
    snapshot = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}
    build(story.root, Options(jobs=1, out=tmp_path / "again"))
    again = {p.relative_to(tmp_path / "again"): p.read_bytes() for p in (tmp_path / "again").rglob("*") if p.is_file()}
    assert snapshot == again


@pytest.mark.parametrize("span", [0, 3, 8, 1024])
def test_front_matter_read_from_the_first_lines_agrees_with_discover(span: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """History reads thousands of revisions by the front matter's lines only: same answer, same problems."""
    import random

    from ipo_sitegen import history
    from ipo_sitegen.discover import split_front_matter
    from ipo_sitegen.errors import Problems

    monkeypatch.setattr(history, "_FRONT_MATTER_SPAN", span)
    lines = ["---", "...", "--- ", " ---", "---x", "title: A", "", "body text", "x" * 40, "\r"]
    rng = random.Random(span)
    for _ in range(3000):
        text = "\n".join(rng.choice(lines) for _ in range(rng.randint(0, 10)))
        text = ("---\n" if rng.random() < 0.7 else "") + text + ("\n" if rng.random() < 0.5 else "")
        ours, theirs = Problems(), Problems()
        assert history._split_front_matter(text, Path("p.md"), ours) == split_front_matter(text, Path("p.md"), theirs)
        assert [p.message for p in ours.items] == [p.message for p in theirs.items]


def test_normalised_view_is_the_plain_rule() -> None:
    """Blank-line runs collapse and the text is stripped to end in one newline, whatever the whitespace."""
    import random

    from ipo_sitegen.history import _normalise

    rng = random.Random(7)
    for _ in range(20000):
        text = "".join(rng.choice(["a", "\n", " ", "\t", "\u00a0", "\u2003", "\x85", "\r"]) for _ in range(rng.randint(0, 9)))
        assert _normalise(text) == re.sub(r"\n{3,}", "\n\n", text).strip() + "\n"


def test_a_revision_saved_with_a_byte_order_mark_is_in_the_history(tmp_path: Path) -> None:
    # Some Windows editors save UTF-8 with a BOM; discover reads such a file, so must the history.
    repo = Repo(tmp_path / "site")
    repo.write("_index.md", page("Home", "public", "Welcome."))
    repo.write("guide.md", page("Guide", "public", "First words."))
    repo.commit("Start")
    repo.write("guide.md", "\ufeff" + page("Guide", "public", "First words.\n\nSaved on Windows with flobberwick."))
    repo.commit("Edit in Notepad")
    repo.write("guide.md", page("Guide", "public", "First words.\n\nSaved on Windows with flobberwick.\n\nLast words."))
    repo.commit("Edit again")
    out = built(repo)
    history = (out / "public/history/guide.html").read_text()
    assert history.count("<time") == 3, history
    assert "Edit in Notepad" in history
    changes = [p.read_text() for p in (out / "public/changes").glob("*.html")]
    notepad = [text for text in changes if "Edit in Notepad" in text]
    assert len(notepad) == 1 and "flobberwick" in notepad[0] and "\ufeff" not in notepad[0]


def test_page_texts_read_by_several_git_processes_are_those_read_by_one(story: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    one = read_git(story.root, use_cache=False).blobs
    monkeypatch.setattr(history_module, "_BLOBS_PER_GIT", 1)
    monkeypatch.setattr(history_module, "default_workers", lambda: 3)
    several = read_git(story.root, use_cache=False).blobs
    assert len(one) >= 3 and several == one
    assert any("quorraplinth" in text for text in several.values())  # a past revision's text, from git


def test_a_build_releases_the_texts_of_past_revisions_and_the_next_build_reads_them_again(story: Repo, tmp_path: Path) -> None:
    from ipo_sitegen.build import plan

    first = read_tree(built(story))
    second = read_tree(built(story))  # same process: the texts released by the first are read again
    assert first == second and any(name.startswith("public/changes/") for name in first)
    result = plan(story.root, Options(jobs=1))
    history = result.history
    assert history is not None and result.log is not None and result.log.blobs
    history.release_texts(result.bundles)
    assert not result.log.blobs
    with pytest.raises(RuntimeError, match="released"):
        history.snapshot("0" * 40, "guide/never-read.md")  # a text asked for afterwards: an error, not an empty page
