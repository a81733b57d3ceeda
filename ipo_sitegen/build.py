"""The build pipeline: config → discover → gate → render → write → audit → swap.

`plan` runs every stage that reads and checks (so `sitegen check` shares it); `build` adds the
writing, the audit and the swap. The CLI only parses options and calls these.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import posixpath
import re
import subprocess
import time
import traceback
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass, field
from datetime import date, datetime, timezone
from functools import cached_property, lru_cache, partial
from html import escape, unescape
from pathlib import Path
from typing import AbstractSet, Callable, TypeVar

from jinja2 import TemplateError, TemplateSyntaxError

from . import links
from .audit import CleanFiles, KnownSecrets, ScanJob, bundle_files, bundle_fingerprints, code_version, confirmed, scan
from .cache import CACHE_DIR, RenderCache, cache_folder, render_key, replacing, still_valid
from .changes import CHANGES_FOLDER, HISTORY_FOLDER, ChangeViews, change_url, history_url
from .config import CONFIG_NAME as CONFIG_FILE
from .config import Bundle, Config, load_config
from .content import Page, Site
from .discover import RESERVED_ROOT, decode_utf8, discover, utf8_name
from .errors import BuildError, Problem, Problems, UsageError
from .gate import Gate
from .history import GitLog, History, history_problems, mailmap_state, read_git
from .markup import LinkIndex, Rendered, pygments_css, render_all
from .nav import Navigation
from .render import ThemeRenderer, label_url, make_environment, theme_static_dir
from .report import Reporter
from .search import SearchIndex, save_index, saved_index_name, write_search
from .workers import Beside, default_workers, forking, quiet_worker
from .write import BundleWriter, check_output, clean_stale_staging, manifest_files, remove, staging_folder, swap_in


@dataclass
class Options:
    bundles: tuple[str, ...] = ()  # empty: every configured bundle
    out: Path | None = None
    drafts: bool = False
    strict: bool = False
    jobs: int | None = None
    audit: bool = True
    cache: bool = True  # reuse .sitegen-cache/ (never changes the output, only skips work)


@dataclass
class Plan:
    """Everything known before writing: the checked site and each page's rendered body per bundle."""

    config: Config
    site: Site
    gate: Gate
    bundles: list[Bundle]
    problems: Problems
    rendered: dict[tuple[str, str], Rendered] = field(default_factory=dict)  # (source, bundle) -> body
    renders: dict[str, Rendered] = field(default_factory=dict)  # render key -> body
    attachments: dict[str, set[str]] = field(default_factory=dict)  # bundle -> attachment sources
    log: GitLog | None = None
    # Each bundle's search index as written, kept only when asked for (`serve` updates it after an
    # edit); a plan that keeps them has its search indexes made in this process, not a forked one.
    search: dict[str, SearchIndex] | None = None
    # Whether the process that makes a bundle's search index saves it in the cache, for the next
    # build to update (see search.save_index).
    save_search: bool = False
    # What the audit worked out, kept for the next audit by a plan that keeps its search indexes
    # (`serve`: see audit.Secrets.known).
    secrets: KnownSecrets | None = None

    @cached_property
    def history(self) -> History | None:
        """The history views, made when first asked for: `serve` keeps the last ones while the
        commits and the pages' titles and places stay the same."""
        return History(self.config, self.site, self.gate, self.log) if self.log is not None else None


def build_date() -> date:
    """Today, or the day of SOURCE_DATE_EPOCH so that embargo decisions are reproducible (a value
    that is no time is an error: quietly taking today would make the build unreproducible)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return date.today()
    if epoch.isascii() and epoch.isdigit():  # (isdigit alone takes ١٢٣ and fullwidth digits)
        try:
            return datetime.fromtimestamp(int(epoch), tz=timezone.utc).date()
        except (ValueError, OverflowError, OSError):  # (past the year 9999)
            pass
    raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a time: give whole seconds since 1970 (e.g. $(git log -1 --format=%ct)), or unset it")


def _select(config: Config, names: tuple[str, ...]) -> list[Bundle]:
    known = [b.name for b in config.bundles]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UsageError(f"unknown bundle {', '.join(unknown)}; configured bundles: {', '.join(known)}")
    return [b for b in config.bundles if not names or b.name in names]


def _locate(page: Page, href: str) -> int | None:
    """The file line where `href` is written in the page body (for error messages): the first where
    it is a whole link target (`](href)`, `]: href`, `href="href"`), else the first that holds it
    (a target can be part of another: `guide` of `guide.md#step-1`)."""
    written = "|".join(map(re.escape, dict.fromkeys((href, escape(href, quote=False)))))  # (raw HTML writes & as &amp;)
    whole = re.compile(r"(?:\]\(\s*<?|\]:\s*<?|=\s*[\"']?)(?:" + written + r")(?=[\s)>\"']|$)")
    lines = page.body.split("\n")
    for found in (whole.search, lambda line: href in line or escape(href, quote=False) in line):
        for offset, line in enumerate(lines):
            if found(line):
                return page.body_line + offset
    return None


def read_site(root: Path, drafts: bool = False) -> tuple[Config, Site, Gate, Problems]:
    """Config, content and the gate's decisions: all that is needed to know who may see what."""
    config = load_config(root)
    problems = Problems(root=config.root)
    site = discover(config.content_dir, config.tiers, problems)
    _check_static(config, site, problems)
    _check_templates(config, problems)
    gate = Gate(config, site, problems, drafts=drafts, today=build_date())
    return config, site, gate, problems


