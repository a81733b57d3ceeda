"""Writing bundles: a staging folder per run, a manifest per bundle, and a whole-folder swap.

Nothing is written into `build/<bundle>` directly. A run writes every bundle under a staging
folder next to it; only when all bundles are built and audited are they swapped in, one rename
each. A failed, interrupted or killed build leaves the previous output exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import tempfile
import time
from functools import partial
from json.encoder import encode_basestring_ascii as json_string
from pathlib import Path

try:
    import fcntl
except ImportError:  # (Windows: staging folders of killed builds go after an hour)
    fcntl = None  # type: ignore[assignment]

from .errors import UsageError
from .workers import detached

STAGING_PREFIX = ".sitegen-staging-"


class BundleWriter:
    """Writes the files of one bundle into its staging folder and remembers their hashes.

    With `previous` (the bundle being replaced), a file whose bytes did not change is hard-linked
    from it instead of written: it keeps its inode and mtime, so rsync, caches and `serve` see
    only what really changed, and the swap still replaces the bundle as a whole.
    """

    def __init__(self, folder: Path, previous: Path | None = None, existing: dict[str, str] | None = None) -> None:
        self.folder = folder
        self.hashes: dict[str, str] = dict(existing or {})  # with `existing`: update a bundle in place
        self.written: set[str] = set()
        self.in_place_updates = existing is not None
        self.previous = previous if previous is not None and previous.is_dir() else None
        folder.mkdir(parents=True, exist_ok=True)
        # Files are written through os on string paths: a bundle has tens of thousands of them, and
        # pathlib took twice as long (16 against 8 µs a file on tmpfs; 45,000 files at 5,000 pages).
        self._base = str(folder) + os.sep
        self._folders: set[str] = {""}  # made already: one mkdir per folder, not per file

    @classmethod
    def in_place(cls, folder: Path) -> "BundleWriter":
        """Update a built bundle file by file (`sitegen serve`), keeping its manifest complete."""
        return cls(folder, existing=manifest_files(folder))

    def remove(self, path: str) -> None:
        """Remove a file the last build wrote, and its folders that it leaves empty: a build from
        nothing makes no empty folder, and one named like a page that left the bundle tells that
        the page was there (a web server may even answer 403 for it rather than 404)."""
        self.hashes.pop(path, None)
        (self.folder / path).unlink(missing_ok=True)
        parent = posixpath.dirname(path)
        while parent:
            try:
                os.rmdir(self._base + parent)
            except OSError:  # not empty (or gone): so are the folders above it
                break
            self._folders.discard(parent)
            parent = posixpath.dirname(parent)

    def write(self, path: str, data: str | bytes) -> None:
        clean = posixpath.normpath(path)
        if clean.startswith(("../", "/")) or clean in ("..", ".") or "\\" in clean:
            raise ValueError(f"refusing to write outside the bundle: {path!r}")
        if clean in self.written:
            raise ValueError(f"two outputs for the same file: {clean}")
        self.written.add(clean)
        payload = data.encode("utf-8") if isinstance(data, str) else data
        parent = posixpath.dirname(clean)
        if parent not in self._folders:
            os.makedirs(self._base + parent, exist_ok=True)
            self._folders.add(parent)
        target = self._base + clean
        if self.in_place_updates:  # a server may be reading it: replace it whole
            temporary = f"{self._base}{parent}{'/' if parent else ''}.{posixpath.basename(clean)}.sitegen-tmp"
            _write_file(temporary, payload)
            os.replace(temporary, target)
        elif not self._reuse(clean, payload, target):
            _write_file(target, payload)
        self.hashes[clean] = hashlib.sha256(payload).hexdigest()

    def _reuse(self, path: str, payload: bytes, target: str) -> bool:
        if self.previous is None:
            return False
        old = self.previous / path
        try:
            if old.is_symlink() or old.stat().st_size != len(payload) or old.read_bytes() != payload:
                return False
            os.link(old, target)
        except OSError:
            return False
        return True

    def copy(self, path: str, source: Path) -> None:
        self.write(path, source.read_bytes())

    def finish(self, bundle: str, tier: str) -> None:
        """Write manifest.json: every file of the bundle with its SHA-256, sorted."""
        self.hashes.pop("manifest.json", None)
        self.written.discard("manifest.json")
        self.write("manifest.json", manifest_text(bundle, tier, self.hashes))


def _write_file(path: str, payload: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)  # (the umask applies, as for open())
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(descriptor, view) :]
    finally:
        os.close(descriptor)


def manifest_files(folder: Path) -> dict[str, str]:
    """A built bundle's files with their SHA-256, as its manifest.json lists them."""
    return json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["files"]


# The manifest line of each (file, SHA-256) written lately: `serve` writes three manifests of
# thousands of files after every save, and all but a few lines are the ones it wrote the last time.
_LINES: dict[tuple[str, str], str] = {}
_MAX_LINES = 1 << 20  # then the memo starts again (a long `serve` session adds a few lines per save)


