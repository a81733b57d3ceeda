"""The site's data model: pages, sections and attachments as plain objects, with no I/O.

`discover` fills these from disk; the gate, the renderer and the writer only read them.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property


@dataclass
class Page:
    """One Markdown file. `_index.md` files are pages too: they describe their section."""

    source: str  # path inside content/, posix, e.g. "about/overview.md"
    title: str
    body: str
    body_line: int  # line of the file where `body` starts (1-based), to locate errors
    url: str = ""  # pretty URL inside a bundle, e.g. "about/overview/" ("" is the home page)
    audience: str | None = None  # as declared in the front matter
    summary: str = ""
    labels: tuple[str, ...] = ()
    weight: int | None = None
    slug: str | None = None
    draft: bool = False
    publish_date: date | None = None
    expiry_date: date | None = None
    key_lines: dict[str, int] = field(default_factory=dict)  # front-matter key -> file line
    rank: int = -1  # effective audience as a tier rank; set by the gate
    published: bool = True  # False for drafts and embargoed pages (unless --drafts)
    synthetic: bool = False  # a section index made up for a folder without _index.md

    # Derived from `source`, which never changes: computed once (they are asked for in every loop).
    @cached_property
    def is_index(self) -> bool:
        return posixpath.basename(self.source) == "_index.md"

    @property
    def is_home(self) -> bool:
        return self.source == "_index.md"

    @cached_property
    def folder(self) -> str:
        """The folder the file lives in ("" for content/ itself)."""
        return posixpath.dirname(self.source)

    @cached_property
    def section(self) -> str:
        """The folder of the section this page belongs to (an index belongs to its parent)."""
        return section_of(self.source)

    def line_of(self, key: str) -> int | None:
        return self.key_lines.get(key)

    def sort_key(self) -> tuple:
        return (self.weight if self.weight is not None else 1_000_000, self.title.casefold(), self.source)

    def copy(self) -> "Page":
        """A shallow copy that keeps what was derived from `source` (dataclasses.replace would run
        __init__ and derive it again: `serve` copies every page on every save)."""
        clone = object.__new__(Page)
        clone.__dict__.update(self.__dict__)
        return clone


def index_source(folder: str) -> str:
    """The source of a folder's `_index.md` (a folder never ends in "/"; "" is content/ itself)."""
    return f"{folder}/_index.md" if folder else "_index.md"


def section_of(source: str) -> str:
    """The folder of the section a page belongs to: its own folder, or for a section index (which
    belongs to its parent) the folder above."""
    folder = posixpath.dirname(source)
    return posixpath.dirname(folder) if posixpath.basename(source) == "_index.md" else folder


@dataclass
class Attachment:
    """A file next to the pages (image, PDF, ...), copied only into bundles that reference it."""

    source: str  # path inside content/
    url: str  # path inside a bundle
    sha256: str
    size: int

    @property
    def folder(self) -> str:
        return posixpath.dirname(self.source)


@dataclass
class Site:
    """Everything discovered under content/, keyed by source path."""

    pages: dict[str, Page] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)

    def index_of(self, folder: str) -> Page | None:
        return self.pages.get(index_source(folder))

    def section_chain(self, page: Page) -> list[Page]:
        """The section indexes above `page`, outermost first, not counting the home page."""
        return self.chain_of(page.section if page.is_index else page.folder)

    def chain_of(self, folder: str) -> list[Page]:
        """The indexes of `folder` and of the folders above it, outermost first, not counting the home page."""
        chain: list[Page] = []
        while folder:
            index = self.index_of(folder)
            if index is not None:
                chain.append(index)
            folder = posixpath.dirname(folder)
        chain.reverse()
        return chain