# What an operating system, git or an editor leaves in a folder: never published.
_NOT_STATIC = re.compile(r"^(?:\.DS_Store|\._.*|Thumbs\.db|desktop\.ini|\.git.*|\..*\.sw[a-p]|.*~|#.*#)$")


def static_files(config: Config) -> list[Path]:
    """Files under static/, copied into every bundle as they are, hidden ones too (.well-known/,
    .nojekyll); not links (they may point anywhere: _check_static warns of each), nor what an
    operating system, git or an editor leaves (.DS_Store, .gitkeep, backups)."""
    folder = config.static_dir
    if not folder.is_dir():
        return []
    found = []
    for here, folders, files in os.walk(folder):  # (links seen and left out, litter folders not entered)
        folders[:] = [name for name in folders if not _NOT_STATIC.match(name) and not os.path.islink(os.path.join(here, name))]
        found += [Path(here, name) for name in files if not _NOT_STATIC.match(name) and not os.path.islink(os.path.join(here, name))]
    return sorted(found)


def _check_templates(config: Config, problems: Problems) -> None:
    """The site's templates must be UTF-8, as Jinja2 reads them (it would stop at the first page
    that uses one, with no name)."""
    if config.templates_dir.is_dir():
        for path in sorted(config.templates_dir.rglob("*")):
            if utf8_name(path, problems) and path.is_file() and path.suffix in (".html", ".xml"):
                decode_utf8(path.read_bytes(), path, problems)


def _check_static(config: Config, site: Site, problems: Problems) -> None:
    """A static file must not take the place of a page, an attachment or a generated file."""
    taken = {p.url + "index.html": f"content/{s}" for s, p in site.pages.items()}
    taken.update({a.url: f"content/{s}" for s, a in site.attachments.items()})
    for here, folders, files in os.walk(config.static_dir):
        for name in folders + files:
            if os.path.islink(os.path.join(here, name)):
                problems.warning(Path(here, name), None, "a link in static/ is not copied (it may point anywhere)", "copy the file or folder itself into static/")
            utf8_name(Path(here, name), problems)
    for path in static_files(config):
        name = path.relative_to(config.static_dir).as_posix()
        if name in taken:
            problems.error(path, None, f"static file '{name}' would replace the output of {taken[name]}", "rename or move the static file")
        elif name.split("/", 1)[0] in RESERVED_ROOT:
            problems.error(path, None, f"'{name}' is a file the generator writes itself", "rename or move the static file (e.g. into static/files/)")


