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
URLs) and scanned. Matching is by hashed token n-grams in sets: linear in the size of the site.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
import unicodedata
from dataclasses import dataclass, field
from itertools import compress, count
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import unquote

from .config import Bundle, Config
from .content import Site
from .errors import Problem
from .gate import Gate
from .history import History, read_git
from .markup import LinkIndex, resolve_target

SHINGLE = 6  # words in a body shingle: long enough to be distinctive, short enough to catch a sentence
MIN_SINGLE = 5  # a one-word title or label is a fingerprint only if at least this long
_WORD = re.compile(r"\w+")
_HEADING = re.compile(r"^ {0,3}#{1,6}\s+(.+?)\s*#*\s*$", re.M)
_LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+[\"'][^)]*[\"'])?\s*\)|(?:href|src)\s*=\s*[\"']([^\"']+)[\"']")
_TAG = re.compile(r"<[^>]*>")
_JS_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'')
_BLOCK_TAGS = {"p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "td", "th", "tr", "table", "section",
               "article", "nav", "header", "footer", "aside", "main", "pre", "br", "dt", "dd", "title", "entry",
               "summary", "content", "loc", "url", "option", "blockquote", "figcaption", "hr", "body", "head"}


_COMBINING = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")


def tokens(text: str) -> list[str]:
    """Words as a reader would compare them: Unicode-normalised, case- and accent-insensitive."""
    text = text.casefold()
    if not text.isascii():
        text = _COMBINING.sub("", unicodedata.normalize("NFKD", text))
    return _WORD.findall(text.replace("_", " "))


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


@dataclass
class Fingerprints:
    """Hashed token n-grams (1 to SHINGLE words) of secret material, with where each came from.

    Matching does its per-word work in C: every SHINGLE-gram of a text is hashed with
    `zip`/`map` and filtered against the secret set; shorter phrases are looked for only where a
    word pair starts one of them. Positions are computed only on a hit.
    """

    vocab: dict[str, int] = field(default_factory=dict)
    phrases: dict[int, tuple[str, str]] = field(default_factory=dict)  # hash -> (origin, kind)
    lengths: set[int] = field(default_factory=set)  # lengths of phrases between 2 and SHINGLE - 1
    starts: set[int] = field(default_factory=set)  # hashes of the first two words of those phrases
    singles: set[int] = field(default_factory=set)  # one-word phrases
    hashes: dict[str, str] = field(default_factory=dict)  # sha256 -> origin of secret attachment

    def ids(self, words: list[str], grow: bool = False) -> list[int | None]:
        vocab = self.vocab
        if grow:
            return [vocab.setdefault(w, len(vocab)) for w in words]
        return list(map(vocab.get, words))

    def add(self, text: str, origin: str, kind: str, whole: bool = True) -> None:
        words = tokens(text)
        if not words:
            return
        ids = self.ids(words, grow=True)
        if whole and len(ids) < SHINGLE:
            if len(ids) == 1:
                if len(words[0]) < MIN_SINGLE:
                    return
                self.singles.add(ids[0])
            else:
                self.starts.add(hash((ids[0], ids[1])))
                self.lengths.add(len(ids))
            self.phrases.setdefault(hash(tuple(ids)), (origin, kind))
        for gram in zip(*(ids[k:] for k in range(SHINGLE))):
            self.phrases.setdefault(hash(gram), (origin, kind))

    def _hits(self, ids: list[int | None]) -> dict[int, set[int]]:
        """Secret n-gram hashes present in `ids`, by length."""
        known = self.phrases.__contains__
        hits: dict[int, set[int]] = {}
        found = set(filter(known, map(hash, zip(*(ids[k:] for k in range(SHINGLE))))))
        if found:
            hits[SHINGLE] = found
        for word in set(filter(self.singles.__contains__, ids)):
            if known(hash((word,))):
                hits.setdefault(1, set()).add(hash((word,)))
        if self.starts and len(ids) > 1:
            pairs = map(hash, zip(ids, ids[1:]))
            for i in compress(count(), map(self.starts.__contains__, pairs)):
                for n in self.lengths:
                    key = hash(tuple(ids[i : i + n]))
                    if i + n <= len(ids) and known(key):
                        hits.setdefault(n, set()).add(key)
        return hits

    def matches(self, words: list[str]) -> Iterator[tuple[int, int, tuple[str, str]]]:
        """(start, length, origin) of every secret n-gram in `words`."""
        ids = self.ids(words)
        for n, found in sorted(self._hits(ids).items()):
            for i in range(len(ids) - n + 1):
                key = hash(tuple(ids[i : i + n]))
                if key in found:
                    yield i, n, self.phrases[key]

    def allow(self, text: str) -> None:
        """Strike out every fingerprint that also occurs in material the bundle may see."""
        for found in self._hits(self.ids(tokens(text))).values():
            for key in found:
                self.phrases.pop(key, None)


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


def _link_targets(text: str) -> Iterable[str]:
    for match in _LINK.finditer(text):
        yield match.group(1) or match.group(2)


