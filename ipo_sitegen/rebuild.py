"""Incremental rebuild: map a set of changed files to the least work that keeps every bundle right.

`sitegen serve` keeps the facts of the last good build (`facts_of`) and, after a change, compares
them with the new ones. A body edit re-renders that page; a change of title, URL, audience,
labels, order or publication also re-renders the pages whose navigation, breadcrumbs, links,
label pages or lists show it; templates, static files or the config rebuild everything. This is
the only module that knows these dependencies; it does no I/O and is tested on its own.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from .content import index_source, section_of


@dataclass(frozen=True)
class PageFacts:
    """What other pages can show of a page, and what its own output depends on."""

    title: str
    url: str
    rank: int
    published: bool
    labels: tuple[str, ...]
    weight: int | None
    summary: str
    body: tuple[bytes, ...]  # the rendered bodies (compressed), one per bundle that holds the page
    targets: tuple[str, ...]  # pages and attachments its body links to

    def shown(self) -> tuple:
        """The part that appears in *other* pages (navigation, lists, locked links)."""
        return (self.title, self.url, self.rank, self.published, self.labels, self.weight, self.summary)


@dataclass
class Work:
    full: bool = False
    pages: set[str] = field(default_factory=set)  # re-render (or remove) these pages in every bundle
    labels: set[str] = field(default_factory=set)  # label pages to rewrite
    lists: bool = False  # sitemap, label index, section listings of the home page
    search: bool = False  # the search index
    history: bool = False  # recent/, feed.xml, history and change pages
    attachments: bool = False  # re-copy attachments

    @property
    def empty(self) -> bool:
        return not (self.full or self.pages or self.labels or self.lists or self.search or self.history or self.attachments)


def _dependents(old: dict[str, PageFacts], new: dict[str, PageFacts]) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """The pages of each section and the pages linking to each target, in either build (only needed,
    and only made, when a change shows in other pages)."""
    by_section: dict[str, set[str]] = {}
    linked_from: dict[str, set[str]] = {}
    for facts in (old, new):
        for source, page in facts.items():
            by_section.setdefault(section_of(source), set()).add(source)
            for target in page.targets:
                linked_from.setdefault(target, set()).add(source)
    return by_section, linked_from


def affected(old: dict[str, PageFacts], new: dict[str, PageFacts], changed: set[str], head_changed: bool = False) -> Work:
    """The work a rebuild must do after `changed` (paths relative to the site root)."""
    work = Work()
    if any(p in ("sitegen.toml", "templates", "static", "content") or p.startswith(("templates/", "static/")) for p in changed):
        work.full = True
        return work
    files = {p[len("content/") :] for p in changed if p.startswith("content/") and not p.endswith(".md")}
    work.attachments = bool(files)
    work.history = head_changed

    different = [source for source in sorted(set(old) | set(new)) if old.get(source) != new.get(source)]
    shown = {source for source in different if source not in old or source not in new or old[source].shown() != new[source].shown()}
    by_section, linked_from = _dependents(old, new) if files or shown else ({}, {})

    for name in files:  # links to an attachment are checked again when it changes or goes
        work.pages |= linked_from.get(name, set())
    for source in different:
        before, after = old.get(source), new.get(source)
        work.pages.add(source)
        work.search = True
        if source not in shown:
            continue  # only the body changed: no other page shows it
        # Its siblings, its section's index and the home page list or link it.
        section = section_of(source)
        work.pages |= by_section.get(section, set())
        work.pages.add(index_source(section))
        work.pages.add("_index.md")
        work.labels |= set(before.labels if before else ()) | set(after.labels if after else ())
        work.lists = True
        work.history = True  # recent lists show titles
        if source.endswith("_index.md"):
            # Breadcrumbs and sidebars of everything below a section show its title.
            folder = posixpath.dirname(source)
            work.pages |= {s for s in set(old) | set(new) if folder == "" or s.startswith(folder + "/")}
        if before is None or after is None or (before.url, before.rank, before.published) != (after.url, after.rank, after.published):
            work.pages |= linked_from.get(source, set())  # their links to it are resolved again
    return work