def plan(root: Path, options: Options, reporter: Reporter | None = None, known: dict[str, Rendered] | None = None) -> Plan:
    """Read, gate and render the site; raise BuildError with every problem when it has errors.

    `known` are the bodies of an earlier plan by render key (`serve` keeps them in memory: cheaper
    than the cache on disk); like the cache, they are used only where they are still valid."""
    reporter = reporter or Reporter(quiet=True)
    with ThreadPoolExecutor(1) as beside:
        # git reads the history (its own processes, half a second at 2,000 commits) while this
        # process reads the site: the two are independent until the history is gated.
        history = beside.submit(read_git, root.resolve())
        config, site, gate, problems = read_site(root, options.drafts)
        reporter.step("reading git history")
        log = history.result()
    bundles = _select(config, options.bundles)
    result = Plan(config, site, gate, bundles, problems)
    history_problems(log, site, config, problems)
    result.log = log

    # Render each distinct gated text once, whichever bundles share it.
    jobs: dict[str, tuple[str, str, str]] = {}
    keys: dict[tuple[str, str], str] = {}
    for bundle in bundles:
        for page in gate.pages_for(bundle):
            text = gate.text(page, bundle)
            key = render_key(page.folder, text)
            jobs.setdefault(key, (key, page.folder, text))
            keys[(page.source, bundle.name)] = key
    index = LinkIndex(frozenset(site.pages), frozenset(site.attachments))
    cache = RenderCache(config.root) if options.cache else None
    found = {k: known[k] for k in jobs if k in known} if known else {}
    missing = sorted(k for k in jobs if k not in found)
    if cache and missing:
        found.update(cache.get_many(missing))
    rendered = {k: v for k, v in found.items() if still_valid(v, jobs[k][1], index)}
    todo = sorted(job for key, job in jobs.items() if key not in rendered)
    reporter.step(f"rendering {len(todo)} of {len(jobs)} distinct texts for {len(keys)} pages ({len(rendered)} cached)")
    fresh = render_all(todo, index, options.jobs or default_workers())
    rendered.update(fresh)
    if cache:
        cache.put_many(fresh)
        if not options.bundles and known is None:  # (`serve`'s edits are forgotten at the next build)
            cache.keep_only(set(jobs))
        cache.close()
    result.rendered = {pair: rendered[key] for pair, key in keys.items()}
    result.renders = rendered

    reported: set[tuple[str, str, str]] = set()
    for (source, bundle_name), body in sorted(result.rendered.items()):
        page = site.pages[source]
        for severity, href, message, hint in body.problems:
            if (source, href, message) in reported:
                continue
            reported.add((source, href, message))
            report = problems.error if severity == "error" else problems.warning
            report(config.content_dir / source, _locate(page, href), message, hint)
        for target in body.pages:
            if not site.pages[target].published and (source, target, "draft") not in reported:
                reported.add((source, target, "draft"))
                problems.warning(config.content_dir / source, _locate(page, posixpath.basename(target)),
                                 f"link to content/{target}, which is a draft or embargoed: only its text is kept",
                                 "publish the target or remove the link")
    for source, href, target, fragment, where in missing_anchors(result.rendered):
        holding = [b.name for b in bundles if (target, b.name) in result.rendered]
        where = [name for name in holding if name in where]  # (in the order of the tiers)
        place = "" if where == holding else f" in the {', '.join(where)} bundle{'s' if len(where) > 1 else ''}, which may not see the block that holds it"
        problems.warning(config.content_dir / source, _locate(site.pages[source], href),
                         f"link to '#{fragment}' of content/{target}: no heading or element there has that id{place}",
                         "use the anchor of the heading's ¶ link (its words in lower case, joined by '-')")
    for bundle in bundles:
        wanted = {f for page in gate.pages_for(bundle) for f in result.rendered[(page.source, bundle.name)].files}
        result.attachments[bundle.name] = {f for f in wanted if gate.attachment_allowed(site.attachments[f], bundle)}

    if problems.has_errors(options.strict):
        raise BuildError(problems.errors + problems.warnings, "content errors")  # (all of them at once: the warnings too)
    return result


_ID = re.compile(r"""\s(?:id|name)=["']([^"']*)["']""")  # (a browser scrolls to <a name=…> too)


def missing_anchors(rendered: dict[tuple[str, str], Rendered]) -> list[tuple[str, str, str, str, list[str]]]:
    """(page source, href as written, target source, fragment, bundles) of each link to an anchor
    that the copy of its target in the same bundle lacks: the bundles where it leads nowhere (an
    anchor in a gated block is only in the copies that show it; a public link to it would carry
    its name to a page without it)."""
    headings: dict[int, set[str]] = {}  # id() of a rendered copy -> its heading ids
    elements: dict[int, set[str]] = {}  # -> every id in its HTML, read only for a copy whose headings lack one

    def has(body: Rendered, fragment: str) -> bool:
        if id(body) not in headings:
            headings[id(body)] = {token["id"] for token in _flat(body.toc)}
        if fragment in headings[id(body)]:
            return True
        if id(body) not in elements:
            elements[id(body)] = {unescape(found) for found in _ID.findall(body.html)}
        return fragment in elements[id(body)]

    missing: dict[tuple[str, str], tuple[str, str, str, str, list[str]]] = {}
    for (source, bundle), body in sorted(rendered.items()):
        for href, target, fragment in body.anchors:
            there = rendered.get((target or source, bundle))
            if there is not None and fragment.lower() != "top" and not has(there, fragment):  # (no copy: a locked link; #top: the page's top)
                missing.setdefault((source, href), (source, href, target or source, fragment, []))[4].append(bundle)
    return sorted(missing.values())


def _flat(tokens: list[dict]) -> Iterator[dict]:
    for token in tokens:
        yield token
        yield from _flat(token.get("children", []))