def _theme_text() -> str:
    """The built-in theme's own words ("On this page", "Labels", its scripts…) are never a leak.

    A site's template overrides are not counted: a title typed into an override is a leak.
    """
    theme = Path(__file__).parent / "theme"
    return "\n".join(p.read_text(encoding="utf-8") for p in sorted(theme.glob("*/*")) if p.is_file())


def fingerprints_for(config: Config, site: Site, gate: Gate, bundle: Bundle, history: History | None = None) -> Fingerprints:
    """Fingerprints of everything `bundle` must not contain, minus what it legitimately shows.

    With history, commit subjects the bundle may not show are secrets too, and the past texts
    and subjects it does show (gated for it) count as material it may see.
    """
    prints = Fingerprints()
    index = LinkIndex(frozenset(site.pages), frozenset(site.attachments))
    top = config.bundles[-1] if config.bundles else bundle
    visible = [p for _, p in sorted(site.pages.items()) if gate.visible(p, bundle)]
    allowed_files: set[str] = set()
    allowed_text: list[str] = [config.title, bundle.name, bundle.tier, " ".join(config.tiers), _theme_text()]

    for source, page in sorted(site.pages.items()):
        origin = f"content/{source}"
        if page.rank > bundle.rank:
            full = gate.text(page, top)
            prints.add(page.title, origin, "title")
            prints.add(page.summary, origin, "summary")
            prints.add(page.url.replace("/", " "), origin, "URL")
            if page.slug:
                prints.add(page.slug, origin, "slug")
            for heading in _HEADING.findall(full):
                prints.add(heading, origin, "heading")
            for paragraph in _paragraphs(full):
                prints.add(paragraph, origin, "text", whole=False)
            for label in page.labels:
                prints.add(label, origin, "label")
        elif gate.visible(page, bundle):
            for block in gate.hidden(page, bundle):
                where = f"{origin}:{block.line} ({config.tiers[block.rank]} block)"
                for heading in _HEADING.findall(block.text):
                    prints.add(heading, where, "heading")
                for paragraph in _paragraphs(block.text):
                    prints.add(paragraph, where, "text")
    if history is not None:
        for sha, subject in history.hidden_messages(bundle):
            prints.add(subject, f"commit {sha}", "commit message")
        for source, changes in history.changes_for(bundle).items():
            # Past versions are shown in diffs: their lines count as seen, beyond today's text.
            today = set(gate.text(site.pages[source], bundle).split("\n"))
            past: set[str] = set()
            for change in changes:
                past.update(change.text.split("\n"))
                past.update((change.previous or "").split("\n"))
                allowed_text += [change.title, change.message or ""]
            allowed_text.append("\n".join(sorted(past - today)))

    for page in visible:
        text = gate.text(page, bundle)
        allowed_text += [page.title, page.summary, page.url.replace("/", " "), " ".join(page.labels), text]
        for href in _link_targets(text):
            marker, target = resolve_target(page.folder, href, index)
            if marker is None:
                continue
            if target in site.attachments:
                if gate.attachment_allowed(site.attachments[target], bundle):
                    allowed_files.add(target)
            elif target in site.pages:
                allowed_text.append(site.pages[target].url.replace("/", " "))  # a deliberate locked link
    for text in allowed_text:
        prints.allow(visible_words(text))
        prints.allow(text)  # diffs show Markdown source, link targets included

    shown = {site.attachments[s].sha256 for s in allowed_files}
    for source, attachment in sorted(site.attachments.items()):
        if source not in allowed_files and attachment.sha256 not in shown:
            prints.hashes.setdefault(attachment.sha256, f"content/{source}")
    return prints


_SPLIT = "\x00"  # between block elements: a phrase never runs from one element into the next
_BLOCK_TAG = re.compile(r"</?(?:" + "|".join(sorted(_BLOCK_TAGS)) + r")\b[^>]*>", re.I)
_HEX_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")


_SCRIPT = re.compile(r"<(script|style)\b[^>]*>(.*?)</\1\s*>", re.I | re.S)
_COMMENT = re.compile(r"<!--(.*?)-->", re.S)
_CDATA = re.compile(r"<!\[CDATA\[(.*?)\]\]>", re.S)
_ATTRIBUTE = re.compile(r"""\s[^\s"'<>/=]+\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'<>`]+))""")
_START_TAG = re.compile(r"<[A-Za-z][^>]*>")


def _html_parts(text: str) -> tuple[list[str], list[str], list[str]]:
    """(text segments split at block elements, attribute values / comments / CDATA, scripts).

    Regular expressions rather than html.parser: the audit reads every file of every bundle,
    and these run in C. Entities are decoded as a browser would."""
    scripts = [m.group(2) for m in _SCRIPT.finditer(text)]
    text = _SCRIPT.sub(" ", text) if scripts else text
    extra = _COMMENT.findall(text) + _CDATA.findall(text)
    if extra:
        text = _CDATA.sub(lambda m: _SPLIT + m.group(1) + _SPLIT, _COMMENT.sub(_SPLIT, text))
    for tag in _START_TAG.findall(text):
        for quoted, single, bare in _ATTRIBUTE.findall(tag):
            value = quoted or single or bare
            if value:
                extra.append(unquote(html.unescape(value)))
    body = _TAG.sub("", _BLOCK_TAG.sub(_SPLIT, text))
    return [html.unescape(part) for part in body.split(_SPLIT)], extra, scripts


