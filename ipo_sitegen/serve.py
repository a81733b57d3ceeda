"""`sitegen serve`: every bundle side by side, rebuilt on change, with live reload.

The server builds into a private temporary folder (never `build/` unless `--out` is given) and
serves `/public/`, `/restricted/`, `/internal/`… from it. Two things exist only here, injected into
HTML responses as they are sent and never written into a bundle: the "viewing as" bar that switches
audience on the same page, and the live-reload script (Server-Sent Events). When a rebuild fails,
the last good build stays online and open pages show an overlay with `path:line: message`.
"""

from __future__ import annotations

import json
import posixpath
import queue
import shutil
import signal
import tempfile
import threading
import time
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import escape
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from .build import Options
from .config import CONFIG_NAME, load_config
from .errors import BuildError, Problem, UsageError
from .history import git_dirs
from .live import LiveBuild

IGNORED_SUFFIXES = ("~", ".swp", ".swo", ".swx", ".tmp", ".part", ".crdownload", ".kate-swp")
DEBOUNCE = 0.15  # seconds of quiet before a burst of saves becomes one rebuild
LIVE_PREFIX = "/__sitegen/"
_MIME = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".json": "application/json", ".xml": "application/xml; charset=utf-8", ".txt": "text/plain; charset=utf-8",
         ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".svg": "image/svg+xml",
         ".pdf": "application/pdf", ".webp": "image/webp", ".ico": "image/x-icon", ".woff2": "font/woff2"}


def is_noise(path: str) -> bool:
    """Editor backups, swap files and temporaries: never a reason to rebuild."""
    name = posixpath.basename(path.replace("\\", "/"))
    return not name or name.startswith((".", "#")) or name.endswith(IGNORED_SUFFIXES) or name == "4913"


@dataclass
class LiveState:
    """The last build's outcome, shared by the builder thread and the HTTP handlers."""

    out: Path
    bundles: list[str]
    problems: list[Problem] = field(default_factory=list)
    generation: int = 0
    clients: list[queue.Queue] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def message(self) -> tuple[str, str]:
        if self.problems:
            return "problems", json.dumps([p.format() for p in self.problems])
        return "reload", json.dumps({"generation": self.generation})

    def broadcast(self) -> None:
        event = self.message()
        with self.lock:
            for client in list(self.clients):
                client.put(event)


class Rebuilder:
    """Runs builds one at a time; a burst of file events becomes a single rebuild."""

    def __init__(self, root: Path, options: Options, state: LiveState, log) -> None:
        self.root = root
        self.options = options
        self.state = state
        self.log = log
        self.pending: set[str] = set()
        self.live = LiveBuild(root, options)
        self.lock = threading.Lock()
        self.timer: threading.Timer | None = None
        self.waiting = 0  # rebuilds whose changes are taken, waiting for the build lock

    def build_now(self, paths: set[str] | None = None) -> bool:
        """A full build, or with `paths` an incremental one (after a failed one: full again)."""
        started = time.perf_counter()
        announced = False
        try:
            if paths is None or self.state.problems or self.live.last is None:
                summary = ", ".join(f"{n} ({c} pages)" for n, c in self.live.full().pages.items())
            else:
                work = self.live.update(paths, audit=False)
                summary = "everything" if work.full else f"{len(work.pages)} page(s) and what lists them"
                if not work.full:  # pages first, then the search index and the audit of what was written
                    self.state.problems = []
                    self.state.generation += 1
                    self.state.broadcast()
                    announced = True
                    if not self.live.settle(interrupted=self._saved_since):
                        summary += " (search index and audit wait for the next save's rebuild)"
        except BuildError as exc:
            self.state.problems = exc.problems
            kept = "still serving the last good build" if self.state.generation else "nothing to serve until it is fixed"
            self.log(f"rebuild failed ({len(exc.problems)} problem(s)); {kept}:")
            for problem in exc.problems:
                self.log("  " + problem.format())
            self.state.broadcast()
            return False
        except Exception as exc:  # noqa: BLE001 - a crash in one rebuild must not stop the server
            self.state.problems = [Problem(CONFIG_NAME, None, f"internal error during rebuild: {exc!r}")]
            self.log(f"rebuild crashed: {exc!r}")
            self.state.broadcast()
            return False
        self.log(f"rebuilt in {time.perf_counter() - started:.2f} s: {summary}")
        if not announced:
            self.state.problems = []
            self.state.generation += 1
            self.state.broadcast()
        return True

    def changed(self, path: str) -> None:
        with self.lock:
            self.pending.add(path)
            if self.timer is not None:
                self.timer.cancel()
            self.timer = threading.Timer(DEBOUNCE, self._fire)
            self.timer.daemon = True
            self.timer.start()

    def _fire(self) -> None:
        with self.lock:
            paths, self.pending = sorted(self.pending), set()
            self.timer = None
            self.waiting += bool(paths)
        if paths:
            self.log("changed: " + ", ".join(_short(self.root, p) for p in paths[:5]) + (" …" if len(paths) > 5 else ""))
            with _BUILD_LOCK:
                with self.lock:
                    self.waiting -= 1
                self.build_now(set(paths))

    def _saved_since(self) -> bool:
        """Did a save come in after this rebuild started (waiting for its debounce, or for the lock)?"""
        return bool(self.pending) or self.waiting > 0