def _resolver(result: Plan, bundle: Bundle) -> links.Resolver:
    site, gate, config = result.site, result.gate, result.config
    here = result.attachments[bundle.name]

    def resolve(kind: str, source: str) -> tuple[str, str, str]:
        if kind == "page":
            page = site.pages[source]
            if gate.visible(page, bundle):
                return "here", page.url, ""
            low = gate.lowest_bundle(page)
            if low is None:
                return "missing", "", ""
            return "locked", (low.base_url + page.url) if low.base_url else "", low.tier
        attachment = site.attachments[source]
        if source in here:
            return "here", attachment.url, ""
        low = next((b for b in config.bundles if gate.attachment_allowed(attachment, b) and b.rank > bundle.rank), None)
        if low is None:
            return "missing", "", ""
        return "locked", (low.base_url + attachment.url) if low.base_url else "", low.tier

    return resolve


@lru_cache(maxsize=8)
def _asset_texts(static: Path, css_extra: str) -> dict[str, str]:
    files = {
        "css": ("style", "css", (static / "style.css").read_text(encoding="utf-8") + "\n/* Code highlighting (Pygments) */\n" + css_extra + "\n"),
        "js": ("site", "js", (static / "site.js").read_text(encoding="utf-8")),
    }
    return {name: (f"assets/{stem}.{hashlib.sha256(text.encode()).hexdigest()[:10]}.{ext}", text) for name, (stem, ext, text) in files.items()}


def asset_texts(config: Config) -> dict[str, str]:
    """Theme CSS (with the code-highlighting styles) and JS, fingerprinted for long caching: path -> text."""
    return dict(_asset_texts(theme_static_dir(), pygments_css()).values())


def asset_files(config: Config) -> dict[str, str]:
    """The theme's names for its assets ("css", "js") -> their fingerprinted paths."""
    return {name: path for name, (path, _) in _asset_texts(theme_static_dir(), pygments_css()).items()}


class BundleOutput:
    """Writes the files of one bundle, all of them or (for `sitegen serve`) only those a change affects."""

    def __init__(self, result: Plan, bundle: Bundle, writer: BundleWriter) -> None:
        config = result.config
        self.result, self.bundle, self.writer, self.config = result, bundle, writer, config
        self.pages = result.gate.pages_for(bundle)
        self.theme = ThemeRenderer(make_environment(config), config, bundle, Navigation(self.pages), asset_files(config))
        self.resolve = _resolver(result, bundle)
        self.views = ChangeViews(config, bundle, result.history.changes_for(bundle) if result.history else {})

    def body(self, page: Page) -> str:
        """The page's body as this bundle shows it (links finalised): for the page and for search."""
        return links.finalize(self.result.rendered[(page.source, self.bundle.name)].html, page.url, self.resolve)

    def page(self, page: Page) -> None:
        views, config = self.views, self.config
        extra = {"updated": views.updated(page.source, page.url)}
        if page.is_home:
            extra.update(recent=views.recent(page.url, config.history.recent),
                         recent_all=links.relative_url(page.url, "recent/"), feed=links.relative_url(page.url, "feed.xml"))
        toc = self.result.rendered[(page.source, self.bundle.name)].toc
        self.writer.write(page.url + "index.html", self.theme.page(page, self.body(page), toc, extra))

    def labels(self, only: set[str] | None = None) -> None:
        """The label index and each label's page (with `only`: those labels; gone ones are removed)."""
        tagged: dict[str, list[Page]] = defaultdict(list)
        for page in self.pages:
            for label in page.labels:
                tagged[label].append(page)
        self.writer.write("labels/index.html", self.theme.labels_index(tagged))
        for label in sorted(tagged if only is None else only):
            if label in tagged:
                self.writer.write(label_url(label) + "index.html", self.theme.label(label, tagged[label]))
            else:
                self.writer.remove(label_url(label) + "index.html")

    def history(self, only: set[str] | None = None) -> None:
        """recent/, feed.xml, and each page's history and change pages (with `only`: those pages')."""
        self.recent()
        for source in sorted(self.views.changes):
            if only is None or source in only:
                self.page_history(source)

    def recent(self) -> None:
        theme, views, writer = self.theme, self.views, self.writer
        writer.write("recent/index.html", theme.render("recent.html", "recent/", "Recently updated",
                                                       days=views.recent_by_day("recent/"), feed="../feed.xml"))
        writer.write("feed.xml", theme.render("feed.xml", "", "feed", feed=views.feed()))

    def page_history(self, source: str) -> None:
        """A page's history page and the page of each of its changes."""
        theme, views, writer = self.theme, self.views, self.writer
        changes = views.changes.get(source)
        if not changes:
            return
        page = changes[-1].page
        here = HISTORY_FOLDER  # the folder of the file, which its links are relative to
        writer.write(history_url(page.url), theme.render(
            "history.html", here, f"History of {page.title}", page_title=page.title,
            page_href=links.relative_url(here, page.url), items=views.page_history(source, here)))
        here = CHANGES_FOLDER
        for change in changes:
            writer.write(change_url(change), theme.render(
                "change.html", here, f"Change to {page.title}", item=views.item(change, here), rows=views.diff(change),
                history=links.relative_url(here, history_url(page.url))))

    def attachments(self) -> None:
        for source in sorted(self.result.attachments[self.bundle.name]):
            self.writer.copy(self.result.site.attachments[source].url, self.config.content_dir / source)

    def search(self, previous: SearchIndex | None = None, changed: AbstractSet[str] = frozenset()) -> None:
        """The search index; with `previous`, updated from it for the pages of `changed` (see write_search)."""
        dates = {s: items[-1].commit.time for s, items in self.views.changes.items() if items}
        # Each body is made when the index reads it and then dropped: a large bundle's bodies at once
        # would be a hundred megabytes or more. A rendered text that references no attachment has the
        # text of its finalised body (a link keeps its words whether it is locked or not; a locked
        # image shows its alt text), so the index reads it as rendered, known by its compressed
        # bytes: a text that several bundles or pages show is made and read once.
        bodies: dict[str, str | Callable[[], str]] = {}
        text_keys: dict[str, bytes] = {}
        for page in self.pages:
            rendered = self.result.rendered[(page.source, self.bundle.name)]
            if rendered.files:
                bodies[page.source] = partial(self.body, page)
            else:
                bodies[page.source] = partial(getattr, rendered, "html")
                text_keys[page.source] = hashlib.sha1(b"rendered\0" + rendered.packed).digest()
        index = write_search(self.writer, self.theme, self.pages, bodies, dates, previous, changed, text_keys)
        if self.result.search is not None:
            self.result.search[self.bundle.name] = index
        if self.result.save_search:
            with replacing(self.config.root, saved_index_name(self.bundle.name)) as temporary:
                save_index(index, temporary)

    def lists(self) -> None:
        self.writer.write("sitemap.xml", self.theme.sitemap(self.pages))

    def everything(self) -> None:
        """Write every file of the bundle."""
        self.shared()
        self.pages_share(0, 1)

    def pages_share(self, number: int, shares: int) -> None:
        """Every `shares`-th page (from the `number`-th) with its history: the bulk of a bundle,
        split so that processes can share it."""
        for page in self.pages[number::shares]:
            self.page(page)
            self.page_history(page.source)

    def shared(self) -> None:
        """The files made from all pages at once: lists, feeds, search, and the fixed files."""
        for path in static_files(self.config):
            self.writer.copy(path.relative_to(self.config.static_dir).as_posix(), path)
        for path, text in asset_texts(self.config).items():
            self.writer.write(path, text)
        self.recent()
        self.labels()
        self.attachments()
        self.search()
        self.writer.write("404.html", self.theme.not_found())
        self.lists()
        self.writer.write("robots.txt", self.theme.robots())


