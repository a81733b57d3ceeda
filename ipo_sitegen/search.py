"""Search: a full-text index per bundle, written as script files that the search page loads on demand.

Why scripts and not JSON: browsers refuse `fetch` from file://, and a bundle must work from a file
share; a `<script>` tag loads from anywhere. Every file calls `window.__sitegenSearch.docs(...)` or
`window.__sitegenSearch.shard(N, ...)`, and theme/static/search.js does the rest.

The index is built from the page bodies the bundle's pages are rendered from — after the gate has cut
the blocks the bundle may not show and after links were finalised — and only from the bundle's own
pages, so it holds nothing the bundle does not already show.

Files, under `search/` in each bundle:

    docs.js       for every page its URL, title, section, labels, tier, date, summary and the first
                  words of its body (for snippets); and the table that maps term prefixes to shards
    shard-NN.js   the postings of every term starting with some prefixes: a query loads docs.js and
                  only the shards its terms fall in
    index.html    the search page (theme template search.html)

Tokens: text is lower-cased, decomposed (NFKD), stripped of combining accents and a few letters are
folded by hand (ß→ss, ø→o, ł→l…); a token is then a run of letters and digits. search.js folds
queries the same way, so "Markovic" finds "Marković".

Positions: a page is one stream of tokens — title, summary, labels, then the body block by block —
with one unused position between fields and blocks, so that a phrase never spans two of them. For
each term and page the index keeps a field mask (where the term occurs: ranking and `title:`) and
every position (phrase queries).
"""

from __future__ import annotations

import gc
import hashlib
import json
import posixpath
import re
import unicodedata
from dataclasses import dataclass, field
from html import unescape
from typing import Iterable, Mapping

from .render import label_url, theme_static_dir

# Field bits of a term in a page; search.js ranks title > heading > label > summary > body.
TITLE, HEADING, LABEL, SUMMARY, BODY = 1, 2, 4, 8, 16

SHARD_BYTES = 48_000  # target size of one shard file: a few requests per query, none of them large
SNIPPET_CHARS = 480  # body text kept per page for snippets (the index would otherwise be as large as the pages)

# ---- Tokens -------------------------------------------------------------------------------------
# Must stay identical to fold() and tokenize() in theme/static/search.js.
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_LETTERS = str.maketrans({"ß": "ss", "ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d",
                          "ı": "i", "ς": "σ"})
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits (search.js: /[\p{L}\p{N}]+/u)


def fold(text: str) -> str:
    """Lower case without accents: what a reader means when they type a word."""
    text = text.lower()
    if text.isascii():
        return text
    return _MARKS.sub("", unicodedata.normalize("NFKD", text)).translate(_LETTERS)


def tokenize(text: str) -> list[str]:
    """The searchable words of `text`, folded, in order."""
    return _TOKEN.findall(fold(text))


# ---- Text of a rendered body ---------------------------------------------------------------------
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_BLOCKS = _HEADINGS | {"p", "div", "li", "ul", "ol", "dl", "dt", "dd", "table", "thead", "tbody", "tr", "td", "th",
                       "pre", "blockquote", "section", "article", "aside", "figure", "figcaption", "details",
                       "summary", "br", "hr"}
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_SKIP_TAGS = {"script", "style", "template", "button"}
# Decoration, not text: the "#" permalink after headings, the lock icon and its spoken label, footnote
# marks (a "1" glued to the word before it) and their back-links.
_SKIP_CLASSES = {"headerlink", "visually-hidden", "lock", "footnote-ref", "footnote-backref"}


@dataclass(frozen=True)
class Block:
    heading: bool
    text: str


