"""rebuild.affected: which pages, lists and files a change forces `sitegen serve` to redo.

Pure unit tests with hand-made PageFacts (no I/O). The site model below:

    _index.md                      Home
    guides/_index.md               Guides
    guides/setup.md                Setup      labels beginners; links to install.md
    guides/install.md              Install    registered (rank 1), labels it
    guides/advanced/_index.md      Advanced
    guides/advanced/tuning.md      Tuning     links to install.md and the attachment diagram.png
    guides/advanced-notes/_index.md
    guides/advanced-notes/note.md  (a folder whose name starts like "advanced": must not be confused)
    about/_index.md                About
    about/team.md                  Team       links to setup.md

Sources are relative to content/; `changed` paths are relative to the site root, as serve passes them.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest

from ipo_sitegen.rebuild import PageFacts, Work, affected


def facts(title: str, url: str, *, rank: int = 0, published: bool = True, labels: tuple[str, ...] = (),
          weight: int | None = None, summary: str = "", body: tuple[str, ...] = ("k1",),
          targets: tuple[str, ...] = ()) -> PageFacts:
    return PageFacts(title, url, rank, published, labels, weight, summary, body, targets)


def site() -> dict[str, PageFacts]:
    return {
        "_index.md": facts("Home", ""),
        "guides/_index.md": facts("Guides", "guides/"),
        "guides/setup.md": facts("Setup", "guides/setup/", labels=("beginners",), weight=10, targets=("guides/install.md",)),
        "guides/install.md": facts("Install", "guides/install/", rank=1, labels=("it",), weight=20),
        "guides/advanced/_index.md": facts("Advanced", "guides/advanced/"),
        "guides/advanced/tuning.md": facts("Tuning", "guides/advanced/tuning/", targets=("guides/install.md", "guides/diagram.png")),
        "guides/advanced-notes/_index.md": facts("Advanced notes", "guides/advanced-notes/"),
        "guides/advanced-notes/note.md": facts("Note", "guides/advanced-notes/note/"),
        "about/_index.md": facts("About", "about/"),
        "about/team.md": facts("Team", "about/team/", targets=("guides/setup.md",)),
    }


ALL = set(site())
GUIDES_DESCENDANTS = {s for s in ALL if s.startswith("guides/") and s != "guides/_index.md"}


def edit(source: str, **changes) -> tuple[dict[str, PageFacts], dict[str, PageFacts], set[str]]:
    old = site()
    new = site()
    new[source] = replace(new[source], **changes)
    return old, new, {f"content/{source}"}


def nothing_else(work: Work) -> None:
    assert not work.full and not work.attachments


# --- no change -------------------------------------------------------------------------------------


def test_saving_a_page_without_changing_anything_is_no_work():
    old = site()
    work = affected(old, site(), {"content/guides/setup.md"})
    assert work.empty, work
    assert work.pages == set()


def test_a_file_outside_the_watched_inputs_is_no_work():
    work = affected(site(), site(), {"README.md", "notes.txt"})
    assert work.empty, work


# --- body-only edits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["about/team.md", "guides/setup.md", "_index.md", "guides/_index.md"])
def test_a_body_only_edit_re_renders_only_that_page(source):
    work = affected(*edit(source, body=("k2",)))
    assert work.pages == {source}
    assert work.labels == set()
    assert not work.lists and not work.history
    assert work.search  # the search index holds the body text
    nothing_else(work)


def test_a_new_link_in_the_body_still_touches_only_that_page():
    work = affected(*edit("about/team.md", body=("k2",), targets=("guides/setup.md", "guides/install.md")))
    assert work.pages == {"about/team.md"}
    assert not work.lists and work.labels == set()


# --- what other pages show: title, summary, labels, weight ------------------------------------------


def test_a_title_change_re_renders_siblings_section_index_home_labels_and_lists():
    work = affected(*edit("guides/setup.md", title="Setting up"))
    # the page itself, its siblings (sidebar, previous/next), its section index, the home page
    assert {"guides/setup.md", "guides/install.md", "guides/advanced/_index.md", "guides/advanced-notes/_index.md",
            "guides/_index.md", "_index.md"} <= work.pages
    assert work.labels == {"beginners"}
    assert work.lists and work.history and work.search
    nothing_else(work)


def test_a_title_change_leaves_unrelated_pages_alone():
    """Least work: pages of other sections, deeper pages, and pages that merely link to it keep their output
    (links keep the author's text and never show the target's title)."""
    work = affected(*edit("guides/setup.md", title="Setting up"))
    assert "about/team.md" not in work.pages  # links to setup.md, but with its own link text
    assert "about/_index.md" not in work.pages
    assert "guides/advanced/tuning.md" not in work.pages
    assert "guides/advanced-notes/note.md" not in work.pages


def test_a_summary_change_updates_the_listings():
    work = affected(*edit("guides/install.md", summary="How to install"))
    assert {"guides/install.md", "guides/_index.md", "guides/setup.md"} <= work.pages
    assert work.lists and work.labels == {"it"}


def test_a_label_change_rewrites_the_old_and_the_new_label_pages():
    work = affected(*edit("guides/setup.md", labels=("beginners-guide", "setup")))
    assert work.labels == {"beginners", "beginners-guide", "setup"}
    assert work.lists
    assert "guides/setup.md" in work.pages


def test_a_weight_change_reorders_the_siblings():
    work = affected(*edit("guides/install.md", weight=1))
    assert {"guides/setup.md", "guides/install.md", "guides/_index.md"} <= work.pages
    assert work.lists


# --- section titles: breadcrumbs and sidebars of everything below ------------------------------------


def test_a_section_title_change_re_renders_all_its_descendants():
    work = affected(*edit("guides/_index.md", title="Handbook"))
    assert GUIDES_DESCENDANTS | {"guides/_index.md", "_index.md", "about/_index.md"} <= work.pages
    assert "about/team.md" not in work.pages
    assert work.lists


def test_a_subsection_title_change_stops_at_its_own_folder():
    work = affected(*edit("guides/advanced/_index.md", title="Expert topics"))
    assert {"guides/advanced/_index.md", "guides/advanced/tuning.md", "guides/_index.md", "guides/setup.md",
            "guides/install.md", "_index.md"} <= work.pages
    # a sibling folder whose name merely starts the same is not below it
    assert "guides/advanced-notes/note.md" not in work.pages
    assert "about/team.md" not in work.pages


def test_a_home_title_change_re_renders_every_page():
    work = affected(*edit("_index.md", title="Support space"))
    assert work.pages == ALL


# --- url, rank, publication: pages linking to it resolve their links again ----------------------------


@pytest.mark.parametrize("change", [
    {"url": "guides/installation/"},  # slug or file name
    {"rank": 2},  # audience: which bundle has it, locked links
    {"published": False},  # draft or embargo: links keep only their text
], ids=["url", "rank", "published"])
def test_url_rank_or_publication_change_re_renders_the_pages_linking_to_it(change):
    work = affected(*edit("guides/install.md", **change))
    assert {"guides/setup.md", "guides/advanced/tuning.md"} <= work.pages  # both link to install.md
    assert {"guides/install.md", "guides/_index.md", "_index.md"} <= work.pages
    assert work.lists and work.search


def test_a_section_slug_change_reaches_links_to_pages_below_it():
    old = site()
    new = site()
    for source, page in new.items():
        if page.url.startswith("guides/"):
            new[source] = replace(page, url="handbook/" + page.url[len("guides/"):])
    work = affected(old, new, {"content/guides/_index.md"})
    assert "about/team.md" in work.pages  # links to guides/setup.md, whose URL moved
    assert GUIDES_DESCENDANTS <= work.pages


# --- pages added, deleted, moved --------------------------------------------------------------------


def test_a_deleted_page_re_renders_its_section_its_labels_and_the_pages_linking_to_it():
    old = site()
    new = site()
    del new["guides/install.md"]
    work = affected(old, new, {"content/guides/install.md"})
    assert {"guides/install.md", "guides/setup.md", "guides/advanced/tuning.md", "guides/_index.md", "_index.md"} <= work.pages
    assert work.labels == {"it"}
    assert work.lists and work.search and work.history


def test_an_added_page_updates_its_section_and_labels():
    old = site()
    new = site()
    new["about/history.md"] = facts("History", "about/history/", labels=("general",))
    work = affected(old, new, {"content/about/history.md"})
    assert {"about/history.md", "about/team.md", "about/_index.md", "_index.md"} <= work.pages
    assert work.labels == {"general"}
    assert work.lists
    assert "guides/setup.md" not in work.pages


def test_a_page_moved_to_another_section_updates_both_sections():
    old = site()
    new = site()
    moved = new.pop("about/team.md")
    new["guides/team.md"] = replace(moved, url="guides/team/")
    work = affected(old, new, {"content/about/team.md", "content/guides/team.md"})
    assert {"about/team.md", "guides/team.md", "about/_index.md", "guides/_index.md", "guides/setup.md", "_index.md"} <= work.pages


# --- templates, static files, configuration, attachments, history -----------------------------------


@pytest.mark.parametrize("path", ["templates/page.html", "templates/partials/nav.html", "static/style.css",
                                  "static/img/logo.png", "sitegen.toml"])
def test_template_static_or_config_change_means_a_full_rebuild(path):
    work = affected(site(), site(), {path, "content/about/team.md"})
    assert work.full
    assert not work.empty


def test_an_attachment_change_recopies_attachments_and_rechecks_only_its_pages():
    work = affected(site(), site(), {"content/guides/diagram.png"})
    assert work.attachments
    assert not work.full
    assert work.pages == {"guides/advanced/tuning.md"} and not work.lists  # the page that shows it


def test_a_deleted_attachment_re_checks_the_pages_linking_to_it():
    """A link to a file that no longer exists is an error (DESIGN: links to nothing are errors), so the
    pages whose bodies link to the deleted attachment must be rendered (and checked) again; otherwise the
    preview keeps showing a dead link as if it were fine."""
    work = affected(site(), site(), {"content/guides/diagram.png"})
    assert work.attachments
    assert "guides/advanced/tuning.md" in work.pages, (
        "pages linking to a changed/deleted attachment are not re-rendered: "
        f"work.pages={sorted(work.pages)}")


def test_a_new_commit_refreshes_history_only():
    work = affected(site(), site(), set(), head_changed=True)
    assert work.history
    assert work.pages == set() and not work.full and not work.lists


def test_affected_is_pure():
    old, new, changed = edit("guides/_index.md", title="Handbook")
    copies = copy.deepcopy((old, new, changed))
    first = affected(old, new, changed)
    second = affected(old, new, changed)
    assert (old, new, changed) == copies  # inputs untouched
    assert first == second
