"""Markdown → HTML with Python-Markdown, and the link rewriting that makes bundles relocatable.

Links are resolved here against the *source* tree (`../deploy/keys.md#step-2`) and replaced by
markers (`sitegen:page:deploy/keys.md#step-2`, `sitegen:file:deploy/diagram.png`). Whether a
target is in a given bundle is not known at this stage — the same rendered text serves every
bundle that sees the same gated text — so `links.finalize` turns markers into relative URLs or
locked links per bundle, asking the gate.
"""

from __future__ import annotations

import html
import pickle
import posixpath
import re
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import quote, unquote
from xml.etree.ElementTree import Element

import lz4.block
import markdown
from markdown import util as markdown_util
from markdown.blockprocessors import BlockProcessor, BlockQuoteProcessor, HashHeaderProcessor, HRProcessor, ReferenceProcessor
from markdown.extensions import Extension
from markdown.extensions.admonition import AdmonitionProcessor
from markdown.extensions.def_list import DefListProcessor
from markdown.extensions.footnotes import FootnoteBlockProcessor
from markdown.treeprocessors import InlineProcessor, Treeprocessor
from pygments.formatters import HtmlFormatter

from .content import index_source
from .workers import forking, quiet_worker

PAGE_MARK = "sitegen:page:"
FILE_MARK = "sitegen:file:"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


class _CodeFormatter(HtmlFormatter):
    """Pygments' HTML formatter with its token-to-class tables made once per style.

    codehilite makes a formatter for every code block, and making these tables walks the whole
    style: more work than highlighting a short block. The tables are only read afterwards, so
    formatters of the same style and class prefix share them; the HTML is the same.
    """

    _tables: dict[tuple[object, str], tuple[dict, dict]] = {}

    def __init__(self, lang_str: str = "", **options: object) -> None:  # codehilite passes lang_str; "html" ignores it
        super().__init__(**options)

    def _create_stylesheet(self) -> None:
        key = (self.style, self.classprefix)
        if key not in self._tables:
            super()._create_stylesheet()
            self._tables[key] = (self.ttype2class, self.class2style)
        self.ttype2class, self.class2style = self._tables[key]


EXTENSIONS = ["tables", "fenced_code", "codehilite", "toc", "admonition", "attr_list", "footnotes", "def_list", "md_in_html", "sane_lists"]
EXTENSION_CONFIGS = {
    "codehilite": {"css_class": "highlight", "guess_lang": False, "pygments_formatter": _CodeFormatter},
    "toc": {"permalink": "#", "permalink_title": "Link to this section"},
    "footnotes": {"BACKLINK_TITLE": "Back to the text"},
}


@dataclass(frozen=True)
class LinkIndex:
    """Which source paths exist: every page (published or not) and every attachment."""

    pages: frozenset[str]
    files: frozenset[str]


@dataclass
class Rendered:
    """One gated text rendered once; shared by every bundle that sees the same text.

    The HTML is kept compressed: a build holds every page's body until the last bundle is written
    (and `serve` for as long as it runs), and the forked writers start with all of it. LZ4 rather
    than zlib: a body is unpacked for every bundle that shows it and again for the search index,
    17,000 times in a build of 5,000 pages, and LZ4 packs 4 times and unpacks 6 times as fast
    (1.3 → 0.3 s and 1.6 → 0.25 s there) for a third more bytes (30 → 44 MB). Equal bodies have
    equal `packed` bytes."""

    packed: bytes  # the HTML, LZ4-compressed (block format, with its size)
    packed_toc: bytes  # the headings (Python-Markdown's toc_tokens), pickled: dozens of small objects otherwise
    pages: list[str] = field(default_factory=list)  # page sources it links to
    files: list[str] = field(default_factory=list)  # attachment sources it references
    problems: list[tuple[str, str, str, str]] = field(default_factory=list)  # (severity, href, message, hint)
    anchors: list[tuple[str, str, str]] = field(default_factory=list)  # (href as written, page source or "" for this one, fragment)

    @property
    def html(self) -> str:
        return lz4.block.decompress(self.packed).decode()

    @property
    def toc(self) -> list[dict]:
        return pickle.loads(self.packed_toc)


