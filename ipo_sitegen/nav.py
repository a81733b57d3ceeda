"""Navigation for one bundle: sidebar, breadcrumbs, previous/next, section listings.

The sidebar shows the current page's ancestors, its siblings and its children — never the whole
tree — and long sibling lists are windowed, so a page's size and render time do not grow with the
number of pages in the site (the whole tree in every page is what makes some generators O(N²)).
"""

from __future__ import annotations

import posixpath
from collections import defaultdict
from dataclasses import dataclass

from .content import Page, index_source

SIBLING_WINDOW = 15  # siblings shown on each side of the current page before "… more"


@dataclass(frozen=True)
class NavItem:
    page: Page
    current: bool = False
    children: tuple["NavItem", ...] = ()


@dataclass(frozen=True)
class Sidebar:
    ancestors: tuple[Page, ...]
    items: tuple[NavItem, ...]
    hidden_before: int
    hidden_after: int
    section: Page | None


class Navigation:
    """Sorted children of every section, computed once per bundle from the pages it holds."""

    def __init__(self, pages: list[Page]) -> None:
        self.by_source = {p.source: p for p in pages}
        self.children: dict[str, list[Page]] = defaultdict(list)
        for page in pages:
            if page.is_home:
                continue
            self.children[page.section].append(page)
        for items in self.children.values():
            items.sort(key=Page.sort_key)
        self._position = {p.source: i for items in self.children.values() for i, p in enumerate(items)}

    def index_of(self, folder: str) -> Page | None:
        return self.by_source.get(index_source(folder))

    def children_of(self, page: Page) -> list[Page]:
        """What a section index lists: its pages and subsections."""
        if page.is_home:
            return self.children.get("", [])
        return self.children.get(page.folder, []) if page.is_index else []

    def ancestors(self, page: Page) -> list[Page]:
        """Home, then each enclosing section, outermost first (not the page itself)."""
        chain: list[Page] = []
        folder = page.section
        while True:
            index = self.index_of(folder)
            if index is not None and index is not page:
                chain.append(index)
            if not folder:
                break
            folder = posixpath.dirname(folder)
        chain.reverse()
        return chain

    def siblings(self, page: Page) -> list[Page]:
        return [] if page.is_home else self.children.get(page.section, [])

    def neighbours(self, page: Page) -> tuple[Page | None, Page | None]:
        siblings = self.siblings(page)
        i = self._position.get(page.source)
        if i is None:
            return None, None
        return (siblings[i - 1] if i > 0 else None), (siblings[i + 1] if i + 1 < len(siblings) else None)

    def sidebar(self, page: Page) -> Sidebar:
        siblings = self.siblings(page) if not page.is_home else self.children.get("", [])
        position = self._position.get(page.source, 0)
        start = max(0, position - SIBLING_WINDOW)
        stop = min(len(siblings), position + SIBLING_WINDOW + 1)
        items = []
        for sibling in siblings[start:stop]:
            current = sibling is page
            kids = ()
            if current and page.is_index:
                kids = tuple(NavItem(child) for child in self.children_of(page)[: 2 * SIBLING_WINDOW])
            items.append(NavItem(sibling, current, kids))
        section = self.index_of(page.section) if not page.is_home else None
        return Sidebar(tuple(self.ancestors(page)), tuple(items), start, len(siblings) - stop, section)