def _markup_text(text: str) -> list[str]:
    """Text that may itself be (escaped) HTML: entities decoded, split at blocks, tags removed."""
    if "<" not in text and "&" not in text:
        return [text]
    decoded = html.unescape(text)
    return _TAG.sub("", _BLOCK_TAG.sub(_SPLIT, decoded)).split(_SPLIT)


def _script_strings(code: str) -> list[str]:
    """The code around string literals, and every literal decoded as the JS engine would."""
    found = [_JS_STRING.sub(" ", code)]
    for literal in _JS_STRING.findall(code):
        body = _HEX_ESCAPE.sub(lambda m: "\\u00" + m.group(1), literal[1:-1].replace("\\'", "'"))
        try:
            value = json.loads('"' + body + '"')
        except ValueError:
            value = literal
        found += _markup_text(unquote(value))
    return found


def _segments(name: str, data: bytes) -> list[str]:
    """Decode a bundle file into the strings a reader or a script could get out of it."""
    text = data.decode("utf-8", errors="replace")
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix in ("html", "htm", "xml", "svg", "xhtml", "rss", "atom"):
        segments, extra, scripts = _html_parts(text)
        segments += [t for part in segments if "<" in part or "&" in part for t in _markup_text(part)]  # escaped HTML (feeds)
        for value in extra:
            segments += _markup_text(value)
        for code in scripts:
            segments += _script_strings(code)
        return segments
    if suffix == "json":
        try:
            return [t for value in _json_strings(json.loads(text)) for t in _markup_text(value)]
        except ValueError:
            return [text]
    if suffix in ("js", "mjs"):
        return _script_strings(text)
    return _markup_text(text)


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


def scan_bundle(folder: Path, bundle: Bundle, prints: Fingerprints) -> list[Leak]:
    """Every leak in the files of a built bundle, one per (file, origin, kind)."""
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    return scan_files(folder, names, bundle, prints)


def scan_files(folder: Path, names: list[str], bundle: Bundle, prints: Fingerprints) -> list[Leak]:
    """Every leak in the named files of a bundle (all of them after a build, the rewritten ones under serve)."""
    leaks: dict[tuple[str, str, str], Leak] = {}
    seen: dict[str, list[tuple[str, str, str]]] = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest in prints.hashes:
            origin = prints.hashes[digest]
            leaks[(name, origin, "attachment")] = Leak(bundle.name, name, f"file with SHA-256 {digest[:16]}…", origin, "attachment")
        if b"\x00" in data[:1024]:
            continue  # binary: the hash check above is all that applies
        for segment in _segments(name, data):
            found = seen.get(segment)
            if found is None:
                words = tokens(segment)
                found = [(" ".join(words[start : start + length]), origin, kind)
                         for start, length, (origin, kind) in prints.matches(words)]
                if len(segment) < 300:  # navigation, headers, titles: the same in many files
                    seen[segment] = found
            for fragment, origin, kind in found:
                leaks.setdefault((name, origin, kind), Leak(bundle.name, name, fragment, origin, kind))
    return sorted(leaks.values(), key=lambda leak: (leak.file, leak.origin, leak.kind))


def audit_plan(plan, staging: Path) -> list[Leak]:
    """Audit every bundle just written under `staging` by `build`."""
    leaks: list[Leak] = []
    for bundle in plan.bundles:
        prints = fingerprints_for(plan.config, plan.site, plan.gate, bundle, plan.history)
        leaks += scan_bundle(staging / bundle.name, bundle, prints)
    return leaks


def audit_folders(root: Path, folders: list[Path]) -> tuple[list[Leak], list[str]]:
    """`sitegen audit DIR…`: check built bundles (each names itself in manifest.json) against the site.

    Returns the leaks and the notes about files that differ from their manifest.
    """
    from .build import read_site

    config, site, gate, _ = read_site(root)
    history = History(config, site, gate, read_git(config.root))
    leaks: list[Leak] = []
    notes: list[str] = []
    for folder in folders:
        manifest_path = folder / "manifest.json"
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            bundle = config.bundle(manifest["bundle"])
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(f"{folder} is not a bundle built from this site ({exc}); pass a folder like build/public") from exc
        listed = manifest.get("files", {})
        for name, digest in sorted(listed.items()):
            path = folder / name
            if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                notes.append(f"{folder.name}/{name}: differs from manifest.json (changed or removed after the build)")
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            name = path.relative_to(folder).as_posix()
            if name != "manifest.json" and name not in listed:
                notes.append(f"{folder.name}/{name}: not in manifest.json (added after the build)")
        leaks += scan_bundle(folder, bundle, fingerprints_for(config, site, gate, bundle, history))
    return leaks, notes