def resolve_target(folder: str, href: str, index: LinkIndex) -> tuple[str, str] | tuple[None, str]:
    """Map a relative href written in `folder` to a marker, or (None, error message)."""
    path, _, fragment = href.partition("#")
    path = unquote(path.partition("?")[0])  # (a query means nothing to a static file)
    joined = posixpath.normpath(posixpath.join(folder, path)) if path else ""
    if joined == ".." or joined.startswith("../") or "\\" in path:
        return None, "link leaves the content folder"
    if joined == ".":
        joined = ""
    suffix = f"#{fragment}" if fragment else ""
    candidates = [joined] if joined.endswith(".md") else [joined, index_source(joined)]
    for candidate in candidates:
        if candidate in index.pages:
            return PAGE_MARK + quote(candidate) + suffix, candidate
        if candidate in index.files:
            return FILE_MARK + quote(candidate), candidate
    return None, "link to a page or file that does not exist"


class _LinkRewriter(Treeprocessor):
    def __init__(self, md: markdown.Markdown, state: "_State") -> None:
        super().__init__(md)
        self.state = state

    def run(self, root: Element) -> None:
        for element in root.iter():
            attribute = {"a": "href", "img": "src"}.get(element.tag)
            if attribute:
                href = element.get(attribute)
                marker = self._rewrite(href) if href else None
                if marker is not None:
                    element.set(attribute, marker)
        # Raw HTML (`<a href="setup.md">`) is kept aside by Python-Markdown until the end: its links
        # are resolved and checked the same way, or they would break in every bundle and name the file.
        stash = self.md.htmlStash.rawHtmlBlocks
        for number, block in enumerate(stash):
            if isinstance(block, str) and _RAW_TAG.search(block):
                stash[number] = _RAW_TAG.sub(self._rewrite_tag, block)

    def _rewrite_tag(self, tag: re.Match) -> str:
        if tag.group(2) is None:
            return tag.group(0)  # a comment, a script or a style: text, not links

        def attribute(found: re.Match) -> str:
            value = next(v for v in found.group(3, 4, 5) if v is not None)
            marker = self._rewrite(html.unescape(value))
            return found.group(0) if marker is None else f'{found.group(1)}{found.group(2)}="{marker}"'
        return (_RAW_HREF if tag.group(2).lower() == "a" else _RAW_SRC).sub(attribute, tag.group(0), count=1)

    def _rewrite(self, href: str) -> str | None:
        """The marker for a link written in the text, or None to leave it (recording any problem)."""
        if href.startswith("#") and len(href) > 1:
            self.state.rendered.anchors.append((href, "", unquote(href[1:])))  # (checked once every page is rendered)
        if not href or href.startswith("#") or _SCHEME.match(href) or href.startswith("//"):
            return None
        state = self.state
        if href.startswith("/"):
            state.rendered.problems.append(("warning", href, "absolute link breaks when the bundle is mounted under a sub-path", "link to the .md file with a relative path"))
            return None
        marker, target = resolve_target(state.folder, href, state.index)
        if marker is None:
            state.rendered.problems.append(("error", href, f"{target}: '{href}'", "check the file name and the relative path ('../' goes up one folder)"))
            return None
        (state.rendered.pages if marker.startswith(PAGE_MARK) else state.rendered.files).append(target)
        fragment = href.partition("#")[2]
        if fragment and marker.startswith(PAGE_MARK):
            state.rendered.anchors.append((href, target, unquote(fragment)))
        return marker


# An <a> or <img> tag (links.finalize rewrites markers in those only), or what holds tags as text.
_RAW_TAG = re.compile(r"<!--.*?-->|<(script|style)\b.*?</\1\s*>|<(a|img)\s[^>]*>", re.S | re.I)
_RAW_HREF, _RAW_SRC = (re.compile(rf"""(\s)({name})\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+))""", re.I)  # (quoted or not)
                        for name in ("href", "src"))


class _State:
    folder = ""
    index = LinkIndex(frozenset(), frozenset())
    rendered = Rendered(b"", b"")