_writing: tuple[Plan, Path, Path] | None = None  # what forked writers work on (inherited, not pickled)


def _write_part(task: tuple[str | None, int, int]) -> tuple[list[tuple[str, dict[str, str]]], Problem | None]:
    """One part of the writing, in a worker (or in this process: see Plan.search): (bundle, hashes
    of the files written) for each bundle it wrote into, and a template error.

    A task (bundle, number, shares) writes every `shares`-th page of the bundle from the
    `number`-th, with their history. The task (None, …) writes the files made from all pages at once
    for every bundle, from the least restricted: in one process, the search index works out the
    terms of a page text once for all the bundles that show it."""
    assert _writing is not None
    result, staging, out = _writing
    name, number, shares = task
    written = []
    for bundle in sorted(result.bundles, key=lambda b: b.rank):
        if name is None or bundle.name == name:
            writer = BundleWriter(staging / bundle.name, out / bundle.name)
            output = BundleOutput(result, bundle, writer)
            try:
                if name is None:
                    output.shared()
                else:
                    output.pages_share(number, shares)
            except Exception as exc:  # noqa: BLE001 - a template's error is sent back as a problem, any other raised
                problem = template_failure(exc, result.config)
                if problem is None:
                    raise
                return [], problem
            written.append((bundle.name, writer.hashes))
    return written, None


PARALLEL_PAGES = 400  # below this many pages in all bundles, one process writes everything
PAGE_SHARES = 4  # parts of each bundle's pages per process


T = TypeVar("T")


