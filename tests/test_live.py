"""`sitegen serve`'s in-place updates (LiveBuild) against full builds of the same content.

Every step edits the site, updates the served output in place, and compares it byte for byte with
a full build made by a separate process (so that nothing kept in memory by this one is shared).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import read_tree, tree_listing
from test_history import Repo, page, story  # noqa: F401 - story is a fixture

from ipo_sitegen import build
from ipo_sitegen.build import Options
from ipo_sitegen.live import LiveBuild

ROOT = Path(__file__).resolve().parent.parent


def full_build(site: Path, out: Path) -> dict[str, bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "ipo_sitegen", "build", "--root", str(site), "--out", str(out), "-q", "--no-cache"],
                   env=env, check=True, capture_output=True)
    return read_tree(out)


EDITS = [
    ("a body edit", "guide/intro.md", page("Introduction", None, "Hello offices, welcome aboard.\n\nA new paragraph.")),
    ("a title edit", "guide/intro.md", page("Getting started", None, "Hello offices, welcome aboard.\n\nA new paragraph.")),
    ("a committed page's title edit", "guide/questions.md", page("Answers", "public", "Public answers for everyone.")),
    ("a restricted page's title edit", "ops/keys.md", page("Key rotation", None, "Generate keys with the hardware module zanzibarquill.")),
    ("a section title edit", "guide/_index.md", page("Guides", "public", "Guides.")),
    ("a page made restricted", "guide/questions.md", page("Answers", "registered", "Public answers for everyone.")),
    ("a new link", "guide/intro.md", page("Getting started", None, "See the [answers](questions.md).")),
    ("a new page", "guide/new.md", page("Newcomer", None, "Brand new.")),
]


@pytest.mark.parametrize("jobs", [1, 2], ids=["one process", "forked writers"])
def test_each_update_leaves_the_output_of_a_full_build(story: Repo, tmp_path: Path, jobs: int, monkeypatch) -> None:  # noqa: F811
    monkeypatch.setattr(build, "PARALLEL_PAGES", 1)  # the story's few pages written as a large site's are
    live = LiveBuild(story.root, Options(out=tmp_path / "served", jobs=jobs))
    live.full()
    assert live.last is not None and live.last.search is not None and live.last.search.keys() == {"public", "restricted", "internal"}
    for number, (what, path, text) in enumerate(EDITS):
        story.write(path, text)
        work = live.update({str(story.root / "content" / path)})
        assert not work.full, what
        expected = full_build(story.root, tmp_path / f"reference-{number}")
        served = read_tree(tmp_path / "served")
        assert served.keys() == expected.keys(), what
        assert [name for name in served if served[name] != expected[name]] == [], what
        assert tree_listing(tmp_path / "served") == tree_listing(tmp_path / f"reference-{number}"), what  # (no empty folder left)


def test_a_settle_interrupted_by_saves_is_finished_with_the_next_update(story: Repo, tmp_path: Path) -> None:  # noqa: F811
    live = LiveBuild(story.root, Options(out=tmp_path / "served", jobs=1))
    live.full()
    story.write("guide/intro.md", page("Introduction", None, "Hello offices, welcome aboard.\n\nA new paragraph."))
    live.update({str(story.root / "content/guide/intro.md")}, audit=False)
    assert live.pending is not None
    first = {name: set(names) for name, names in live.pending[1].items()}
    assert live.settle(interrupted=lambda: True) is False  # a save came in: nothing is lost
    story.write("guide/new.md", page("Newcomer", None, "Brand new."))
    live.update({str(story.root / "content/guide/new.md")}, audit=False)
    waiting = live.pending[1]
    assert all(first[name] <= waiting[name] for name in first), "the first update's files still wait for the audit"
    assert any("new/index.html" in name for name in waiting["public"])
    assert live.pending[2] == {"public", "restricted", "internal"}
    asked = []
    assert live.settle(interrupted=lambda: asked.append(1) is None and len(asked) > 3) is False  # after the fingerprints and two bundles' search
    assert live.pending is not None and live.pending[2] == {"internal"}
    assert live.settle() is True and live.pending is None
    expected = full_build(story.root, tmp_path / "reference")
    served = read_tree(tmp_path / "served")
    assert served.keys() == expected.keys()
    assert [name for name in served if served[name] != expected[name]] == []


def test_a_settle_confirms_a_quoted_public_sentence_as_no_leak(story: Repo, tmp_path: Path, monkeypatch) -> None:  # noqa: F811
    # The settle merges what an edit changed into the last audit's table and takes over what the
    # shown texts were found to hold (audit.Secrets): a restricted page quoting a public sentence
    # leaves it in the public fingerprints, and the search index written again for another public
    # edit holds it in a snippet. The settle confirms it with exact fingerprints: no leak (a real
    # leak found beside a false one: test_warm_build).
    from ipo_sitegen import audit
    from ipo_sitegen import live as live_module

    confirming: list[list[str]] = []
    confirm = audit.confirmed
    # (records the leaks that exact fingerprints were made to confirm)
    monkeypatch.setattr(live_module, "confirmed", lambda leaks, jobs, exact: confirm(leaks, jobs, lambda: confirming.append([leak.fragment for leak in leaks]) or exact()))
    sentence = "Every office pays the annual filing fee before the end of March."
    story.write("guide/fees.md", page("Fees", "public", sentence))
    live = LiveBuild(story.root, Options(out=tmp_path / "served", jobs=1))
    live.full()
    story.write("ops/keys.md", page("Key ceremony", None, f"Keys come from the module brindlewharf.\n\n{sentence}"))
    story.write("guide/intro.md", page("Introduction", None, "Hello offices, and welcome."))
    live.update({str(story.root / "content" / "ops" / "keys.md"), str(story.root / "content" / "guide" / "intro.md")})
    assert live.settle() is True
    assert len(confirming) == 1 and any("annual filing" in fragment for fragment in confirming[0]), confirming
    assert read_tree(tmp_path / "served") == full_build(story.root, tmp_path / "reference")