# What each of Python-Markdown's own inline patterns needs in a text: without one of these strings
# anywhere in it the pattern cannot match, so it is not tried. (A name whose pattern differs in some
# version of Python-Markdown only needs a subset of these: the check is then looser, never wrong.)
_NEEDS = {
    "backtick": ("`",), "escape": ("\\",),
    "reference": ("[",), "link": ("[",), "short_reference": ("[",), "footnote": ("[^",),
    "image_link": ("![",), "image_reference": ("![",), "short_image_ref": ("![",),
    "autolink": ("<",), "automail": ("<",), "html": ("<",), "entity": ("&",),
    "linebreak": ("  \n",), "em_strong": ("*", "_"),
}
_ALL_NEEDS = frozenset(need for needs in _NEEDS.values() for need in needs)


class _QuickInlineProcessor(InlineProcessor):
    """Python-Markdown's inline stage, skipping the patterns that cannot match.

    The stock stage tries each of ~15 patterns on every run of text (a regex search and a dozen
    Python calls each): over a third of a page's conversion. A pattern whose needed character is
    absent from the text is skipped, exactly as if it had been tried and had not matched, so the
    output is the same (tested against the stock stage). Patterns it does not know (an extension's
    own) are always tried. It replaces the stage's private __handleInline and calls its private
    __applyPattern: should Python-Markdown change them, test_markup, which compares the result with
    the stock stage on every pattern, random texts and the demo site, fails.
    """

    def run(self, tree, ancestors=None):  # type: ignore[no-untyped-def] (Python-Markdown's signature)
        registry = self.inlinePatterns
        known = {id(registry[name]): needs for name, needs in _NEEDS.items()
                 if name in registry and type(registry[name]).__module__.startswith("markdown.")}
        self._patterns = [(pattern, known.get(id(pattern))) for pattern in registry]
        return super().run(tree, ancestors)

    def _InlineProcessor__handleInline(self, data: str, patternIndex: int = 0) -> str:  # noqa: N802 (overrides the private original)
        if isinstance(data, markdown_util.AtomicString):
            return data
        patterns, start = self._patterns, 0
        present = {need for need in _ALL_NEEDS if need in data}  # a match only ever removes them
        while patternIndex < len(patterns):
            pattern, needs = patterns[patternIndex]
            if needs is not None and present.isdisjoint(needs):
                matched, start = False, 0
            else:
                data, matched, start = self._InlineProcessor__applyPattern(pattern, data, patternIndex, start)
            if not matched:
                patternIndex += 1
        return data


# Block processors that search a whole block with a regular expression (in `test`, or in `run` when
# `test` is always true) that cannot match without one of these strings. Most of these patterns
# start with `(^|\n)`, which the regex engine tries at every character of every block. (The
# admonition processor is changed too, in `_skip_hopeless_blocks`: its test does more than a search.)
_BLOCK_NEEDS: dict[type[BlockProcessor], tuple[str, tuple[str, ...]]] = {
    BlockQuoteProcessor: ("test", (">",)),
    HashHeaderProcessor: ("test", ("#",)),
    HRProcessor: ("test", ("-", "_", "*")),
    DefListProcessor: ("test", (":",)),
    ReferenceProcessor: ("run", ("]:",)),
    FootnoteBlockProcessor: ("run", ("[^",)),
}


def _skip_hopeless_blocks(md: markdown.Markdown) -> None:
    """Give the block processors of _BLOCK_NEEDS a quick test of the needed strings first.

    Without them the processor's own test answers False, and its run (for those that search in
    run) puts the block back and answers False, with nothing else done; so answering False at once
    gives the same result. Only processors of exactly these classes are changed (a subclass may
    search for something else). test_markup compares the result with stock Python-Markdown."""

    def quick_test(test, needs):  # type: ignore[no-untyped-def]
        return lambda parent, block: any(need in block for need in needs) and test(parent, block)

    def quick_run(run, needs):  # type: ignore[no-untyped-def]
        return lambda parent, blocks: any(need in blocks[0] for need in needs) and run(parent, blocks)

    def quick_admonition(processor: AdmonitionProcessor):  # type: ignore[no-untyped-def]
        # Its test is its search for "!!!", or else whether the block continues an admonition above.
        test, follows = processor.test, processor.parse_content
        return lambda parent, block: test(parent, block) if "!!!" in block else follows(parent, block)[0] is not None

    for processor in md.parser.blockprocessors:
        method, needs = _BLOCK_NEEDS.get(type(processor), ("", ()))
        if method == "test":
            processor.test = quick_test(processor.test, needs)  # type: ignore[method-assign]
        elif method == "run":
            processor.run = quick_run(processor.run, needs)  # type: ignore[method-assign]
        elif type(processor) is AdmonitionProcessor:
            processor.test = quick_admonition(processor)  # type: ignore[method-assign]