def write_bundles(result: Plan, staging: Path, out: Path, workers: int,
                  meanwhile: Callable[[], T] = lambda: None) -> tuple[dict[str, int], T]:
    """Write every selected bundle under `staging` with its manifest; return the pages per bundle
    and what `meanwhile` returns.

    A large site is written by forked processes: each bundle's pages (with their history) in
    PAGE_SHARES shares per worker, and the lists, feeds and search indexes of all bundles as one
    more part (in this process when the plan keeps its search indexes); `meanwhile` runs in this
    process while they write (the audit prepares its fingerprints there)."""
    counts = {b.name: len(result.gate.pages_for(b)) for b in result.bundles}
    if workers <= 1 or sum(counts.values()) < PARALLEL_PAGES:
        for bundle in result.bundles:
            writer = BundleWriter(staging / bundle.name, out / bundle.name)
            BundleOutput(result, bundle, writer).everything()
            writer.finish(bundle.name, bundle.tier)
        return counts, meanwhile()
    global _writing
    if result.history is not None:
        for bundle in result.bundles:
            result.history.changes_for(bundle)  # computed once, here, rather than in every worker
    shares = PAGE_SHARES * workers  # small parts: no process waits long for the last one
    shared: list[tuple[str | None, int, int]] = [(None, 0, 0)]  # the longest part: first
    tasks = [(b.name, n, shares) for b in result.bundles for n in range(shares)]
    here = shared if result.search is not None else []
    _writing = (result, staging, out)
    try:
        # (Ctrl-C is the parent's to handle: workers ignore it)
        with forking(), multiprocessing.get_context("fork").Pool(workers, quiet_worker) as pool:
            pending = pool.map_async(_write_part, tasks if here else shared + tasks, chunksize=1)
            parts = [_write_part(task) for task in here]
            extra = meanwhile()
            parts += pending.get()
    finally:
        _writing = None
    errors = [problem for _, problem in parts if problem is not None]
    if errors:
        raise BuildError(errors[:1], "template error")
    for bundle in result.bundles:
        writer = BundleWriter(staging / bundle.name)
        for name, hashes in (pair for written, _ in parts for pair in written):
            if name == bundle.name:
                twice = writer.hashes.keys() & hashes.keys()
                if twice:
                    raise ValueError(f"two outputs for the same file: {min(twice)}")
                writer.hashes.update(hashes)
        writer.finish(bundle.name, bundle.tier)
    return counts, extra


def template_failure(exc: Exception, config: Config) -> Problem | None:
    """The problem of an error raised while a template rendered: Jinja2's own, or one that an
    expression of the template raised (`1/0`, `rows|length` when rows is none, a macro calling
    itself); None for any other error, which goes up as it is."""
    if isinstance(exc, TemplateError) or any(frame.filename.endswith((".html", ".xml")) for frame in traceback.extract_tb(exc.__traceback__)):
        return template_problem(exc, config)
    return None


def template_problem(exc: Exception, config: Config) -> Problem:
    """A template's error as a content problem naming the template file and line."""
    name = getattr(exc, "filename", None) or getattr(exc, "name", None) or "templates"
    line = getattr(exc, "lineno", None)
    if isinstance(exc, TemplateSyntaxError) and name and Path(name).is_absolute():
        try:
            name = Path(name).relative_to(config.root).as_posix()
        except ValueError:
            name = f"(built-in theme) {Path(name).name}"
    elif not isinstance(exc, TemplateSyntaxError):
        line = None
        for frame in reversed(traceback.extract_tb(exc.__traceback__)):
            if frame.filename.endswith((".html", ".xml")):
                name, line = frame.filename, frame.lineno
                try:
                    name = Path(name).relative_to(config.root).as_posix()
                except ValueError:
                    name = f"(built-in theme) {Path(name).name}"
                break
    message = getattr(exc, "message", None) if isinstance(exc, TemplateError) else f"{type(exc).__name__}: {exc}"
    return Problem(str(name), line, f"template error: {message or exc}", "fix the template; see https://jinja.palletsprojects.com/templates/")


@dataclass
class BuildResult:
    out: Path
    pages: dict[str, int]
    seconds: float
    warnings: list
    plan: Plan | None = None


