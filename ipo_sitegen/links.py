"""Per-bundle link finalisation: markers → relative URLs, or locked links.

A link to a page the bundle holds becomes a relative URL (so the bundle works from any mount point).
A link to a page the bundle does not hold becomes a *locked link* to the lowest bundle that has it
(its `base_url`), keeping the author's text and never adding the target's title; without a
`base_url` for that bundle, only the author's text and the lock remain.
"""

from __future__ import annotations

import re
from functools import lru_cache
from html import escape
from typing import Callable
from urllib.parse import unquote

from .markup import FILE_MARK, PAGE_MARK

# (Any case: raw HTML in a page may write <A HREF="…">…</A>.)
_ANCHOR = re.compile(r'<a\s([^>]*?)href="(sitegen:(?:page|file):[^"]*)"([^>]*)>(.*?)</a>', re.S | re.I)
_IMAGE = re.compile(r'<img\s([^>]*?)src="(sitegen:file:[^"]*)"([^>]*?)\s*/?>', re.S | re.I)
_ALT = re.compile(r'alt="([^"]*)"')


@lru_cache(maxsize=1 << 16)  # (the same pairs recur: every change of a page links to it, every sibling to its section)
def relative_url(from_url: str, to_url: str) -> str:
    """The relative URL from the page at `from_url` (a folder like "a/b/") to `to_url`.

    Folder URLs keep their trailing slash; the theme's script appends index.html under file://.
    """
    here = [p for p in from_url.split("/") if p]
    there = [p for p in to_url.split("/") if p]
    common = 0
    for a, b in zip(here, there):
        if a != b:
            break
        common += 1
    rel = "/".join([".."] * (len(here) - common) + there[common:])
    if to_url.endswith("/") or to_url == "":
        return rel + "/" if rel else "./"
    return rel or "./"


# A resolver answers, for a marker's source path: ("here", url) when the bundle holds it,
# ("locked", absolute url or "") when another bundle does, with the tier name for the lock.
Resolver = Callable[[str, str], tuple[str, str, str]]


def _lock(text_html: str, url: str, tier: str) -> str:
    if not tier:  # the target is in no bundle at all (a draft): keep the words only
        return text_html
    label = f'<span class="lock" aria-hidden="true">🔒</span><span class="visually-hidden"> ({escape(tier)} access)</span>'
    if url:
        return f'<a class="locked" href="{escape(url)}" data-tier="{escape(tier)}">{text_html}{label}</a>'
    return f'<span class="locked" data-tier="{escape(tier)}">{text_html}{label}</span>'


def finalize(html: str, page_url: str, resolve: Resolver) -> str:
    """Rewrite every marker in `html` for one bundle and one page location."""
    if "sitegen:" not in html:
        return html

    def target(marker: str) -> tuple[str, str, str, str]:
        kind = "page" if marker.startswith(PAGE_MARK) else "file"
        rest = marker[len(PAGE_MARK) if kind == "page" else len(FILE_MARK) :]
        path, _, fragment = rest.partition("#")
        state, url, tier = resolve(kind, unquote(path))
        suffix = f"#{fragment}" if fragment else ""
        if state == "here":
            return state, relative_url(page_url, url) + suffix, tier, kind
        return state, (url + suffix if url else ""), tier, kind

    def anchor(match: re.Match) -> str:
        before, marker, after, inner = match.groups()
        state, url, tier, _ = target(marker)
        if state == "here":
            return f'<a {before}href="{escape(url)}"{after}>{inner}</a>'
        return _lock(inner, url, tier)

    def image(match: re.Match) -> str:
        before, marker, after = match.groups()
        state, url, tier, _ = target(marker)
        if state == "here":
            return f'<img {before}src="{escape(url)}"{after} />'
        alt = _ALT.search(before + after)
        return _lock(alt.group(1) if alt else "image", url, tier)

    return _ANCHOR.sub(anchor, _IMAGE.sub(image, html))