class _LinkExtension(Extension):
    def __init__(self, state: _State) -> None:
        super().__init__()
        self.state = state

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        # After inline patterns (which create the <a>/<img>), before the toc and prettify steps.
        md.treeprocessors.register(_LinkRewriter(md, self.state), "sitegen-links", 7)
        md.treeprocessors.register(_QuickInlineProcessor(md), "inline", 20)  # replaces the stock one


class Renderer:
    """A reusable Python-Markdown instance; `render` is pure given (folder, text, index)."""

    def __init__(self, index: LinkIndex) -> None:
        self.state = _State()
        self.state.index = index
        self.md = markdown.Markdown(extensions=[*EXTENSIONS, _LinkExtension(self.state)], extension_configs=EXTENSION_CONFIGS, output_format="html")
        _skip_hopeless_blocks(self.md)
        # Asked about every element, a few hundred times a text: a set, not the stock list, answers.
        block_level = frozenset(self.md.block_level_elements)
        self.md.is_block_level = lambda tag: isinstance(tag, str) and tag.lower().rstrip("/") in block_level  # type: ignore[method-assign]
        self.toc = self.md.treeprocessors["toc"]
        self.toc_marker = self.toc.marker

    def render(self, folder: str, text: str) -> Rendered:
        self.state.folder = folder
        self.state.rendered = rendered = Rendered(b"", b"")
        self.md.reset()
        # The toc step walks the whole tree for a paragraph that is just "[TOC]": only when the text has one.
        self.toc.marker = self.toc_marker if self.toc_marker in text else ""
        rendered.packed = lz4.block.compress(self.md.convert(text).encode())
        rendered.packed_toc = pickle.dumps(getattr(self.md, "toc_tokens", []), protocol=pickle.HIGHEST_PROTOCOL)
        rendered.pages = sorted(set(rendered.pages))
        rendered.files = sorted(set(rendered.files))
        return rendered


def pygments_css() -> str:
    return HtmlFormatter(style="friendly").get_style_defs(".highlight")


_worker: Renderer | None = None


def _init_worker(index: LinkIndex) -> None:
    global _worker
    quiet_worker()
    _worker = Renderer(index)


def _render_chunk(chunk: list[tuple[str, str, str]]) -> list[tuple[str, Rendered]]:
    assert _worker is not None
    return [(key, _worker.render(folder, text)) for key, folder, text in chunk]


# Below this many texts, starting worker processes costs more than it saves.
PARALLEL_THRESHOLD = 48


def render_all(jobs: list[tuple[str, str, str]], index: LinkIndex, workers: int) -> dict[str, Rendered]:
    """Render (key, folder, text) jobs, over processes when the site is large enough."""
    if workers <= 1 or len(jobs) < PARALLEL_THRESHOLD:
        renderer = Renderer(index)
        return {key: renderer.render(folder, text) for key, folder, text in jobs}
    size = max(8, min(64, len(jobs) // (workers * 4) or 1))
    chunks = [jobs[i : i + size] for i in range(0, len(jobs), size)]
    results: dict[str, Rendered] = {}
    with forking(), ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(index,)) as pool:
        try:
            for chunk in pool.map(_render_chunk, chunks):
                results.update(chunk)
        except BaseException:  # (Ctrl-C, SIGTERM): the chunks not started yet are dropped, not rendered
            pool.shutdown(cancel_futures=True)
            raise
    return results
