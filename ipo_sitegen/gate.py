"""The gate: the one place that decides who may see what.

Every other stage asks this module: which tier a page has (the most restrictive of its own
`audience` and its sections', default deny), whether a page, a gated block or an attachment
belongs in a bundle, and which bundle is the lowest that holds a page (for locked links).

Block gating works on the Markdown *text*, before anything is rendered: a block
`::: audience TIER` … `:::` that a bundle may not see is cut out, so it can never reach the
HTML, the table of contents, the search index, a feed or a diff.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from .config import Bundle, Config
from .content import Attachment, Page, Site
from .errors import Problems

_MARKER = re.compile(r"^\s*:::")
# A marker after a quote's '>', a list item's bullet or a definition's ':': Python-Markdown would
# show it as text, and the block as ordinary prose of the quote or list.
_CONTAINED_MARKER = re.compile(r"^[ \t]*(?:(?:>[ \t]?)|(?:[-*+]|\d{1,9}[.)]|:)[ \t]+)+(:::.*)$")
_OPEN = re.compile(r"^\s*:{3,}\s*audience\s+(\S+)\s*$")  # (three colons or more, as Pandoc's fenced divs)
_CLOSE = re.compile(r"^\s*:{3,}\s*$")
_FENCE = re.compile(r"^(`{3,}|~{3,})")


@dataclass(frozen=True)
class Segment:
    """A run of body lines that needs at least tier `rank` to be seen (0: everyone)."""

    text: str
    rank: int
    line: int  # file line where the segment starts
    opens: str = ""  # tier name when this segment is the first line of a visible gated block
    closes: bool = False
    indent: str = ""  # of the marker line (a block inside an admonition or a list item is indented)


@dataclass(frozen=True)
class HiddenBlock:
    """A gated block as source text, for the audit's list of what a bundle must not contain."""

    text: str
    rank: int
    line: int


def _code_lines(lines: list[str]) -> set[int]:
    """Indexes of lines inside fenced code blocks, exactly as Python-Markdown's fenced_code sees them:
    a fence starts at column 0 and is code only if the very same fence closes it later."""
    code: set[int] = set()
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match:
            fence = match.group(1)
            end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == fence), None)
            if end is not None:
                code.update(range(i, end + 1))
                i = end + 1
                continue
        i += 1
    return code


def parse_blocks(page: Page, tiers: tuple[str, ...], problems: Problems, path: str) -> list[Segment]:
    """Split a page body into segments by `::: audience` blocks; fenced code is never parsed.

    Any other line starting with ':::' (indented or not) is an error rather than text: a marker the
    gate does not understand must never let its block through as ordinary prose.
    """
    if ":::" not in page.body:  # most pages: one segment everyone may see, the body itself (not a copy)
        return [Segment(page.body if page.body.endswith("\n") else page.body + "\n", 0, page.body_line)]
    segments: list[Segment] = []
    stack: list[tuple[int, int]] = []  # (rank, opening line)
    buffer: list[str] = []
    start = page.body_line
    lines = page.body.split("\n")
    code = _code_lines(lines)

    def flush(next_line: int) -> None:
        nonlocal buffer, start
        if buffer:
            segments.append(Segment("\n".join(buffer) + "\n", stack[-1][0] if stack else 0, start))
        buffer, start = [], next_line

    for offset, line in enumerate(lines):
        number = page.body_line + offset
        if offset in code:
            buffer.append(line)
            continue
        contained = _CONTAINED_MARKER.match(line)
        if contained:
            problems.error(path, number, f"gated block marker inside a quote, list or definition: '{line.strip()}'",
                           "put '::: audience TIER' and its ':::' on lines of their own, outside the quote or list (a gated block may hold a whole quote or list)")
            line = contained.group(1)  # (read as the marker it means, so that one mistake makes one error)
        elif not _MARKER.match(line):
            buffer.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        opening = _OPEN.match(line)
        if opening:
            flush(number + 1)
            name = opening.group(1)
            if name not in tiers:
                problems.error(path, number, f"unknown audience '{name}' in gated block", f"use one of: {', '.join(tiers)}")
                rank = len(tiers) - 1  # default deny while the error stands
            else:
                rank = tiers.index(name)
            rank = max(rank, stack[-1][0] if stack else 0)
            stack.append((rank, number))
            segments.append(Segment("", rank, number, opens=tiers[rank], indent=indent))
        elif _CLOSE.match(line):
            if not stack:
                problems.error(path, number, "':::' closes a gated block that was never opened", "remove it, or open the block with '::: audience TIER'")
                continue
            flush(number + 1)
            rank, _ = stack[-1]
            segments.append(Segment("", rank, number, closes=True, indent=indent))
            stack.pop()
        else:
            problems.error(path, number, f"unrecognised block marker '{line.strip()}'",
                           "write '::: audience TIER' to open a gated block and ':::' alone to close it")
            flush(number + 1)
            stack.append((len(tiers) - 1, number))  # default deny until the line is fixed
            segments.append(Segment("", len(tiers) - 1, number, opens=tiers[-1]))
    flush(0)
    for rank, line in stack:
        problems.error(path, line, f"gated block '::: audience {tiers[rank]}' is never closed", "add a line ':::' where the block ends")
    return segments


