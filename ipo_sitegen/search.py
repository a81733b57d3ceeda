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

Cost: a page's terms are worked out once per page text, whichever bundles show it (see analyse()),
with the part of their postings that does not depend on the bundle; what is left for each bundle is
one loop over its (page, term) pairs (see postings()).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import posixpath
import re
import unicodedata
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from html import unescape
from itertools import chain, compress, count
from operator import ne, sub
from pathlib import Path
from typing import AbstractSet, Callable, Iterable, Mapping, NamedTuple, Sequence

from .render import label_url, theme_static_dir
from .workers import collector_paused

# Field bits of a term in a page; search.js ranks title > heading > label > summary > body.
TITLE, HEADING, LABEL, SUMMARY, BODY = 1, 2, 4, 8, 16

SHARD_BYTES = 48_000  # target size of one shard file: a few requests per query, none of them large
SNIPPET_CHARS = 480  # body text kept per page for snippets (the index would otherwise be as large as the pages)

# ---- Tokens -------------------------------------------------------------------------------------
# Must stay identical to fold() and tokenize() in theme/static/search.js (but for _CJK runs: see there).
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_LETTERS = str.maketrans({"ß": "ss", "ø": "o", "đ": "d", "ł": "l", "æ": "ae", "œ": "oe", "þ": "th", "ð": "d",
                          "ı": "i", "ς": "σ"})
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits (search.js: /[\p{L}\p{N}]+/u)


# Scripts written without spaces between words (Chinese, Japanese; Korean's words carry particles): a
# run of their letters is indexed as its overlapping pairs, then its last letter alone (東京特許 → 東京
# 京特 特許 許), so that a word of two letters or more is found inside a run as the phrase of its
# pairs, and a word of one letter as the first of a pair or that last letter (search.js searches one
# letter as a prefix; its queries have no last letter alone, the one difference between the two).
_CJK = "\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f"
_CJK_RUN = re.compile(f"([{_CJK}]+)")


def fold(text: str) -> str:
    """Lower case without accents: what a reader means when they type a word. Marks that are not
    accents are put back on their letters (NFC): で stays で, not て and a stray mark."""
    if text.isascii():
        return text.lower()
    # (lower case after NFKD: ㎒ is MHz only then, and found as mhz)
    return unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFKD", text).lower())).translate(_LETTERS)


def _pairs(words: list[str]) -> list[str]:
    """`words` with each run of _CJK letters in them as its overlapping pairs (see _CJK)."""
    out: list[str] = []
    for word in words:
        if not _CJK_RUN.search(word):
            out.append(word)
            continue
        for number, part in enumerate(_CJK_RUN.split(word)):
            if number % 2 == 0:  # (split: the text between runs, then a run, …)
                if part:
                    out.append(part)
            else:
                out += [part] if len(part) == 1 else [*(part[k : k + 2] for k in range(len(part) - 1)), part[-1]]
    return out


def tokenize(text: str) -> list[str]:
    """The searchable words of `text`, folded, in order."""
    words = _TOKEN.findall(fold(text))
    return words if text.isascii() else _pairs(words)


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


class Block(NamedTuple):
    heading: bool
    text: str