# The body comes from our own Markdown renderer, so a scanner is enough (and several times faster than
# html.parser): comments, tags (quoted attribute values may hold ">"), and text in between.
_MARKUP = re.compile(r"""<!--.*?-->|<(/?)([A-Za-z][\w:-]*)((?:[^>"']|"[^"]*"|'[^']*')*)>|([^<]+|<)""", re.S)
_CLASS = re.compile(r"""\bclass\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_HIDDEN = re.compile(r"""\baria-hidden\s*=\s*["']?true""", re.I)


def body_blocks(html: str) -> list[Block]:
    """The text of a rendered page body as blocks (headings, paragraphs, list items, cells…), in order;
    markup and decoration are dropped."""
    blocks: list[Block] = []
    words: list[str] = []
    open_tags: list[tuple[str, bool]] = []  # (tag, skipped) of the elements we are inside
    skipping = headings = 0

    def flush() -> None:
        text = " ".join(unescape("".join(words)).split())
        if text:
            blocks.append(Block(headings > 0, text))
        words.clear()

    for match in _MARKUP.finditer(html):
        closing, tag, attributes, text = match.groups()
        if text is not None:
            if not skipping:
                words.append(text)
            continue
        if tag is None:
            continue  # a comment
        tag = tag.lower()
        if tag in _BLOCKS:
            flush()
        if closing:
            if any(name == tag for name, _ in open_tags):  # a stray end tag is ignored, as browsers do
                while open_tags:
                    name, skipped = open_tags.pop()
                    skipping -= skipped
                    headings -= name in _HEADINGS
                    if name == tag:
                        break
        elif tag not in _VOID and not attributes.rstrip().endswith("/"):
            classes = _CLASS.search(attributes)
            skip = (tag in _SKIP_TAGS or bool(_HIDDEN.search(attributes))
                    or bool(classes and _SKIP_CLASSES.intersection((classes.group(1) or classes.group(2) or classes.group(3) or "").split())))
            open_tags.append((tag, skip))
            skipping += skip
            headings += tag in _HEADINGS
    flush()
    return blocks


def excerpt(blocks: list[Block], limit: int = SNIPPET_CHARS) -> str:
    """The first `limit` characters of the body as running text, cut at a word, for snippets."""
    parts: list[str] = []
    size = 0
    for block in blocks:
        if parts:
            # Headings and cells have no full stop: keep them apart from what follows.
            parts.append(" " if parts[-1][-1] in ".!?:;…" else " · ")
        parts.append(block.text)
        size += len(block.text) + 3
        if size > limit:
            break
    text = "".join(parts)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ·") + " …"


# ---- Documents and postings ----------------------------------------------------------------------
@dataclass
class Entry:
    """One page of the bundle as the index sees it."""

    source: str
    url: str
    title: str
    html: str  # the body as the bundle renders it (gated, links finalised)
    summary: str = ""
    labels: tuple[str, ...] = ()
    tier: int = 0
    parent: str | None = None  # source of the enclosing section's index page, if any
    date: int = 0  # time of the last change (Unix seconds), 0 when unknown: recency ranking


def stream(entry: Entry, blocks: list[Block]) -> list[tuple[int, int, list[str]]]:
    """(field, first position, words) for each field and block of a page, with a gap of one position
    between them so that a phrase never spans two."""
    out: list[tuple[int, int, list[str]]] = []
    position = 0
    texts = [(TITLE, entry.title), (SUMMARY, entry.summary), *((LABEL, label) for label in entry.labels),
             *((HEADING if block.heading else BODY, block.text) for block in blocks)]
    for where, text in texts:
        words = tokenize(text)
        if words:
            out.append((where, position, words))
            position += len(words) + 1
    return out


@dataclass
class Posting:
    mask: int = 0
    positions: list[int] = field(default_factory=list)


# Postings are written as one string per term: a sequence of integers in a variable-length code. The
# last digit of an integer is one of the 32 characters of _LAST (digits and punctuation), the digits
# before it are letters, base 52 (_MORE), most significant first; so a reader knows where an integer
# ends, integers below 1,664 take two characters, and a run of letters is at most four long for any
# integer we write: the code never spells a word the leak audit (which reads every string of a bundle)
# could take for text.
#
# For each page holding the term, in increasing page order:
#   header      (page number - previous page number) * 4 + 2 if a field mask follows + 1 if a count follows
#   mask        where the term occurs (TITLE|HEADING|…), only when that is not just BODY
#   count       number of positions, only when more than one
#   positions   the first one, then each minus the one before
_LAST = "0123456789!#$%()*+-.:;=?@[]^{|}~"
_MORE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_DIGIT = {char: (False, value) for value, char in enumerate(_LAST)} | {char: (True, value) for value, char in enumerate(_MORE)}


def _code(number: int) -> str:
    if number < 0:
        raise ValueError(f"cannot encode a negative number: {number}")
    digits = [_LAST[number % 32]]
    number //= 32
    while number:
        digits.append(_MORE[number % 52])
        number //= 52
    return "".join(reversed(digits))


_CODES = [_code(n) for n in range(32 * 52)]  # every integer of one or two characters, precomputed


def encode_numbers(numbers: Iterable[int]) -> str:
    return "".join(_CODES[n] if 0 <= n < len(_CODES) else _code(n) for n in numbers)


def decode_numbers(text: str) -> list[int]:
    numbers: list[int] = []
    value = 0
    for char in text:
        more, digit = _DIGIT[char]
        if more:
            value = value * 52 + digit
        else:
            numbers.append(value * 32 + digit)
            value = 0
    return numbers


def _number(n: int) -> str:
    return _CODES[n] if n < 32 * 52 else _code(n)


class PostingsWriter:
    """Encoded postings of every term, appended page by page in increasing page order."""

    def __init__(self) -> None:
        self.terms: dict[str, tuple[list[int], list[str]]] = {}  # term -> ([last page added], encoded parts)

    def add(self, term: str, doc: int, mask: int, positions: list[int]) -> None:
        self.add_encoded(term, doc, *encode_occurrences(mask, positions))

    def add_encoded(self, term: str, doc: int, flags: int, tail: str) -> None:
        """Append a page's occurrences of `term`, already encoded but for the page-number delta."""
        entry = self.terms.get(term)
        if entry is None:
            entry = self.terms[term] = ([0], [])
        delta = doc - entry[0][0]
        entry[0][0] = doc
        entry[1].append(_number(delta * 4 + flags) + tail)



    def encoded(self) -> dict[str, str]:
        return {term: "".join(parts) for term, (_, parts) in self.terms.items()}



def encode_occurrences(mask: int, positions: list[int]) -> tuple[int, str]:
    """(header flags, encoded rest) of one term in one page: the part that does not depend on
    which pages came before, so it can be computed once per page and shared between bundles."""
    if mask == BODY and len(positions) == 1:  # by far the most common case: header and position
        return 0, _number(positions[0])
    chunk = []
    if mask != BODY:
        chunk.append(_number(mask))
    if len(positions) > 1:
        chunk.append(_number(len(positions)))
    last = 0
    for position in positions:
        chunk.append(_number(position - last))
        last = position
    return (2 if mask != BODY else 0) + (1 if len(positions) > 1 else 0), "".join(chunk)

def encode_postings(postings: Mapping[int, Posting], term: str = "") -> str:
    writer = PostingsWriter()
    for doc in sorted(postings):
        writer.add(term, doc, postings[doc].mask, postings[doc].positions)
    return writer.encoded().get(term, "")


def decode_postings(text: str) -> dict[int, Posting]:
    """The inverse of encode_postings (search.js has its own): page number -> Posting."""
    numbers = decode_numbers(text)
    out: dict[int, Posting] = {}
    i, doc = 0, 0
    while i < len(numbers):
        header = numbers[i]
        i += 1
        doc += header // 4
        mask, count = BODY, 1
        if header & 2:
            mask, i = numbers[i], i + 1
        if header & 1:
            count, i = numbers[i], i + 1
        positions, position = [], 0
        for delta in numbers[i : i + count]:
            position += delta
            positions.append(position)
        out[doc] = Posting(mask, positions)
        i += count
    return out


# ---- Shards --------------------------------------------------------------------------------------
def shard_prefixes(sizes: Mapping[str, int], target: int = SHARD_BYTES) -> list[tuple[str, list[str]]]:
    """Split the sorted terms by prefix until every group fits `target` (or is one term).

    Returns (prefix, terms) in prefix order. A group whose prefix was split keeps only the term equal to
    the prefix, if any. A term belongs to the group with the longest prefix that starts it, which is how
    search.js finds the shard of a term without knowing the terms.
    """

    def split(prefix: str, terms: list[str]) -> list[tuple[str, list[str]]]:
        if sum(sizes[t] for t in terms) <= target or len(terms) <= 1:
            return [(prefix, terms)]
        groups: dict[str, list[str]] = {}
        exact = [t for t in terms if t == prefix]
        for term in terms:
            if term != prefix:
                groups.setdefault(term[: len(prefix) + 1], []).append(term)
        out = [(prefix, exact)] if exact else []
        for child in sorted(groups):
            out += split(child, groups[child])
        return out

    return split("", sorted(sizes))


def pack(groups: list[tuple[str, list[str]]], sizes: Mapping[str, int], target: int = SHARD_BYTES) -> list[list[tuple[str, list[str]]]]:
    """Neighbouring small groups share a file, so that rare prefixes do not make a file each."""
    files: list[list[tuple[str, list[str]]]] = []
    size = target + 1
    for prefix, terms in groups:
        weight = sum(sizes[t] for t in terms)
        if size + weight > target:
            files.append([])
            size = 0
        files[-1].append((prefix, terms))
        size += weight
    return files


def shard_of(term: str, table: list[tuple[str, int]]) -> int | None:
    """The shard holding `term`, from the table in docs.js (as search.js does it)."""
    best = None
    for prefix, number in table:
        if term.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, number)
    return best[1] if best else None


