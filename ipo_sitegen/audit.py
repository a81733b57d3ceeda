"""The leak gate: verify built bundles against everything above their tier.

Filtering is not enough — generators that filter correctly still leak through search indexes,
sitemaps, feeds, tables of contents and link titles — so every bundle is checked *after* it is
written, by a stage that shares nothing with the renderer but the gate's decisions.

For one bundle we gather fingerprints of the material it may not see: titles, headings, URL
paths and slugs, summaries, labels, word shingles of hidden pages and hidden blocks, attachment
hashes and any extra secrets (commit subjects of history the bundle may not show). Anything that
also occurs in material the bundle *may* see (a shared disclaimer, a common heading, the theme's
own words, the URL of a deliberate locked link) is struck out. Then every file of the bundle is
decoded as a browser would (HTML entities, attributes, JSON and JS string escapes, percent-encoded
URLs) and scanned. Matching is by hashed word n-grams in sorted arrays: linear in the size of the site.
"""

from __future__ import annotations

import hashlib
import html
import itertools
import json
import multiprocessing
import os
import re
import struct
import sys
import unicodedata
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import AbstractSet, Callable, Iterable, Iterator, NamedTuple
from urllib.parse import unquote

import numpy as np

from .cache import CACHE_DIR, replacing
from .config import Bundle, Config, load_config
from .content import Page, Site
from .errors import Problem
from .gate import Gate
from .history import History, read_git
from .markup import LinkIndex, resolve_target
from .workers import forking, quiet_worker

SHINGLE = 6  # words in a body shingle: long enough to be distinctive, short enough to catch a sentence
MIN_SINGLE = 5  # a one-word title or label is a fingerprint only if at least this long
_SPLIT = "\x00"  # between block elements: a phrase never runs from one element into the next
_WORD_CHAR = re.compile(r"[^\W_]")  # a letter or digit of a word, in any script
# A Markdown heading line, found in "\n" + text: a pattern starting with "^" is tried at every
# character, one starting with a literal only where that character is (3x faster, same matches).
_HEADING = re.compile(r"\n {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
# Link targets in Markdown and in HTML, as two patterns: each starts with a literal that the regex
# engine searches for, where one alternation would be tried at every character.
_MD_TARGET_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)")
_MD_REFERENCE = re.compile(r"^[ ]{0,3}\[[^\]\n]+\]:[ \t]*<?([^\s>]+)>?", re.M)  # [chart]: chart.png
_HTML_TARGET_LINK = re.compile(r"""(?:href|src)\s*=\s*(?:"([^"]+)"|'([^']+)'|([^\s"'=<>`]+))""", re.I)
_TAG = re.compile(r"<[^>]*>")
# A string literal (captured: split keeps it). Possessive runs: the engine takes a run of plain
# characters in one step instead of trying both alternatives at each (7x faster on search shards).
_JS_LITERAL = re.compile(r'("(?:[^"\\\n]++|\\.)*+"|\'(?:[^\'\\\n]++|\\.)*+\')')
_BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "tr", "table", "section",
               "article", "nav", "header", "footer", "aside", "main", "pre", "br", "dt", "dd", "title", "entry",
               "summary", "content", "loc", "url", "option", "blockquote", "figcaption", "hr", "body", "head"}


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


# Characters a browser does not show inside a word: a soft hyphen (&shy;) and the zero-width ones.
_INVISIBLE = dict.fromkeys(map(ord, "\u00ad\u200b\u200c\u200d\u2060\ufeff"))


def normalised(text: str) -> str:
    """Text as a reader would compare it: Unicode-normalised, case- and accent-insensitive, and
    without the characters that do not show (Zor&shy;blax reads as Zorblax)."""
    text = text.casefold()
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text.translate(_INVISIBLE)))
    return text


_BMP_WORD_CHARS: np.ndarray | None = None


def _in_words(points: np.ndarray) -> np.ndarray:
    """Which code points are letters or digits of a word (what the pattern `[^\\W_]` matches), by table."""
    global _BMP_WORD_CHARS
    if _BMP_WORD_CHARS is None:
        every = "".join(map(chr, range(0x10000)))
        _BMP_WORD_CHARS = np.frombuffer(re.sub(r"[\W_]", "\x00", every).encode("utf-32-le", "surrogatepass"), np.uint32) != 0
    inside = np.take(_BMP_WORD_CHARS, points, mode="clip")  # (astral characters read 0xFFFF's answer: set below)
    astral = np.flatnonzero(points > 0xFFFF)
    if len(astral):  # rare (emoji, historic scripts): asked one distinct character at a time
        values = points[astral]
        for point in np.unique(values).tolist():
            inside[astral[values == point]] = _WORD_CHAR.match(chr(point)) is not None
    return inside


