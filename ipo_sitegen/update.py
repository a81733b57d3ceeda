"""Updating built bundles in place of building them again: after an edit under `sitegen serve`
(live.py), and by `sitegen build` when the last build left its state in the cache.

`rebuild.affected` says what an edit touches; `update_bundle` writes exactly that into a bundle
whose other files are those of the last build, and removes what the last build wrote that is gone
(a page that left the bundle or moved, history files of changes it no longer has). It needs to
know only a few things of the last build — `Before` — so that it can update from a build made in
this process or from one made by another.

A warm `sitegen build` (`SavedBuild`) stages each bundle as hard links to the last build's files,
updates the links it must (a write replaces a link, it never writes through it), and then audits
and swaps in the staged bundles like any build: the last output stays as it was until the swap.
If a file of the last output no longer has the bytes its manifest lists, the build starts again
from nothing.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AbstractSet, NamedTuple

from .audit import code_version
from .build import BundleOutput, Options, Plan
from .cache import CACHE_DIR, replacing
from .changes import history_files
from .content import index_source
from .rebuild import PageFacts, Work, affected
from .search import load_index, saved_index_name
from .write import BundleWriter, manifest_files


def facts_of(result: Plan) -> dict[str, PageFacts]:
    """What `rebuild.affected` compares between two builds."""
    facts: dict[str, PageFacts] = {}
    for source, page in result.site.pages.items():
        bodies = [(b.name, result.rendered.get((source, b.name))) for b in result.bundles]
        targets = sorted({t for _, r in bodies if r is not None for t in (*r.pages, *r.files)})
        facts[source] = PageFacts(page.title, page.url, page.rank, page.published, page.labels, page.weight, page.summary,
                                  tuple(r.packed for _, r in bodies if r is not None), tuple(targets))
    return facts


@dataclass
class Before:
    """What an update needs of the build it updates: each page's URL, the pages each bundle held,
    and what each page's history showed in each bundle (worked out when first asked for, from `plan`)."""

    urls: dict[str, str]  # source -> URL
    held: dict[str, frozenset[str]]  # bundle -> the sources it held
    histories: dict[str, dict[str, PageHistory]] = field(default_factory=dict)  # bundle -> source -> its history there
    plan: Plan | None = None

    @classmethod
    def of(cls, plan: Plan) -> Before:
        return cls({source: page.url for source, page in plan.site.pages.items()},
                   {b.name: frozenset(p.source for p in plan.gate.pages_for(b)) for b in plan.bundles}, {}, plan)

    def history(self, bundle: str, sources: AbstractSet[str] | None = None) -> dict[str, PageHistory]:
        """The history of every page of the bundle, or only of `sources` (then the others are not worked out)."""
        if bundle in self.histories or self.plan is None:
            every = self.histories.get(bundle, {})
            return every if sources is None else {source: every[source] for source in sources if source in every}
        if sources is not None:
            return histories(self.plan, bundle, sources)
        self.histories[bundle] = histories(self.plan, bundle)
        return self.histories[bundle]

    def detached(self) -> Before:
        """Everything worked out, without the plan: what a build saves for the next."""
        for name in self.held:
            self.history(name)
        return replace(self, plan=None)


class PageHistory(NamedTuple):
    files: frozenset[str]  # its history page and change pages
    shown: bytes  # a digest of what they and the page's "last updated" show of each change


def histories(plan: Plan, bundle: str, sources: AbstractSet[str] | None = None) -> dict[str, PageHistory]:
    """Each page's history in a bundle, as far as a new commit can change it: the commits (with
    their date, author as shown, message and the page's title and URL then) decide the texts of
    the change pages, the pages' audiences deciding the rest (and any change of those is an edit
    of the page: `rebuild.affected` sees it)."""
    if plan.history is None:
        return {}
    out = {}
    every = plan.history.changes_for(plan.config.bundle(bundle))
    for source, changes in every.items() if sources is None else ((s, every[s]) for s in sorted(sources) if s in every):
        shown = repr([(c.commit.sha, c.commit.time, c.commit.author, c.message, c.title, c.page.url, c.before is None) for c in changes])
        out[source] = PageHistory(frozenset(history_files(changes)), hashlib.blake2b(shown.encode(), digest_size=16).digest())
    return out


def update_bundle(output: BundleOutput, work: Work, before: Before, head_changed: bool) -> None:
    """Write what `work` says into a bundle that holds the files of the build `before` describes
    (`output` writes into it), and remove those that are gone. After new commits, also the pages
    whose history shows something else, and the home page with its recent changes."""
    new, bundle, writer = output.result, output.bundle, output.writer
    held = before.held.get(bundle.name, frozenset())
    pages, history = set(work.pages), set(work.pages)
    if head_changed:
        old_histories, now = before.history(bundle.name), histories(new, bundle.name)
        history = {source for source in old_histories.keys() | now.keys() if old_histories.get(source) != now.get(source)}
        pages |= history | {index_source("")}  # (the home page lists the recent changes)
    else:  # (`serve` after an edit: only those of the pages it touched are worked out)
        old_histories = before.history(bundle.name, history) if work.history else {}
    for source in sorted(pages):
        page = new.site.pages.get(source)
        if page is not None and new.gate.visible(page, bundle):
            output.page(page)
    for source in sorted(pages & held):  # pages that left the bundle or moved (unless another took the URL)
        name = before.urls[source] + "index.html"
        if name not in writer.written:
            writer.remove(name)
    if work.labels or work.lists:
        output.labels(work.labels)
    if work.lists:
        output.lists()
    if work.history or head_changed:
        output.history(history)
        # History and change pages of a page that left the bundle, moved or lost changes.
        for source in history & old_histories.keys():
            for name in old_histories[source].files - writer.written:
                writer.remove(name)
    if work.attachments:
        output.attachments()


_STATE = "build-state.pickle"
_STATE_FORMAT = 3


@dataclass
class SavedBuild:
    """What a build leaves in `.sitegen-cache/` for the next one to update its output from: the
    facts and `Before` of its pages, its git HEAD and what named its authors (.mailmap), and the
    digest of each input file and of each bundle's manifest (the output it describes). The search
    indexes are saved apart, by the process that made them (see search.save_index)."""

    key: str
    facts: dict[str, PageFacts]
    before: Before
    head: str | None
    mailmap: str
    files: dict[str, str]
    manifests: dict[str, str]

    @staticmethod
    def key_of(options: Options, out: Path) -> str:
        # Not the day: it decides only whether each page is published (embargoes), which is one of
        # its facts, so the first build of a day updates the last output like any other.
        return hashlib.sha256(repr((_STATE_FORMAT, options.bundles, options.drafts, options.strict, str(out))).encode()
                              + code_version()).hexdigest()

    @classmethod
    def load(cls, root: Path, options: Options, out: Path) -> SavedBuild | None:
        """The state the last build left, if it was asked for the same and its output is still the one it wrote."""
        try:
            with open(root / CACHE_DIR / _STATE, "rb") as file:
                saved = pickle.load(file)
            if not isinstance(saved, cls) or saved.key != cls.key_of(options, out):
                return None
            for name, digest in saved.manifests.items():
                if _digest_of(out / name / "manifest.json") != digest:
                    return None
            return saved
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
            return None

    @classmethod
    def save(cls, root: Path, options: Options, out: Path, result: Plan, files: dict[str, str], facts: dict[str, PageFacts],
             staging: Path) -> None:
        """Leave the state of this build (`facts`: its saved_facts), whose bundles are staged in
        `staging` (and go to `out`), for the next one."""
        state = cls(cls.key_of(options, out), facts, Before.of(result).detached(),
                    result.log.head if result.log else None, result.log.mailmap if result.log else "", files,
                    {b.name: _digest_of(staging / b.name / "manifest.json") for b in result.bundles})
        with replacing(root.resolve(), _STATE) as temporary, open(temporary, "wb") as file:
            pickle.dump(state, file, protocol=pickle.HIGHEST_PROTOCOL)

    def work(self, result: Plan, files: dict[str, str], facts: dict[str, PageFacts]) -> Work:
        """What the build of `result` (whose input files have these digests, and `facts` its
        saved_facts) must write over this one's output."""
        changed = {path for path in self.files.keys() | files.keys() if self.files.get(path) != files.get(path)}
        head = result.log.head if result.log else None
        work = affected(self.facts, facts, changed, head != self.head)
        if {b.name for b in result.bundles} != self.before.held.keys() or (result.log.mailmap if result.log else "") != self.mailmap:
            work.full = True  # (authors renamed by .mailmap: rare enough to write everything again)
        return work

    def stage(self, result: Plan, work: Work, staging: Path, out: Path, workers: int) -> dict[str, int] | None:
        """Each bundle under `staging`: the last build's files as hard links, updated by `work`;
        None if a file of the last output is missing."""
        head_changed = (result.log.head if result.log else None) != self.head
        for bundle in result.bundles:
            listed = manifest_files(out / bundle.name)
            try:
                _link_all(out / bundle.name, staging / bundle.name, listed, workers)
            except OSError:
                return None
            writer = BundleWriter(staging / bundle.name, existing=listed)
            output = BundleOutput(result, bundle, writer)
            update_bundle(output, work, self.before, head_changed)
            if work.search or head_changed:  # (the dates of pages are in the index) One bundle's index in memory at a time:
                saved_index = result.config.root / CACHE_DIR / saved_index_name(bundle.name)
                output.search(load_index(saved_index, out / bundle.name, listed), work.pages)  # (None: made anew)
            writer.finish(bundle.name, bundle.tier)
        return {b.name: len(result.gate.pages_for(b)) for b in result.bundles}


def saved_facts(result: Plan) -> dict[str, PageFacts]:
    """`facts_of(result)` with digests of the rendered bodies instead of the bodies: what a build
    saves for the next and compares with what the last one saved."""
    return {source: replace(f, body=tuple(hashlib.blake2b(b, digest_size=16).digest() for b in f.body))
            for source, f in facts_of(result).items()}


def _digest_of(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _link_all(source: Path, target: Path, files: dict[str, str], workers: int) -> None:
    """Hard-link every listed file of `source` into `target` (made), over threads: tens of
    thousands of links, each a system call that releases the GIL."""
    names = sorted(files)
    for folder in sorted({os.path.dirname(name) for name in names}):
        os.makedirs(os.path.join(target, folder), exist_ok=True)
    base, into = f"{source}{os.sep}", f"{target}{os.sep}"

    def link(share: int) -> None:
        for name in names[share::workers]:
            os.link(base + name, into + name)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(link, range(workers)))