_BUILD_LOCK = threading.Lock()


def _short(root: Path, path: str) -> str:
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return path


WATCHED = ("content", "templates", "static")


class _Events(FileSystemEventHandler):
    """Passes on changes to content/, templates/, static/ and sitegen.toml; starts watching those
    folders when they are created while serving. Also what git reads the history from: a commit,
    a checkout or a pull moves HEAD (dates, "Recently updated", history pages), and .mailmap names
    the authors. (A repository made while serving is seen at the next start.)"""

    def __init__(self, rebuilder: Rebuilder, observer: Observer) -> None:
        self.rebuilder = rebuilder
        self.observer = observer
        root = rebuilder.root.resolve()
        self.root = root
        self.config = root / CONFIG_NAME
        self.folders = [root / name for name in WATCHED]
        self.scheduled: dict[Path, ObservedWatch] = {}
        found = git_dirs(root)
        self.git_files: set[Path] = set()
        self.branches: Path | None = None
        if found is not None:
            top, git_dir, common = found
            self.git_files = {top / ".mailmap", git_dir / "HEAD", common / "packed-refs"}
            self.branches = common / "refs" / "heads"

    def start(self) -> None:
        for folder in self.folders:
            self.watch(folder)
        self.observer.schedule(self, str(self.root), recursive=False)  # sitegen.toml, and folders created later
        for folder in sorted({path.parent for path in self.git_files} - {self.root}):
            self.observer.schedule(self, str(folder), recursive=False)
        if self.branches is not None and self.branches.is_dir():
            self.observer.schedule(self, str(self.branches), recursive=True)

    def watch(self, folder: Path) -> None:
        if folder.is_dir() and folder not in self.scheduled:
            self.scheduled[folder] = self.observer.schedule(self, str(folder), recursive=True)

    def forget(self, folder: Path) -> None:
        """A watched folder was removed (`rm -rf static`, `git checkout` of content/): its watch ends
        with it, and the folder made again in its place is watched anew."""
        watch = self.scheduled.pop(folder, None)
        if watch is not None:
            try:
                self.observer.unschedule(watch)
            except (KeyError, ValueError):  # (already gone with the folder)
                pass

    def _relevant(self, path: str) -> bool:
        resolved = Path(path).resolve()
        if resolved in self.git_files or (self.branches is not None and resolved.is_relative_to(self.branches)
                                          and not resolved.name.endswith(".lock")):
            return True
        if is_noise(path):
            return False
        return resolved == self.config or any(resolved == f or resolved.is_relative_to(f) for f in self.folders)

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write", "closed"):
            return
        if event.is_directory and event.event_type == "modified":
            return  # a folder's own timestamp: the file event that caused it is reported too
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if not path:
                continue
            resolved = Path(str(path)).resolve()
            if resolved in self.folders and event.is_directory:
                if event.event_type == "deleted" or (event.event_type == "moved" and path == event.src_path):
                    self.forget(resolved)
                else:
                    self.watch(resolved)
            if self._relevant(str(path)):
                self.rebuilder.changed(str(path))