def effective_rank(tiers: tuple[str, ...], own: str | None, chain: list[str | None]) -> int:
    """The rule, for pages now and at any past revision: the most restrictive of the page's own
    audience and its sections' (outermost first); nothing declared anywhere means the last tier."""
    declared = [tiers.index(a) for a in [*chain, own] if a in tiers]
    return max(declared) if declared else len(tiers) - 1


def _join(segments: list[Segment], rank: int, opening: str, closing: str, nested: tuple[str, str] | None = None) -> str:
    """The text of the segments `rank` may see, a visible block's markers written as `opening` and
    `closing` ({indent}: the marker's), or as `nested` when the marker is indented."""
    parts: list[str] = []
    for segment in segments:
        if segment.rank > rank:
            continue
        if segment.opens or segment.closes:
            marks = (opening, closing) if nested is None or not segment.indent else nested
            parts.append(marks[0].format(tier=segment.opens, indent=segment.indent) if segment.opens else marks[1].format(indent=segment.indent))
        else:
            parts.append(segment.text)
    return "".join(parts)


def source_for(segments: list[Segment], rank: int) -> str:
    """The Markdown source a reader of tier `rank` may see, block markers kept (for diffs)."""
    return _join(segments, rank, "{indent}::: audience {tier}\n", "{indent}:::\n")


def text_for(segments: list[Segment], rank: int) -> str:
    """The Markdown a reader of tier `rank` may see; visible blocks are wrapped in a marked <div>.
    Not an indented block (in an admonition or a list item): a <div> there would end the admonition
    or the list, and its text would become a code block. Its lines stay as they are."""
    return _join(segments, rank, '\n<div class="gated" data-audience="{tier}" markdown="1">\n\n', "\n</div>\n\n", ("", ""))


def hidden_blocks(segments: list[Segment], rank: int) -> list[HiddenBlock]:
    """The gated passages that a reader of tier `rank` must not see."""
    return [HiddenBlock(s.text, s.rank, s.line) for s in segments if s.rank > rank and s.text]


# The segments of every body the last gate parsed without a problem, by body, first line and tiers:
# `sitegen serve` gates the whole site again after each save, and the bodies are mostly the same.
_PARSED: dict[tuple[str, int, tuple[str, ...]], list[Segment]] = {}