# The body comes from our own Markdown renderer, so a scanner is enough (and several times faster than
# html.parser): comments and tags (quoted attribute values may hold ">"); the text is what lies between.
_TAG = re.compile(r"""<(?:!--.*?-->|(/?)([A-Za-z][\w:-]*)([^>"']*(?:(?:"[^"]*"|'[^']*')[^>"']*)*)>)""", re.S)
_DECORATION = re.compile(r"""\b(?:class|aria-hidden)\s*=""", re.I)  # in the attributes of a tag that may be decoration
_ATTRIBUTE = re.compile(r"""([^\s"'=<>/]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")


def _skipped(attributes: str) -> bool:
    """Whether the attributes of an element mark it as holding no text for the index (see _SKIP_CLASSES).
    Read name by name: a link's URL may hold "class=" or "aria-hidden=true" too."""
    if not _DECORATION.search(attributes):  # most tags: one quick look
        return False
    for name, double, single, bare in _ATTRIBUTE.findall(attributes):
        name, value = name.lower(), double or single or bare
        if (name == "aria-hidden" and value.strip().lower() == "true") or (name == "class" and _SKIP_CLASSES.intersection(value.split())):
            return True
    return False


def body_blocks(html: str) -> list[Block]:
    """The text of a rendered page body as blocks (headings, paragraphs, list items, cells…), in order;
    markup and decoration are dropped, entities decoded. Inside a block, whitespace is left as written:
    words do not depend on it, and excerpt() tidies the little it shows (tidying every block here took
    almost half the time of this function)."""
    # (closing, tag, attributes, text) for each tag, comments having no tag; the text before the first tag
    # comes with no tag either
    parts = chain((None, None, None), _TAG.split(html))
    blocks: list[Block] = []
    words: list[str] = []  # the text of the current block so far, leading white space left out
    names: list[str] = []  # the elements we are inside, innermost last
    skips: list[bool] = []  # for each of them: whether it is skipped
    skipping = headings = 0

    def flush() -> None:
        text = unescape("".join(words)).strip()
        if text:
            blocks.append(Block(headings > 0, text))
        words.clear()

    for closing, tag, attributes, text in zip(parts, parts, parts, parts):
        if tag is not None:
            tag = tag.lower()
            if tag in _BLOCKS and words:
                flush()
            if closing:
                if tag in names:  # a stray end tag is ignored, as browsers do
                    while True:
                        name = names.pop()
                        skipping -= skips.pop()
                        headings -= name in _HEADINGS
                        if name == tag:
                            break
            elif tag not in _VOID and not attributes.rstrip().endswith("/"):
                skip = tag in _SKIP_TAGS or bool(attributes) and _skipped(attributes)
                names.append(tag)
                skips.append(skip)
                skipping += skip
                headings += tag in _HEADINGS
        if text and not skipping and (words or not text.isspace()):
            words.append(text)
    flush()
    return blocks


def excerpt(blocks: Sequence[Block], limit: int = SNIPPET_CHARS) -> str:
    """The first `limit` characters of the body as running text, cut at a word, for snippets."""
    parts: list[str] = []
    size = 0
    for block in blocks:
        if parts:
            # Headings and cells have no full stop: keep them apart from what follows.
            parts.append(" " if parts[-1][-1] in ".!?:;…" else " · ")
        parts.append(" ".join(block.text.split()))
        size += len(parts[-1]) + 3
        if size > limit:
            break
    text = "".join(parts)
    if len(text) <= limit:
        return text
    cut = text.rfind(" ", 0, limit + 1)
    return text[: cut if cut > limit // 2 else limit].rstrip(" ·") + " …"


# ---- Documents and positions ---------------------------------------------------------------------
@dataclass
class Entry:
    """One page of the bundle as the index sees it."""

    source: str
    url: str
    title: str
    html: str | Callable[[], str]  # the body as the bundle renders it (gated, links finalised), or what makes it
    summary: str = ""
    labels: tuple[str, ...] = ()
    tier: int = 0
    parent: str | None = None  # source of the enclosing section's index page, if any
    date: int = 0  # time of the last change (Unix seconds), 0 when unknown: recency ranking
    # When set, a digest that only bodies with the same text have (the index then memoises the text by
    # it, and makes the HTML only for a text it has not seen): rather than a digest of the HTML.
    text_key: bytes = b""


def fields(entry: Entry, blocks: Sequence[Block]) -> list[tuple[int, str]]:
    """(field, text) of a page in the order of its positions: title, summary, labels, then the body
    block by block."""
    return [(TITLE, entry.title), (SUMMARY, entry.summary), *((LABEL, label) for label in entry.labels),
            *((HEADING if block.heading else BODY, block.text) for block in blocks)]


# The words of a page are numbered as one stream, with one unused position between two fields or
# blocks that have words. Tokenizing the page at once (rather than field by field) is what makes it
# fast: the texts are joined with _GAP, a character that is not a word, folds to itself and is taken
# for a token of its own; gaps with no word between them count once.
_GAP = "\x00"
_GAPS = re.compile(r"\x00[\W_]*\x00")  # gaps with no word between them
_TOKEN_OR_GAP = re.compile(r"[^\W_]+|\x00")
_NOT_WORD = str.maketrans({c: " " for c in map(chr, range(1, 128)) if not c.isalnum()})  # ASCII but words and _GAP


def word_stream(texts: list[str]) -> list[str]:
    """The words of `texts` in order, _GAP between two texts that have words: a word's position is
    its index (tokenize() of each text, numbered as described above)."""
    text = f" {_GAP} ".join(texts)
    if text.count(_GAP) > len(texts) - 1:  # a text of ours never has one, but an author's could
        text = f" {_GAP} ".join(part.replace(_GAP, " ") for part in texts)
    text = _GAPS.sub(_GAP, fold(text))
    words = text.translate(_NOT_WORD).split() if text.isascii() else _pairs(_TOKEN_OR_GAP.findall(text))
    if words and words[-1] == _GAP:  # the last texts had no words
        del words[-1]
    if words and words[0] == _GAP:  # nor the first ones
        del words[0]
    return words


# ---- Postings ------------------------------------------------------------------------------------
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
#
# Only the header depends on the bundle (its page numbers); the rest, the "tail", is computed once per
# page text and shared by every bundle that shows that text.
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


_CODES: list[str] = []  # the code of every integer below its length: a lookup instead of a call
_TAIL_SEPARATOR = " "  # never in a code


def _codes(size: int) -> list[str]:
    """_CODES, grown to hold at least the integers below `size`."""
    if len(_CODES) < size:
        _CODES.extend(map(_code, range(len(_CODES), max(size, 32 * 52))))
    return _CODES


def encode_numbers(numbers: Iterable[int]) -> str:
    return "".join(_code(n) for n in numbers)


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


@dataclass
class Posting:
    mask: int = 0
    positions: list[int] = field(default_factory=list)


def _occurrences(mask: int, positions: list[int], codes: list[str]) -> tuple[int, str]:
    """(header flags, tail) of one term in one page; `codes` must hold the mask, count and positions."""
    if len(positions) == 1:
        flags, tail = 0, codes[positions[0]]
    else:
        flags, tail = 1, codes[len(positions)] + "".join(map(codes.__getitem__, map(sub, positions, [0, *positions])))
    return (flags, tail) if mask == BODY else (flags + 2, codes[mask] + tail)


def encode_postings(postings: Mapping[int, Posting]) -> str:
    """The postings of one term (page number -> Posting) as the index writes them."""
    out, last = [], 0
    for doc in sorted(postings):
        posting = postings[doc]
        codes = _codes(max(posting.mask, len(posting.positions), *posting.positions) + 1)
        flags, tail = _occurrences(posting.mask, posting.positions, codes)
        out += encode_numbers([(doc - last) * 4 + flags]), tail
        last = doc
    return "".join(out)


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


# Every term gets a number the first time a page has it, so that a bundle's postings are built in
# lists indexed by term number rather than in a dict keyed by the term: the loop over every (page, term)
# pair of a bundle, millions of them, is what the index costs. Numbers are given in insertion order, so
# list(_NUMBERS) is every term by number.
_NUMBERS: defaultdict[str, int] = defaultdict(count().__next__)


class PageTerms(NamedTuple):
    """Every term of one page text, by number, in no particular order: first the terms that are in the
    body once only (most of them) with that position, then the others with their header flags and tail.
    Numbers, positions, flags and tails are packed (4, 4 and 1 bytes a term rather than 8 each, and one string):
    every page text of the site is remembered, hundreds of terms each."""

    numbers: array  # of every term
    once: array  # the position of each of the first len(once) terms (their tail is its code)
    flags: bytes  # of each of the other terms
    tails: str  # of each of the other terms, joined by spaces (a string each was 60 bytes a term: 100 MB at 10,000 pages)


def page_terms(texts: list[tuple[int, str]]) -> PageTerms:
    """Every term of a page given as (field, text) in the order of fields(), with the flags and tail of
    its postings."""
    words = word_stream([text for _, text in texts])
    first: dict[str, int] = {}  # term -> its first position
    later: defaultdict[str, list[int]] = defaultdict(list)  # term -> its other positions
    # the positions where setdefault gives back an earlier one, in a single pass over the words
    for position in compress(count(), map(ne, map(first.setdefault, words, count()), count())):
        later[words[position]].append(position)
    first.pop(_GAP, None)
    later.pop(_GAP, None)
    outside: dict[str, int] = {}  # term -> the fields it is in outside the body
    count_outside: defaultdict[str, int] = defaultdict(int)
    for where, text in texts:
        if where != BODY:
            for word in tokenize(text):
                outside[word] = outside.get(word, 0) | where
                count_outside[word] += 1
    # Most terms are in the body only, once: their tail is their position. The others (typically a fifth)
    # are taken out of `first` and encoded one by one; most of them are in the body twice.
    codes = _codes(len(words) + 1)
    flags: dict[str, int] = {}
    tails: dict[str, str] = {}
    for word, positions in later.items():
        if word not in outside:
            at = first.pop(word)
            if len(positions) == 1:  # the same as _occurrences(), a third of the time
                flags[word], tails[word] = 1, codes[2] + codes[at] + codes[positions[0] - at]
            else:
                flags[word], tails[word] = _occurrences(BODY, [at, *positions], codes)
    for word, mask in outside.items():
        positions = [first.pop(word), *later.get(word, ())]
        also_body = BODY if len(positions) > count_outside[word] else 0
        flags[word], tails[word] = _occurrences(mask | also_body, positions, codes)
    number = _NUMBERS.__getitem__
    return PageTerms(array("I", (*map(number, first), *map(number, tails))), array("I", first.values()),
                     bytes(flags.values()), _TAIL_SEPARATOR.join(tails.values()))


_BLOCK_PAIRS = 1 << 21  # (page, term) pairs whose codes are listed before they are joined per term


def postings(pages: list[PageTerms]) -> dict[str, str]:
    """The encoded postings of every term of `pages`, page number = index in the list.

    This is the one loop over every (page, term) pair of a bundle: keep it to a few steps. Its codes
    are listed per term for a block of pages at a time, then joined: listed for the whole bundle,
    they took 16 bytes a pair (a list slot each for header and tail), 170 MB at 10,000 pages."""
    codes = _codes(4 * len(pages) + 4)  # (and page_terms() made it hold every position)
    last = [0] * len(_NUMBERS)  # term number -> 4 × the last page that has the term
    entries: list[list[str]] = [[] for _ in last]  # term number -> header, tail, header, tail… of this block
    joined: list[list[str]] = [[] for _ in last]  # term number -> the codes of each block so far
    pairs = 0
    for page4, page in zip(count(0, 4), pages):
        numbers = iter(page.numbers)
        for position, number in zip(page.once, numbers):  # (`once` first: zip stops before taking a number)
            entry = entries[number]
            entry.append(codes[page4 - last[number]])
            entry.append(codes[position])
            last[number] = page4
        for number, flags, tail in zip(numbers, page.flags, page.tails.split(_TAIL_SEPARATOR)):
            entry = entries[number]
            entry.append(codes[page4 + flags - last[number]])
            entry.append(tail)
            last[number] = page4
        pairs += len(page.numbers)
        if pairs > _BLOCK_PAIRS:
            _join_block(entries, joined)
            pairs = 0
    _join_block(entries, joined)
    encoded = {}
    for term, parts in zip(_NUMBERS, joined):
        if parts:
            encoded[term] = parts[0] if len(parts) == 1 else "".join(parts)
            parts.clear()  # (the blocks' codes go as the terms' are made)
    return encoded


def _join_block(entries: list[list[str]], joined: list[list[str]]) -> None:
    for entry, parts in zip(entries, joined):
        if entry:
            parts.append("".join(entry))
            entry.clear()


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
    # What update_index() starts from: the pages by number, what each contributed, and every term's postings.
    pages: tuple[tuple[str, str], ...] = ()  # (url, source)
    analysed: list[tuple[PageTerms, str]] = field(default_factory=list)
    postings: dict[str, str] = field(default_factory=dict)
    numbering: int = 0  # the term numbering the PageTerms of `analysed` use (see forget())
    digest: str = ""  # of every file (see _digest)


# What a page contributes, memoised in two steps, both by content: the text of a finalised body (by
# digest: the same page in several bundles often has the same body), then the terms of a page text.
# Bodies that differ only in markup, as they do between bundles (a link to a page another bundle holds
# is locked), have the same text: its terms are worked out once for all bundles (and for unchanged
# pages under `serve`). Texts are remembered by digest, not kept: thousands of pages' text would stay
# in memory for as long as the memo.
_MEMO_SIZE = 50_000  # pages (and 20 times as many term numbers) kept between bundles
_BODIES: dict[bytes, bytes] = {}  # digest of a body -> digest of its text
_PAGES: dict[tuple, tuple[PageTerms, str]] = {}
_numbering = 0  # counts forget(): PageTerms made before name other terms


def _text_digest(blocks: Sequence[Block]) -> bytes:
    return hashlib.sha1("\x00".join(f"{int(b.heading)}{b.text}" for b in blocks).encode()).digest()


def analyse(entry: Entry, snippet_chars: int) -> tuple[PageTerms, str]:
    """A page's terms (with the bundle-independent part of their postings) and its snippet text."""
    html: str | None = None  # made when needed, dropped after

    def made() -> str:
        nonlocal html
        if html is None:
            html = entry.html if isinstance(entry.html, str) else entry.html()
        return html

    digest = entry.text_key or hashlib.sha1(made().encode()).digest()
    blocks: tuple[Block, ...] | None = None
    text = _BODIES.get(digest)
    if text is None:
        blocks = tuple(body_blocks(made()))
        text = _BODIES[digest] = _text_digest(blocks)
    key = (entry.title, entry.summary, entry.labels, text, snippet_chars)
    found = _PAGES.get(key)
    if found is None:
        if blocks is None:
            blocks = tuple(body_blocks(made()))
        found = _PAGES[key] = page_terms(fields(entry, blocks)), excerpt(blocks, snippet_chars)
    return found


def forget() -> None:
    """Empty the memos and the term numbers. Only between bundles: the pages of one bundle must all use
    the same numbers."""
    global _numbering
    _numbering += 1
    _BODIES.clear()
    _PAGES.clear()
    _NUMBERS.clear()
    _NUMBERS.default_factory = count().__next__


def _sorted_entries(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: (e.url, e.source))


def _remember_less() -> None:
    if len(_BODIES) > _MEMO_SIZE or len(_PAGES) > _MEMO_SIZE or len(_NUMBERS) > 20 * _MEMO_SIZE:
        forget()


def saved_index_name(bundle: str) -> str:
    """The file in the cache that holds a bundle's index for the next build (see save_index)."""
    return f"search-{bundle}.pickle"


def save_index(index: SearchIndex, path: Path) -> None:
    """Save what update_index needs of an index but for its postings, which are in the bundle's
    search files: load_index reads them there, if they are still those this index wrote."""
    with open(path, "wb") as file:
        pickler = pickle.Pickler(file, protocol=pickle.HIGHEST_PROTOCOL)
        # No memo: it would map each of the index's objects (a million at 10,000 pages, 100 MB), and
        # nothing in it refers to itself (pages that share a text store it twice).
        pickler.fast = True
        pickler.dump((index.digest, list(_NUMBERS), index.pages, index.analysed))


def load_index(path: Path, folder: Path, listed: Mapping[str, str]) -> SearchIndex | None:
    """The index save_index saved, completed from the search files of its bundle (`folder`, whose
    manifest lists `listed`), in this process's term numbering (which starts again from its own);
    None if the bundle's search files are not those the index wrote, or not those of its manifest."""
    try:
        with open(path, "rb") as file:
            digest, terms, pages, analysed = pickle.load(file)
        names = sorted(n for n in listed if n.startswith("search/") and n.endswith(".js"))
        files: dict[str, bytes] = {}
        for name in names:
            files[name[len("search/") :]] = data = (folder / name).read_bytes()
            if hashlib.sha256(data).hexdigest() != listed[name]:
                return None
        if _digest(files) != digest:
            return None
        encoded: dict[str, str] = {}
        for name, data in files.items():
            if name.startswith("shard-"):
                text = data.decode("utf-8")
                encoded.update(json.loads(text[text.index(",") + 1 : text.rindex(");")]))
    except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError):
        return None
    forget()
    _NUMBERS.update(zip(terms, count()))
    _NUMBERS.default_factory = count(len(terms)).__next__
    return SearchIndex({}, digest[:12], len(encoded), pages, analysed, encoded, _numbering, digest)


def _digest(files: Mapping[str, bytes] | Mapping[str, str]) -> str:
    """The digest of an index's files (name under search/ -> bytes, or text: encoded one at a time, not
    all at once): its version is the start of it."""
    digest = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        digest.update(name.encode() + b"\0" + (data.encode() if isinstance(data, str) else data) + b"\0")
    return digest.hexdigest()


def build_index(entries: list[Entry], tiers: Iterable[str] = (), shard_bytes: int = SHARD_BYTES,
                snippet_chars: int = SNIPPET_CHARS) -> SearchIndex:
    """The search files for one bundle's pages. Same entries, same bytes."""
    entries = _sorted_entries(entries)
    _remember_less()
    with collector_paused():  # millions of small objects that live until the end
        analysed = [analyse(entry, snippet_chars) for entry in entries]
        encoded = postings([terms for terms, _ in analysed])
    return _index(entries, analysed, encoded, list(tiers), shard_bytes)


def update_index(index: SearchIndex, entries: list[Entry], changed: AbstractSet[str], tiers: Iterable[str] = (),
                 shard_bytes: int = SHARD_BYTES, snippet_chars: int = SNIPPET_CHARS) -> SearchIndex:
    """`build_index(entries)`, worked out from `index`, made of the same pages before the pages of
    `changed` (sources) changed: only their text is analysed again, and only the postings of the
    terms they had or have are edited. Every other page must be as it was (`sitegen serve` knows
    which pages an edit touched). When the pages themselves differ (one added, removed or moved),
    the index is built anew.

    The bytes are those of build_index: a body edit costs a fraction of a second instead of the
    seconds of the loop over every (page, term) pair."""
    entries = _sorted_entries(entries)
    _remember_less()
    if index.numbering != _numbering or index.pages != tuple((e.url, e.source) for e in entries):
        return build_index(entries, tiers, shard_bytes, snippet_chars)
    analysed = list(index.analysed)
    encoded = dict(index.postings)
    names: list[str] = []
    for number, entry in enumerate(entries):
        if entry.source not in changed:
            continue
        before = analysed[number]
        after = analysed[number] = analyse(entry, snippet_chars)
        if after[0] is before[0]:
            continue
        if len(names) < len(_NUMBERS):
            names = list(_NUMBERS)  # term by number (analyse() numbers the terms it meets first)
        old, new = _parts(before[0], names), _parts(after[0], names)
        for term in old.keys() | new.keys():
            if old.get(term) != new.get(term):
                text = _splice(encoded.get(term, ""), number, new.get(term))
                if text:
                    encoded[term] = text
                else:
                    del encoded[term]
    return _index(entries, analysed, encoded, list(tiers), shard_bytes)


def _parts(page: PageTerms, names: list[str]) -> dict[str, tuple[int, str]]:
    """term -> (header flags, tail): one page's part of the postings of each of its terms (see postings())."""
    once = len(page.once)
    parts = {names[n]: (0, _CODES[position]) for n, position in zip(page.numbers, page.once)}
    parts.update((names[n], (flags, tail)) for n, flags, tail in zip(page.numbers[once:], page.flags, page.tails.split(_TAIL_SEPARATOR)))
    return parts


_INTEGER = re.compile(f"[{_MORE}]*[{re.escape(_LAST)}]")  # one integer of the postings code


def _integer(code: str) -> int:
    value = 0
    for char in code:
        more, digit = _DIGIT[char]
        value = value * 52 + digit if more else value * 32 + digit
    return value


def _splice(text: str, page: int, part: tuple[int, str] | None) -> str:
    """A term's encoded postings with the part of page number `page` replaced by `part` (header
    flags, tail), or taken out when `part` is None. The header of the page after it is written
    again: it counts from the page before it."""
    integers = _INTEGER.finditer(text)
    doc = end = 0  # the last page before `page`, and where its part ends
    following: tuple[int, int, int] | None = None  # the next page: its number, header flags, where its tail starts
    for found in integers:
        header = _integer(found.group())
        number = doc + header // 4
        if number > page:
            following = (number, header & 3, found.end())
            break
        last = next(integers) if header & 2 else found  # the field mask
        for _ in range(_integer(next(integers).group()) if header & 1 else 1):  # the count, then the positions
            last = next(integers)
        if number == page:  # the old part of the page: skipped
            found = next(integers, None)
            if found is not None:
                header = _integer(found.group())
                following = (page + header // 4, header & 3, found.end())
            break
        doc, end = number, last.end()
    out = [text[:end]]
    if part is not None:
        out += _code((page - doc) * 4 + part[0]), part[1]
        doc = page
    if following is not None:
        number, flags, start = following
        out += _code((number - doc) * 4 + flags), text[start:]
    return "".join(out)


def _index(entries: list[Entry], analysed: list[tuple[PageTerms, str]], encoded: dict[str, str], tiers: list[str],
           shard_bytes: int) -> SearchIndex:
    """The files of the index of `entries` (sorted), from what each page contributes and the postings."""
    number = {e.source: i for i, e in enumerate(entries)}
    labels = sorted({label for e in entries for label in e.labels}, key=lambda name: (fold(name), name))
    label_number = {name: i for i, name in enumerate(labels)}
    pages = {"url": [e.url for e in entries], "title": [e.title for e in entries],
             "parent": [number.get(e.parent, -1) if e.parent else -1 for e in entries],
             "labels": [[label_number[name] for name in e.labels] for e in entries], "tier": [e.tier for e in entries],
             "date": [e.date for e in entries], "summary": [e.summary for e in entries], "text": [text for _, text in analysed]}
    # the size of '"term":"postings",' in JSON: neither letters and digits nor the characters of the
    # code need escaping
    sizes = {term: len(term) + len(text) + 6 for term, text in encoded.items()}
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
            "labels": from_label, "shards": table, "tiers": tiers}
    out["docs.js"] = f"window.__sitegenSearch.docs({_dumps(meta)});\n"
    digest = _digest(out)
    return SearchIndex(out, digest[:12], len(encoded), tuple((e.url, e.source) for e in entries), analysed, encoded,
                       _numbering, digest)


# ---- Writing it into a bundle --------------------------------------------------------------------
def entries_for(pages, bodies: Mapping[str, str | Callable[[], str]], dates: Mapping[str, int] | None = None,
                text_keys: Mapping[str, bytes] | None = None) -> list[Entry]:
    """Index entries for the pages of one bundle; `bodies` are their finalised HTML bodies by source
    (or what makes them: a large bundle's bodies need not be in memory all at once), or a body with
    the same text where `text_keys` gives a page's (see Entry.text_key)."""
    in_bundle = {p.source for p in pages}
    out = []
    for page in pages:
        parent = None
        if not page.is_home:
            section = page.section
            candidate = posixpath.join(section, "_index.md") if section else None
            parent = candidate if candidate in in_bundle else None
        out.append(Entry(page.source, page.url, page.title, bodies[page.source], page.summary, tuple(page.labels),
                         max(page.rank, 0), parent, (dates or {}).get(page.source, 0), (text_keys or {}).get(page.source, b"")))
    return out


_INDEX_FILE = re.compile(r"search/(?:docs|shard-\d+)\.js")


def write_search(writer, theme, pages, bodies: Mapping[str, str | Callable[[], str]], dates: Mapping[str, int] | None = None,
                 previous: SearchIndex | None = None, changed: AbstractSet[str] = frozenset(),
                 text_keys: Mapping[str, bytes] | None = None) -> SearchIndex:
    """Write search/ (page, docs.js, shards) and the search script into one bundle.

    `theme` is the bundle's ThemeRenderer; `dates` maps a page source to the time of its last change
    in this bundle (Unix seconds), for recency ranking, when history is known. With `previous`, the
    index this bundle holds, whose pages other than `changed` are as they were: the index is
    updated from it (see update_index) and only the files that differ are written.
    """
    tiers = theme.config.tiers[: theme.bundle.rank + 1]
    entries = entries_for(pages, bodies, dates, text_keys)
    index = build_index(entries, tiers) if previous is None else update_index(previous, entries, changed, tiers)
    # Into a bundle that holds an index already, only the files that differ (and none that are gone).
    for name in sorted(n for n in writer.hashes if _INDEX_FILE.fullmatch(n) and n[len("search/") :] not in index.files):
        writer.remove(name)
    for name, text in sorted(index.files.items()):
        data, held = text.encode(), writer.hashes.get("search/" + name)
        if held is None or held != hashlib.sha256(data).hexdigest():
            writer.write("search/" + name, data)
    script = (theme_static_dir() / "search.js").read_text(encoding="utf-8")
    script_path = f"assets/search.{hashlib.sha256(script.encode()).hexdigest()[:10]}.js"
    writer.write(script_path, script)
    here = "search/"
    context = theme.common(here, "Search")
    context["search"] = {"script": context["root"] + script_path, "version": index.version}
    writer.write(here + "index.html", theme.env.get_template("search.html").render(context))
    return index