def _spans(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(code points, starts, ends) of the words of a normalised text, and of each phrase-end mark
    (_SPLIT) as a word of its own: found in C over the whole text, not word by word."""
    points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
    mark = points == 0
    inside = _in_words(points) | mark
    before = np.concatenate(([False], inside[:-1] & ~mark[:-1]))
    after = np.concatenate((inside[1:] & ~mark[1:], [False]))
    starts = np.flatnonzero(inside & (~before | mark))
    ends = np.flatnonzero(inside & (~after | mark)) + 1
    return points, starts, ends


def tokens(text: str) -> list[str]:
    """The words of `text` as a reader would compare them (see `normalised`)."""
    text = normalised(text)
    _, starts, ends = _spans(text)
    return [text[start:end] for start, end in zip(starts.tolist(), ends.tolist())]


def _headings(markdown_text: str) -> list[str]:
    """The text of every heading line (`# Title`) of Markdown."""
    return _HEADING.findall("\n" + markdown_text)


@dataclass(frozen=True)
class Leak:
    bundle: str
    file: str
    fragment: str
    origin: str  # the source (page, block or commit) the fragment belongs to
    kind: str

    def problem(self) -> Problem:
        return Problem(f"{self.bundle}/{self.file}", None,
                       f"LEAK: {self.kind} of {self.origin} found: \"{self.fragment}\"",
                       f"material above the '{self.bundle}' bundle's tier must never reach it; find what put it there")


INVISIBLE = 1 << 30  # the "rank" of material that no bundle shows (drafts, embargoed pages)

@lru_cache(maxsize=1)
def code_version() -> bytes:
    """What the audit's saved results depend on besides the site and the files: the generator's
    code (all of it: how a site is read and gated decides the fingerprints, this module the
    verdicts), and the Unicode and numeric libraries that decoding and hashing use."""
    package = Path(__file__).parent
    files = (path for path in sorted(package.rglob("*")) if path.is_file() and "__pycache__" not in path.parts)
    return hashlib.sha256(b"".join(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() for path in files)
                          + repr((sys.version, unicodedata.unidata_version, np.__version__)).encode()).digest()


# Phrase hashing. Each word gets a 64-bit key, a mixed polynomial hash of its characters; a phrase
# of n words hashes to SALT[n] + Σ key(word k)·MULT[k] (mod 2^64). Being linear, every n-gram of a
# text is hashed at once by numpy, and the tables are sorted arrays of 8-byte hashes searched in C
# (a Python set would cost ~90 bytes per phrase: a large site has millions). Two distinct phrases
# collide with probability ~2^-64; a collision could only report a false leak or, in an allowed
# text, excuse one phrase.
_RANDOM = np.random.default_rng(20261125)  # fixed: the same hashes on every run
_SALT = _RANDOM.integers(0, 2**63, SHINGLE + 1, dtype=np.uint64)
_MULT = _RANDOM.integers(0, 2**63, SHINGLE, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
_BASE = np.uint64(0x100000001B3)  # of the polynomial hash of a word's characters (FNV's prime)
_NO_WORD = 0  # the key of the phrase-end mark: no phrase contains it


def _powers_of(base: int, count: int) -> np.ndarray:
    """base ** i mod 2^64 for i below `count`."""
    return np.concatenate((np.ones(1, np.uint64), np.cumprod(np.full(count - 1, base, np.uint64), dtype=np.uint64)))


# _BASE ** i and its inverse (mod 2^64: _BASE is odd) for i below _STEP, and for i a multiple of _STEP:
# the power of any position of a text is the product of one of each, with no table as long as the text.
_STEP = 1 << 14
_LOW = _powers_of(int(_BASE), _STEP)
_LOW_INVERSE = _powers_of(pow(int(_BASE), -1, 1 << 64), _STEP)
_HIGH_BASE = pow(int(_BASE), _STEP, 1 << 64)
_HIGH_INVERSE = pow(_HIGH_BASE, -1, 1 << 64)


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every bit of a word's key depends on every bit of its hash."""
    values = (values ^ (values >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    values = (values ^ (values >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def word_keys(text: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keys, starts, ends) of the words of a normalised text.

    A word's hash is Σ char[k]·_BASE^k over its characters: from one running sum of
    char[i]·_BASE^i over the whole text, the difference at a word's ends times _BASE^-start.
    (Gathering each word's characters and powers took twice as long: this runs on every
    character a build scans.)"""
    points, starts, ends = _spans(text)
    if not len(starts):
        return np.empty(0, np.uint64), starts, ends
    lengths = ends - starts
    high = _powers_of(_HIGH_BASE, len(points) // _STEP + 1)
    powers = (high[:, None] * _LOW[None, :]).reshape(-1)[: len(points)]
    running = np.zeros(len(points) + 1, np.uint64)
    np.cumsum(points * powers, dtype=np.uint64, out=running[1:])
    inverse = _LOW_INVERSE[starts % _STEP] * _powers_of(_HIGH_INVERSE, len(high))[starts // _STEP]
    keys = _mix((running[ends] - running[starts]) * inverse + lengths.astype(np.uint64) * _MULT[0])
    keys[keys == _NO_WORD] = 1
    keys[points[starts] == 0] = _NO_WORD
    return keys, starts, ends


def _ngrams_at(keys: np.ndarray, n: int, at: np.ndarray) -> np.ndarray:
    """`_ngrams(keys, n)[at]`, without the windows that are not wanted."""
    hashes = np.full(len(at), _SALT[n], np.uint64)
    for k in range(n):
        hashes += keys[at + k] * _MULT[k]
    return hashes


def _ngrams(keys: np.ndarray, n: int) -> np.ndarray:
    """The hash of every n-word window of `keys`, in order."""
    count = len(keys) - n + 1
    if count <= 0:
        return np.empty(0, np.uint64)
    hashes = np.full(count, _SALT[n], np.uint64)
    for k in range(n):
        hashes += keys[k : k + count] * _MULT[k]
    return hashes


class _Lookup:
    """Some of a table's hashes (`chosen`, a mask; None: all), with a bitmap of their top bits: with
    about one bit in 64 set, it rules out most hashes looked up before a binary search of the table
    (which would miss the cache at every step of a large one). Made a million hashes at a time: the
    whole table's top bits at once would add hundreds of megabytes to the peak of a large site."""

    def __init__(self, hashes: np.ndarray, chosen: np.ndarray | None) -> None:
        count = len(hashes) if chosen is None else int(np.count_nonzero(chosen))
        bits = min(27, max(10, (64 * count).bit_length()))  # (at most 16 MB)
        self.shift = np.uint64(64 - bits)
        self.bits = np.zeros((1 << bits) // 8, np.uint8)
        for start in range(0, len(hashes), _CHUNK):
            part = hashes[start : start + _CHUNK]
            if chosen is not None:
                part = part[chosen[start : start + _CHUNK]]
            top = (part >> self.shift).astype(np.intp)
            np.bitwise_or.at(self.bits, top >> 3, np.left_shift(1, top & 7).astype(np.uint8))

    def maybe(self, needles: np.ndarray) -> np.ndarray:
        """The positions of the needles that may be among the chosen hashes."""
        top = (needles >> self.shift).astype(np.intp)
        return np.flatnonzero((self.bits[top >> 3] >> (top & 7).astype(np.uint8)) & 1)


@dataclass
class Phrases:
    """Hashes of secret phrases, sorted, with the length and origin of each.

    Phrases of every length are in one table (a length has its own salt, so their hashes do not
    meet). A text's windows are looked up through two bitmaps: one of the SHINGLE-word phrases, most
    of the table, for the windows of that length, and one of the shorter phrases (titles, headings,
    labels: a bitmap small enough to stay in the processor's cache) for the windows of the other
    lengths, five times as many."""

    hashes: np.ndarray  # uint64, sorted, distinct
    lengths: np.ndarray  # words in each phrase
    origins: np.ndarray  # index into the origin list, per hash
    ranks: np.ndarray | None = None  # the lowest tier that may see each phrase (in Secrets' table)
    _lookups: dict[bool, _Lookup] = field(default_factory=dict, init=False, repr=False)  # shingles? -> their lookup
    _sizes: list[int] | None = field(default=None, init=False, repr=False)

    @classmethod
    def none(cls) -> "Phrases":
        return cls(np.empty(0, np.uint64), np.empty(0, np.uint8), np.empty(0, np.int32), np.empty(0, np.int32))

    def select(self, keep: np.ndarray) -> "Phrases":
        return Phrases(self.hashes[keep], self.lengths[keep], self.origins[keep])

    def sizes(self) -> list[int]:
        """The phrase lengths in the table."""
        if self._sizes is None:
            self._sizes = np.unique(self.lengths).tolist()
        return self._sizes

    def windows(self, keys: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """The hashes of every window of `keys` that could be a phrase of this table, and where
        each length's windows start among them: (offset, length)."""
        parts, offsets, at = [], [], 0
        for n in self.sizes():
            parts.append(_ngrams(keys, n))
            offsets.append((at, n))
            at += len(parts[-1])
        return (np.concatenate(parts) if parts else np.empty(0, np.uint64)), offsets

    def find(self, hashes: np.ndarray, offsets: list[tuple[int, int]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `hashes`, positions in the table) of the hashes that are in the table.

        With the `offsets` of `windows()`, each length's windows go through the bitmap of their
        kind; without, every hash is searched for."""
        if not len(self.hashes) or not len(hashes):
            return np.empty(0, np.intp), np.empty(0, np.intp)
        if offsets is None:
            maybe = np.arange(len(hashes))
        else:
            ends = [at for at, _ in offsets[1:]] + [len(hashes)]
            maybe = np.concatenate([self._lookup(n == SHINGLE).maybe(hashes[at:end]) + at for (at, n), end in zip(offsets, ends)])
        where = np.searchsorted(self.hashes, hashes[maybe])
        where[where == len(self.hashes)] = 0
        found = np.flatnonzero(self.hashes[where] == hashes[maybe])
        return maybe[found], where[found]

    def _lookup(self, shingles: bool) -> _Lookup:
        if shingles not in self._lookups:
            self._lookups[shingles] = _Lookup(self.hashes, (self.lengths == SHINGLE) == shingles)
        return self._lookups[shingles]

    def seen_in(self, hashes: np.ndarray, offsets: list[tuple[int, int]] | None = None) -> np.ndarray:
        """Which of the table's phrases occur among `hashes` (with `offsets`: see find())."""
        seen = np.zeros(len(self.hashes), bool)
        seen[self.find(hashes, offsets)[1]] = True
        return seen


@dataclass
class Fingerprints:
    """What one bundle must not contain: hashed phrases — every SHINGLE-word shingle of hidden
    text, and whole titles, headings and labels shorter than that — with where each came from,
    and the SHA-256 of attachments it may not hold."""

    phrases: Phrases = field(default_factory=Phrases.none)
    origins: list[tuple[str, str]] = field(default_factory=list)  # (origin, kind)
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 -> origin of secret attachment
    # Sorted 64-bit digests of everything the bundle legitimately shows (see Secrets.for_bundles):
    # what decides whether a verdict outlives a change of the fingerprints (see CleanFiles).
    shown: np.ndarray = field(default_factory=lambda: np.empty(0, np.uint64))
    # False: perhaps also phrases the bundle legitimately shows (see Secrets.for_bundles), so a
    # leak found with these is confirmed with exact ones before it is reported (see `confirmed`)
    exact: bool = True

    @property
    def empty(self) -> bool:
        return not len(self.phrases.hashes)

    def any(self, keys: np.ndarray) -> bool:
        return len(self.phrases.find(*self.phrases.windows(keys))[0]) > 0

    def matches(self, text: str) -> Iterator[tuple[str, tuple[str, str]]]:
        """(its words, origin) of every secret phrase in `text`, by length, then position."""
        text = normalised(text)
        keys, starts, ends = word_keys(text)
        windows, offsets = self.phrases.windows(keys)
        found, where = self.phrases.find(windows, offsets)
        for at, index in zip(found.tolist(), where.tolist()):
            offset, n = max(o for o in offsets if o[0] <= at)
            first = at - offset
            words = zip(starts[first : first + n].tolist(), ends[first : first + n].tolist())
            yield " ".join(text[start:end] for start, end in words), self.origins[self.phrases.origins[index]]

    def digest(self) -> str:
        """Everything a file's verdict depends on besides its bytes: the phrases and attachments
        looked for, and the code that looks (see CleanFiles)."""
        digest = hashlib.sha256(code_version())
        digest.update(self.phrases.hashes.tobytes())
        digest.update(self.phrases.lengths.astype(np.uint8).tobytes())
        digest.update("\n".join(sorted(self.hashes)).encode())
        return digest.hexdigest()

    def narrower_than(self, other: "Fingerprints") -> bool:
        """Is everything this bundle must not contain also forbidden in `other`? (Then a file that
        was clean for `other` is clean here too.)"""
        return (self.hashes.keys() <= other.hashes.keys()
                and other.phrases.seen_in(self.phrases.hashes).sum() == len(self.phrases.hashes))


_MD_TARGET = re.compile(r"\]\([^)]*\)")
_MD_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")


def visible_words(markdown_text: str) -> str:
    """Markdown as a reader sees it: link targets and HTML tags are not text, and an image is
    not between the words around it (its alt text stands apart, on its own line)."""
    alts = _MD_IMAGE.findall(markdown_text)
    text = _TAG.sub(" ", _MD_TARGET.sub("] ", _MD_IMAGE.sub(" ", markdown_text)))
    return text + ("\n\n" + "\n\n".join(alts) if alts else "")


def _paragraphs(markdown_text: str) -> list[str]:
    """Shingles are taken within a paragraph: text that only runs on from one paragraph into the
    next (as in a search snippet that joins blocks) is no sentence of the page."""
    return [p for p in re.split(r"\n\s*\n", visible_words(markdown_text)) if p.strip()]


def _marked_up_lines(markdown_text: str) -> str:
    """The source lines that differ from what a reader sees (links, images, tags): diffs show
    source, line by line, so their words count as seen too; other lines are in `visible_words`."""
    if "](" not in markdown_text and "<" not in markdown_text:
        return ""
    return "\n".join(line for line in markdown_text.split("\n") if "](" in line or "<" in line)


def _theme_text() -> str:
    """The built-in theme's own words ("On this page", "Labels", its scripts…) are never a leak.

    A site's template overrides and static files are not counted so (a title typed into an override
    is a leak), but for their single words (see _own_text).
    """
    theme = Path(__file__).parent / "theme"
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(theme.glob("*/*")) if p.is_file())


def _own_text(config: Config) -> str:
    """The text of the site's own templates and static files. They are in every bundle by design, so
    a single word of theirs is no leak: a footer's "write to our staff" must not fail the build for a
    hidden section named staff/. A phrase of two words or more there still is (a restricted title
    typed into an override)."""
    texts = []
    for folder in (config.templates_dir, config.static_dir):
        if folder.is_dir():
            for path in sorted(folder.rglob("*")):
                if path.is_file() and not path.is_symlink():
                    with open(path, "rb") as file:  # (an image is not read past its first bytes: serve's settles ask again)
                        start = file.read(1024)
                        if b"\x00" not in start:  # (text, not an image)
                            texts.append((start + file.read()).decode("utf-8", "replace"))
    return "\n".join(texts)


_CHUNK = 1 << 20  # words of shown text hashed at a time (a window per word and phrase length), or hashes put in a bitmap
_BATCH = 1 << 20  # characters of text split into words at a time (word_keys holds ~30 bytes a character)


def _text_keys(texts: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """The keys and lengths of the words of many texts, each text followed by a phrase-end mark.

    Texts are normalised and split in batches of a few million characters: one numpy pass per
    batch rather than per text, and never the whole site's text at once."""
    keys: list[np.ndarray] = []
    lengths: list[np.ndarray] = []
    batch: list[str] = []
    size = 0

    def split() -> None:
        found, starts, ends = word_keys(normalised(_SPLIT.join(batch) + _SPLIT))
        keys.append(found)
        lengths.append((ends - starts).astype(np.int32))
        batch.clear()

    for text in texts:
        batch.append(text.replace(_SPLIT, " ") if _SPLIT in text else text)  # one mark per text
        size += len(text)
        if size > _BATCH:
            split()
            size = 0
    if batch:
        split()
    if not keys:
        return np.empty(0, np.uint64), np.empty(0, np.int32)
    return np.concatenate(keys), np.concatenate(lengths)


@dataclass(frozen=True)
class KnownSecrets:
    """What one Secrets leaves for a later one (see Secrets.__init__), without the site it was
    made from: in memory (`serve`), or in the cache (`save`, `load`) for the next build."""

    key: bytes  # digest of the table's inputs and of the code (b"": no table)
    origins: list[tuple[str, str]]
    phrases: Phrases | None  # the table (None: the cache held one for other inputs)
    theme_seen: np.ndarray | None
    parts: dict[str, bytes]  # what the table was made of: the digest of each part (see Secrets._part_keys)
    exact: bool  # made from these parts alone (else: merged into an earlier table, see Secrets.__init__)
    stale: int  # parts merged into the table since it was last made from nothing
    # (digest of a shown text, rank of the least restricted bundle showing it) -> the hashes of the
    # phrases it holds that this rank may not see, sorted: in this table for the texts of `checked`,
    # in an earlier one for the others (see Secrets.for_bundles)
    found: dict[tuple[int, int], np.ndarray]
    checked: frozenset[tuple[int, int]]

    def save(self, root: Path, table: bool = True) -> None:
        """Into the cache: the table (unless `table` is False: the cache holds it already, under
        this key) and what the shown texts were found to hold, in two files (the table is most of
        it, 56 MB at 5,000 pages, and an edit of text every bundle sees keeps it)."""
        if table and self.phrases is not None:
            arrays = {"hashes": self.phrases.hashes, "lengths": self.phrases.lengths, "origins": self.phrases.origins,
                      "ranks": self.phrases.ranks, "theme_seen": self.theme_seen if self.theme_seen is not None else np.empty(0, bool)}
            notes = {"key": self.key.hex(), "origins": self.origins, "theme_seen": self.theme_seen is not None,
                     "parts": {name: digest.hex() for name, digest in self.parts.items()}, "exact": self.exact, "stale": self.stale,
                     "code": code_version().hex()}
            with replacing(root, _KNOWN_TABLE) as temporary:
                np.savez(temporary, notes=np.array(json.dumps(notes)), **arrays)
        found = list(self.found.items())
        arrays = {"texts": np.array([digest for (digest, _), _ in found], np.uint64),
                  "readers": np.array([lowest for (_, lowest), _ in found], np.int64),
                  "checked": np.array([key in self.checked for key, _ in found], bool),
                  **dict(zip(("counts", "hashes"), _packed([hashes for _, hashes in found])))}
        with replacing(root, _KNOWN_FOUND) as temporary:
            np.savez(temporary, notes=np.array(json.dumps({"key": self.key.hex(), "code": code_version().hex()})), **arrays)

    @classmethod
    def load(cls, root: Path, key: bytes) -> KnownSecrets | None:
        """What the last build saved: the table (whatever its key: an earlier table is merged
        into, see Secrets.__init__), and what the shown texts were found to hold if the same code
        found it (texts hold the same phrases whatever the table; see Secrets.for_bundles). None
        if neither."""
        found: dict[tuple[int, int], np.ndarray] = {}
        checked: frozenset[tuple[int, int]] = frozenset()
        table = None
        try:
            with np.load(root / CACHE_DIR / _KNOWN_FOUND) as saved:  # (no pickles: allow_pickle stays off)
                notes = json.loads(str(saved["notes"]))
                if notes["code"] == code_version().hex():
                    keys = list(zip(saved["texts"].tolist(), saved["readers"].tolist()))
                    found = dict(zip(keys, _unpacked(saved["counts"], saved["hashes"])))
                    if notes["key"] == key.hex():
                        checked = frozenset(k for k, ok in zip(keys, saved["checked"].tolist()) if ok)
        except (OSError, ValueError, KeyError, TypeError):
            found, checked = {}, frozenset()
        try:
            with np.load(root / CACHE_DIR / _KNOWN_TABLE) as saved:
                notes = json.loads(str(saved["notes"]))
                if notes["code"] == code_version().hex():
                    table = (bytes.fromhex(notes["key"]), [tuple(origin) for origin in notes["origins"]],
                             Phrases(saved["hashes"], saved["lengths"], saved["origins"], saved["ranks"]),
                             saved["theme_seen"] if notes["theme_seen"] and notes["key"] == key.hex() else None,
                             {name: bytes.fromhex(digest) for name, digest in notes["parts"].items()}, bool(notes["exact"]), int(notes["stale"]))
        except (OSError, ValueError, KeyError, TypeError):
            table = None
        if table is None:
            return cls(b"", [], None, None, {}, True, 0, found, frozenset()) if found else None
        return cls(*table, found, checked if table[0] == key else frozenset())


def _packed(arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays of different lengths as (their lengths, all of them): two arrays to save or send back
    rather than one per text."""
    return np.array([len(a) for a in arrays], np.int64), np.concatenate(arrays) if arrays else np.empty(0, np.intp)


def _unpacked(counts: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(counts)[:-1]) if len(counts) else []


_KNOWN_TABLE = "secrets.npz"  # in the cache folder (see KnownSecrets)
_KNOWN_FOUND = "secrets-found.npz"
_SHOWN = "shown-texts.bin"  # in the cache folder (see save_shown)


_SHOWN_CHUNK = 1 << 20  # bytes of text compressed on their own: a text is read back without the others


def save_shown(root: Path, texts: Iterable[str], digests: np.ndarray) -> None:
    """Keep the texts the bundles show (with their digests: see Fingerprints.shown), compressed,
    for the audit of a later build to read those a bundle no longer shows (see CleanFiles).

    Texts are compressed a megabyte at a time, each run on its own and written as it is made, so
    that neither this nor the reader holds a large site's text (a hundred megabytes) at once. After
    the runs comes the index: for each text its digest, run and end in the run; the end of each
    run in the file; then the counts of texts and runs."""
    runs: list[int] = []
    where: list[tuple[int, int]] = []  # (run, end of the text in it) of each text
    with replacing(root, _SHOWN) as temporary:
        with open(temporary, "wb") as file:
            pending: list[bytes] = []
            size = 0
            for text in texts:
                data = text.encode("utf-8", "surrogatepass")
                pending.append(data)
                size += len(data)
                where.append((len(runs), size))
                if size >= _SHOWN_CHUNK:
                    file.write(zlib.compress(b"".join(pending), 1))
                    runs.append(file.tell())
                    pending, size = [], 0
            if pending:
                file.write(zlib.compress(b"".join(pending), 1))
                runs.append(file.tell())
            file.write(digests.astype("<u8").tobytes() + np.array(where, "<i8").reshape(-1).tobytes()
                       + np.array(runs, "<i8").tobytes() + struct.pack("<QQ", len(where), len(runs)))


class _ShownTexts:
    """The texts save_shown kept: the index read when first asked for, a run when one of its texts is."""

    def __init__(self, root: Path) -> None:
        self.path = root / CACHE_DIR / _SHOWN
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # digests sorted, their order, (run, end), run ends
        self._read = False

    def _load_index(self) -> None:
        self._read = True
        try:
            with open(self.path, "rb") as file:
                file.seek(-16, os.SEEK_END)
                count, runs = struct.unpack("<QQ", file.read(16))
                size = 8 * count + 16 * count + 8 * runs
                file.seek(-16 - size, os.SEEK_END)
                index = file.read(size)
        except (OSError, ValueError, struct.error):
            return
        if len(index) != size:
            return
        digests = np.frombuffer(index[: 8 * count], "<u8")
        order = np.argsort(digests, kind="stable")
        self._index = (digests[order], order, np.frombuffer(index[8 * count : 24 * count], "<i8").reshape(-1, 2),
                       np.frombuffer(index[24 * count :], "<i8"))

    def get(self, wanted: np.ndarray) -> list[str] | None:
        """The texts with these digests; None if one of them is not kept."""
        if not self._read:
            self._load_index()
        if self._index is None or not len(self._index[0]):
            return None
        digests, order, where, run_ends = self._index
        at = np.minimum(np.searchsorted(digests, wanted), len(digests) - 1)
        if not (digests[at] == wanted).all():
            return None
        texts, runs = [], {}
        try:
            with open(self.path, "rb") as file:
                for number in order[at].tolist():
                    run, end = where[number].tolist()
                    if run not in runs:
                        file.seek(run_ends[run - 1] if run else 0)
                        runs[run] = zlib.decompress(file.read(run_ends[run] - (run_ends[run - 1] if run else 0)))
                    start = where[number - 1][1] if number and where[number - 1][0] == run else 0
                    texts.append(runs[run][start:end].decode("utf-8", "surrogatepass"))
        except (OSError, zlib.error, UnicodeDecodeError):
            return None
        return texts if (_digests(texts) == wanted).all() else None  # (a damaged file reads as none)


MERGED_PARTS = 64  # parts merged into a table (see Secrets.__init__) before one is made from nothing


class Secrets:
    """Every phrase of the site that some bundle may not see, with the lowest tier that may see it.

    Built once for all bundles: each text is tokenised once, and a bundle's fingerprints are a
    filter of this table (phrases only higher tiers see, minus what the bundle legitimately
    shows) rather than a new pass over the site. A phrase found in several places keeps the most
    restricted one: it is secret wherever that one is.
    """

    def __init__(self, config: Config, site: Site, gate: Gate, history: History | None = None,
                 known: Callable[[bytes], KnownSecrets | None] | None = None, keep: bool = False, exact: bool = False) -> None:
        """`known` gives, for the digest of the table's inputs, what the Secrets of an earlier state
        of the site left (see `known()`): its table, and what each text shown then was found to
        hold (see for_bundles). The table is taken as it is if it was made from the same inputs
        (an edit of text that every bundle sees). After an edit of secret text the phrases of the
        parts that changed (a page's secret material, the hidden commit messages) are merged into
        it, unless `exact`: a phrase gone from the site then stays in the table, which holds more
        than it should but nothing less (see for_bundles). A table is made from nothing when asked
        `exact`, or once more than MERGED_PARTS parts (or a twentieth of them) were merged since
        the last one. `keep`: `known()` will be asked for (the inputs are digested: 0.5 s at
        5,000 pages)."""
        self.config, self.site, self.gate, self.history = config, site, gate, history
        self.exact = exact
        self._targets: dict[str, tuple[str, ...]] = {}
        self._index = LinkIndex(frozenset(site.pages), frozenset(site.attachments))
        self._own_text = _own_text(config)
        self._parts = self._part_keys() if known is not None or keep else {}
        self.key = hashlib.sha256(b"".join(name.encode() + b"\0" + digest for name, digest in sorted(self._parts.items()))
                                  + self._header()).digest() if known is not None or keep else b""
        taken = known(self.key) if known is not None else None
        earlier = taken.phrases if taken is not None else None
        lowest = min((b.rank for b in config.bundles), default=0)  # what the least restricted bundle sees is no secret
        # whether the table (with the theme's phrases) came from `known`: then where it came from holds it
        self.table_taken = (taken is not None and earlier is not None and taken.key == self.key and taken.theme_seen is not None
                            and (taken.exact or not exact))
        self._theme_seen: np.ndarray | None = None  # the table's phrases that the theme holds
        self.table_exact, self._stale = True, 0  # see KnownSecrets
        if self.table_taken:
            assert taken is not None and earlier is not None
            self.origins, self.phrases, self._theme_seen = taken.origins, earlier, taken.theme_seen
            self.table_exact, self._stale = taken.exact, taken.stale
        else:
            changed = {name for name, digest in self._parts.items() if taken is None or taken.parts.get(name) != digest}
            stale = len(changed) + (len(taken.parts.keys() - self._parts.keys()) if taken is not None else 0)  # (and parts gone)
            if taken is not None and earlier is not None and not exact and taken.stale + stale <= max(MERGED_PARTS, len(self._parts) // 20):
                self.phrases, self.origins = self._merged(taken, changed, lowest)
                self.table_exact, self._stale = False, taken.stale + stale
            else:
                self.phrases, self.origins = self._phrases(item for item in self._items() if item[0] > lowest)
        # (digest of a shown text, rank of the least restricted bundle showing it) -> the hashes of
        # the table's phrases it holds that this bundle may not see (sorted); `_checked`: the texts
        # looked up in this table (the others were in an earlier one: see for_bundles)
        self._found: dict[tuple[int, int], np.ndarray] = dict(taken.found) if taken is not None else {}
        self._checked: set[tuple[int, int]] = set(taken.checked) if self.table_taken and taken is not None else set()

    def known(self) -> KnownSecrets:
        """What a later Secrets of the same site can take from this one (made with `keep`)."""
        assert self.key, "made without keep=True"
        return KnownSecrets(self.key, self.origins, self.phrases, self._theme_seen, dict(self._parts), self.table_exact, self._stale,
                            self._found, frozenset(self._checked))

    def _pages(self, only: AbstractSet[str] | None = None) -> Iterator[tuple[str, int, Page, str, tuple]]:
        """(source, rank that may see it, page, its text at that rank, its hidden blocks) of every
        page (or of those of `only`): with the hidden commit messages, everything the table is made of."""
        gate, top = self.gate, len(self.config.tiers) - 1
        for source, page in sorted(self.site.pages.items()):
            if only is None or source in only:
                rank = page.rank if page.published else INVISIBLE
                yield source, rank, page, gate.text_at(page, min(rank, top)), () if rank == INVISIBLE else tuple(gate.hidden_at(page, rank))

    def _messages(self) -> list[tuple[tuple[str, str], int]]:
        """((commit, subject), rank that may see it) of every commit message some bundle may not show."""
        ranks: dict[tuple[str, str], int] = {}
        if self.history is not None:
            for bundle in self.config.bundles:
                for sha, subject in self.history.hidden_messages(bundle):
                    ranks[(sha, subject)] = max(ranks.get((sha, subject), 0), bundle.rank + 1)
        return sorted(ranks.items())

    def _header(self) -> bytes:
        """What decides every part of the table besides its own material: the code, the tiers, the
        bundles and the site's own templates and static files (see _own_text)."""
        return (code_version() + repr((self.config.tiers, [b.rank for b in self.config.bundles])).encode()
                + hashlib.sha256(self._own_text.encode("utf-8", "surrogatepass")).digest())

    def _part_keys(self) -> dict[str, bytes]:
        """A digest of each part of what the table is made of: a page's secret material, by source
        (all of it for a page some bundle may not see, else its hidden blocks), and the hidden
        commit messages, under "". What the least restricted bundle sees is in no part."""
        lowest = min((b.rank for b in self.config.bundles), default=0)
        header = self._header()
        parts: dict[str, bytes] = {}
        messages = self._messages()
        if messages:
            parts[""] = hashlib.blake2b(header + repr(messages).encode("utf-8", "surrogatepass"), digest_size=16).digest()
        for source, rank, page, text, blocks in self._pages():
            hidden = [(b.rank, b.line, b.text) for b in blocks if b.rank > lowest]
            if rank > lowest:
                material = repr((source, rank, page.title, page.summary, page.url, page.slug, page.labels, text, hidden))
            elif hidden:
                material = repr((source, hidden))
            else:
                continue
            parts[source] = hashlib.blake2b(header + material.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        return parts

    def _items(self, only: AbstractSet[str] | None = None) -> Iterator[tuple[int, str, str, str, bool]]:
        """(rank that may see it, text, origin, kind, whole phrase?) of everything secret somewhere
        (or in the parts of `only`: see _part_keys)."""
        tiers = self.config.tiers
        for source, rank, page, text, blocks in self._pages(only):
            origin = f"content/{source}"
            for kind, value in (("title", page.title), ("summary", page.summary), ("URL", page.url.replace("/", " ")),
                                ("slug", page.slug or ""), *(("label", label) for label in page.labels),
                                *(("heading", h) for h in _headings(text))):
                yield rank, value, origin, kind, True
            for paragraph in _paragraphs(text):
                yield rank, paragraph, origin, "text", False
            for block in blocks:
                where = f"{origin}:{block.line} ({tiers[block.rank]} block)"
                for heading in _headings(block.text):
                    yield block.rank, heading, where, "heading", True
                for paragraph in _paragraphs(block.text):
                    yield block.rank, paragraph, where, "text", True
        if only is None or "" in only:
            for (sha, subject), rank in self._messages():
                yield rank, subject, f"commit {sha}", "commit message", True

    def _merged(self, taken: KnownSecrets, changed: set[str], lowest: int) -> tuple[Phrases, list[tuple[str, str]]]:
        """`taken`'s table with the phrases of the `changed` parts merged in (and the origins): a
        phrase it holds already keeps the more restricted of its two ranks."""
        new, origins = self._phrases(item for item in self._items(changed) if item[0] > lowest)
        earlier = taken.phrases
        assert earlier is not None and earlier.ranks is not None and new.ranks is not None
        offset = len(taken.origins)
        ranks, owners = earlier.ranks.copy(), earlier.origins.copy()
        at = np.searchsorted(earlier.hashes, new.hashes)
        there = np.zeros(len(new.hashes), bool)
        if len(earlier.hashes):
            there = earlier.hashes[np.minimum(at, len(earlier.hashes) - 1)] == new.hashes
        higher = np.flatnonzero(there)[new.ranks[there] > ranks[at[there]]]
        ranks[at[higher]] = new.ranks[higher]
        owners[at[higher]] = new.origins[higher] + offset
        add = ~there
        return Phrases(np.insert(earlier.hashes, at[add], new.hashes[add]), np.insert(earlier.lengths, at[add], new.lengths[add]),
                       np.insert(owners, at[add], new.origins[add] + offset), np.insert(ranks, at[add], new.ranks[add])), [*taken.origins, *origins]

    def _phrases(self, items: Iterable[tuple[int, str, str, str, bool]]) -> tuple[Phrases, list[tuple[str, str]]]:
        """Hash every secret text at once: the SHINGLE-word shingles inside each text, and whole
        phrases (titles, headings…) shorter than that. A phrase found in several places keeps the
        most restricted one (it is secret wherever that one is), the first of them as its origin.
        The texts are hashed as they come and not kept: the secret text of a large site is a
        hundred megabytes."""
        numbers: dict[tuple[str, str], int] = {}
        origins: list[int] = []
        ranks: list[int] = []
        wholes: list[bool] = []

        def texts() -> Iterator[str]:
            for rank, text, origin, kind, whole in items:
                origins.append(numbers.setdefault((origin, kind), len(numbers)))
                ranks.append(rank)
                wholes.append(whole)
                yield text

        keys, word_lengths = _text_keys(texts())
        origin_of, rank_of, whole = np.array(origins, np.int32), np.array(ranks, np.int32), np.array(wholes, bool)
        if not len(keys):
            return Phrases.none(), list(numbers)
        marks = np.flatnonzero(keys == _NO_WORD)  # one after each item's words
        lengths = np.diff(marks, prepend=-1) - 1  # words per item
        starts = marks - lengths
        single = (lengths == 1) & (word_lengths[starts] < MIN_SINGLE)  # one short word: no fingerprint
        del word_lengths
        short_of = np.where(whole & (lengths < SHINGLE) & ~single, lengths, 0)
        hashes, owners, sizes = [], [], []
        for n in range(1, SHINGLE):
            chosen = np.flatnonzero(short_of == n)
            hashes.append(_ngrams_at(keys, n, starts[chosen]))
            owners.append(chosen.astype(np.int32))
            sizes.append(np.full(len(chosen), n, np.uint8))
        shingles = _ngrams(keys, SHINGLE)
        del keys
        inside = np.ones(len(shingles), bool)  # the windows with no separator in them (a mask: an index is 8 bytes a word)
        for back in range(SHINGLE):
            window = marks - back  # the windows that hold a separator `back` words in
            inside[window[(window >= 0) & (window < len(inside))]] = False
        hashes.insert(0, shingles[inside])
        del shingles
        owners.insert(0, np.repeat(np.arange(len(lengths), dtype=np.int32), lengths + 1)[: len(inside)][inside])
        sizes.insert(0, np.full(len(hashes[0]), SHINGLE, np.uint8))
        del inside
        # One array at a time, each freed before the next is made: a large site has tens of millions
        # of words, and every copy alive at once adds hundreds of megabytes to the peak.
        hash_of = np.concatenate(hashes)
        del hashes
        item_of = np.concatenate(owners)
        del owners
        order = np.lexsort((item_of, -rank_of[item_of], hash_of))  # by hash, most restricted first, then first seen
        hash_of = hash_of[order]
        item_of = item_of[order]
        size_of = np.concatenate(sizes)[order]
        del order, sizes
        first = np.ones(len(hash_of), bool)
        first[1:] = hash_of[1:] != hash_of[:-1]
        return Phrases(hash_of[first], size_of[first], origin_of[item_of[first]], rank_of[item_of[first]]), list(numbers)

    def _link_targets(self, text: str) -> tuple[str, ...]:
        if text not in self._targets:
            lowered = text.lower()  # (raw HTML may write HREF; a search without this test stops at every h and s)
            html = [next(filter(None, found)) for found in _HTML_TARGET_LINK.findall(text)] if "href" in lowered or "src" in lowered else ()
            references = _MD_REFERENCE.findall(text) if "]:" in text else ()
            self._targets[text] = (*_MD_TARGET_LINK.findall(text), *references, *html)
        return self._targets[text]

    def _past(self, bundle: Bundle) -> Iterator[str]:
        """What `bundle`'s history shows beyond today's pages: titles, messages, and the lines of
        past versions (diffs show them)."""
        if self.history is None:
            return
        for source, changes in self.history.changes_for(bundle).items():
            today = set(self.gate.text(self.site.pages[source], bundle).split("\n"))
            past: set[str] = set()
            for change in changes:
                past.update(change.text.split("\n"))
                past.update((change.previous or "").split("\n"))
                yield change.title
                yield change.message or ""
            yield "\n".join(sorted(past - today))

    def _allowed(self, bundle: Bundle) -> tuple[list[str], set[str]]:
        """Texts `bundle` legitimately shows today (so their phrases are no leak) and the attachments it may hold."""
        config, site, gate = self.config, self.site, self.gate
        files: set[str] = set()
        texts: list[str] = [config.title, bundle.name, bundle.tier, " ".join(config.tiers)]
        for page in gate.pages_for(bundle):
            text = gate.text(page, bundle)
            texts += [page.title, page.summary, page.url.replace("/", " "), " ".join(page.labels), text]
            for href in self._link_targets(text):
                marker, target = resolve_target(page.folder, href, self._index)
                if marker is None:
                    continue
                if target in site.attachments:
                    if gate.attachment_allowed(site.attachments[target], bundle):
                        files.add(target)
                elif target in site.pages:
                    texts.append(site.pages[target].url.replace("/", " "))  # a deliberate locked link
        return texts, files

    def for_bundles(self, bundles: list[Bundle], workers: int = 1, keep_shown: Path | None = None) -> dict[str, Fingerprints]:
        """The fingerprints of several bundles, by name: everything each must not contain, minus
        what it legitimately shows.

        What the bundles show overlaps (a public page is in every bundle), so every distinct text
        is tokenised and looked up once, marked with the bundles that show it (a bit each), and
        what it holds is remembered (see __init__); with several workers, the texts are shared
        out over forked processes (which inherit the table). With `keep_shown` (a site root), the
        texts shown are kept in its cache for later audits (see save_shown).

        A text looked up in an earlier table (before an edit of secret text) is not looked up
        again unless this Secrets is `exact`: it holds the same phrases, but not those new to this
        table (or more secret than they were), which then stay in the fingerprints although the
        bundle shows them, as do phrases gone from the site that a merged table (see __init__)
        still holds. Such fingerprints (`exact` False) hold all they should and perhaps more: a
        scan with them misses no leak, and a leak it finds is confirmed with exact ones (see
        `confirmed`). An edit of secret text then costs the texts that changed, not a new table
        and a lookup of every text the bundles show."""
        table = self.phrases
        assert table.ranks is not None
        allowed = {bundle.name: self._allowed(bundle) for bundle in bundles}
        shows: dict[str, int] = {}  # distinct text -> the bundles that show it
        for bit, bundle in enumerate(bundles):
            if (table.ranks > bundle.rank).any():  # else there is nothing to strike out
                for text in itertools.chain(allowed[bundle.name][0], self._past(bundle)):
                    shows[text] = shows.get(text, 0) | 1 << bit
        ranks = [bundle.rank for bundle in bundles]
        digests = _digests(shows)
        if keep_shown is not None:
            save_shown(keep_shown, shows, digests)
        keys = [(digest, min(rank for bit, rank in enumerate(ranks) if bits >> bit & 1)) for digest, bits in zip(digests.tolist(), shows.values())]
        new = [(number, text) for number, (key, text) in enumerate(zip(keys, shows))
               if key not in self._checked and (self.exact or key not in self._found)]
        for (number, _), where in zip(new, self._found_by([(text, keys[number][1]) for number, text in new], workers)):
            self._found[keys[number]] = table.hashes[where]
            self._checked.add(keys[number])
        self._found = {key: self._found[key] for key in keys}  # (those of texts no longer shown go)
        self._checked &= self._found.keys()
        seen = self._seen(keys, list(shows.values()), np.uint8 if len(ranks) <= 8 else np.uint64)
        if self._theme_seen is None:
            # (the theme is in every bundle; a few thousand words: searched for, with no bitmap to make)
            theme = table.seen_in(table.windows(_text_keys([_theme_text()])[0])[0])
            own = table.seen_in(table.windows(_text_keys([self._own_text])[0])[0]) & (table.lengths == 1)
            self._theme_seen = theme | own
        made = {}
        complete = self.table_exact and all(key in self._checked for key in keys)  # (every text looked up in this table)
        attachments = self.site.attachments
        text_bits = np.array(list(shows.values()), np.uint64)
        common = [_theme_text(), self._own_text, code_version().hex()]
        for bit, bundle in enumerate(bundles):
            prints = Fingerprints(table.select((table.ranks > bundle.rank) & ~self._theme_seen & ((seen >> bit) & 1 == 0)), self.origins,
                                  exact=complete)
            files = allowed[bundle.name][1]
            shown_files = {attachments[s].sha256 for s in files}
            for source, attachment in sorted(attachments.items()):
                if source not in files and attachment.sha256 not in shown_files:
                    prints.hashes.setdefault(attachment.sha256, f"content/{source}")
            # (a bundle with nothing above it has no shown texts listed: a mark says so, which no list
            # of the texts it shows once something is above it holds)
            extra = [*common, *(f"attachment {sha}" for sha in sorted(shown_files)),
                     *([] if (table.ranks > bundle.rank).any() else ["nothing above this bundle"])]
            prints.shown = np.unique(np.concatenate((digests[(text_bits >> np.uint64(bit)) & np.uint64(1) == 1], _digests(extra))))
            made[bundle.name] = prints
        return made

    def _seen(self, keys: list[tuple[int, int]], bits: list[int], dtype: type) -> np.ndarray:
        """For each phrase of the table, the bundles (a bit each) that show a text holding it."""
        table = self.phrases
        seen = np.zeros(len(table.hashes), dtype)
        held = [self._found[key] for key in keys]
        hashes = np.concatenate(held) if held else np.empty(0, np.uint64)
        if len(hashes) and len(table.hashes):
            where = np.minimum(np.searchsorted(table.hashes, hashes), len(table.hashes) - 1)
            there = table.hashes[where] == hashes  # (a phrase found under an earlier table may be gone)
            np.bitwise_or.at(seen, where[there], np.repeat(np.array(bits, np.uint64), [len(h) for h in held])[there].astype(dtype))
        return seen

    def _found_by(self, texts: list[tuple[str, int]], workers: int) -> list[np.ndarray]:
        """_found_in, with the texts shared out over forked processes when there are many."""
        global _showing
        size = sum(len(text) for text, _ in texts)
        if workers <= 1 or size < PARALLEL_TEXT:
            return self._found_in(texts)
        bounds, at = [0], 0  # consecutive runs of about equal text
        for number, (text, _) in enumerate(texts):
            at += len(text)
            if at >= size * len(bounds) / workers:
                bounds.append(number + 1)
        if bounds[-1] < len(texts):
            bounds.append(len(texts))
        _showing = (self, texts)
        try:
            with forking(), multiprocessing.get_context("fork").Pool(workers, quiet_worker) as pool:
                parts = pool.map(_found_share, list(zip(bounds, bounds[1:])), chunksize=1)
        finally:
            _showing = None
        return [found for part in parts for found in _unpacked(*part)]

    def _found_in(self, texts: list[tuple[str, int]]) -> list[np.ndarray]:
        """For each (text, rank of the least restricted bundle that shows it), the phrases of the
        table it holds that this rank may not see (indices, sorted). A text is looked up only among
        those: a restricted page's own phrases are all in the table, and finding each of them would
        cost more than the rest. Texts are taken a few million characters at a time: all of a
        bundle's at once would hold hundreds of megabytes."""
        table = self.phrases
        assert table.ranks is not None
        found: list[list[np.ndarray]] = [[] for _ in texts]
        groups: dict[int, list[int]] = {}
        for number, (_, lowest) in enumerate(texts):
            groups.setdefault(lowest, []).append(number)
        for lowest, members in sorted(groups.items()):
            outside = table.ranks > lowest
            among = None if outside.all() else np.flatnonzero(outside)  # (the whole table: no index of 8 bytes a phrase)
            phrases = table if among is None else table.select(among)
            forms: list[str] = []
            owners: list[int] = []  # the text of each form
            size = 0
            for count, number in enumerate(members):
                text = texts[number][0]
                for form in (visible_words(text), _marked_up_lines(text)):  # (diffs show source lines)
                    if form:
                        forms.append(form)
                        owners.append(number)
                        size += len(form)
                if forms and (size > _BATCH or count == len(members) - 1):
                    for owner, where in _held(phrases, forms, owners):
                        found[owner].append(where if among is None else among[where])
                    forms, owners, size = [], [], 0
        return [np.unique(np.concatenate(parts)) if parts else np.empty(0, np.intp) for parts in found]


def _digests(texts: Iterable[str]) -> np.ndarray:
    """A 64-bit digest of each text (BLAKE2b: the same in every process, which hash() of a str is not)."""
    return np.frombuffer(b"".join(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest() for text in texts), np.uint64)


def _held(phrases: Phrases, forms: list[str], owners: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """(owner, positions in `phrases`) of the phrases that forms hold, by the owner of each form."""
    keys = _text_keys(forms)[0]
    ends = np.flatnonzero(keys == _NO_WORD)  # the mark after each form
    owner_of = np.array(owners, np.intp)
    for start in range(0, len(keys), _CHUNK):  # (a form can be long: a page's history)
        windows, offsets = phrases.windows(keys[start : start + _CHUNK + SHINGLE - 1])
        at, where = phrases.find(windows, offsets)
        if len(at):
            firsts = np.array([offset for offset, _ in offsets])
            words = at - firsts[np.searchsorted(firsts, at, side="right") - 1]  # the window's first word
            who = owner_of[np.searchsorted(ends, start + words)]
            order = np.argsort(who, kind="stable")
            who, where = who[order], where[order]
            cuts = np.flatnonzero(np.diff(who)) + 1
            yield from zip((int(part[0]) for part in np.split(who, cuts)), np.split(where, cuts))


PARALLEL_TEXT = 1 << 24  # characters of shown text below which one process does the lookups


_showing: tuple[Secrets, list[tuple[str, int]]] | None = None  # what forked workers look up (inherited, not pickled)


def _found_share(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """_found_in of a run of the texts, packed (see _packed)."""
    assert _showing is not None
    secrets, texts = _showing
    return _packed(secrets._found_in(texts[bounds[0] : bounds[1]]))


def _by_first_letter(names: set[str]) -> str:
    """An alternation of `names` grouped by first letter ("d(?:iv|d|t)|…"): the regex engine then
    tries one group at each "<", not every name (it reads every tag of every file)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(name[0], []).append(name[1:])
    return "|".join(re.escape(first) + "(?:" + "|".join(sorted(rests, key=len, reverse=True)) + ")" for first, rests in sorted(groups.items()))


_BLOCK_TAG = re.compile(r"</?(?:" + _by_first_letter(_BLOCK_TAGS) + r")\b[^>]*>", re.I)
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


_SCRIPT = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_ATTRIBUTE = re.compile(r"""\s[^\s"'<>/=]+\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`]+))""")
_START_TAG = re.compile(r"<[A-Za-z][^>]*>")


_BLOCK_SPLIT = re.compile("(" + _BLOCK_TAG.pattern + ")", re.I)
_PIECE_TAG = re.compile(r"<[^>\x00]*>")  # a tag within one piece (never across the joins of `_decode_pieces`)


def _html_units(text: str) -> tuple[list[str], list[str]]:
    """(the raw pieces of an HTML file: its block tags and what lies between them; the strings of
    its scripts, comments and CDATA, decoded).

    The pieces are decoded by `_decode_pieces`, and only those not found clean before: a page's
    sidebar entries and paragraphs recur in its siblings, its history and the other bundles, and
    decoding is most of the cost of a scan. Regular expressions rather than html.parser: the
    audit reads every file of every bundle, and these run in C."""
    decoded: list[str] = []
    scripts = [m.group(2) for m in _SCRIPT.finditer(text)]
    if scripts:
        text = _SCRIPT.sub(" ", text)
        for code in scripts:
            if code:  # (most are <script src=…></script>)
                decoded += _script_strings(code)
    if "<!--" in text or "<![CDATA[" in text:  # (not "<!": every page starts with <!DOCTYPE html>)
        for value in _COMMENT.findall(text) + _CDATA.findall(text):
            decoded += _markup_text(value)
        # A comment shows nothing, not even a space: "Staff<!-- x --> notes" reads "Staff notes".
        text = _CDATA.sub(lambda m: _SPLIT + m.group(1) + _SPLIT, _COMMENT.sub("", text))
    return _BLOCK_SPLIT.split(text), decoded


def _decode_pieces(pieces: list[str]) -> list[str]:
    """The text of raw HTML pieces (split at block elements, entities decoded as a browser would,
    escaped HTML within decoded again) and their attribute values (entities and %-escapes decoded),
    each distinct value once. One pass of each pattern over all the pieces, not one per piece."""
    joined = _SPLIT.join(pieces)
    segments = html.unescape(_PIECE_TAG.sub("", joined)).split(_SPLIT)
    segments += [t for part in segments if "<" in part or "&" in part for t in _markup_text(part)]  # escaped HTML (feeds)
    values = dict.fromkeys(quoted or single or bare for quoted, single, bare in _ATTRIBUTE.findall(" ".join(_START_TAG.findall(joined))))
    values.pop("", None)
    if values:
        segments += _markup_values(unquote(html.unescape(_SPLIT.join(values))))  # (a %00 in a value splits it where no word runs anyway)
    return segments


def _markup_text(text: str) -> list[str]:
    """Text that may itself be (escaped) HTML: entities decoded, split at blocks, tags removed."""
    if "<" not in text and "&" not in text:
        return [text]
    decoded = html.unescape(text)
    return _TAG.sub("", _BLOCK_TAG.sub(_SPLIT, decoded)).split(_SPLIT)


def _markup_values(joined: str) -> list[str]:
    """`_markup_text` of each value of `joined` (values separated by _SPLIT), with one test for all
    of them when none holds markup."""
    values = joined.split(_SPLIT)
    if "<" in joined or "&" in joined:
        return [t for value in values for t in _markup_text(value)]
    return values


def _script_strings(code: str) -> list[str]:
    """The code around string literals, and every literal decoded as the JS engine would (its
    quotes kept: they end words anyway). All literals are %-decoded in one call, not one each: a
    search shard holds tens of thousands."""
    parts = _JS_LITERAL.split(code)
    if len(parts) == 1:
        return [code]
    literals = parts[1::2]
    text = _SPLIT.join(literals)
    if "\\" in text:  # escapes to decode (most literals have none)
        literals = [_js_decoded(literal) if "\\" in literal else literal for literal in literals]
        text = _SPLIT.join(literals)
    return [" ".join(parts[0::2])] + _markup_values(unquote(text))


def _js_decoded(literal: str) -> str:
    body = _HEX_ESCAPE.sub(lambda m: "\\u00" + m.group(1), literal[1:-1].replace("\\'", "'"))
    try:
        return json.loads('"' + body + '"')
    except ValueError:
        return literal


def _kind(name: str) -> str:
    """How a file is decoded, by its name: as markup, JSON, script or text. The same bytes can hold
    a leak under one name and not another (JSON escapes in a .txt), so a verdict is on both."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in ("html", "htm", "xml", "svg", "xhtml", "rss", "atom"):
        return "markup"
    return "json" if suffix == "json" else "script" if suffix in ("js", "mjs") else "text"


def _units(name: str, data: bytes) -> tuple[list[str], list[str]]:
    """Decode a bundle file into the strings a reader or a script could get out of it: (raw HTML
    pieces, for `_decode_pieces`; strings already decoded)."""
    text = data.decode("utf-8", errors="replace")
    kind = _kind(name)
    if kind == "markup":
        return _html_units(text)
    if kind == "json":
        try:
            return [], [t for value in _json_strings(json.loads(text)) for t in _markup_text(value)]
        except ValueError:
            return [], [text]
    if kind == "script":
        return [], _script_strings(text)
    return [], _markup_text(text)


def _json_strings(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield unquote(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


class Scanner:
    """Scans the files of bundles, remembering what it found clean.

    A page's text recurs in many files (the page, its history, other bundles' copies of it), so a
    piece of HTML or a segment of text found clean is not decoded or tokenised again while the
    fingerprints stay the same or narrower (bundles are scanned from the least to the most
    restricted, whose fingerprints are a subset). New segments are queued and checked in batches
    of about a million characters, joined with a phrase-ending mark: one pass in C for many files
    (a file at a time, the cost was in numpy's per-call overhead and a cold cache). Only a batch
    that holds a leak is checked again, file by file, to say where. Pieces and segments are
    remembered by their 64-bit hash (in separate sets: a piece decodes to other text than the
    same string read as text); a collision would need ~2^32 distinct ones to be likely, far
    beyond any site.
    """

    BATCH = 1 << 20  # characters of new text checked at once

    def __init__(self) -> None:
        self.prints: Fingerprints | None = None
        self.clean: set[int] = set()  # hashes of segments of text
        self.clean_pieces: set[int] = set()  # hashes of raw HTML pieces
        self.clean_files: set[str] = set()  # "SHA-256:kind" of files found clean (see _kind)
        self._queue: list[tuple[str, str, str, list[str], list[int], list[int]]] = []  # (bundle, file, verdict key, segments, their hashes, its new pieces' hashes)
        self._queued: set[int] = set()  # hashes of the segments in the queue's text
        self._text: list[str] = []
        self._size = 0

    def use(self, prints: Fingerprints) -> None:
        """Scan with these fingerprints from now on (check what is queued first: `flush`)."""
        assert not self._queue, "flush() before changing fingerprints"
        if self.prints is None or not prints.narrower_than(self.prints):
            self.clean, self.clean_pieces, self.clean_files = set(), set(), set()
        self.prints = prints

    def file(self, name: str, data: bytes, bundle: str, digest: str, verdict: str) -> list[Leak]:
        """Check one file (`digest`: its SHA-256; `verdict`: "SHA-256:kind", see _kind), or queue
        it: the leaks found now (one per origin and kind)."""
        prints = self.prints
        assert prints is not None
        leaks = []
        if digest in prints.hashes:
            origin = prints.hashes[digest]
            leaks.append(Leak(bundle, name, f"file with SHA-256 {digest[:16]}…", origin, "attachment"))
        if verdict in self.clean_files or b"\x00" in data[:1024] or prints.empty:
            return leaks  # binary, or nothing to look for: the hash check above is all that applies
        pieces, segments = _units(name, data)
        new = {key: piece for key, piece in zip(map(hash, pieces), pieces) if key not in self.clean_pieces}
        if new:
            segments += _decode_pieces(list(new.values()))
        keys = list(map(hash, segments))
        fresh = [segment for segment, key in zip(segments, keys) if key not in self.clean and key not in self._queued]
        if not fresh and not any(key in self._queued for key in keys):
            self.clean_pieces.update(new)
            if not leaks:
                self.clean_files.add(verdict)
            return leaks
        self._queue.append((bundle, name, "" if leaks else verdict, segments, keys, list(new)))
        self._queued.update(map(hash, fresh))
        self._text += fresh
        self._size += sum(map(len, fresh))
        return leaks + (self.flush() if self._size > self.BATCH else [])

    def flush(self) -> list[Leak]:
        """Check the queued files: the leaks in them."""
        queue, text = self._queue, self._text
        self._queue, self._queued, self._text, self._size = [], set(), [], 0
        if not queue:
            return []
        assert self.prints is not None
        if not self.prints.any(word_keys(normalised(_PHRASE_END.join(text)))[0]):
            for _, _, verdict, _, keys, pieces in queue:
                self.clean.update(keys)
                self.clean_pieces.update(pieces)
                if verdict:
                    self.clean_files.add(verdict)
            return []
        return [leak for bundle, name, _, segments, keys, pieces in queue for leak in self._check(bundle, name, segments, keys, pieces)]

    def _check(self, bundle: str, name: str, segments: list[str], keys: list[int], pieces: list[int]) -> list[Leak]:
        """The leaks in one file of a batch that holds some, and what they say."""
        prints = self.prints
        assert prints is not None
        leaks: dict[tuple[str, str], Leak] = {}
        fresh = [(segment, key) for segment, key in zip(segments, keys) if key not in self.clean]
        if not prints.any(word_keys(normalised(_PHRASE_END.join(segment for segment, _ in fresh)))[0]):
            self.clean.update(keys)
            self.clean_pieces.update(pieces)
            return []
        for segment, key in fresh:
            found = list(prints.matches(segment))
            if not found:
                self.clean.add(key)
            for fragment, (origin, kind) in found:
                leaks.setdefault((origin, kind), Leak(bundle, name, fragment, origin, kind))
        return list(leaks.values())


_PHRASE_END = " " + _SPLIT + " "


def bundle_files(folder: Path) -> list[str]:
    """Every file under `folder` (os.walk: pathlib's rglob is ten times slower on a large bundle)."""
    found = []
    top = len(str(folder)) + 1
    for here, _, files in os.walk(folder):
        prefix = here[top:].replace(os.sep, "/") + "/" if len(here) >= top else ""
        found += [prefix + name for name in files]  # (a bundle holds no links: the writer makes none)
    return sorted(found)


class ScanJob(NamedTuple):
    folder: Path
    bundle: Bundle
    prints: Fingerprints
    names: list[str]  # the files to scan
    manifest: dict[str, str] | None = None  # name -> the SHA-256 each should have (`sitegen audit`)
    clean: frozenset[str] = frozenset()  # "SHA-256:kind" of files found clean before with the same fingerprints


_jobs: list[ScanJob] = []  # what forked workers scan (inherited, not pickled: fingerprints are large)


def _scan_share(share: tuple[int, int]) -> tuple[list[Leak], list[str], dict[str, set[str]]]:
    """Scan the files that fall in one share (by a hash of their path, the same in every bundle, so
    that a page's copies in several bundles meet the same scanner): the leaks, the files that
    differ from their manifest, and the verdict keys ("SHA-256:kind") of each bundle's files that
    were scanned or known clean."""
    number, shares = share
    scanner = Scanner()
    leaks: list[Leak] = []
    changed: list[str] = []
    seen: dict[str, set[str]] = {}
    for folder, bundle, prints, names, manifest, clean in _jobs:
        if manifest is None and prints.empty and not prints.hashes:
            continue  # nothing to look for, no manifest to compare with: the most restricted bundle in a build
        scanner.use(prints)
        base = str(folder)
        digests = seen.setdefault(bundle.name, set())
        for name in names:
            if zlib.crc32(name.encode()) % shares == number:
                try:
                    with open(os.path.join(base, name), "rb") as file:  # (not pathlib: tens of thousands of files)
                        data = file.read()
                except (FileNotFoundError, IsADirectoryError):
                    continue
                digest = hashlib.sha256(data).hexdigest()
                if manifest is not None and name in manifest and manifest[name] != digest:
                    changed.append(f"{folder.name}/{name}")
                verdict = f"{digest}:{_kind(name)}"
                digests.add(verdict)
                if verdict not in clean:
                    leaks += scanner.file(name, data, bundle.name, digest, verdict)
        leaks += scanner.flush()
    return leaks, changed, seen


PARALLEL_FILES = 1000  # below this many files, starting processes costs more than it saves


class CleanFiles:
    """The files the audit found clean, by bundle, in `.sitegen-cache/` (safe to delete).

    A verdict depends only on a file's bytes, how its name says to decode it (see _kind), the
    fingerprints and the generator's code, so a file found clean is not scanned again:
    - while the fingerprints stay the same (their digest holds the code's): `sitegen audit` right
      after `sitegen build`, or a rebuild after an edit that changes no secret, reads and hashes
      every file but scans only those that changed;
    - when the fingerprints changed, if the file was written by a full build and the bundle still
      shows everything it showed then (Fingerprints.shown: its allowed texts, attachments, the
      theme and the code): an edit that adds a sentence to an internal page then scans the lower
      bundles' changed files, not all of them. Sound because a full build writes every file from
      the site as it is, so a phrase that is secret now and in such a file was in it neither as a
      secret then (the file was clean) nor as something the bundle showed (it still does, so the
      phrase would be struck out now): it did not come from the site's text, and bytes that did not
      change cannot carry what was written since. A file an update left as it was may hold text of
      an older state of the site (that is what the audit is there to find): its verdict is only
      reused under the same fingerprints. Once a bundle shows less (a page made restricted, a
      sentence moved into a hidden block, any edit of text it shows), the text it no longer shows
      may be in files that were not written again: it is read back (a full build keeps the texts
      shown, see save_shown), and if any of it holds a phrase the bundle must not, every file found
      clean before is scanned again. (The proof above then holds with "shown then" read as "shown
      then and still shown, or holding no such phrase".) What such a reused
      verdict does not report, where a scan from nothing would, is a new secret phrase that an
      unchanged file already held without taking it from the site's text (a template override's own
      words, an author's name): a false alarm on the information that file carries, but one that a
      build from nothing (`--no-cache`, a fresh CI clone) raises.

    Verdicts are kept in groups, one per scan: the digest of the fingerprints it was made under,
    what the bundle showed (only when a full build wrote the files), the verdicts still of use.
    A bundle in which a leak was found is not remembered."""

    GROUPS = 4  # per bundle (the oldest are dropped)

    def __init__(self, root: Path, full_build: bool = False) -> None:
        self.root = root
        self.full_build = full_build  # did a full build write every file scanned? (see above)
        self._taken: dict[str, list[tuple[str, np.ndarray | None, set[str]]]] = {}  # bundle -> the groups get() took verdicts from
        self._shown = _ShownTexts(root)

    def _file(self, bundle: str) -> Path:
        return self.root / CACHE_DIR / f"audit-{bundle}.npz"

    def _groups(self, bundle: str) -> list[tuple[str, np.ndarray | None, set[str]]]:
        try:
            with np.load(self._file(bundle)) as saved:  # (no pickles: allow_pickle stays off)
                notes = json.loads(str(saved["notes"]))
                return [(key, saved[f"shown{n}"] if shown else None, set(saved[f"verdicts{n}"].tobytes().decode("ascii").split("\n")) - {""})
                        for n, (key, shown) in enumerate(zip(notes["keys"], notes["shown"]))]
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
            return []

    def get(self, bundle: str, prints: Fingerprints) -> frozenset[str]:
        """The verdict keys ("SHA-256:kind") of files known clean under `prints`."""
        digest = prints.digest()
        taken = self._taken[bundle] = [(key, shown, verdicts) for key, shown, verdicts in self._groups(bundle)
                                       if key == digest or shown is not None and self._shows_enough(shown, prints)]
        return frozenset(set().union(*(verdicts for _, _, verdicts in taken)))

    def _shows_enough(self, shown: np.ndarray, prints: Fingerprints) -> bool:
        """Does the bundle still show all it showed (`shown`), or, if not, does none of the texts it
        no longer shows hold a phrase it must not (read from what the last full build kept)?"""
        lost = np.setdiff1d(shown, prints.shown, assume_unique=True)
        if not len(lost):
            return True
        texts = self._shown.get(lost)  # (the theme, the code or an attachment are never among them: no)
        if texts is None:
            return False
        forms = [form for text in texts for form in (visible_words(text), _marked_up_lines(text)) if form]
        return not prints.any(_text_keys(forms)[0])

    def put(self, bundle: str, prints: Fingerprints, files: set[str]) -> None:
        """Remember that the bundle's `files` (verdict keys) are clean under `prints`: those scanned
        now in a new group (after a full build, with every file clean under the same fingerprints),
        the others in the groups get() took them from."""
        digest = prints.digest()
        taken = self._taken.pop(bundle, [])
        if self.full_build and len(prints.shown):  # (fingerprints made elsewhere than Secrets list nothing shown)
            only_shown = set().union(*(v for key, _, v in taken if key != digest)) - set().union(*(v for key, _, v in taken if key == digest))
            groups = [(digest, prints.shown, files - only_shown)]
        else:
            groups = [(digest, None, files - set().union(*(verdicts for _, _, verdicts in taken)))]
        placed = set(groups[0][2])
        for key, shown, verdicts in taken:
            groups.append((key, shown, verdicts & files - placed))
            placed |= groups[-1][2]
        # the largest groups: dropping one means scanning its files again
        groups = [group for group in [groups[0], *sorted(groups[1:], key=lambda g: -len(g[2]))] if group[2]][: self.GROUPS]
        arrays = {}
        for n, (_, shown, verdicts) in enumerate(groups):
            arrays[f"shown{n}"] = shown if shown is not None else np.empty(0, np.uint64)
            arrays[f"verdicts{n}"] = np.frombuffer("\n".join(sorted(verdicts)).encode("ascii"), np.uint8)
        notes = {"keys": [key for key, _, _ in groups], "shown": [shown is not None for _, shown, _ in groups]}
        with replacing(self.root, self._file(bundle).name) as temporary:
            np.savez(temporary, notes=np.array(json.dumps(notes)), **arrays)


def scan_bundles(jobs: list[ScanJob], workers: int = 1, verdicts: CleanFiles | None = None) -> list[Leak]:
    """Every leak in the given files of built bundles, one per (bundle, file, origin, kind); with
    `verdicts`, files found clean before are not scanned again, and clean bundles are remembered."""
    return scan(jobs, workers, verdicts)[0]


def scan(jobs: list[ScanJob], workers: int, verdicts: CleanFiles | None = None) -> tuple[list[Leak], list[str]]:
    """The leaks in the jobs' files and the files that differ from their manifest.

    Jobs are scanned from the least to the most restricted bundle; with several workers (and a
    large site) the files are shared out over forked processes."""
    global _jobs
    if verdicts is not None:
        jobs = [job._replace(clean=verdicts.get(job.bundle.name, job.prints)) for job in jobs]
    _jobs = sorted(jobs, key=lambda job: job.bundle.rank)
    shares = workers if workers > 1 and sum(len(job.names) for job in _jobs) >= PARALLEL_FILES else 1
    try:
        if shares == 1:
            parts = [_scan_share((0, 1))]
        else:
            with forking(), multiprocessing.get_context("fork").Pool(shares, quiet_worker) as pool:
                parts = pool.map(_scan_share, [(n, shares) for n in range(shares)])
    finally:
        _jobs = []
    leaks = sorted((leak for found, _, _ in parts for leak in found), key=lambda leak: (leak.bundle, leak.file, leak.origin, leak.kind))
    if verdicts is not None:
        leaking = {leak.bundle for leak in leaks}
        prints = {job.bundle.name: job.prints for job in jobs}
        for name in sorted({name for _, _, seen in parts for name in seen} - leaking):
            verdicts.put(name, prints[name], {digest for _, _, seen in parts for digest in seen.get(name, ())})
    return leaks, sorted(name for _, changed, _ in parts for name in changed)


def confirmed(leaks: list[Leak], jobs: list[ScanJob], exact: Callable[[], dict[str, Fingerprints]]) -> list[Leak]:
    """The leaks of a scan of `jobs` that exact fingerprints find too: when the jobs' fingerprints
    may hold more than they should (see Fingerprints.exact), the files the leaks name are scanned
    again with those `exact()` makes (only then)."""
    if not leaks or all(job.prints.exact for job in jobs):
        return leaks
    prints = exact()
    files: dict[str, set[str]] = {}
    for leak in leaks:
        files.setdefault(leak.bundle, set()).add(leak.file)
    again = [job._replace(prints=prints[job.bundle.name], names=sorted(files[job.bundle.name]), manifest=None, clean=frozenset())
             for job in jobs if job.bundle.name in files]
    return scan(again, 1)[0]


class SavedFingerprints:
    """The fingerprints of a site's bundles, saved in `.sitegen-cache/fingerprints.npz` under the
    site's fingerprint (build.site_fingerprint: every input file, the git state, the day) and the
    generator's code: `sitegen audit` after `sitegen build` of the same site takes them from there
    rather than reading the site and its history again. Safe to delete; one site state is kept."""

    def __init__(self, root: Path, site: str) -> None:
        self.path = root / CACHE_DIR / "fingerprints.npz"
        self.key = hashlib.sha256(site.encode() + code_version()).hexdigest()

    def get(self, bundles: list[str]) -> dict[str, Fingerprints] | None:
        try:
            with np.load(self.path) as saved:  # (no pickles: allow_pickle stays off)
                notes = json.loads(str(saved["notes"]))
                if notes["key"] != self.key or not set(bundles) <= notes["attachments"].keys():
                    return None
                origins = [tuple(origin) for origin in notes["origins"]]
                return {name: Fingerprints(Phrases(saved[f"{name}.hashes"], saved[f"{name}.lengths"], saved[f"{name}.origins"]),
                                           origins, notes["attachments"][name], saved[f"{name}.shown"], notes["exact"][name]) for name in bundles}
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, prints: dict[str, Fingerprints]) -> None:
        if not prints:
            return
        origins = next(iter(prints.values())).origins  # (one list for all bundles: Secrets')
        notes = {"key": self.key, "origins": origins, "attachments": {name: p.hashes for name, p in prints.items()},
                 "exact": {name: p.exact for name, p in prints.items()}}
        arrays = {f"{name}.{part}": getattr(p.phrases, part) for name, p in prints.items() for part in ("hashes", "lengths", "origins")}
        arrays.update((f"{name}.shown", p.shown) for name, p in prints.items())
        with replacing(self.path.parent.parent, self.path.name) as temporary:
            np.savez(temporary, notes=np.array(json.dumps(notes)), **arrays)


def bundle_fingerprints(plan, site: str | None = None, workers: int = 1, full_build: bool = False,
                        exact: bool = False) -> dict[str, Fingerprints]:
    """The fingerprints of every bundle of a build's plan, by bundle name; with `site` (the site's
    fingerprint), saved for `sitegen audit`, and what the audit worked out saved
    for the next build (taken from the last one's, see Secrets), with the texts the bundles show
    after a full build (see CleanFiles). A plan that keeps its search indexes (`serve`'s) keeps
    what the audit worked out too, for its next one. `exact`: see Secrets.for_bundles."""
    root = plan.config.root
    secrets = Secrets(plan.config, plan.site, plan.gate, plan.history, partial(KnownSecrets.load, root) if site is not None else None,
                      keep=site is not None or plan.search is not None, exact=exact)
    prints = secrets.for_bundles(plan.bundles, workers, root if site is not None and full_build else None)
    if plan.search is not None:
        plan.secrets = secrets.known()
    if site is not None:
        SavedFingerprints(root, site).put(prints)
        secrets.known().save(root, table=not secrets.table_taken)
    return prints


def audit_folders(root: Path, folders: list[Path], workers: int = 1, cached: bool = True) -> tuple[list[Leak], list[str]]:
    """`sitegen audit DIR…`: check built bundles (each names itself in manifest.json) against the site.

    Returns the leaks and the notes about files that differ from their manifest. With `cached`,
    files found clean before with the same fingerprints are read and hashed but not scanned again
    (see CleanFiles)."""
    from .build import read_site, site_fingerprint

    with ThreadPoolExecutor(1) as pool:  # the folders are listed (system calls, mostly) while the site is read and hashed
        listings = [pool.submit(_listing, folder) for folder in folders]
        config = load_config(root)
        saved = SavedFingerprints(config.root, site_fingerprint(config.root)) if cached else None
        prints = saved.get([bundle.name for bundle in config.bundles]) if saved else None

        def secrets(exact: bool) -> Secrets:  # (with what the last build's audit worked out, see Secrets)
            config, site, gate, _ = read_site(root)
            return Secrets(config, site, gate, History(config, site, gate, read_git(config.root)),
                           partial(KnownSecrets.load, config.root) if cached else None, exact=exact)

        made = secrets(exact=False) if prints is None else None
        found: list[tuple[Path, Bundle, list[str], dict[str, str]]] = []  # folder, bundle, its files, its manifest's
        notes: list[str] = []
        for folder, listing in zip(folders, listings):
            try:
                manifest, names = listing.result()
                bundle = config.bundle(manifest["bundle"])
            except (OSError, ValueError, KeyError) as exc:
                raise ValueError(f"{folder} is not a bundle built from this site ({exc}); pass a folder like build/public") from exc
            listed = manifest.get("files", {})
            notes += [f"{folder.name}/{name}: removed after the build (listed in manifest.json)" for name in sorted(listed.keys() - set(names))]
            notes += [f"{folder.name}/{name}: not in manifest.json (added after the build)" for name in names if name != "manifest.json" and name not in listed]
            found.append((folder, bundle, names, listed))
    if made is not None:
        prints = made.for_bundles(config.bundles, workers)
        if saved is not None:
            saved.put(prints)
    jobs = [ScanJob(folder, bundle, prints[bundle.name], names, listed) for folder, bundle, names, listed in found]
    leaks, changed = scan(jobs, workers, CleanFiles(root) if cached else None)  # reads every file once: the scan checks the manifest's hashes too
    leaks = confirmed(leaks, jobs, lambda: secrets(exact=True).for_bundles(config.bundles, workers))
    return leaks, notes + [f"{name}: differs from manifest.json (changed after the build)" for name in changed]


def _listing(folder: Path) -> tuple[dict, list[str]]:
    """A built bundle's manifest and its files."""
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8")), bundle_files(folder)