# ---- The index -----------------------------------------------------------------------------------
def _dumps(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def shard_name(number: int) -> str:
    return f"shard-{number:02d}.js"


@dataclass
class SearchIndex:
    files: dict[str, str]  # name under search/ -> text
    version: str  # digest of every file: search.js asks for ?v=VERSION, so no stale file is mixed in
    terms: int


_ANALYSED: dict[str, tuple[list[tuple[str, int, str]], str]] = {}


def analyse(entry: Entry, snippet_chars: int) -> tuple[list[tuple[str, int, str]], str]:
    """A page's encoded term occurrences and snippet text, memoised by content: the same page in
    several bundles (and unchanged pages under `serve`) is analysed once."""
    key = hashlib.sha1(repr((entry.title, entry.summary, entry.labels, entry.html, snippet_chars)).encode()).hexdigest()
    found = _ANALYSED.get(key)
    if found is not None:
        return found
    blocks = body_blocks(entry.html)
    positions: dict[str, list[int]] = {}
    masks: dict[str, int] = {}  # terms seen outside the body, with every field they are in
    for where, start, words in stream(entry, blocks):
        for position, word in enumerate(words, start):
            seen = positions.get(word)
            if seen is None:
                positions[word] = [position]
            else:
                seen.append(position)
            if where != BODY:  # earlier positions not in `masks` were all in the body
                masks[word] = masks.get(word, 0 if seen is None else BODY) | where
            elif word in masks:
                masks[word] |= BODY
    found = ([(term, *encode_occurrences(masks.get(term, BODY), spots)) for term, spots in positions.items()],
             excerpt(blocks, snippet_chars))
    if len(_ANALYSED) > 50_000:
        _ANALYSED.clear()
    _ANALYSED[key] = found
    return found


def build_index(entries: list[Entry], tiers: Iterable[str] = (), shard_bytes: int = SHARD_BYTES,
                snippet_chars: int = SNIPPET_CHARS) -> SearchIndex:
    """The search files for one bundle's pages. Same entries, same bytes."""
    entries = sorted(entries, key=lambda e: (e.url, e.source))
    number = {e.source: i for i, e in enumerate(entries)}
    labels = sorted({label for e in entries for label in e.labels}, key=lambda name: (fold(name), name))
    label_number = {name: i for i, name in enumerate(labels)}

    postings = PostingsWriter()
    pages: dict[str, list] = {key: [] for key in ("url", "title", "parent", "labels", "tier", "date", "summary", "text")}
    collecting = gc.isenabled()
    gc.disable()  # millions of small lists that live until the end: collecting them is wasted time
    try:
        for doc, entry in enumerate(entries):
            occurrences, text = analyse(entry, snippet_chars)
            for term, flags, tail in occurrences:
                postings.add_encoded(term, doc, flags, tail)
            for key, value in (("url", entry.url), ("title", entry.title), ("tier", entry.tier), ("date", entry.date),
                               ("parent", number.get(entry.parent, -1) if entry.parent else -1),
                               ("labels", [label_number[name] for name in entry.labels]),
                               ("summary", entry.summary), ("text", text)):
                pages[key].append(value)
        encoded = postings.encoded()
    finally:
        if collecting:
            gc.enable()
    sizes = {term: len(_dumps(term)) + len(_dumps(text)) + 2 for term, text in encoded.items()}
    files = pack(shard_prefixes(sizes, shard_bytes), sizes, shard_bytes)
    out: dict[str, str] = {}
    table: list[list] = []
    for n, groups in enumerate(files):
        terms = {}
        for prefix, members in groups:
            table.append([prefix, n])
            terms.update((t, encoded[t]) for t in members)
        out[shard_name(n)] = f"window.__sitegenSearch.shard({n},{_dumps(terms)});\n"
    from_label = [[name, label_url(name)] for name in labels]
    # One list per property rather than one record per page: the leak audit reads a file as one stream
    # of words, and a page's URL right after another page's text would make word sequences that no page
    # has (a link's text followed by its path is one of the things the audit looks for).
    meta = {"pages": pages, "fields": {"title": TITLE, "heading": HEADING, "label": LABEL, "summary": SUMMARY, "body": BODY},
            "labels": from_label, "shards": table, "tiers": list(tiers)}
    out["docs.js"] = f"window.__sitegenSearch.docs({_dumps(meta)});\n"
    digest = hashlib.sha256()
    for name in sorted(out):
        digest.update(name.encode() + b"\0" + out[name].encode() + b"\0")
    return SearchIndex(out, digest.hexdigest()[:12], len(encoded))


# ---- Writing it into a bundle --------------------------------------------------------------------
def entries_for(pages, bodies: Mapping[str, str], dates: Mapping[str, int] | None = None) -> list[Entry]:
    """Index entries for the pages of one bundle; `bodies` are their finalised HTML bodies by source."""
    in_bundle = {p.source for p in pages}
    out = []
    for page in pages:
        parent = None
        if not page.is_home:
            section = page.section
            candidate = posixpath.join(section, "_index.md") if section else None
            parent = candidate if candidate in in_bundle else None
        out.append(Entry(page.source, page.url, page.title, bodies[page.source], page.summary, tuple(page.labels),
                         max(page.rank, 0), parent, (dates or {}).get(page.source, 0)))
    return out


def write_search(writer, theme, pages, bodies: Mapping[str, str], dates: Mapping[str, int] | None = None) -> SearchIndex:
    """Write search/ (page, docs.js, shards) and the search script into one bundle.

    `theme` is the bundle's ThemeRenderer; `dates` maps a page source to the time of its last change
    in this bundle (Unix seconds), for recency ranking, when history is known.
    """
    tiers = theme.config.tiers[: theme.bundle.rank + 1]
    index = build_index(entries_for(pages, bodies, dates), tiers)
    for name, text in sorted(index.files.items()):
        writer.write("search/" + name, text)
    script = (theme_static_dir() / "search.js").read_text(encoding="utf-8")
    script_path = f"assets/search.{hashlib.sha256(script.encode()).hexdigest()[:10]}.js"
    writer.write(script_path, script)
    here = "search/"
    context = theme.common(here, "Search")
    context["search"] = {"script": context["root"] + script_path, "version": index.version}
    writer.write(here + "index.html", theme.env.get_template("search.html").render(context))
    return index
