"""What history looks like in a bundle: "last updated", per-page history, "view change" diffs,
the "Recently updated" lists and the Atom feed.

Everything here is built from `History.changes_for(bundle)`, which has already applied the gate:
texts are gated for the bundle and commit messages are present only where the bundle may see
every page the commit touched.
"""

from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from itertools import groupby

from .config import Bundle, Config
from .history import Change
from .links import relative_url

CONTEXT = 3  # unchanged lines kept around each change in a diff
RECENT_PAGE_LIMIT = 1000  # items on recent/ (each page's history keeps the rest)
FEED_LIMIT = 50


@lru_cache(maxsize=1 << 14)  # (a commit's time is formatted for every page it touched, in every bundle)
def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@lru_cache(maxsize=1 << 14)
def day(timestamp: int) -> str:
    moment = datetime.fromtimestamp(timestamp, timezone.utc)
    return f"{moment.day} {moment:%B %Y}"


def file_name(page_url: str) -> str:
    """A page's URL as one file name: its segments joined by '+', a character no segment holds
    (`discover.is_safe_segment`), and '_home' for the home page (no segment starts with '_').

    History and change pages are files, not folders with an index.html: a site has tens of
    thousands of them, and a folder costs several times what a file does to make and remove."""
    return page_url.rstrip("/").replace("/", "+") or "_home"


HISTORY_FOLDER = "history/"  # every page's history page, as a file
CHANGES_FOLDER = "changes/"  # every change page, as a file


def history_url(page_url: str) -> str:
    return f"{HISTORY_FOLDER}{file_name(page_url)}.html"


def change_url(change: Change) -> str:
    return f"{CHANGES_FOLDER}{change.commit.sha[:12]}+{file_name(change.page.url)}.html"


def history_files(changes: list[Change]) -> set[str]:
    """The files of a page's history in a bundle: its history page and one page per change."""
    if not changes:
        return set()
    return {history_url(changes[-1].page.url), *(change_url(c) for c in changes)}


@dataclass(frozen=True)
class DiffRow:
    kind: str  # "equal", "insert", "delete" or "fold"
    old: int | None
    new: int | None
    text: str


def diff_rows(before: str, after: str) -> list[DiffRow]:
    """A line diff with unchanged runs folded to CONTEXT lines around each change."""
    old, new = before.splitlines(), after.splitlines()
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in _opcodes(old, new):
        if tag == "equal":
            keep_head = 0 if i1 == j1 == 0 else CONTEXT  # (context after lines inserted at the top too)
            keep_tail = 0 if (i2, j2) == (len(old), len(new)) else CONTEXT
            hidden = i2 - i1 - keep_head - keep_tail
            shown = [range(keep_head), range(i2 - i1 - keep_tail, i2 - i1)] if hidden > 1 else [range(i2 - i1)]  # (folding one line would not save a row)
            for number, lines in enumerate(shown):
                if number:
                    rows.append(DiffRow("fold", None, None, f"{hidden} unchanged lines"))
                rows += [DiffRow("equal", i1 + k + 1, j1 + k + 1, old[i1 + k]) for k in lines]
            continue
        rows += [DiffRow("delete", i1 + k + 1, None, old[i1 + k]) for k in range(i2 - i1)]
        rows += [DiffRow("insert", None, j1 + k + 1, new[j1 + k]) for k in range(j2 - j1)]
    return rows


def _opcodes(old: list[str], new: list[str]) -> list[tuple[str, int, int, int, int]]:
    """difflib's opcodes, with the lines both texts start and end with taken off first, as GNU
    diff does: an edit usually changes a few lines of a long page, and SequenceMatcher's cost
    grows with all the lines it is given (a site's change pages spent most of their time here)."""
    most = min(len(old), len(new))
    head = 0
    while head < most and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < most - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    codes = [("equal", 0, head, 0, head)] if head else []
    middle = difflib.SequenceMatcher(None, old[head : len(old) - tail], new[head : len(new) - tail], autojunk=False)
    codes += [(tag, i1 + head, i2 + head, j1 + head, j2 + head) for tag, i1, i2, j1, j2 in middle.get_opcodes()]
    if tail:
        codes.append(("equal", len(old) - tail, len(old), len(new) - tail, len(new)))
    return codes


class ChangeViews:
    """Template data for one bundle's history, with URLs relative to the page being written."""

    def __init__(self, config: Config, bundle: Bundle, changes: dict[str, list[Change]]) -> None:
        self.config = config
        self.bundle = bundle
        self.changes = changes

    @cached_property
    def latest(self) -> list[Change]:
        """Every change, newest first (for lists and the feed: `serve` writes a body edit without them)."""
        return sorted((c for items in self.changes.values() for c in items), key=lambda c: (-c.commit.time, c.page.url, c.commit.sha))

    def author(self, change: Change) -> str | None:
        return change.commit.author if self.config.history.show_authors else None

    def updated(self, source: str, here: str) -> dict | None:
        items = self.changes.get(source)
        if not items:
            return None
        last = items[-1]
        return {"iso": iso(last.commit.time), "text": day(last.commit.time), "author": self.author(last),
                "history": relative_url(here, history_url(last.page.url))}

    def item(self, change: Change, here: str) -> dict:
        return {"title": change.page.title, "href": relative_url(here, change.page.url),
                "iso": iso(change.commit.time), "date": day(change.commit.time), "author": self.author(change),
                "message": change.message, "first": change.first,
                "change": relative_url(here, change_url(change))}

    def recent(self, here: str, limit: int) -> list[dict]:
        return [self.item(c, here) for c in self.latest[:limit]]

    def recent_by_day(self, here: str) -> list[tuple[str, list[dict]]]:
        items = self.latest[:RECENT_PAGE_LIMIT]
        return [(label, [self.item(c, here) for c in group]) for label, group in groupby(items, key=lambda c: day(c.commit.time))]

    def page_history(self, source: str, here: str) -> list[dict]:
        return [self.item(c, here) for c in reversed(self.changes.get(source, []))]

    def diff(self, change: Change) -> list[DiffRow] | None:
        previous = change.previous
        return None if previous is None else diff_rows(previous, change.text)

    def feed(self) -> dict:
        base = self.bundle.base_url or ""
        name = f"{self.config.title}/{self.bundle.name}"
        entries = []
        for change in self.latest[:FEED_LIMIT]:
            entries.append({
                "id": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{name}/{change.key}')}",
                "title": change.page.title, "updated": iso(change.commit.time), "author": self.author(change),
                "link": (base + change.page.url) or "./", "change": base + change_url(change),  # ("": the feed itself)
                "summary": change.message or ("First published" if change.first else "Updated"),
            })
        updated = entries[0]["updated"] if entries else iso(0)
        return {"id": base or f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, name)}", "updated": updated,
                "self": base + "feed.xml", "home": base or "./", "entries": entries}