def bar_html(state: LiveState, bundle: str, rest: str) -> str:
    """The "viewing as" bar: each bundle's copy of this page, or its home where it has none."""
    links = []
    for name in state.bundles:
        target = rest if (state.out / name / rest / "index.html").is_file() or (state.out / name / rest).is_file() else ""
        current = ' aria-current="page" class="current"' if name == bundle else ""
        links.append(f'<a href="/{escape(name)}/{escape(target)}"{current}>{escape(name)}</a>')
    return ('<div id="sitegen-live-bar" role="navigation" aria-label="Audience preview">'
            f'viewing as: {" | ".join(links)}</div>'
            f'<script src="{LIVE_PREFIX}live.js"></script>')


class Handler(BaseHTTPRequestHandler):
    state: LiveState
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = unquote(urlsplit(self.path).path)
        if path.startswith(LIVE_PREFIX):
            return self._live(path[len(LIVE_PREFIX) :])
        parts = [p for p in path.split("/") if p]
        if not parts or parts[0] not in self.state.bundles:
            return self._redirect(f"/{self.state.bundles[0]}/")
        if any(p in ("..", ".") or "\\" in p for p in parts):
            return self._send(HTTPStatus.BAD_REQUEST, b"bad path", "text/plain")
        bundle, rest = parts[0], "/".join(parts[1:])
        for _ in range(3):
            try:
                found = self._find(bundle, rest, path)
                if found is None:
                    return
                status, target = found
                data = target.read_bytes()
                break
            except OSError:  # the bundle was swapped for a new build between finding the file and reading it
                time.sleep(0.05)
        else:
            return self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"rebuilding: reload in a moment", "text/plain")
        if status == HTTPStatus.NOT_FOUND:  # served at any depth: its relative links start at the bundle
            data = data.replace(b"<head>", f'<head><base href="/{bundle}/">'.encode(), 1)
        kind = _MIME.get(target.suffix.lower(), "application/octet-stream")
        if target.suffix == ".html":
            bar = bar_html(self.state, bundle, rest.rstrip("/") + "/" if rest and target.name == "index.html" else rest).encode()
            data = data.replace(b"</body>", bar + b"</body>", 1) if b"</body>" in data else data + bar
        self._send(status, data, kind)

    def _find(self, bundle: str, rest: str, path: str) -> tuple[HTTPStatus, Path] | None:
        """The file to answer with and its status; None when an answer was sent already."""
        folder = self.state.out / bundle
        target = folder / rest
        if target.is_dir():
            if not path.endswith("/"):
                self._redirect(path + "/")
                return None
            target = target / "index.html"
        if target.is_file():
            return HTTPStatus.OK, target
        if (folder / "404.html").is_file():
            return HTTPStatus.NOT_FOUND, folder / "404.html"
        # nothing built yet: a page that shows the problems and reloads
        page = f"<!DOCTYPE html><html><head><title>Not built yet</title></head><body><p>The site is not built yet.</p>{bar_html(self.state, bundle, '')}</body></html>"
        self._send(HTTPStatus.NOT_FOUND, page.encode(), "text/html; charset=utf-8")
        return None

    def _live(self, name: str) -> None:
        if name == "live.js":
            return self._send(HTTPStatus.OK, LIVE_JS.encode(), "text/javascript; charset=utf-8")
        if name != "events":
            return self._send(HTTPStatus.NOT_FOUND, b"", "text/plain")
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "keep-alive")
        self.end_headers()
        inbox: queue.Queue = queue.Queue()
        with self.state.lock:
            self.state.clients.append(inbox)
        try:
            event, data = self.state.message()
            self._event("hello" if event == "reload" else event, data)
            while True:
                try:
                    event, data = inbox.get(timeout=15)
                    self._event(event, data)
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        finally:
            with self.state.lock:
                self.state.clients.remove(inbox)
            self.close_connection = True

    def _event(self, event: str, data: str) -> None:
        self.wfile.write(f"event: {event}\ndata: {data}\n\n".encode())
        self.wfile.flush()

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, status: HTTPStatus, data: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_HEAD = do_GET


