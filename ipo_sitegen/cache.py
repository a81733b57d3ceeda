"""The persistent build cache in `.sitegen-cache/` (safe to delete; ignored by git).

Rendered Markdown is stored by the hash of everything that decides it: the gated text, the folder
it is resolved from (relative links), the renderer's version and extension settings. Link
*resolution* also depends on which files exist, so an entry is reused only if every target it
resolved still exists and every target it could not resolve still does not: the cache can never
change the output, only skip work.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import lz4
import markdown
import pygments

from . import __version__, markup
from .markup import EXTENSION_CONFIGS, EXTENSIONS, LinkIndex, Rendered, resolve_target

CACHE_DIR = ".sitegen-cache"
_FORMAT = 4  # of the stored entries (2: Rendered keeps its HTML compressed; 3: and its headings pickled; 4: by LZ4)
# With the code that renders (markup.py, whose every change may change the HTML: the version only
# changes at releases), the libraries it calls and their configuration.
_SALT = repr((_FORMAT, __version__, hashlib.sha256(Path(markup.__file__).read_bytes()).hexdigest(), markdown.__version__,
              pygments.__version__, lz4.library_version_string(), EXTENSIONS, sorted(EXTENSION_CONFIGS.items(), key=str))).encode()


def cache_folder(root: Path) -> Path:
    """`root/.sitegen-cache`, made if missing, with a .gitignore that keeps all of it out of git."""
    folder = root / CACHE_DIR
    folder.mkdir(exist_ok=True)
    ignore = folder / ".gitignore"
    if not ignore.is_file():
        ignore.write_text("*\n")
    return folder


@contextmanager
def replacing(root: Path, name: str) -> Iterator[Path]:
    """A temporary path in the cache folder for the block to write; when the block ends, it
    replaces `name` there whole (no reader sees half a file). A file system that refuses (a
    read-only checkout) only means nothing is remembered: the error goes no further."""
    try:
        target = cache_folder(root) / name
        temporary = target.with_name(f".{target.stem}.{os.getpid()}.tmp{target.suffix}")  # (same suffix: numpy keeps .npz)
        yield temporary
        temporary.replace(target)
    except OSError:
        pass


@lru_cache(maxsize=1 << 16)  # `serve` plans again after each save: most texts are the same strings again
def render_key(folder: str, text: str) -> str:
    return hashlib.sha256(_SALT + b"\0" + folder.encode() + b"\0" + text.encode()).hexdigest()


def still_valid(rendered: Rendered, folder: str, index: LinkIndex) -> bool:
    """Would rendering again resolve every link the same way?"""
    if any(p not in index.pages for p in rendered.pages) or any(f not in index.files for f in rendered.files):
        return False
    return all(resolve_target(folder, href, index)[0] is None for severity, href, _, _ in rendered.problems if severity == "error")


class RenderCache:
    """Rendered bodies in one SQLite file: fast to open, safe with concurrent readers."""

    def __init__(self, root: Path) -> None:
        self.db = sqlite3.connect(cache_folder(root) / "render.sqlite", timeout=30)
        self.db.execute("CREATE TABLE IF NOT EXISTS renders (key TEXT PRIMARY KEY, value BLOB)")

    def get_many(self, keys: list[str]) -> dict[str, Rendered]:
        found: dict[str, Rendered] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            rows = self.db.execute(f"SELECT key, value FROM renders WHERE key IN ({','.join('?' * len(chunk))})", chunk)
            for key, value in rows:
                try:
                    found[key] = pickle.loads(value)
                except (pickle.UnpicklingError, EOFError, AttributeError, TypeError):
                    continue  # an entry from an incompatible version: render again
        return found

    def put_many(self, items: dict[str, Rendered]) -> None:
        with self.db:
            self.db.executemany("INSERT OR REPLACE INTO renders VALUES (?, ?)",
                                [(k, pickle.dumps(v, protocol=pickle.HIGHEST_PROTOCOL)) for k, v in sorted(items.items())])

    def keep_only(self, keys: set[str]) -> None:
        """Forget entries this build did not use, so the cache does not grow without bound."""
        with self.db:
            self.db.execute("CREATE TEMP TABLE IF NOT EXISTS used (key TEXT PRIMARY KEY)")
            self.db.execute("DELETE FROM used")
            self.db.executemany("INSERT OR IGNORE INTO used VALUES (?)", [(k,) for k in keys])
            self.db.execute("DELETE FROM renders WHERE key NOT IN (SELECT key FROM used)")

    def close(self) -> None:
        self.db.close()