def manifest_text(bundle: str, tier: str, hashes: dict[str, str]) -> str:
    """`json.dumps({"bundle", "tier", "files" sorted}, indent=1)` and a newline, written by hand:
    with an indent, json encodes in Python, and `serve` writes manifests of tens of thousands of files on every edit."""
    if len(_LINES) > _MAX_LINES:
        _LINES.clear()
    lines = [_LINES.get(item) or _LINES.setdefault(item, f"  {json_string(item[0])}: {json_string(item[1])}") for item in sorted(hashes.items())]
    files = ",\n".join(lines)
    body = f"{{\n{files}\n }}" if files else "{}"
    return f'{{\n "bundle": {json_string(bundle)},\n "tier": {json_string(tier)},\n "files": {body}\n}}\n'


def check_output(out: Path, bundles: list[str], sources: list[Path]) -> None:
    """Refuse an output folder that would lose or publish the user's files: one inside the site's
    sources (bundles there would be read back as content: the internal one as attachments), or
    one whose `NAME/` for a bundle is not a bundle this tool wrote (it would be replaced whole)."""
    for source in sources:
        if out == source or out.is_relative_to(source):
            raise UsageError(f"the output folder {out} is inside {source}: bundles there would be read back as site files; "
                             "choose a folder outside content/, templates/, static/, .git and the cache")
        for name in bundles:  # (a bundle named templates, built with --out .)
            if (out / name).is_relative_to(source) or source.is_relative_to(out / name):
                raise UsageError(f"the bundle '{name}' would be written over {source}; choose another --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot make the output folder {out}: {exc.strerror}; choose another --out") from None
    for name in bundles:
        target = out / name
        if (target.exists() or target.is_symlink()) and _bundle_name(target) != name:
            raise UsageError(f"{target} exists and is not the '{name}' bundle of an earlier build (it has no manifest.json "
                             "saying so), and a build replaces it whole: move it away, or choose another --out")


def _bundle_name(folder: Path) -> str | None:
    try:
        return json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get("bundle") if not folder.is_symlink() else None
    except (OSError, ValueError, AttributeError):
        return None


# The staging folders this process is building in, with the open lock file of each (see staging_folder).
_HELD: dict[Path, int] = {}
_LOCK = ".lock"


def staging_folder(out: Path) -> Path:
    """A new staging folder, locked for as long as this process builds in it: a build killed outright
    (SIGKILL, a machine stopped) cannot remove its folder, and the next build must know it from a
    folder some build is writing right now. The lock (POSIX, per process: forked workers do not hold
    it) goes with the process, however it ends."""
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out))
    if fcntl is not None:
        # Locked under another name, then renamed (the lock stays with the file): another build
        # never sees the lock file unlocked.
        descriptor = os.open(folder / (_LOCK + ".new"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(folder / (_LOCK + ".new"), folder / _LOCK)
        _HELD[folder] = descriptor
    return folder


def _release(folder: Path) -> None:
    descriptor = _HELD.pop(folder, None)
    if descriptor is not None:
        os.close(descriptor)


def _abandoned(folder: Path) -> bool | None:
    """Is nobody building in this staging folder (None: it has no lock to tell)?"""
    if folder in _HELD:
        return False
    if fcntl is None:
        return None
    try:
        descriptor = os.open(folder / _LOCK, os.O_RDWR)
    except OSError:
        return None
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(descriptor)


def swap_in(staging: Path, out: Path, names: list[str], trash: Path | None = None) -> None:
    """Replace `out/NAME` by `staging/NAME` for each bundle, then remove what was replaced (see
    remove)."""
    retired = staging / ".previous"
    retired.mkdir()
    for name in names:
        target = out / name
        if target.exists() or target.is_symlink():
            os.replace(target, retired / name)
        os.replace(staging / name, target)
    remove(staging, trash)


def remove(folder: Path, trash: Path | None = None) -> None:
    """Remove `folder`. With `trash` (a folder for this alone, out of the output), if it is on the
    same file system, `folder` is moved there and the trash is emptied by a detached process:
    removing a large site's replaced output (45,000 files: 1.2-1.8 s of system calls at 5,000
    pages) need not hold up the build. That process empties all of the trash, so what a killed
    one left goes too."""
    _release(folder)
    try:
        if trash is not None and folder.stat().st_dev == trash.parent.stat().st_dev:
            trash.mkdir(exist_ok=True)
            moved = Path(tempfile.mkdtemp(dir=trash)) / folder.name
            os.rename(folder, moved)
            detached(partial(shutil.rmtree, trash, ignore_errors=True))
            return
    except OSError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


def clean_stale_staging(out: Path, older_than: float = 3600.0) -> None:
    """Remove staging folders left by killed runs (they never held a swapped-in bundle): those whose
    lock no process holds, and old ones without a lock (from a version that made none)."""
    if out.is_dir():
        now = time.time()
        for child in out.iterdir():
            if child.name.startswith(STAGING_PREFIX) and child.is_dir():
                abandoned = _abandoned(child)
                if abandoned or (abandoned is None and now - child.stat().st_mtime > older_than):
                    shutil.rmtree(child, ignore_errors=True)