def build(root: Path, options: Options, reporter: Reporter | None = None, need_plan: bool = False) -> BuildResult:
    """Build the selected bundles into `options.out` (default `ROOT/build`); all or nothing.

    When nothing changed since the last build the output is only verified, and the result has no
    plan, unless `need_plan` (`serve` works from the plan). When the last build left its state in
    the cache (see update.SavedBuild), only what the changes touch is written again."""
    from .update import SavedBuild, saved_facts  # (it builds on this module)

    reporter = reporter or Reporter(quiet=True)
    started = time.perf_counter()
    files = input_files(root) if options.cache else None
    site_key = site_fingerprint(root, options.drafts, files) if files is not None else None
    fingerprint = inputs_fingerprint(site_key, options) if site_key else None
    unchanged = _unchanged_output(root, fingerprint, options) if fingerprint and not need_plan else None
    if unchanged is not None:
        reporter.step("nothing changed since the last build: output verified against its manifests")
        return BuildResult(unchanged[0], unchanged[1], time.perf_counter() - started, unchanged[2])
    result = plan(root, options, reporter)
    out = (options.out or result.config.root / "build").resolve()
    config = result.config
    sources = [config.content_dir, config.templates_dir, config.static_dir, config.root / ".git", config.root / CACHE_DIR]
    check_output(out, [b.name for b in result.bundles], [source.resolve() for source in sources])
    clean_stale_staging(out)
    workers = options.jobs or default_workers()
    saved = SavedBuild.load(root, options, out) if files is not None and not need_plan else None
    facts = saved_facts(result) if files is not None and not need_plan else None  # (made once: compared, then saved; `serve` saves none)
    work = saved.work(result, files, facts) if saved is not None and files is not None and facts is not None else None
    if need_plan:
        result.search = {}  # `serve` updates them after an edit
    if result.history is not None and not need_plan:
        result.history.release_texts(result.bundles)
    remember = partial(SavedBuild.save, root, options, out, result, files, facts) if files is not None and facts is not None else None
    counts = None
    if saved is not None and work is not None and not work.full and options.audit:  # (the audit checks the files it takes)
        reporter.step(f"updating {', '.join(b.name for b in result.bundles)} from the last build")
        counts = _write_and_audit(result, options, out, workers, site_key, reporter, remember, partial(saved.stage, result, work))
    if counts is None:  # (also when the last output was changed since it was built)
        reporter.step(f"writing {', '.join(b.name for b in result.bundles)}")
        counts = _write_and_audit(result, options, out, workers, site_key, reporter, remember, None)
    assert counts is not None
    if fingerprint:
        _remember_output(root, fingerprint, out, counts, result.problems.warnings)
    return BuildResult(out, counts, time.perf_counter() - started, result.problems.warnings, result)


def _write_and_audit(result: Plan, options: Options, out: Path, workers: int, site_key: str | None, reporter: Reporter,
                     remember: Callable[[Path], None] | None, stage: Callable[[Path, Path, int], dict[str, int] | None] | None
                     ) -> dict[str, int] | None:
    """Write the bundles into a staging folder (all of them, or with `stage`, updated from the last
    output), audit them and swap them in: the pages per bundle. None, and nothing swapped in, when
    a file `stage` takes from the last output is missing or no longer has the bytes its manifest lists.
    With `remember`, leave the state of the build (staged in the folder it is given) for the next one."""
    staging = staging_folder(out)
    result.save_search = remember is not None and result.search is None  # (`serve` keeps its plan and indexes in memory)
    try:
        if stage is None:  # (the fingerprints are worked out here while the workers write)
            fingerprints = partial(bundle_fingerprints, result, site_key, full_build=True) if options.audit else lambda: None
            counts, prints = write_bundles(result, staging, out, workers, fingerprints)
        else:
            # Staged in a forked process while this one works out the fingerprints: the search indexes
            # it loads one by one would otherwise stay in this process's memory, which the audit's
            # workers inherit.
            beside = Beside(partial(_stage, result, stage, staging, out, workers), workers)
            try:
                # (the staging takes a core for a part of the time: the lookups use every core)
                prints = bundle_fingerprints(result, site_key, workers) if options.audit else None
                staged, problem = beside.get()
            finally:
                beside.close()
            if problem is not None:
                raise BuildError([problem], "template error")
            if staged is None:
                remove(staging)
                return None
            counts = staged
        if prints is not None:
            reporter.step("auditing")
            jobs = [ScanJob(staging / b.name, b, prints[b.name], bundle_files(staging / b.name),
                            manifest_files(staging / b.name) if stage else None) for b in result.bundles]
            leaks, changed = scan(jobs, workers, CleanFiles(result.config.root, full_build=stage is None) if options.cache else None)
            if changed:
                remove(staging)
                return None
            leaks = confirmed(leaks, jobs, partial(bundle_fingerprints, result, site_key, workers, exact=True))
            if leaks:
                raise BuildError([leak.problem() for leak in leaks], "leaks found")
        if result.save_search and remember is not None:
            remember(staging)
        swap_in(staging, out, [b.name for b in result.bundles], cache_folder(result.config.root) / "trash" if options.cache else None)
    except BaseException as exc:
        remove(staging)
        problem = template_failure(exc, result.config) if isinstance(exc, Exception) and not isinstance(exc, BuildError) else None
        if problem is not None:
            raise BuildError([problem], "template error") from exc
        raise
    return counts


