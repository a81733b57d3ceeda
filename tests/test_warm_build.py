"""`sitegen build` updating its last output (update.SavedBuild) against builds from nothing.

Each step changes the site (edits, commits, a new attachment, a removed page…), runs `sitegen
build` with its cache, and compares the output byte for byte with `sitegen build --no-cache` of the
same site in a separate process. The step must have been an update, not a build from nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_tree, run, tree_listing
from test_history import Repo, page, story  # noqa: F401 - story is a fixture

from ipo_sitegen import build, search

ROOT = Path(__file__).resolve().parent.parent
EPOCH = {"SOURCE_DATE_EPOCH": "1790000000"}


def reference(site: Path, out: Path, epoch: dict[str, str] = EPOCH) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **epoch}
    subprocess.run([sys.executable, "-m", "ipo_sitegen", "build", "--root", str(site), "--out", str(out), "-q", "--no-cache"],
                   env=env, check=True, capture_output=True)
    return read_tree(out)


def warm_build(site: Path, out: Path, epoch: dict[str, str] = EPOCH) -> str:
    """`sitegen build -v` with the cache: its steps."""
    result = run(["build", "--root", site, "--out", out, "-v"], env=epoch)
    assert result.exit_code == 0, result.output
    return result.stderr


def _attachment(repo: Repo) -> None:
    (repo.root / "content" / "guide" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    repo.write("guide/intro.md", page("Introduction", None, "See the ![chart](chart.png)."))


STEPS = [
    ("a body edit", lambda r: r.write("guide/intro.md", page("Introduction", None, "Hello offices, welcome aboard.\n\nA new paragraph."))),
    ("a restricted page's body edit", lambda r: r.write("ops/keys.md", page("Key ceremony", None, "Keys come from the module zanzibarquill."))),
    ("a title edit", lambda r: r.write("guide/intro.md", page("Getting started", None, "Hello offices, welcome aboard."))),
    ("a commit", lambda r: r.commit("Reword the introduction")),
    ("a page made restricted", lambda r: r.write("guide/questions.md", page("Answers", "registered", "Public answers for everyone."))),
    ("a page that moves", lambda r: r.write("guide/questions.md", page("Answers", "public", "Answers.") .replace("title:", "slug: answers\ntitle:"))),
    ("a new page and an attachment", _attachment),
    ("a removed page", lambda r: (r.root / "content" / "guide" / "questions.md").unlink()),
    ("a commit of all that", lambda r: r.commit("New chart, no questions page")),
]


def test_each_warm_build_updates_the_last_output_to_the_bytes_of_a_build_from_nothing(story: Repo, tmp_path: Path,  # noqa: F811
                                                                                        monkeypatch) -> None:
    monkeypatch.setattr(build, "PARALLEL_PAGES", 1)  # the story's few pages written as a large site's are
    anew: list[int] = []  # search indexes built from every page rather than updated
    build_index = search.build_index
    monkeypatch.setattr(search, "build_index", lambda *args, **kw: anew.append(1) or build_index(*args, **kw))
    out = tmp_path / "out"
    assert "updating" not in warm_build(story.root, out)  # the first build: from nothing
    for number, (what, change) in enumerate(STEPS):
        change(story)
        anew.clear()
        steps = warm_build(story.root, out)
        assert "from the last build" in steps, (what, steps)
        assert number > 2 or not anew, what  # edits of text only: the indexes are updated
        expected = reference(story.root, tmp_path / f"reference-{number}")
        built = read_tree(out)
        assert built.keys() == expected.keys(), (what, sorted(built.keys() ^ expected.keys()))
        assert [name for name in built if built[name] != expected[name]] == [], what
        # No folder left behind either: an empty one named like a page that left the bundle tells it was there.
        assert tree_listing(out) == tree_listing(tmp_path / f"reference-{number}"), what


def test_a_changed_last_output_is_not_updated_but_built_again(story: Repo, tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "out"
    warm_build(story.root, out)
    page_file = out / "public" / "guide" / "intro" / "index.html"
    page_file.write_text(page_file.read_text().replace("Hello", "Tampered"))
    story.write("ops/keys.md", page("Key ceremony", None, "Keys come from the module zanzibarquill."))
    warm_build(story.root, out)
    assert read_tree(out) == reference(story.root, tmp_path / "reference")


@pytest.mark.parametrize("change", ["template", "config"])
def test_a_new_template_or_config_builds_everything_again(story: Repo, tmp_path: Path, change: str) -> None:  # noqa: F811
    out = tmp_path / "out"
    warm_build(story.root, out)
    if change == "template":
        (story.root / "templates").mkdir(exist_ok=True)
        (story.root / "templates" / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    else:
        config = story.root / "sitegen.toml"
        config.write_text(config.read_text().replace('title = "', 'title = "New '))
    steps = warm_build(story.root, out)
    assert "from the last build" not in steps
    assert read_tree(out) == reference(story.root, tmp_path / "reference")


def test_the_next_days_build_updates_the_last_output_and_lifts_an_embargo(story: Repo, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    # SOURCE_DATE_EPOCH 1790000000 is 2026-09-21: the page is embargoed until the 22nd. Two days
    # later the build updates the last output (the day is not part of the saved state) and the
    # page is in it, as in a build from nothing on that day.
    monkeypatch.setattr(build, "PARALLEL_PAGES", 1)
    story.write("guide/launch.md", "---\ntitle: Launch notes\npublish_date: 2026-09-22\n---\nThe portal opens to every office.\n")
    story.commit("Prepare the launch notes")
    out = tmp_path / "out"
    warm_build(story.root, out)
    assert not (out / "public" / "guide" / "launch").exists()
    later = {"SOURCE_DATE_EPOCH": str(1790000000 + 2 * 86400)}
    assert "from the last build" in warm_build(story.root, out, later)
    built, expected = read_tree(out), reference(story.root, tmp_path / "reference", later)
    assert (out / "public" / "guide" / "launch" / "index.html").is_file()
    assert built.keys() == expected.keys(), sorted(built.keys() ^ expected.keys())
    assert [name for name in built if built[name] != expected[name]] == []


def test_a_build_after_an_edit_of_public_text_takes_the_audits_table_from_the_last_build(story: Repo, tmp_path: Path,  # noqa: F811
                                                                                       monkeypatch) -> None:
    # The text of a public page is no secret of any bundle: the table of secret phrases that the
    # last build saved still holds, and the fingerprints made from it are those made from nothing
    # (test_audit_mutation); the output is that of a build from nothing.
    from ipo_sitegen import audit

    made: list[int] = []
    phrases = audit.Secrets._phrases
    monkeypatch.setattr(audit.Secrets, "_phrases", lambda self, items: made.append(1) or phrases(self, items))
    scanned: list[str] = []
    scan_file = audit.Scanner.file
    monkeypatch.setattr(audit.Scanner, "file", lambda self, name, data, bundle, *rest: scanned.append(f"{bundle}/{name}")
                        or scan_file(self, name, data, bundle, *rest))
    out = tmp_path / "out"
    warm_build(story.root, out)
    assert made == [1]
    first = read_tree(out)
    intro = story.root / "content" / "guide" / "intro.md"
    intro.write_text(intro.read_text(encoding="utf-8") + "\nOne more public sentence for offices.\n", encoding="utf-8")
    assert "from the last build" in warm_build(story.root, out)
    assert made == [1]  # (taken from the cache)
    story.write("ops/keys.md", page("Key ceremony", None, "Keys come from the module brindlewharf."))
    scanned.clear()
    assert "from the last build" in warm_build(story.root, out)
    assert made == [1, 1]  # (a restricted page's text is a secret of the public bundle)
    # The public bundle no longer shows the introduction's old text, which holds no secret: only
    # files written since the full build are scanned again under the grown fingerprints.
    last = read_tree(out)
    assert scanned and set(scanned) <= {name for name in last if first.get(name) != last[name]}, scanned
    built, expected = read_tree(out), reference(story.root, tmp_path / "reference")
    assert built.keys() == expected.keys() and [name for name in built if built[name] != expected[name]] == []


def test_a_public_sentence_quoted_in_a_restricted_page_is_confirmed_no_leak_and_a_real_one_still_fails(story: Repo,  # noqa: F811
                                                                                                        tmp_path: Path, monkeypatch) -> None:
    # After an edit of secret text, the phrases of what changed are merged into the last table of
    # secrets, and what the last build found in the texts the bundles show is taken over, not
    # looked up again (audit.Secrets). A restricted page that now quotes a public sentence leaves
    # the sentence in the public fingerprints. Files the last build wrote are not scanned again
    # (audit.CleanFiles), but an edit of another public page writes the search index again, whose
    # snippets hold the sentence: the scan finds it there, and the build confirms it with exact
    # fingerprints, which strike it out. The build passes, with the output of a build from
    # nothing. A real leak found beside such a false one is confirmed and fails the build.
    confirming: list[list[str]] = []
    confirm = build.confirmed
    # (records the leaks that exact fingerprints were made to confirm)
    monkeypatch.setattr(build, "confirmed", lambda leaks, jobs, exact: confirm(leaks, jobs, lambda: confirming.append([leak.fragment for leak in leaks]) or exact()))
    sentence = "Every office pays the annual filing fee before the end of March."
    another = "Offices renew their portal accounts every second year in January."
    story.write("guide/fees.md", page("Fees", "public", f"{sentence}\n\n{another}"))
    out = tmp_path / "out"
    warm_build(story.root, out)
    story.write("ops/keys.md", page("Key ceremony", None, f"Keys come from the module brindlewharf.\n\n{sentence}"))
    story.write("guide/intro.md", page("Introduction", None, "Hello offices, and welcome."))
    assert "from the last build" in warm_build(story.root, out)
    assert len(confirming) == 1 and any("annual filing" in fragment for fragment in confirming[0]), confirming
    built, expected = read_tree(out), reference(story.root, tmp_path / "reference")
    assert built.keys() == expected.keys() and [name for name in built if built[name] != expected[name]] == []

    built = read_tree(out)
    (story.root / "templates").mkdir()
    (story.root / "templates" / "404.html").write_text('{% extends "base.html" %}{% block main %}<p>Try the Key ceremony.</p>{% endblock %}')
    story.write("ops/keys.md", page("Key ceremony", None, f"Keys come from the module brindlewharf, again.\n\n{sentence}\n\n{another}"))
    story.write("guide/intro.md", page("Introduction", None, "Hello offices, and welcome once more."))
    result = run(["build", "--root", story.root, "--out", out], env=EPOCH)
    assert result.exit_code == 1 and "key ceremony" in (result.output + result.stderr).lower(), result.output + result.stderr
    assert "annual filing" not in result.output + result.stderr and "portal accounts" not in result.output + result.stderr
    assert len(confirming) == 2 and "key ceremony" in confirming[1], confirming
    assert read_tree(out) == built  # (the last output stays)


def test_an_edit_of_the_mailmap_alone_gives_the_authors_a_build_from_nothing_gives(story: Repo, tmp_path: Path) -> None:  # noqa: F811
    # Authors are named after .mailmap (history.FORMAT's %aN). An edit of .mailmap alone changes no
    # commit and no file of the site: the build must still see it, in its history and in whether
    # anything changed at all.
    out = tmp_path / "out"
    warm_build(story.root, out)
    assert b"Bob Builder" in b"".join(read_tree(out).values())
    (story.root / ".mailmap").write_text("Ann Example <ann@example.org> <ann.old@example.org>\nRobert Builder <bob@example.org>\n")
    warm_build(story.root, out)
    built = read_tree(out)
    assert b"Robert Builder" in b"".join(built.values()) and b"Bob Builder" not in b"".join(built.values())
    assert built == reference(story.root, tmp_path / "reference")
