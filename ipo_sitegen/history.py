"""Page history from git, read in one pass, and each bundle's view of it.

Three git processes whatever the size of the site: `rev-parse` (where, which HEAD, shallow?),
one `log` of content/ with raw changes and rename detection (first-parent view of the main line),
and one `cat-file --batch` for every page text the log mentions. `status` lists uncommitted pages.
The parsed log is cached under `.sitegen-cache/`, keyed by HEAD, so a rebuild with no new commit
runs no `log` and no `cat-file`.

What a bundle may see of the past is decided with the gate's own rule (`effective_rank`) applied
to the page *as it was*: its front matter and its sections' `_index.md` at that commit. A revision
is shown in a bundle only if the page was visible to it then, and only if what the bundle sees
changed (an edit to a restricted block leaves no trace in the public history). Author e-mail
addresses are never read.
"""

from __future__ import annotations

import bisect
import codecs
import hashlib
import mmap
import pickle
import posixpath
import re
import subprocess
import tempfile
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from .cache import CACHE_DIR, replacing
from .config import Bundle, Config
from .content import Page, Site, section_of
from .discover import parse_front_matter, quick_front_matter, split_front_matter
from .errors import Problems
from .gate import Gate, Segment, effective_rank, parse_blocks, source_for
from .markup import LinkIndex, resolve_target
from .workers import collector_paused, default_workers

FORMAT = "%x1e%H%x1f%at%x1f%aN%x1f%s%x1f"
_NULL_BLOB = "0" * 40
_FRONT_MATTER_SPAN = 1024  # characters of a text in which its front matter usually closes (if not: split whole)
_BLANKS = re.compile(r"\n\n\n+")  # not \n{3,}: a literal prefix lets the regex engine skip ahead, ~15x faster
_MD_LINK = re.compile(r"(\]\()\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[A-Za-z][A-Za-z0-9+.-]*:|#)")


@dataclass(frozen=True)
class FileChange:
    status: str  # A, M, D, R, C or T
    old_path: str | None  # content-relative
    new_path: str | None
    old_blob: str | None
    new_blob: str | None


@dataclass(frozen=True)
class Commit:
    sha: str
    time: int  # author time, seconds since the epoch (UTC)
    author: str  # name after .mailmap; never the e-mail address
    subject: str
    changes: tuple[FileChange, ...]


@dataclass
class GitLog:
    """The raw material: commits oldest first, page texts by blob id, the working tree's state."""

    head: str | None = None
    mailmap: str = ""  # what decides the authors' names (see mailmap_state)
    shallow: bool = False
    commits: list[Commit] = field(default_factory=list)
    blobs: dict[str, str] = field(default_factory=dict)
    uncommitted: set[str] = field(default_factory=set)  # content paths modified or new
    untracked: set[str] = field(default_factory=set)
    problem: str | None = None  # why there is no history, if there is none


def _git(root: Path, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "core.quotepath=off", *args], cwd=root, input=data, capture_output=True, check=False)


def git_dirs(root: Path) -> tuple[Path, Path, Path] | None:
    """(the work tree's top, its git folder, the folder the branches are in: the git folder but in a
    linked work tree) of the repository `root` is in; None outside one, or without git."""
    try:
        found = _git(root, "rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir")
    except FileNotFoundError:
        return None
    lines = found.stdout.decode("utf-8", "replace").splitlines()
    if found.returncode != 0 or len(lines) < 3:
        return None
    return Path(lines[0]), Path(lines[1]), (root / lines[2]).resolve()  # (the common folder may be relative to `root`)


def mailmap_state(root: Path) -> str:
    """A digest of what decides the names git gives authors (%aN in FORMAT): the work tree's
    .mailmap, the mailmap.file and mailmap.blob settings and the file the first names. It is no
    commit and no file of the site, so the history cache and the site's fingerprint take it in:
    an edit of .mailmap alone renames authors as a build from nothing does."""
    try:
        top = _git(root, "rev-parse", "--show-toplevel").stdout.decode("utf-8", "replace").strip()
        settings = _git(root, "config", "--get-regexp", r"^mailmap\.").stdout
    except FileNotFoundError:
        return ""
    files = [Path(top) / ".mailmap"] if top else []
    files += [Path(line.split(None, 1)[1]).expanduser() for line in settings.decode("utf-8", "replace").splitlines()
              if line.lower().startswith("mailmap.file ") and len(line.split(None, 1)) == 2]
    digest = hashlib.sha256(settings)
    for path in files:
        try:
            digest.update(b"\0" + (Path(top or root) / path).read_bytes())  # (a relative mailmap.file: from the work tree's top)
        except OSError:
            digest.update(b"\0-")
    return digest.hexdigest()