LIVE_JS = r"""
/* sitegen serve: live reload and the error overlay. Only ever sent by `sitegen serve`. */
(function () {
  "use strict";
  var style = document.createElement("style");
  style.textContent = "#sitegen-live-bar{position:fixed;right:1rem;bottom:1rem;z-index:9999;background:#1d2433;color:#fff;" +
    "font:14px system-ui,sans-serif;padding:.4rem .8rem;border-radius:999px;box-shadow:0 2px 8px rgba(0,0,0,.3)}" +
    "#sitegen-live-bar a{color:#9cc8ff;margin:0 .2rem}#sitegen-live-bar a.current{color:#fff;font-weight:700;text-decoration:none}" +
    "#sitegen-overlay{position:fixed;inset:0;z-index:10000;background:rgba(20,20,30,.92);color:#ffd7d7;" +
    "font:14px/1.5 ui-monospace,monospace;padding:2rem;overflow:auto;white-space:pre-wrap}" +
    "#sitegen-overlay h2{color:#fff;font:600 18px system-ui,sans-serif;margin:0 0 1rem}";
  document.head.appendChild(style);
  function overlay(problems) {
    var box = document.getElementById("sitegen-overlay");
    if (!box) {
      box = document.createElement("div");
      box.id = "sitegen-overlay";
      box.setAttribute("role", "alert");
      document.body.appendChild(box);
    }
    box.textContent = "";
    var title = document.createElement("h2");
    title.textContent = "The last change could not be built (showing the last good version):";
    box.appendChild(title);
    box.appendChild(document.createTextNode(problems.join("\n")));
  }
  var broken = false;
  var source = new EventSource("/__sitegen/events");
  source.addEventListener("problems", function (e) { broken = true; overlay(JSON.parse(e.data)); });
  source.addEventListener("reload", function () { location.reload(); });
  source.addEventListener("hello", function () { if (broken) location.reload(); });
})();
"""


def serve(root: Path, options: Options, host: str, port: int, open_browser: bool, log) -> None:
    """Build, serve and watch until interrupted (Ctrl-C or SIGTERM)."""
    config = load_config(root)
    known = [b.name for b in config.bundles]
    unknown = [n for n in options.bundles if n not in known]
    if unknown:
        raise UsageError(f"unknown bundle {', '.join(unknown)}; configured bundles: {', '.join(known)}")
    names = [n for n in known if not options.bundles or n in options.bundles]
    private = options.out is None
    previous = signal.signal(signal.SIGTERM, _interrupt)
    observer = Observer()
    server: ThreadingHTTPServer | None = None
    rebuilder: Rebuilder | None = None
    out: Path | None = None
    try:
        with _stops_held():  # a Ctrl-C between making the folder and knowing its name would leave it behind
            out = Path(tempfile.mkdtemp(prefix="sitegen-serve-")) if private else options.out
        options.out = out
        state = LiveState(out, names)
        rebuilder = Rebuilder(root, options, state, log)
        try:
            server = ThreadingHTTPServer((host, port), type("BoundHandler", (Handler,), {"state": state}))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}); is another server running? try --port {port + 1}") from exc
        server.daemon_threads = True
        with _BUILD_LOCK:
            rebuilder.build_now()
        _Events(rebuilder, observer).start()
        observer.start()
        url = f"http://{host}:{server.server_address[1]}/{names[0]}/"
        log(f"Serving {', '.join(names)} at {url} (Ctrl-C to stop)")
        if open_browser:
            webbrowser.open(url)
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        log("stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)
        if observer.is_alive():
            observer.stop()
            observer.join(timeout=5)
        if server is not None:
            server.server_close()
        if rebuilder is not None:
            with rebuilder.lock:
                if rebuilder.timer is not None:
                    rebuilder.timer.cancel()
        _BUILD_LOCK.acquire(timeout=60)  # let a rebuild in progress finish before removing its folder
        if private and out is not None:
            shutil.rmtree(out, ignore_errors=True)


@contextmanager
def _stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block is done (where the platform can hold signals); they
    are then raised as the block ends, when what it assigned is known to the code that cleans up."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt
