"""A build that stays in memory and updates its output in place: the engine of `sitegen serve`.

`full()` builds everything (through the normal pipeline: staging, audit, swap). `update(paths)`
plans the site again — cheaply: unchanged files are not parsed again, unchanged texts are not
rendered again, the history is reused while HEAD stays — asks `rebuild.affected` what the change
touches, and rewrites only those files of each bundle, then audits the files it wrote.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from functools import partial
from pathlib import Path

from jinja2 import TemplateError

from .audit import Fingerprints, KnownSecrets, ScanJob, Secrets, confirmed, scan_bundles
from .build import BuildResult, BundleOutput, Options, Plan, build, plan, template_failure
from .config import Config
from .errors import BuildError
from .history import History
from .rebuild import PageFacts, Work, affected
from .render import make_environment
from .update import Before, facts_of, update_bundle
from .workers import collector_paused
from .write import BundleWriter, manifest_files


class LiveBuild:
    def __init__(self, root: Path, options: Options) -> None:
        self.root = root.resolve()
        self.options = options
        self.out = options.out or self.root / "build"
        self.options.out = self.out
        self.last: Plan | None = None
        # To settle: the plan, the files written by bundle, the bundles whose search index is stale,
        # and the pages changed since their index was written.
        self.pending: tuple[Plan, dict[str, set[str]], set[str], set[str]] | None = None
        self.facts: dict[str, PageFacts] = {}
        self.manifests: dict[str, dict[str, str]] = {}  # bundle -> its manifest's files, as this process last wrote them
        self.secrets: KnownSecrets | None = None  # what the last settle's audit worked out

    def full(self) -> BuildResult:
        self.pending = None
        self.manifests = {}
        gc.unfreeze()  # the last full build's objects may be garbage now
        result = build(self.root, self.options, need_plan=True)
        self.last = result.plan
        self.secrets = result.plan.secrets
        self.manifests = {b.name: manifest_files(self.out / b.name) for b in result.plan.bundles}  # read now, not at the first save
        _compile_theme(result.plan.config)
        self.facts = facts_of(result.plan)
        # Millions of objects live as long as the server: leave them out of the collector's full
        # passes, which would otherwise land in the middle of an edit's rebuild (a tenth of a second).
        gc.collect()
        gc.freeze()
        return result

    def update(self, paths: set[str], audit: bool = True) -> Work:
        """Bring the output up to date after `paths` changed; raise BuildError and keep the output on
        content errors. With `audit=False` the search index and the audit wait for `settle()`."""
        if self.last is None:
            self.full()
            return Work(full=True)
        # The site is planned again and thousands of its objects are made again, to live on: a
        # collection in the middle would walk them for nothing (measured: 60-80 ms of a 0.45 s save).
        with collector_paused():
            work = self._rewrite(paths)
        if work.full:
            self.full()
        elif audit:
            self.settle()
        return work

    def _rewrite(self, paths: set[str]) -> Work:
        """Write what `paths` changed (when that is not everything: then the work says `full`)."""
        assert self.last is not None
        changed = set()
        for path in paths:
            try:
                changed.add(Path(path).resolve().relative_to(self.root).as_posix())
            except ValueError:
                continue
        new = plan(self.root, self.options, known=self.last.renders)
        facts = facts_of(new)
        head_changed = (new.log.head if new.log else None) != (self.last.log.head if self.last.log else None)
        work = affected(self.facts, facts, changed, head_changed)
        if (work.full or [b.name for b in new.bundles] != [b.name for b in self.last.bundles]
                or (new.log.mailmap if new.log else "") != (self.last.log.mailmap if self.last.log else "")):
            return Work(full=True)  # (authors renamed by .mailmap: rare enough to write everything again)
        old = self.last
        if new.log is not None:  # what did not change is taken from the last history
            new.history = History(new.config, new.site, new.gate, new.log, earlier=old.history)
        before = Before.of(old)
        written: dict[str, set[str]] = {}
        for bundle in new.bundles:
            writer = self._writer(bundle.name)
            try:
                update_bundle(BundleOutput(new, bundle, writer), work, before, head_changed)
            except Exception as exc:  # a template's error is the editor's to fix, shown with its file and line
                problem = template_failure(exc, new.config)
                if problem is None:
                    raise
                raise BuildError([problem], "template error") from exc
            self._finish(writer, bundle.name, bundle.tier)
            written[bundle.name] = set(writer.written)
        stale = {b.name for b in new.bundles} if work.search or head_changed else set()  # (the index has the dates of pages)
        changed_pages = set(work.pages)
        if self.pending is not None:  # an update that was not settled: its files still need the audit
            _, unaudited, unindexed, unindexed_pages = self.pending
            for name, names in unaudited.items():
                written.setdefault(name, set()).update(names)
            stale |= unindexed
            changed_pages |= unindexed_pages
        new.search = old.search  # (brought up to date by settle())
        self.pending = (new, written, stale, changed_pages)
        self.last, self.facts = new, facts
        return work

    def settle(self, interrupted: Callable[[], bool] = lambda: False) -> bool:
        """The second half of an update, after open pages have been told to reload: the search
        index (updated for the pages that changed) and the audit of every file the update wrote.

        It takes seconds on a large site, so `serve` lets a new save interrupt it between steps:
        then it returns False, and what is left is settled with the next update's."""
        if self.pending is None:
            return True
        new, written, stale, changed_pages = self.pending
        # In this process, not forked ones: serve runs this beside its server's threads. What the
        # last settle worked out is taken where it still holds (an edit of public text: 2 s, not 6).
        secrets = Secrets(new.config, new.site, new.gate, new.history, lambda key: self.secrets, keep=True)
        if interrupted():
            return False
        prints = secrets.for_bundles(new.bundles)
        self.secrets = secrets.known()
        for bundle in new.bundles:
            if interrupted():
                return False
            if bundle.name in stale:
                writer = self._writer(bundle.name)
                BundleOutput(new, bundle, writer).search((new.search or {}).get(bundle.name), changed_pages)
                self._finish(writer, bundle.name, bundle.tier)
                written.setdefault(bundle.name, set()).update(writer.written)
                stale.discard(bundle.name)
        if interrupted():
            return False
        self.pending = None
        jobs = [ScanJob(self.out / b.name, b, prints[b.name], sorted(written.get(b.name, ()))) for b in new.bundles]
        leaks = confirmed(scan_bundles(jobs), jobs, partial(self._exact_fingerprints, new))
        if leaks:
            raise BuildError([leak.problem() for leak in leaks], "leaks found")
        return True

    def _exact_fingerprints(self, new: Plan) -> dict[str, Fingerprints]:
        """Fingerprints that hold nothing the bundles show, to confirm a leak with (see audit.confirmed)."""
        secrets = Secrets(new.config, new.site, new.gate, new.history, lambda key: self.secrets, keep=True, exact=True)
        prints = secrets.for_bundles(new.bundles)
        self.secrets = secrets.known()
        return prints

    def _writer(self, bundle: str) -> BundleWriter:
        """A writer that updates the bundle in place, from the manifest this process wrote last
        (reading it from disk costs tens of milliseconds at thousands of pages, on every save)."""
        files = self.manifests.get(bundle)
        return BundleWriter.in_place(self.out / bundle) if files is None else BundleWriter(self.out / bundle, existing=files)

    def _finish(self, writer: BundleWriter, bundle: str, tier: str) -> None:
        writer.finish(bundle, tier)
        self.manifests[bundle] = writer.hashes


def _compile_theme(config: Config) -> None:
    """Compile the theme's templates in this process now, not at the first save: a large site's
    full build renders its pages in forked processes, whose compiled templates are gone with them."""
    env = make_environment(config)
    for name in env.list_templates(extensions=["html", "xml"]):
        try:
            env.get_template(name)
        except TemplateError:
            pass  # (reported where it is used)