def _parse_log(raw: bytes, prefix: str) -> list[Commit]:
    """Parse `git log --raw -z` output (newest first) into commits, oldest first."""
    def rel(path: str) -> str | None:
        return path[len(prefix) :] if path.startswith(prefix) else None

    commits: list[Commit] = []
    for record in raw.decode("utf-8", errors="replace").split("\x1e"):
        if not record:
            continue
        head, _, rest = record.rpartition("\x1f")
        sha, time, author, subject = head.split("\x1f", 3)
        fields = rest.lstrip("\x00\n").split("\x00")
        changes: list[FileChange] = []
        i = 0
        while i < len(fields):
            meta = fields[i]
            if not meta.startswith(":"):
                i += 1
                continue
            _, _, old_blob, new_blob, status = meta[1:].split(" ", 4)
            kind = status[0]
            if kind in "RC":
                old, new = rel(fields[i + 1]), rel(fields[i + 2])
                i += 3
            else:
                old = new = rel(fields[i + 1])
                i += 2
            if kind == "A":
                old = None
            if kind == "D":
                new = None
            if kind == "C":
                kind, old = "A", None
            changes.append(FileChange(kind, old, new, None if old_blob == _NULL_BLOB else old_blob,
                                      None if new_blob == _NULL_BLOB else new_blob))
        commits.append(Commit(sha, int(time), author, subject, tuple(changes)))
    commits.reverse()
    return commits


_BLOBS_PER_GIT = 1000  # page texts below which one `cat-file` reads them all (starting another costs more)