class Gate:
    """Decides, once per build, the tier of every page and what each bundle holds."""

    def __init__(self, config: Config, site: Site, problems: Problems, *, drafts: bool = False, today: date | None = None) -> None:
        self.config = config
        self.site = site
        self.tiers = config.tiers
        self.most_restricted = len(self.tiers) - 1
        self.segments: dict[str, list[Segment]] = {}
        self.drafts = drafts
        self._pages: dict[str, list[Page]] = {}
        self._resolve(problems, drafts, today or date.today())
        self._folder_floor: dict[str, int] = {}
        for page in self.site.pages.values():
            if page.published:
                self._folder_floor[page.folder] = min(page.rank, self._folder_floor.get(page.folder, page.rank))

    # -- pages ---------------------------------------------------------------------------
    def _resolve(self, problems: Problems, drafts: bool, today: date) -> None:
        global _PARSED
        content = self.config.content_dir
        parsed: dict[tuple[str, int, tuple[str, ...]], list[Segment]] = {}
        chains: dict[str, list[Page]] = {}  # by folder: the pages of a folder share theirs
        for source in sorted(self.site.pages):
            page = self.site.pages[source]
            self.segments[source] = self._parse(page, problems, content, parsed)
            folder = page.section if page.is_index else page.folder
            chain = chains.get(folder)
            if chain is None:
                chain = chains[folder] = self.site.chain_of(folder)
            page.published = drafts or all(self._live(p, today) for p in [*chain, page])
            if page.is_home:
                page.rank = 0  # the home of every bundle; its audience does not cascade
                lowest = min((b.rank for b in self.config.bundles), default=0)
                if page.audience in self.tiers and self.tiers.index(page.audience) > lowest:  # its text would reach them all
                    problems.error(content / source, page.line_of("audience"),
                                   f"the home page is in every bundle, so its audience cannot be '{page.audience}'",
                                   f"remove the audience line (or write '{self.tiers[lowest]}') and put text for fewer readers "
                                   f"in '::: audience {page.audience}' blocks")
                continue
            if page.synthetic and not any(p.audience for p in chain):
                page.rank = -1  # decided below from what the folder holds
                continue
            page.rank = effective_rank(self.tiers, page.audience, [p.audience for p in chain])
            if page.audience in self.tiers and self.tiers.index(page.audience) < page.rank:
                section = next(p for p in reversed(chain) if p.audience == self.tiers[page.rank])
                problems.warning(content / source, page.line_of("audience"),
                                 f"audience '{page.audience}' is less restrictive than its section "
                                 f"content/{section.source} ('{section.audience}'); the page gets '{section.audience}'",
                                 f"set 'audience: {section.audience}' or move the page")
        # A folder without _index.md is as visible as the most visible page inside it.
        for source, page in sorted(self.site.pages.items(), key=lambda item: -item[0].count("/")):
            if page.synthetic:
                inside = [p.rank for p in self.site.pages.values()
                          if p is not page and p.source.startswith(page.folder + "/") and p.rank >= 0 and p.published]
                page.rank = min(inside, default=self.most_restricted)
        _PARSED = parsed

    def _parse(self, page: Page, problems: Problems, content: Path,
               parsed: dict[tuple[str, int, tuple[str, ...]], list[Segment]]) -> list[Segment]:
        """`parse_blocks`, or the segments the last gate found for the same body (added to `parsed`);
        a body with a problem is parsed again on every run, to report it."""
        key = (page.body, page.body_line, self.tiers)
        segments = _PARSED.get(key)
        if segments is None:
            reported = len(problems.items)
            segments = parse_blocks(page, self.tiers, problems, content / page.source)
            if len(problems.items) > reported:
                return segments
        parsed[key] = segments
        return segments

    @staticmethod
    def _live(page: Page, today: date) -> bool:
        if page.draft:
            return False
        if page.publish_date is not None and page.publish_date > today:
            return False
        return not (page.expiry_date is not None and page.expiry_date < today)

    def visible(self, page: Page, bundle: Bundle) -> bool:
        return page.published and page.rank <= bundle.rank

    def pages_for(self, bundle: Bundle) -> list[Page]:
        """The pages `bundle` holds, by source path (made once per bundle: callers must not change the list)."""
        if bundle.name not in self._pages:
            self._pages[bundle.name] = [p for _, p in sorted(self.site.pages.items()) if self.visible(p, bundle)]
        return self._pages[bundle.name]

    def lowest_bundle(self, page: Page) -> Bundle | None:
        """The least restricted bundle that holds `page` (the target of a locked link)."""
        return next((b for b in self.config.bundles if self.visible(page, b)), None)

    def text(self, page: Page, bundle: Bundle) -> str:
        """The page body as the readers of `bundle` may see it."""
        return self.text_at(page, bundle.rank)

    def text_at(self, page: Page, rank: int) -> str:
        """The page body as readers of tier `rank` may see it (bundle or not: the audit asks per tier)."""
        return text_for(self.segments[page.source], rank)

    def hidden(self, page: Page, bundle: Bundle) -> list[HiddenBlock]:
        return self.hidden_at(page, bundle.rank)

    def hidden_at(self, page: Page, rank: int) -> list[HiddenBlock]:
        return hidden_blocks(self.segments[page.source], rank)

    # -- attachments ---------------------------------------------------------------------
    def attachment_floor(self, attachment: Attachment) -> int:
        """An attachment is never more visible than the most visible page in its folder (for a
        folder without pages, such as `img/`, the nearest enclosing folder that has pages)."""
        folder = attachment.folder
        while folder not in self._folder_floor and folder:
            folder = posixpath.dirname(folder)
        return self._folder_floor.get(folder, self.most_restricted)

    def attachment_allowed(self, attachment: Attachment, bundle: Bundle) -> bool:
        """May `bundle` hold this attachment if one of its pages references it?"""
        return self.attachment_floor(attachment) <= bundle.rank