def _stage(result: Plan, stage: Callable[[Path, Path, int], dict[str, int] | None], staging: Path, out: Path,
           workers: int) -> tuple[dict[str, int] | None, Problem | None]:
    """`stage`, with a template error as a problem (what a forked process can send back)."""
    try:
        return stage(staging, out, workers), None
    except Exception as exc:  # noqa: BLE001 - see _write_part
        problem = template_failure(exc, result.config)
        if problem is None:
            raise
        return None, problem


def input_files(root: Path) -> dict[str, str]:
    """Everything the site is read from (content, templates, static files, the config): path ->
    SHA-256 of a file's bytes, "link:TARGET" for a link, "" for a folder."""
    root = root.resolve()
    files: dict[str, str] = {}
    for folder in ("content", "templates", "static", CONFIG_FILE):
        base = root / folder
        paths = [base] if base.is_file() else sorted(_entries(base)) if base.is_dir() else []
        for path in paths:  # every entry: files by content, links by target, folders by name
            name = path.relative_to(root).as_posix()
            if path.is_symlink():
                files[name] = "link:" + os.readlink(path)
            elif path.is_file():
                files[name] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                files[name] = ""
    return files


def site_fingerprint(root: Path, drafts: bool = False, files: dict[str, str] | None = None) -> str:
    """A hash of everything the site is read from (its `input_files`, the git state of content/),
    of the day (embargoes) and of the generator's code: the same site always gives the same
    pages, gate decisions and history."""
    from . import __version__

    root = root.resolve()
    digest = hashlib.sha256(repr((__version__, drafts, build_date().isoformat(), os.environ.get("SOURCE_DATE_EPOCH"))).encode()
                            + code_version())  # (the code itself: an install from git keeps its version between commits)
    git = subprocess.run(["git", "status", "--porcelain=v2", "--branch", "--", "content"], cwd=root, capture_output=True)
    digest.update(git.stdout + mailmap_state(root).encode())
    for name, value in sorted((input_files(root) if files is None else files).items()):
        digest.update(f"{name}\0{value}\0".encode("utf-8", "surrogateescape"))  # (a name may not be UTF-8: discover reports it)
    return digest.hexdigest()


def inputs_fingerprint(site: str, options: Options) -> str:
    """A hash of everything a build reads (`site`: its site_fingerprint) and of what it was asked
    for: the same inputs always give the same bytes (a build is reproducible), so a build whose
    inputs did not change has nothing to do."""
    return hashlib.sha256(repr((site, options.bundles, options.strict, str(options.out))).encode()).hexdigest()


def _entries(folder: Path) -> list[Path]:
    """Every file, folder and link below `folder`, never following links (they may loop)."""
    found = []
    for here, folders, files in os.walk(folder):
        found += [Path(here) / name for name in folders + files]
    return found


def _last_build_file(root: Path) -> Path:
    return root.resolve() / CACHE_DIR / "last-build.json"


def _unchanged_output(root: Path, fingerprint: str, options: Options) -> tuple[Path, dict[str, int], list[Problem]] | None:
    """The last build's result if its inputs are the same and its output is intact, byte for byte."""
    try:
        last = json.loads(_last_build_file(root).read_text(encoding="utf-8"))
        if last["fingerprint"] != fingerprint:
            return None
        out = Path(last["out"])
        workers = options.jobs or default_workers()
        for name in last["pages"]:
            if not _intact(out / name, manifest_files(out / name), workers):
                return None
        return out, last["pages"], [Problem(*p) for p in last["warnings"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _intact(folder: Path, files: dict[str, str], workers: int) -> bool:
    """Does `folder` hold exactly these files (path -> SHA-256) and its manifest, byte for byte?
    Hashed over threads (file reads and hashlib release the GIL): a large site's bundles are
    hundreds of megabytes, and this check is all a build with unchanged inputs does."""
    if set(bundle_files(folder)) != set(files) | {"manifest.json"}:
        return False
    base, items = f"{folder}{os.sep}", sorted(files.items())

    def same(share: int) -> bool:
        for path, digest in items[share::workers]:
            with open(base + path, "rb") as file:
                if hashlib.sha256(file.read()).hexdigest() != digest:
                    return False
        return True

    with ThreadPoolExecutor(workers) as pool:
        return all(pool.map(same, range(workers)))


def _remember_output(root: Path, fingerprint: str, out: Path, pages: dict[str, int], warnings: list[Problem]) -> None:
    with replacing(root.resolve(), _last_build_file(root).name) as temporary:
        temporary.write_text(json.dumps({"fingerprint": fingerprint, "out": str(out), "pages": pages,
                                         "warnings": [list(astuple(w)) for w in warnings]}), encoding="utf-8")