def _read_blobs(root: Path, shas: list[str]) -> dict[str, str]:
    """All page texts, by `git cat-file --batch`: one process per core for a long history, as
    unpacking is git's own work (0.4 s for 57 MB, on one core).

    Each writes to a temporary file, read back through a memory map: through a pipe, the texts took
    twice as long (57 MB: 0.9-1.0 s against 0.5 s), and a map never holds the whole output in this
    process's memory."""
    if not shas:
        return {}
    parts = max(1, min(default_workers(), len(shas) // _BLOBS_PER_GIT))
    with ExitStack() as stack:
        outputs = []
        for part in range(parts):
            request, output = stack.enter_context(tempfile.TemporaryFile()), stack.enter_context(tempfile.TemporaryFile())
            request.write(("\n".join(shas[part::parts]) + "\n").encode())
            request.seek(0)
            outputs.append((output, stack.enter_context(subprocess.Popen(["git", "cat-file", "--batch"], cwd=root, stdin=request, stdout=output))))
        blobs: dict[str, str] = {}
        for output, process in outputs:
            process.wait()
            if output.tell():
                with mmap.mmap(output.fileno(), 0, access=mmap.ACCESS_READ) as out:
                    _parse_batch(out, blobs)
    return blobs


def _parse_batch(out: mmap.mmap, blobs: dict[str, str]) -> None:
    """Add the texts of `cat-file --batch` output to `blobs`, decoded as discover reads files."""
    at = 0
    while (end := out.find(b"\n", at)) >= 0:  # "<sha> <type> <size>", then the content and a newline; or "<sha> missing"
        fields = out[at:end].split()
        at = end + 1
        if len(fields) < 3:
            continue
        data = out[at : at + int(fields[2])]
        at += int(fields[2]) + 1
        if fields[1] == b"blob":
            text = data.decode("utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8", errors="replace")
            blobs[fields[0].decode()] = text.replace("\r\n", "\n") if "\r" in text else text  # "\r" is rare: a fast scan


# The last log this process read (cache file -> commits, texts): `sitegen serve` reads the history
# again after every save, and loading the whole of it from the cache costs more than the rest.
_LOGS: dict[Path, tuple[list[Commit], dict[str, str]]] = {}


_CACHE_FORMAT = 2  # in the cache file's name: a change to what is cached must not meet an old file (2: BOMs dropped)


def read_git(root: Path, content: str = "content", use_cache: bool = True) -> GitLog:
    """Read the history of `root/content` with a fixed number of git processes."""
    log = GitLog()
    try:
        probe = _git(root, "rev-parse", "--show-prefix", "--is-shallow-repository", "HEAD")
    except FileNotFoundError:
        log.problem = "git is not installed: pages get no dates"
        return log
    lines = probe.stdout.decode().splitlines()
    if probe.returncode != 0 and len(lines) < 2:
        log.problem = "not a git repository (or no commit yet): pages get no dates and there is no 'Recently updated'"
        return log
    prefix = lines[0].strip() + content.rstrip("/") + "/"
    log.shallow = len(lines) > 1 and lines[1].strip() == "true"
    log.head = lines[2].strip() if len(lines) > 2 and probe.returncode == 0 else None
    # Porcelain paths are relative to the repository's top; a rename's old path follows it.
    entries = iter(_git(root, "status", "--porcelain", "-z", "--untracked-files=all", "--", content).stdout.decode("utf-8", "replace").split("\x00"))
    for entry in entries:
        if len(entry) > 3 and entry[3:].startswith(prefix):
            (log.untracked if entry.startswith("??") else log.uncommitted).add(entry[3 + len(prefix) :])
        if entry[:1] in ("R", "C"):
            next(entries, None)
    if log.head is None:
        log.problem = "no commit yet: pages get no dates"
        return log

    log.mailmap = mailmap_state(root)
    cache = root / CACHE_DIR / f"history-{_CACHE_FORMAT}-{log.head}-{hashlib.sha1((prefix + log.mailmap).encode()).hexdigest()[:8]}.pickle"
    cached = False
    remembered = _LOGS.get(cache) if use_cache else None
    if remembered is not None:
        log.commits, log.blobs = remembered
        cached = True
    elif use_cache and cache.is_file():
        try:
            log.commits, log.blobs = pickle.loads(cache.read_bytes())
            cached = True
        except (OSError, pickle.UnpicklingError, ValueError, EOFError):
            log.commits, log.blobs = [], {}
    if not cached:
        raw = _git(root, "log", "--first-parent", "--diff-merges=first-parent", "-M", "--raw", "--no-abbrev", "-z",
                   f"--format={FORMAT}", "HEAD", "--", content)
        with collector_paused():  # (thousands of commits and changes, kept: see workers.collector_paused)
            log.commits = _parse_log(raw.stdout, prefix)
    head_blobs: dict[str, str | None] = {}
    for commit in log.commits:
        for c in commit.changes:
            if c.old_path:
                head_blobs[c.old_path] = None
            if c.new_path:
                head_blobs[c.new_path] = c.new_blob
    # The committed text of a clean file is on disk (discover reads it): fetch only older texts,
    # and the committed text of files changed since (not in the cache if they were clean then).
    on_disk = {blob for path, blob in head_blobs.items() if blob and path not in log.uncommitted}
    wanted = {c.new_blob for commit in log.commits for c in commit.changes
              if c.new_blob and c.new_path and c.new_path.endswith(".md")} - on_disk - set(log.blobs)
    if wanted:
        log.blobs.update(_read_blobs(root, sorted(wanted)))
    if use_cache:
        _LOGS.clear()
        _LOGS[cache] = (log.commits, log.blobs)
    # Once cached, only the committed texts of files modified since are wanted: a few texts, cheaper
    # to ask git for again than the whole cache is to write again.
    if use_cache and not cached:
        with replacing(root, cache.name) as temporary:
            temporary.write_bytes(pickle.dumps((log.commits, log.blobs), protocol=pickle.HIGHEST_PROTOCOL))
            for older in cache.parent.glob("history-*.pickle"):  # one per HEAD: tens of megabytes each on a large site
                if older != cache:
                    older.unlink(missing_ok=True)
    return log


@dataclass(frozen=True)
class Revision:
    """One commit's version of one page."""

    commit: Commit
    index: int  # position of the commit, oldest first
    path: str  # the page's path at that commit
    blob: str


@dataclass(frozen=True)
class GatedText:
    """A revision's Markdown as one tier sees it, with the link targets in it: found once, because
    the same text is checked against every bundle that sees it."""

    text: str
    hrefs: tuple[str, ...]

    @classmethod
    def of(cls, text: str) -> GatedText:
        return cls(text, tuple(m.group(2) for m in _MD_LINK.finditer(text)) if "](" in text else ())


_EMPTY = GatedText("", ())


@dataclass
class Snapshot:
    """What a file said at one revision, with its gated views (title None: no readable front matter,
    not a page). The views are made when a bundle first needs them; after that, of the text only what
    the views need is kept: every revision is in memory at once."""

    title: str | None
    audience: str | None = None
    draft: bool = False
    blocks: Callable[[], list[Segment]] | None = None  # parses the body into gated blocks, once
    segments: list[Segment] | None = None  # kept only if the text has gated blocks
    views: dict[int, GatedText] = field(default_factory=dict)  # tier rank -> view; -1: the view for every tier

    def view(self, rank: int) -> GatedText:
        if self.blocks is not None:
            segments, self.blocks = self.blocks(), None
            if len(segments) == 1 and not segments[0].opens:  # no gated block: the same text for every tier
                self.views[-1] = GatedText.of(_normalise(source_for(segments, 0)))
            else:
                self.segments = segments
        if self.segments is None:
            return self.views.get(-1, _EMPTY)
        rank = max((s.rank for s in self.segments if s.rank <= rank), default=0)  # tiers that see the same blocks share a view
        if rank not in self.views:
            self.views[rank] = GatedText.of(_normalise(source_for(self.segments, rank)))
        return self.views[rank]


def _split_front_matter(text: str, path: Path, problems: Problems) -> tuple[str, str, int] | None:
    """discover's `split_front_matter`, asked about the first lines only when the front matter closes
    there. It splits the whole text into lines and joins the body again, for each of thousands of
    revisions; but the lines up to the closing '---' alone decide its answer, and the body is the rest."""
    cut = text.find("\n", _FRONT_MATTER_SPAN) + 1  # a line boundary past the usual front matter
    head = split_front_matter(text[:cut], path, Problems()) if cut else None
    if head is None or not head[1]:  # (no body before the cut: where it starts is past it)
        return split_front_matter(text, path, problems)
    yaml_text, body, body_line = head
    return yaml_text, text[cut - len(body) :], body_line


def _normalise(text: str) -> str:
    """Blank-line runs left by removed blocks must not count as a change, nor blank lines around the text."""
    if "\n\n\n" in text:
        text = _BLANKS.sub("\n\n", text)
    text = text.lstrip()
    # text.rstrip() + "\n", without a second copy of the many texts that already end so
    return text if text.endswith("\n") and not text[-2:-1].isspace() else text.rstrip() + "\n"


class Redactor:
    """Which link targets each bundle's diffs may keep, and the redaction of the others.

    Apart from History so that an edit's history (`sitegen serve`) can share it, and the versions
    of unchanged pages made by the last one, when the gate decided the same for every page and
    file: versions then point at this, not at the earlier history, which can go."""

    def __init__(self, config: Config, site: Site, gate: Gate, index: LinkIndex) -> None:
        self.config, self.site, self.gate, self.index = config, site, gate, index
        self._kept: dict[tuple[str, str], frozenset[str]] = {}
        self._whole: dict[tuple[str, tuple[str, ...]], frozenset[str]] = {}  # the bundles that keep every target of a text

    def kept_in(self, folder: str, href: str) -> frozenset[str]:
        """The bundles whose diffs may keep this link target. Decided for every bundle at once, once
        per folder and href: the same links recur in every revision of a page and in every bundle."""
        key = (folder, href)
        if key not in self._kept:
            marker, source = resolve_target(folder, href, self.index)
            page = self.site.pages.get(source) if marker else None
            attachment = self.site.attachments.get(source) if marker else None
            self._kept[key] = frozenset(
                bundle.name for bundle in self.config.bundles
                if (page is not None and self.gate.visible(page, bundle))
                or (attachment is not None and self.gate.attachment_allowed(attachment, bundle))
                or (marker is None and _EXTERNAL.match(href)))
        return self._kept[key]

    def redact(self, gated: GatedText, folder: str, bundle: Bundle) -> str:
        """Diffs show Markdown source: a link to a page the bundle does not hold loses its target
        (the author's words stay), so no path or anchor of a restricted page reaches it."""
        if not gated.hrefs:
            return gated.text
        key = (folder, gated.hrefs)
        whole = self._whole.get(key)
        if whole is None:  # (most revisions of a page link to the same targets as the one before)
            whole = self._whole[key] = frozenset.intersection(*(self.kept_in(folder, href) for href in gated.hrefs))
        if bundle.name in whole:
            return gated.text
        return _MD_LINK.sub(lambda m: m.group(0) if bundle.name in self.kept_in(folder, m.group(2)) else f"{m.group(1)}🔒)", gated.text)


@dataclass(frozen=True)
class Version:
    """A revision's Markdown as one bundle may see it, redacted when read rather than kept: a
    redacted text holds a 🔒, which makes Python store the whole string at four bytes per
    character, and a large history would hold thousands of them for every bundle at once."""

    gated: GatedText
    folder: str
    bundle: Bundle
    redactor: Redactor

    @property
    def text(self) -> str:
        return self.redactor.redact(self.gated, self.folder, self.bundle)


@dataclass(frozen=True)
class Change:
    """A revision as one bundle sees it."""

    page: Page  # the page as it is now (or an equal copy of it, from an earlier build of `serve`)
    commit: Commit
    title: str  # the title at that revision
    version: Version  # the gated Markdown at that revision
    before: Version | None  # the gated Markdown before, or None: first published in this bundle
    message: str | None  # the commit subject, when the bundle may see every page it touched

    @property
    def text(self) -> str:
        return self.version.text

    @property
    def previous(self) -> str | None:
        return None if self.before is None else self.before.text

    @property
    def first(self) -> bool:
        """Is this the first revision the bundle shows? (Without redacting the one before, as
        `previous` does.)"""
        return self.before is None

    @property
    def key(self) -> str:
        return f"{self.commit.sha[:12]}/{self.page.url}"


class History:
    """Every page's revisions (renames followed) and the audience of each file at each commit."""

    def __init__(self, config: Config, site: Site, gate: Gate, log: GitLog, earlier: History | None = None) -> None:
        """With `earlier`, the history of the last build (`sitegen serve`, after an edit): what depends
        on the commits alone is taken from it when the commits are the same, and so is each page's
        list of changes when the page is equal and the gate decided the same for every page."""
        self.config = config
        self.site = site
        self.gate = gate
        self.log = log
        self._views: dict[str, dict[str, list[Change]]] = {}
        self._index = LinkIndex(frozenset(site.pages), frozenset(site.attachments))
        # What the gate-dependent memos below depend on: each page's visibility, which files exist.
        self._decisions = ({s: (p.rank, p.published) for s, p in site.pages.items()}, self._index)
        self._earlier_views: dict[str, dict[str, list[Change]]] = {}
        self._earlier_pages: dict[str, Page] = {}
        if (earlier is not None and log.head is not None and earlier.log.head == log.head
                and earlier.config.tiers == config.tiers and earlier.gate.drafts == gate.drafts):
            self._timeline, self._revisions = earlier._timeline, earlier._revisions
            self._snapshots, self._ranks = earlier._snapshots, earlier._ranks
        else:
            with collector_paused():
                self._timeline, self._revisions = self._follow()
            self._snapshots: dict[str, Snapshot] = {}
            self._ranks: dict[tuple[str, int], int] = {}
        if earlier is not None and self._snapshots is earlier._snapshots and earlier._decisions == self._decisions:
            self._message_ranks, self.redactor = earlier._message_ranks, earlier.redactor
            self._earlier_views, self._earlier_pages = earlier._views, earlier.site.pages
        else:
            self._message_ranks: dict[int, int] = {}
            self.redactor = Redactor(config, site, gate, self._index)
        self.lineage = {path: revisions for path, revisions in self._revisions.items() if path in site.pages}
        self._released = False  # see release_texts
        # Blobs whose text read_git left out because a clean file on disk holds it.
        self._on_disk = {revisions[-1].blob: path for path, revisions in self.lineage.items()
                         if path not in log.uncommitted and revisions[-1].blob not in log.blobs}

    def _follow(self) -> tuple[dict[str, tuple[list[int], list[str | None]]], dict[str, list[Revision]]]:
        """Each path's blob after each commit that touched it, and each path's page revisions."""
        live: dict[str, list[Revision]] = {}
        timeline: dict[str, tuple[list[int], list[str | None]]] = {}
        for index, commit in enumerate(self.log.commits):
            for change in commit.changes:
                if change.old_path and change.old_path != change.new_path:
                    marks = timeline.setdefault(change.old_path, ([], []))
                    marks[0].append(index)
                    marks[1].append(None)
                if change.new_path:
                    marks = timeline.setdefault(change.new_path, ([], []))
                    marks[0].append(index)
                    marks[1].append(change.new_blob)
                if not (change.new_path or "").endswith(".md") and not (change.old_path or "").endswith(".md"):
                    continue
                revisions = live.pop(change.old_path, []) if change.old_path else []
                if change.new_path and change.new_path.endswith(".md") and change.new_blob:
                    revisions.append(Revision(commit, index, change.new_path, change.new_blob))
                    live[change.new_path] = revisions
        return timeline, live

    # -- the state of the tree at a commit ------------------------------------------------
    def blob_at(self, path: str, index: int) -> str | None:
        marks = self._timeline.get(path)
        if not marks:
            return None
        i = bisect.bisect_right(marks[0], index) - 1
        return marks[1][i] if i >= 0 else None

    def snapshot(self, blob: str, path: str) -> Snapshot:
        snap = self._snapshots.get(blob)
        if snap is None:
            snap = self._snapshots[blob] = self._read_snapshot(blob, path)
        return snap

    def _read_snapshot(self, blob: str, path: str) -> Snapshot:
        if self._released:
            raise RuntimeError(f"the history's texts were released before {path} at {blob[:12]} was read")
        text = self.log.blobs.get(blob)
        current = self.site.pages.get(self._on_disk.get(blob, ""))
        if text is None and current is not None:
            # The committed version of a clean page is the file on disk: already parsed and gated.
            segments = self.gate.segments
            return Snapshot(current.title, current.audience, current.draft, lambda: segments[current.source])
        if text is None:
            return Snapshot(None)
        scratch = Problems()
        split = _split_front_matter(text, Path(path), scratch)
        if not split:
            return Snapshot(None)
        data = quick_front_matter(split[0])
        if data is None:
            parsed = parse_front_matter(split[0], Path(path), scratch)
            if not parsed:
                return Snapshot(None)
            data = parsed[0]
        page = Page(source=path, title=str(data.get("title", "")), body=split[1], body_line=split[2])
        audience = data.get("audience") if isinstance(data.get("audience"), str) else None
        return Snapshot(page.title, audience, data.get("draft") is True, partial(parse_blocks, page, self.config.tiers, scratch, path))

    def rank_at(self, path: str, index: int, blob: str | None = None) -> int:
        """The effective tier rank of the page at `path` just after commit `index` (gate's rule)."""
        key = (path, index)
        if key not in self._ranks:
            self._ranks[key] = self._rank_at(path, index, blob)
        return self._ranks[key]

    def _rank_at(self, path: str, index: int, blob: str | None) -> int:
        if path == "_index.md":
            return 0
        tiers = self.config.tiers
        blob = blob or self.blob_at(path, index)
        if blob is None:
            return len(tiers) - 1
        own = self.snapshot(blob, path)
        if own.audience is not None and own.audience not in tiers:
            return len(tiers) - 1
        chain: list[str | None] = []
        folder = section_of(path)
        while folder:
            index_blob = self.blob_at(f"{folder}/_index.md", index)
            chain.append(self.snapshot(index_blob, f"{folder}/_index.md").audience if index_blob else None)
            folder = posixpath.dirname(folder)
        chain.reverse()
        if any(a is not None and a not in tiers for a in chain):
            return len(tiers) - 1
        return effective_rank(tiers, own.audience, chain)

    def _file_rank(self, change: FileChange, index: int) -> int:
        """How restricted a file touched by a commit was (for deciding who may read the message): a
        page that was a draft then, or is a draft or embargoed now, is in no bundle (one rank above
        the last tier), and neither is a message about it."""
        path = change.new_path or change.old_path or ""
        at = index if change.new_path else index - 1
        ranks = []
        for p in {change.old_path, change.new_path} - {None}:
            if p.endswith(".md"):
                then = at if p == change.new_path else index - 1
                ranks.append(self.rank_at(p, then) if self._published(p, then) else len(self.config.tiers))
        if not path.endswith(".md"):
            attachment = self.site.attachments.get(path)
            ranks.append(self.gate.attachment_floor(attachment) if attachment else len(self.config.tiers) - 1)
        return max(ranks, default=len(self.config.tiers) - 1)

    def _published(self, path: str, index: int) -> bool:
        """Was the page at `path` after commit `index` no draft, and is the page there now published?"""
        if self.gate.drafts:
            return True
        blob = self.blob_at(path, index)
        if blob is not None and self.snapshot(blob, path).draft:
            return False
        now = self.site.pages.get(path)
        return now is None or now.published

    def message_rank(self, commit_index: int) -> int:
        """The tier needed to read a commit's message: every file it touched must be visible."""
        if commit_index not in self._message_ranks:
            commit = self.log.commits[commit_index]
            self._message_ranks[commit_index] = max((self._file_rank(c, commit_index) for c in commit.changes), default=0)
        return self._message_ranks[commit_index]

    def hidden_messages(self, bundle: Bundle) -> list[tuple[str, str]]:
        """(commit, subject) of every commit whose message `bundle` may not show (for the audit)."""
        return [(c.sha[:12], c.subject) for i, c in enumerate(self.log.commits) if self.message_rank(i) > bundle.rank]

    def release_texts(self, bundles: list[Bundle]) -> None:
        """Work out everything a build asks of the history (each bundle's changes, every commit's
        message rank), then let the texts of past revisions go: tens of megabytes on a large site,
        which every forked worker would otherwise count as its own. Asking for anything that needs
        a text after this is an error, never an empty answer. Not for `serve`, whose next edit
        reads the history again."""
        for bundle in bundles:
            self.changes_for(bundle)
        for index in range(len(self.log.commits)):
            self.message_rank(index)
        self._released = True
        self.log.blobs.clear()  # (in place: read_git remembers the same dict, and fills it again when asked)

    # -- one bundle's view ------------------------------------------------------------------
    def changes_for(self, bundle: Bundle) -> dict[str, list[Change]]:
        """Each visible page's changes as `bundle` may see them, oldest first (computed once)."""
        if bundle.name not in self._views:
            with collector_paused():  # (a change for every revision a bundle shows, kept)
                self._views[bundle.name] = self._changes_for(bundle, self.gate.pages_for(bundle))
            self._earlier_views.pop(bundle.name, None)  # taken over: the earlier views may go
        return self._views[bundle.name]

    def _changes_for(self, bundle: Bundle, pages: list[Page]) -> dict[str, list[Change]]:
        result: dict[str, list[Change]] = {}
        earlier = self._earlier_views.get(bundle.name)
        for page in pages:
            if earlier is not None and self._earlier_pages.get(page.source) == page:
                if page.source in earlier:
                    result[page.source] = earlier[page.source]
                continue
            previous: tuple[str, str] | None = None  # (title, text) as the bundle saw the last revision
            before: Version | None = None
            changes: list[Change] = []
            for revision in self.lineage.get(page.source, []):
                snap = self.snapshot(revision.blob, revision.path)
                if snap.title is None or (snap.draft and not self.gate.drafts) or self.rank_at(revision.path, revision.index, revision.blob) > bundle.rank:
                    previous = before = None
                    continue
                version = Version(snap.view(bundle.rank), posixpath.dirname(revision.path), bundle, self.redactor)
                view = (snap.title or page.title, version.text)
                if view == previous:
                    continue  # nothing this bundle can see changed
                message = revision.commit.subject if self.message_rank(revision.index) <= bundle.rank else None
                changes.append(Change(page, revision.commit, view[0], version, before, message))
                previous, before = view, version
            if changes:
                result[page.source] = changes
        return result


def history_problems(log: GitLog, site: Site, config: Config, problems: Problems) -> None:
    """Report thin history: no repository, a shallow clone, pages not committed yet."""
    if log.problem:
        problems.warning(config.root / "content", None, log.problem, "run the build in a git clone of the site with its full history")
        return
    if log.shallow:
        problems.warning(config.root / "content", None, "shallow git clone: dates and 'Recently updated' are incomplete",
                         "fetch the full history (GitHub Actions: actions/checkout with 'fetch-depth: 0'; GitLab: GIT_DEPTH: 0)")
    new = sorted(p for p in log.untracked if p in site.pages)
    if new:
        problems.warning(config.root / "content", None, f"{len(new)} page(s) not committed yet, shown without a date: "
                         + ", ".join(new[:10]) + (" …" if len(new) > 10 else ""), "commit them to give them a history")
