"""`sitegen serve` as a user runs it: a real subprocess, real files edited on disk, real HTTP.

Each test starts `python -m ipo_sitegen serve --root SITE --port 0` (0: the OS picks a free port; the
URL is read from the "Serving ... at URL" line) with TMPDIR pointed at a folder of the test, so that
the server's private build folder (`sitegen-serve-*`) can be found and must be gone after shutdown.
Rebuilds are counted from the server's stderr ("rebuilt in X s: ...", "rebuild failed ...").

The child restores the default SIGINT disposition: a shell that starts pytest in the background
ignores SIGINT, and an ignored signal would be inherited and make every Ctrl-C test meaningless.

The helpers here (ServeProcess, EventStream, small_site...) are reused by test_serve_browser.py.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urljoin, urlsplit
from urllib.request import Request, urlopen

import pytest
from helpers import all_text, build_ok, git, make_site, page, parse_links, read_tree

REPO = Path(__file__).resolve().parents[1]
STARTUP = 30.0  # seconds for python to start and do the first build
REBUILD = 15.0  # seconds to wait for one rebuild to be reported
REBUILD_LINE = r"^(rebuilt in|rebuild failed|rebuild crashed)"
BAR = re.compile(r'<div id="sitegen-live-bar".*?</div>\s*<script src="/__sitegen/live\.js"></script>', re.S)


# ---- the site ----------------------------------------------------------------------------------------
def setup_page(text: str = "Original setup text.", summary: str | None = None) -> str:
    """guides/setup.md: a public page (its section is public) with a registered block."""
    front = "---\ntitle: Setup\n" + (f"summary: {summary}\n" if summary is not None else "") + "---\n"
    return front + f"\n{text}\n\n::: audience registered\n\nRegistered-only setup detail.\n\n:::\n"


# Line 3 of this file is the bad one: "summary: broken: value" (a second ': ' in a plain value).
BROKEN_SETUP = "---\ntitle: Setup\nsummary: broken: value\n---\n\nBroken setup text.\n"
BROKEN_LINE = 3

SMALL_SITE: dict[str, str | bytes] = {
    "content/_index.md": page("Test Space", "public", "Welcome home. Read the [setup guide](guides/setup.md)."),
    "content/guides/_index.md": page("Guides", "public", "Step-by-step guides."),
    "content/guides/setup.md": setup_page(),
    "content/guides/install.md": page("Install", "registered", "Install text for registered offices."),
    "content/guides/remove-me.md": page("Remove me", body="A page about to be deleted."),
    "content/notes/_index.md": page("Notes", "public", "Notes of the team."),
    "content/notes/first.md": page("First note", body="First note text."),
}


def small_site(root: Path, extra: dict[str, str | bytes] | None = None, name: str = "site") -> Path:
    return make_site(root, {**SMALL_SITE, **(extra or {})}, name=name)


def demo_site(root: Path) -> Path:
    """A copy of this repository's demo site (content/ and sitegen.toml; no git history)."""
    site = root / "demo"
    site.mkdir(parents=True)
    shutil.copytree(REPO / "content", site / "content")
    shutil.copy(REPO / "sitegen.toml", site / "sitegen.toml")
    for optional in ("templates", "static"):
        if (REPO / optional).is_dir():
            shutil.copytree(REPO / optional, site / optional)
    return site


# ---- HTTP --------------------------------------------------------------------------------------------
@dataclass
class Response:
    status: int
    text: str
    headers: dict[str, str]


def fetch(url: str, timeout: float = 10.0) -> Response:
    """GET `url` (redirects followed); 4xx and 5xx are returned, not raised."""
    try:
        with urlopen(Request(url), timeout=timeout) as answer:
            return Response(answer.status, answer.read().decode("utf-8", "replace"), dict(answer.headers))
    except HTTPError as error:
        return Response(error.code, error.read().decode("utf-8", "replace"), dict(error.headers))


def raw_get(base: str, path: str, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """GET with the path sent exactly as given (no normalisation, no redirects)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


def eventually(check, timeout: float = REBUILD, interval: float = 0.1, message: str = ""):
    """Call `check` until it returns a true value (returned) or `timeout` passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = check()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s: {message} (last value: {last!r})")
        time.sleep(interval)


# ---- Server-Sent Events ------------------------------------------------------------------------------
class EventStream:
    """A minimal EventSource over a raw socket: (event, data) pairs in a queue, closable at any time."""

    def __init__(self, base: str, timeout: float = 10.0) -> None:
        parts = urlsplit(base)
        self.sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
        self.sock.sendall(f"GET /__sitegen/events HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                          "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n".encode())
        self.sock.settimeout(0.3)
        self.status = ""
        self.headers: dict[str, str] = {}
        self.events: queue.Queue = queue.Queue()
        self.seen: list[tuple[str, str]] = []
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        buffer = b""
        in_body = False
        try:
            while not self._closed.is_set():
                try:
                    chunk = self.sock.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    break
                buffer += chunk
                if not in_body:
                    if b"\r\n\r\n" not in buffer:
                        continue
                    head, buffer = buffer.split(b"\r\n\r\n", 1)
                    lines = head.decode("latin-1").split("\r\n")
                    self.status = lines[0]
                    self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                    in_body = True
                buffer = buffer.replace(b"\r\n", b"\n")
                while b"\n\n" in buffer:
                    block, buffer = buffer.split(b"\n\n", 1)
                    event, data = "message", []
                    for line in block.decode("utf-8").split("\n"):
                        if not line or line.startswith(":"):
                            continue
                        field, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if field == "event":
                            event = value
                        elif field == "data":
                            data.append(value)
                    if data:
                        self.events.put((event, "\n".join(data)))
        except OSError:
            pass
        finally:
            self.events.put(None)

    def next(self, timeout: float = REBUILD) -> tuple[str, str]:
        try:
            item = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no server-sent event within {timeout} s (seen so far: {self.seen})") from None
        if item is None:
            self.events.put(None)
            raise AssertionError(f"the event stream ended (status {self.status!r}, seen: {self.seen})")
        self.seen.append(item)
        return item

    def wait_for(self, name: str, timeout: float = REBUILD) -> str:
        """Data of the next `name` event; other events on the way are kept in `seen`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {name!r} event within {timeout} s (seen: {self.seen})")
            event, data = self.next(left)
            if event == name:
                return data

    def quiet(self, seconds: float) -> list[tuple[str, str]]:
        """Every event that arrives within `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                item = self.events.get(timeout=left)
            except queue.Empty:
                break
            if item is None:
                self.events.put(None)
                break
            self.seen.append(item)
            got.append(item)
        return got

    def close(self) -> None:
        self._closed.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# ---- the server process ------------------------------------------------------------------------------
def _default_sigint() -> None:  # runs in the child before exec
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServeProcess:
    """`python -m ipo_sitegen serve --root SITE ARGS...` with its stderr collected line by line."""

    def __init__(self, site: Path, *args: str, tmpdir: Path, env: dict[str, str] | None = None, wait: bool = True) -> None:
        self.site = site
        self.tmpdir = tmpdir
        self.args = ["serve", "--root", str(site), *args]
        if not any(a == "--port" or a.startswith("--port=") for a in args):
            self.args += ["--port", "0"]
        environment = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        environment.pop("SOURCE_DATE_EPOCH", None)
        environment.update(env or {})
        self.lines: list[str] = []
        self.proc = subprocess.Popen([sys.executable, "-m", "ipo_sitegen", *self.args], cwd=str(site),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=environment, text=True, encoding="utf-8", errors="replace",
                                     preexec_fn=_default_sigint)
        self._readers = [threading.Thread(target=self._collect, args=(stream,), daemon=True)
                         for stream in (self.proc.stderr, self.proc.stdout)]
        for reader in self._readers:
            reader.start()
        self.url = ""
        self.base = ""
        self.port = 0
        if wait:
            self.wait_ready()

    def _collect(self, stream) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    # -- output
    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    def mark(self) -> int:
        return len(self.lines)

    def wait_line(self, pattern: str, since: int = 0, timeout: float = REBUILD) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines[since:]:
                found = regex.search(line)
                if found:
                    return found
            if self.proc.poll() is not None:
                for reader in self._readers:
                    reader.join(timeout=2)
                for line in self.lines[since:]:
                    if regex.search(line):
                        return regex.search(line)
                raise AssertionError(f"server exited ({self.proc.returncode}) without printing {pattern!r}:\n{self.log}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; server output:\n{self.log}")
            time.sleep(0.02)

    def count(self, pattern: str = REBUILD_LINE, since: int = 0) -> int:
        regex = re.compile(pattern)
        return sum(1 for line in self.lines[since:] if regex.search(line))

    def settle(self, quiet: float = 1.0, timeout: float = REBUILD) -> None:
        """Wait until the server has printed nothing for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.lines), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if len(self.lines) != seen:
                seen, since = len(self.lines), time.monotonic()
            elif time.monotonic() - since >= quiet:
                return

    def wait_ready(self, timeout: float = STARTUP) -> None:
        found = self.wait_line(r"^Serving .* at (http://\S+)", 0, timeout)
        self.url = found.group(1)
        parts = urlsplit(self.url)
        self.base = f"{parts.scheme}://{parts.netloc}"
        self.port = parts.port or 0

    # -- HTTP
    def get(self, path: str = "/public/", timeout: float = 10.0) -> Response:
        return fetch(self.base + path, timeout)

    def events(self) -> EventStream:
        return EventStream(self.base)

    # -- the private build folder
    def temp_folders(self) -> list[Path]:
        return sorted(self.tmpdir.glob("sitegen-serve-*"))

    # -- shutdown
    def wait_exit(self, timeout: float = 10.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"server still running after {timeout} s:\n{self.log}") from None
        for reader in self._readers:
            reader.join(timeout=2)
        return code

    def interrupt(self, sig: int = signal.SIGINT, timeout: float = 5.0) -> tuple[int, float]:
        """Send `sig`; return (exit code, seconds it took to exit)."""
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.wait_exit(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - a reader thread may hold it
                pass


@pytest.fixture
def serve(tmp_path):
    """serve(site, *args, wait=True, env=None) -> ServeProcess; every server is stopped at teardown."""
    started: list[ServeProcess] = []

    def start(site: Path, *args: str, wait: bool = True, env: dict[str, str] | None = None) -> ServeProcess:
        tmpdir = tmp_path / f"tmp-{len(started)}"
        tmpdir.mkdir()
        server = ServeProcess(site, *args, tmpdir=tmpdir, env=env, wait=False)
        started.append(server)
        if wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.kill()


def bar_links(html: str) -> dict[str, str]:
    """The audience bar's links: bundle name -> href."""
    found = re.search(r'<div id="sitegen-live-bar".*?</div>', html, re.S)
    assert found, "no audience bar in the served page"
    return {text: href for href, text in re.findall(r'<a href="([^"]*)"[^>]*>([^<]*)</a>', found.group(0))}


def edit(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


# ---- serving every bundle, and the bar only at serve time ------------------------------------------
def test_demo_site_is_served_side_by_side_with_the_bar_that_the_build_never_writes(serve, tmp_path):
    site = demo_site(tmp_path)
    server = serve(site)
    assert server.url.endswith("/public/")
    served = {}
    for bundle, url in [("public", ""), ("public", "access/faq/"), ("restricted", "access/faq/"), ("internal", "")]:
        answer = server.get(f"/{bundle}/{url}")
        assert answer.status == 200, (bundle, url, answer.status)
        assert answer.headers.get("Content-Type", "").startswith("text/html")
        assert 'id="sitegen-live-bar"' in answer.text and "/__sitegen/live.js" in answer.text
        assert re.search(r"viewing as:.*public.*restricted.*internal", answer.text, re.S)
        served[(bundle, url)] = answer.text
    # Gating is the build's: the registered block of the FAQ is in the restricted copy only.
    assert "intermediate" not in served[("public", "access/faq/")].lower()
    assert "intermediate" in served[("restricted", "access/faq/")].lower()
    js = server.get("/__sitegen/live.js")
    assert js.status == 200 and "EventSource" in js.text and "javascript" in js.headers.get("Content-Type", "")
    assert not (site / "build").exists(), "serve wrote into build/ without --out"
    server.kill()

    build_ok(site)
    for bundle in ("public", "restricted", "internal"):
        text = all_text(site / "build" / bundle)
        # ("__sitegen/" is the live endpoint; search.js's own global window.__sitegenSearch is fine)
        assert "sitegen-live-bar" not in text and "/__sitegen/" not in text and "sitegen-overlay" not in text, bundle
        assert "EventSource" not in text and "viewing as:" not in text, bundle
    # What serve sends is the built page plus the bar and the script, nothing else.
    for (bundle, url), html in served.items():
        built = (site / "build" / bundle / url / "index.html").read_text(encoding="utf-8")
        assert BAR.sub("", html, count=1) == built, f"/{bundle}/{url} differs from the built page beyond the bar"


def test_binds_to_loopback_by_default(serve, tmp_path):
    server = serve(small_site(tmp_path))
    assert server.url.startswith("http://127.0.0.1:"), server.url
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            address, port = fields[1].split(":")
            if fields[3] == "0A" and int(port, 16) == server.port:
                listening.append(address)
    if not listening:
        pytest.skip("cannot read listening sockets from /proc/net/tcp")
    assert listening == ["0100007F"], f"listening on {listening}, expected only 127.0.0.1"


def test_the_bar_keeps_the_current_page_or_falls_back_to_the_bundle_home(serve, tmp_path):
    server = serve(small_site(tmp_path))
    links = bar_links(server.get("/public/guides/setup/").text)
    assert links == {"public": "/public/guides/setup/", "restricted": "/restricted/guides/setup/",
                     "internal": "/internal/guides/setup/"}
    # Install is registered: the public bundle has no copy, so the bar sends public readers home.
    links = bar_links(server.get("/restricted/guides/install/").text)
    assert links == {"public": "/public/", "restricted": "/restricted/guides/install/", "internal": "/internal/guides/install/"}
    for href in links.values():
        assert server.get(href).status == 200, href
    html = server.get("/restricted/guides/install/").text
    current = re.search(r'<a href="([^"]*)"[^>]*aria-current="page"', html)
    assert current and current.group(1) == "/restricted/guides/install/"
    # Section pages and the home keep their place too.
    assert bar_links(server.get("/internal/guides/").text)["public"] == "/public/guides/"
    assert bar_links(server.get("/restricted/").text)["public"] == "/public/"


def test_root_redirects_to_the_first_bundle_and_unknown_pages_get_the_404_page(serve, tmp_path):
    server = serve(small_site(tmp_path))
    status, headers, _ = raw_get(server.base, "/")
    assert status in (301, 302, 303, 307, 308) and headers.get("Location", "").endswith("/public/")
    status, headers, _ = raw_get(server.base, "/public/guides")
    assert status in (301, 302, 303, 307, 308) and headers.get("Location", "").endswith("/public/guides/")
    missing = server.get("/public/guides/no-such-page/")
    assert missing.status == 404
    assert "Page not found" in missing.text and 'id="sitegen-live-bar"' in missing.text
    # The registered page does not exist in the public bundle.
    assert server.get("/public/guides/install/").status == 404
    assert server.get("/restricted/guides/install/").status == 200


def test_the_404_page_works_at_a_nested_address(serve, tmp_path):
    """A mistyped link lands on the bundle's 404.html served at a deep URL. Its relative links
    (stylesheet, "Go to the home page") must still work there, as a static host with an error page
    would make them work, or the reader sees an unstyled page whose home link loops to itself."""
    server = serve(small_site(tmp_path))
    url = server.base + "/public/guides/no-such-page/"
    missing = fetch(url)
    assert missing.status == 404
    links = parse_links(missing.text).links
    base = re.search(r'<base href="([^"]*)">', missing.text)
    url = urljoin(url, base.group(1)) if base else url  # as a browser resolves them
    stylesheet = next(value for tag, attr, value, _ in links if tag == "link" and attr == "href" and value.endswith(".css"))
    css = fetch(urljoin(url, stylesheet))
    assert css.status == 200 and "text/css" in css.headers.get("Content-Type", ""), (
        f"the 404 page's stylesheet {stylesheet!r} resolves to {urljoin(url, stylesheet)} -> {css.status}")
    home = re.search(r'<a href="([^"]*)">Go to the home page</a>', missing.text)
    assert home, "no home link on the 404 page"
    assert urljoin(url, home.group(1)) == server.base + "/public/", f"'Go to the home page' points to {urljoin(url, home.group(1))}"


def test_paths_outside_the_bundles_are_refused(serve, tmp_path):
    site = small_site(tmp_path)
    (tmp_path / "secret.txt").write_text("top secret\n")
    server = serve(site)
    for path in ["/public/../../../../../../etc/passwd", "/public/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
                 "/public/..%2f..%2f..%2f..%2f..%2fetc%2fpasswd", "/public/../../secret.txt", "/public/%2e%2e/%2e%2e/%2e%2e/secret.txt"]:
        status, _, body = raw_get(server.base, path)
        assert status != 200 or (b"root:" not in body and b"top secret" not in body), path


def test_a_single_bundle_is_served_alone(serve, tmp_path):
    server = serve(small_site(tmp_path), "--bundle", "restricted")
    assert server.url.endswith("/restricted/")
    answer = server.get("/restricted/guides/install/")
    assert answer.status == 200
    assert bar_links(answer.text) == {"restricted": "/restricted/guides/install/"}
    status, headers, _ = raw_get(server.base, "/public/")
    assert status != 200, "a bundle that was not asked for is served"


def test_open_flag_opens_the_served_url_in_a_browser(serve, tmp_path):
    opened = tmp_path / "opened.txt"
    fake = tmp_path / "fake-browser"
    fake.write_text(f'#!/bin/sh\necho "$1" >> "{opened}"\n')
    fake.chmod(0o755)
    server = serve(small_site(tmp_path), "--open", env={"BROWSER": f"{fake} %s", "DISPLAY": "", "WAYLAND_DISPLAY": ""})
    eventually(opened.exists, 10, message="--open did not start the browser")
    assert eventually(lambda: opened.read_text().strip(), 5) == server.url


# ---- live reload -------------------------------------------------------------------------------------
def test_events_say_hello_then_reload_after_each_good_rebuild(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    stream = server.events()
    try:
        event, data = stream.next(10)
        assert event == "hello", (event, data)
        assert stream.status.split()[1] == "200" and stream.headers.get("content-type", "").startswith("text/event-stream")
        for round_, text in enumerate(["First edit of setup.", "Second edit of setup."]):
            mark = server.mark()
            edit(site / "content/guides/setup.md", setup_page(text))
            stream.wait_for("reload")
            server.wait_line(r"^rebuilt in \d+(\.\d+)? s: ", mark)
            page_ = server.get("/public/guides/setup/")
            assert page_.status == 200 and text in page_.text, round_
            assert "Registered-only setup detail" not in page_.text
            assert "Registered-only setup detail" in server.get("/restricted/guides/setup/").text
    finally:
        stream.close()


def test_a_failed_rebuild_sends_problems_and_keeps_the_last_good_build(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    stream = server.events()
    try:
        assert stream.next(10)[0] == "hello"
        mark = server.mark()
        edit(site / "content/guides/setup.md", BROKEN_SETUP)
        problems = json.loads(stream.wait_for("problems"))
        assert isinstance(problems, list) and problems and all(isinstance(p, str) for p in problems), problems
        assert any(re.match(rf"content/guides/setup\.md:{BROKEN_LINE}: .*YAML", p) for p in problems), problems
        server.wait_line(r"^rebuild failed", mark)
        server.wait_line(rf"content/guides/setup\.md:{BROKEN_LINE}: ", mark)
        # The last good build stays online.
        answer = server.get("/public/guides/setup/")
        assert answer.status == 200 and "Original setup text." in answer.text and "Broken setup text" not in answer.text
        assert server.get("/public/notes/first/").status == 200
        # A page opened now learns about the problem at once.
        late = server.events()
        try:
            event, data = late.next(10)
            assert event == "problems" or (event == "hello" and late.wait_for("problems", 5)), (event, data)
        finally:
            late.close()
        # Fixing the file rebuilds and tells open pages to reload.
        edit(site / "content/guides/setup.md", setup_page("Fixed setup text."))
        stream.wait_for("reload")
        assert "Fixed setup text." in server.get("/public/guides/setup/").text
        fresh = server.events()
        try:
            assert fresh.next(10)[0] == "hello"
        finally:
            fresh.close()
    finally:
        stream.close()


def test_a_broken_template_names_the_template_and_its_line(serve, tmp_path):
    template = '{% extends "base.html" %}\n{% block main %}\n<h1>Custom missing page v1</h1>\n{% endblock %}\n'
    site = small_site(tmp_path, {"templates/404.html": template})
    server = serve(site)
    assert "Custom missing page v1" in server.get("/public/nowhere/").text
    stream = server.events()
    try:
        stream.next(10)
        edit(site / "templates/404.html", '{% extends "base.html" %}\n{% block main %}\n<h1>{{ oops </h1>\n{% endblock %}\n')
        problems = json.loads(stream.wait_for("problems"))
        assert any(p.startswith("templates/404.html:3:") for p in problems), (
            f"the overlay should name templates/404.html:3, it shows: {problems}")
        assert "Custom missing page v1" in server.get("/public/nowhere/").text  # last good build
    finally:
        stream.close()


def test_a_site_that_is_broken_at_start_shows_its_problem_and_recovers_when_fixed(serve, tmp_path):
    """The first build fails. Either serve stops with exit 1 and the problem, or it stays up and the
    browser gets something that names the problem (the overlay, through the live script) and reloads
    once the file is fixed. Today it stays up and answers a bare "not found" with no live script, so an
    open tab shows neither the problem nor the fix."""
    site = small_site(tmp_path, {"content/guides/setup.md": BROKEN_SETUP})
    server = serve(site, wait=False)
    found = server.wait_line(rf"content/guides/setup\.md:{BROKEN_LINE}: |^Serving ", 0, STARTUP)
    if server.proc.poll() is not None or not found.group(0).startswith("Serving"):
        try:
            server.wait_ready(3)
        except AssertionError:
            code = server.wait_exit(10)
            assert code == 1 and f"content/guides/setup.md:{BROKEN_LINE}:" in server.log
            return
    assert f"content/guides/setup.md:{BROKEN_LINE}:" in server.log
    answer = server.get("/public/")
    assert "content/guides/setup.md" in answer.text or "/__sitegen/live.js" in answer.text, (
        f"while the first build is broken, /public/ answers {answer.status} {answer.text[:80]!r}: "
        "no problem shown and no live-reload script to show it or to recover")
    edit(site / "content/guides/setup.md", setup_page("Fixed at last."))
    eventually(lambda: "Fixed at last." in server.get("/public/guides/setup/").text, message="page after the fix")


# ---- robust to real editors --------------------------------------------------------------------------
@pytest.mark.parametrize("temp_name", [".setup.md.{n}", "tmp{n}", ".goutputstream-{n}"])
def test_an_atomic_save_is_one_rebuild(serve, tmp_path, temp_name):
    site = small_site(tmp_path)
    server = serve(site)
    folder = site / "content/guides"
    mark = server.mark()
    temp = folder / temp_name.format(n=os.getpid())
    temp.write_text(setup_page("Saved atomically."), encoding="utf-8")
    os.replace(temp, folder / "setup.md")
    server.wait_line(r"^rebuilt in", mark)
    server.settle(1.0)
    assert server.count(REBUILD_LINE, mark) == 1, server.log
    assert "Saved atomically." in server.get("/public/guides/setup/").text


def test_a_vim_style_save_is_one_rebuild(serve, tmp_path):
    """Vim's default save: probe file 4913, the old file renamed to file~, the new one written, file~ removed."""
    site = small_site(tmp_path)
    server = serve(site)
    folder = site / "content/guides"
    mark = server.mark()
    probe = folder / "4913"
    probe.write_text("")
    probe.unlink()
    os.rename(folder / "setup.md", folder / "setup.md~")
    (folder / "setup.md").write_text(setup_page("Saved by vim."), encoding="utf-8")
    (folder / "setup.md~").unlink()
    server.wait_line(r"^rebuilt in", mark)
    server.settle(1.0)
    assert server.count(REBUILD_LINE, mark) == 1, server.log
    assert "Saved by vim." in server.get("/public/guides/setup/").text


def test_swap_and_backup_files_never_cause_a_rebuild(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    folder = site / "content/guides"
    stream = server.events()
    try:
        stream.next(10)
        mark = server.mark()
        (folder / ".setup.md.swp").write_bytes(b"b0VIM 9.0\0swap")  # vim opens the file
        time.sleep(0.4)
        (folder / ".setup.md.swp").write_bytes(b"b0VIM 9.0\0swap, typing")  # vim updates its swap file
        time.sleep(0.4)
        (folder / "setup.md~").write_text(setup_page("a backup"))  # a backup copy
        time.sleep(0.4)
        (folder / "4913").write_text("")  # vim's write probe
        (folder / "4913").unlink()
        time.sleep(0.4)
        (folder / "#setup.md#").write_text("emacs auto-save")  # emacs
        os.symlink("user@host.1234:1700000000", folder / ".#setup.md")  # emacs lock (a dangling link)
        time.sleep(1.5)
        noisy = [line for line in server.lines[mark:] if re.search(REBUILD_LINE + "|^changed:", line)]
        reloads = [e for e in stream.quiet(0.1) if e[0] == "reload"]
        assert noisy == [] and reloads == [], (
            f"editor swap/backup files caused {server.count(REBUILD_LINE, mark)} rebuild(s) and {len(reloads)} page "
            f"reload(s):\n" + "\n".join(server.lines[mark:]))
    finally:
        stream.close()
    # The watcher is alive, and a build with those files lying around succeeds.
    mark = server.mark()
    edit(folder / "setup.md", setup_page("A real edit."))
    server.wait_line(r"^rebuilt in", mark)
    server.settle(1.0)
    assert server.count(REBUILD_LINE, mark) == 1, server.log
    assert "A real edit." in server.get("/public/guides/setup/").text


def test_a_burst_of_saves_is_debounced_into_one_or_two_rebuilds(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    mark = server.mark()
    for n in range(10):
        edit(site / "content/guides/setup.md", setup_page(f"Save number {n}."))
        time.sleep(0.03)
    server.wait_line(r"^rebuilt in", mark)
    server.settle(1.5)
    assert 1 <= server.count(REBUILD_LINE, mark) <= 2, server.log
    text = server.get("/public/guides/setup/").text
    assert "Save number 9." in text


def test_a_renamed_folder_moves_its_pages_and_stays_watched(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    assert server.get("/public/notes/first/").status == 200
    mark = server.mark()
    os.rename(site / "content/notes", site / "content/journal")
    server.wait_line(r"^rebuilt in", mark)
    eventually(lambda: server.get("/public/journal/first/").status == 200, message="new URL after the rename")
    assert server.get("/public/notes/first/").status == 404
    assert server.get("/public/notes/").status == 404
    # Files inside the renamed folder are still watched.
    mark = server.mark()
    edit(site / "content/journal/first.md", page("First note", body="Edited after the move."))
    server.wait_line(r"^rebuilt in", mark)
    assert "Edited after the move." in server.get("/public/journal/first/").text


def test_a_deleted_file_disappears_and_a_new_folder_appears(serve, tmp_path):
    site = small_site(tmp_path)
    server = serve(site)
    assert server.get("/public/guides/remove-me/").status == 200
    assert "Remove me" in server.get("/public/guides/").text
    mark = server.mark()
    (site / "content/guides/remove-me.md").unlink()
    server.wait_line(r"^rebuilt in", mark)
    assert server.get("/public/guides/remove-me/").status == 404
    assert "Remove me" not in server.get("/public/guides/").text
    mark = server.mark()
    (site / "content/faq").mkdir()
    edit(site / "content/faq/_index.md", page("Questions", "public", "Frequently asked."))
    edit(site / "content/faq/login.md", page("Logging in", body="How to log in."))
    eventually(lambda: server.get("/public/faq/login/").status == 200, message="page in a new folder")
    assert "How to log in." in server.get("/public/faq/login/").text


def test_config_template_and_static_changes_rebuild(serve, tmp_path):
    site = small_site(tmp_path, {
        "templates/404.html": '{% extends "base.html" %}\n{% block main %}\n<h1>Custom missing page v1</h1>\n{% endblock %}\n',
        "static/extra.txt": "static v1\n",
    })
    server = serve(site)
    assert server.get("/public/extra.txt").text == "static v1\n"
    mark = server.mark()
    edit(site / "static/extra.txt", "static v2\n")
    server.wait_line(r"^rebuilt in", mark)
    assert server.get("/public/extra.txt").text == "static v2\n"
    mark = server.mark()
    edit(site / "templates/404.html", '{% extends "base.html" %}\n{% block main %}\n<h1>Custom missing page v2</h1>\n{% endblock %}\n')
    server.wait_line(r"^rebuilt in", mark)
    assert "Custom missing page v2" in server.get("/public/nowhere/").text
    mark = server.mark()
    edit(site / "sitegen.toml", (site / "sitegen.toml").read_text().replace('title = "Test Space"', 'title = "Renamed Space"'))
    server.wait_line(r"^rebuilt in", mark)
    assert "Renamed Space" in server.get("/public/").text


def test_a_static_folder_created_while_serving_is_watched(serve, tmp_path):
    """The site had no static/ when serve started; the user adds one (say, for a logo)."""
    site = small_site(tmp_path)
    server = serve(site)
    (site / "static").mkdir()
    edit(site / "static/hello.txt", "hello\n")
    eventually(lambda: server.get("/public/hello.txt").status == 200, 8,
               message=f"static/hello.txt created after start is not served; server output:\n{server.log}")


def test_a_watched_folder_removed_and_made_again_is_watched_again(serve, tmp_path):
    """`rm -rf static && mkdir static`, or content/ restored by git: the new folder's files count."""
    site = small_site(tmp_path, {"static/a.txt": "a\n"})
    server = serve(site)
    assert server.get("/public/a.txt").status == 200
    for folder in ("static", "content"):
        saved = tmp_path / f"saved-{folder}"
        shutil.copytree(site / folder, saved)
        shutil.rmtree(site / folder)
        time.sleep(0.5)  # (the removal seen, whatever the rebuild it causes makes of it)
        shutil.copytree(saved, site / folder)
    edit(site / "static/b.txt", "b\n")
    eventually(lambda: server.get("/public/b.txt").status == 200, 10,
               message=f"static/ made again is not watched; server output:\n{server.log}")
    edit(site / "content/guides/setup.md", setup_page("Edited after content/ came back."))
    eventually(lambda: "Edited after content/ came back." in server.get("/public/guides/setup/").text, 10,
               message=f"content/ made again is not watched; server output:\n{server.log}")


@pytest.mark.parametrize("where", ["site inside a folder named build", "content section named build"])
def test_folders_named_build_are_watched_like_any_other(serve, tmp_path, where):
    """Only the site's own build/ output is to be ignored, not any path that contains '/build/'."""
    if where.startswith("site"):
        site = small_site(tmp_path / "build")
        target, url = site / "content/guides/setup.md", "/public/guides/setup/"
    else:
        site = small_site(tmp_path, {"content/build/_index.md": page("Build", "public", "Building."),
                                     "content/build/steps.md": page("Steps", body="Step one.")})
        target, url = site / "content/build/steps.md", "/public/build/steps/"
    server = serve(site)
    assert server.get(url).status == 200
    mark = server.mark()
    edit(target, page("Steps", body="Edited step.") if "steps" in target.name else setup_page("Edited step."))
    eventually(lambda: "Edited step." in server.get(url).text, 8,
               message=f"an edit of {target.relative_to(tmp_path)} was ignored; output since the edit: {server.lines[mark:]}")


def test_a_commit_and_a_mailmap_edit_while_serving_update_the_history(serve, tmp_path):
    """No file of the site changes when the editor commits what was saved: the dates, "Recently
    updated" and the history pages follow HEAD all the same, and .mailmap renames the authors."""
    site = small_site(tmp_path)
    git(site, "init", "-q")
    git(site, "add", "-A")
    git(site, "commit", "-q", "-m", "First pages", date="2026-02-02T10:00:00Z")
    server = serve(site)
    recent = server.get("/public/recent/").text
    assert "2 February 2026" in recent and "Ana Editor" in recent and "March" not in recent
    edit(site / "content/guides/setup.md", setup_page("Edited and then committed."))
    eventually(lambda: "Edited and then committed." in server.get("/public/guides/setup/").text)
    git(site, "commit", "-q", "-am", "Explain the setup again", date="2026-03-03T10:00:00Z")
    eventually(lambda: "Explain the setup again" in server.get("/public/recent/").text,
               message=f"a commit while serving did not reach recent/; server output: {server.log}")
    assert "3 March 2026" in server.get("/public/recent/").text
    assert "3 March 2026" in server.get("/public/history/guides+setup.html").text
    edit(site / ".mailmap", "Ana Registrar <ana@example.org>\n")
    eventually(lambda: "Ana Registrar" in server.get("/public/recent/").text,
               message=f"a .mailmap edit while serving did not rename the author; server output: {server.log}")
    assert "Ana Editor" not in server.get("/public/recent/").text


# ---- build/, --out, errors at start, shutdown ----------------------------------------------------------
def test_serve_never_touches_build_and_uses_a_private_temporary_folder(serve, tmp_path):
    site = small_site(tmp_path)
    build_ok(site)
    before = read_tree(site / "build")
    server = serve(site)
    assert len(server.temp_folders()) == 1
    assert (server.temp_folders()[0] / "public" / "index.html").is_file()
    mark = server.mark()
    edit(site / "content/guides/setup.md", setup_page("Edited while serving."))
    server.wait_line(r"^rebuilt in", mark)
    assert read_tree(site / "build") == before
    code, _ = server.interrupt()
    assert read_tree(site / "build") == before
    assert server.temp_folders() == []


def test_out_builds_into_the_given_folder_and_keeps_it(serve, tmp_path):
    site = small_site(tmp_path)
    out = tmp_path / "preview"
    server = serve(site, "--out", str(out))
    assert (out / "public" / "guides" / "setup" / "index.html").is_file()
    assert server.temp_folders() == []
    assert not (site / "build").exists()
    mark = server.mark()
    edit(site / "content/guides/setup.md", setup_page("Edited into --out."))
    server.wait_line(r"^rebuilt in", mark)
    assert "Edited into --out." in (out / "public" / "guides" / "setup" / "index.html").read_text()
    assert "sitegen-live-bar" not in (out / "public" / "guides" / "setup" / "index.html").read_text()
    code, _ = server.interrupt()
    assert code in (0, 130)
    assert (out / "public" / "index.html").is_file(), "serve removed the folder given with --out"


def test_serving_again_into_an_unchanged_folder_still_rebuilds_on_edits(serve, tmp_path):
    # The build's "nothing changed" shortcut verifies the output but plans nothing; serve needs the plan.
    site = small_site(tmp_path)
    out = tmp_path / "preview"
    first = serve(site, "--out", str(out))
    first.interrupt()
    server = serve(site, "--out", str(out))  # nothing changed since the first one built
    mark = server.mark()
    edit(site / "content/guides/setup.md", setup_page("Edited after an unchanged build."))
    server.wait_line(r"^rebuilt in", mark)
    assert "Edited after an unchanged build." in (out / "public" / "guides" / "setup" / "index.html").read_text()
    code, _ = server.interrupt()
    assert code in (0, 130)


def test_a_taken_port_is_a_clear_error(serve, tmp_path):
    site = small_site(tmp_path)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        server = serve(site, "--port", str(port), wait=False)
        code = server.wait_exit(20)
    assert code == 1, server.log
    assert "--port" in server.log and str(port) in server.log
    assert "Traceback" not in server.log
    assert server.temp_folders() == []


def test_an_unknown_bundle_is_a_usage_error(serve, tmp_path):
    server = serve(small_site(tmp_path), "--bundle", "nope", wait=False)
    code = server.wait_exit(20)
    assert "Traceback" not in server.log, server.log
    assert code == 2, server.log
    assert "nope" in server.log and "public" in server.log
    assert server.temp_folders() == []


def test_ctrl_c_stops_promptly_and_removes_the_temporary_folder(serve, tmp_path):
    server = serve(small_site(tmp_path))
    stream = server.events()  # an open page holds a connection
    try:
        assert stream.next(10)[0] == "hello"
        assert len(server.temp_folders()) == 1
        code, seconds = server.interrupt(signal.SIGINT)
    finally:
        stream.close()
    assert code in (0, 130), server.log
    assert seconds < 5
    assert "Traceback" not in server.log
    assert server.temp_folders() == []


def test_ctrl_c_during_the_first_build_exits_cleanly(serve, tmp_path):
    """Ctrl-C while the first build is still running (a big site, an impatient user)."""
    server = serve(demo_site(tmp_path), wait=False)
    eventually(server.temp_folders, 20, 0.005, message="no temporary build folder appeared")
    assert server.count(r"^Serving") == 0, "the first build finished before the test could interrupt it"
    code, seconds = server.interrupt(signal.SIGINT)
    assert seconds < 5
    assert "Traceback" not in server.log
    assert code in (0, 130), f"exit {code}:\n{server.log}"
    assert server.temp_folders() == [], f"left behind: {[str(p) for p in server.tmpdir.rglob('*')][:5]}"


def test_ctrl_c_during_a_rebuild_removes_the_temporary_folder(serve, tmp_path):
    """The build thread must not keep writing into the temporary folder after it was removed.
    Interrupting while a rebuild writes its bundles is timing-dependent; a few tries make a leak show."""
    site = demo_site(tmp_path)
    page_ = site / "content/about/overview.md"
    for attempt in range(3):
        server = serve(site)
        edit(page_, page_.read_text(encoding="utf-8") + f"\nEdit {attempt}.\n")
        eventually(lambda: server.count(r"^changed:") > 0, 15, 0.002, message="the rebuild never started")
        code, seconds = server.interrupt(signal.SIGINT)
        assert code in (0, 130) and seconds < 5, server.log
        time.sleep(0.2)
        left = sorted(str(p.relative_to(server.tmpdir)) for p in server.tmpdir.rglob("*"))
        assert left == [], f"attempt {attempt + 1}: Ctrl-C during a rebuild left {len(left)} entries behind, e.g. {left[:3]}"


def test_sigterm_also_removes_the_temporary_folder(serve, tmp_path):
    """`kill`, IDE stop buttons, systemd and `timeout` send SIGTERM; the private build folder in /tmp
    must not pile up after each session."""
    server = serve(small_site(tmp_path))
    assert len(server.temp_folders()) == 1
    code, seconds = server.interrupt(signal.SIGTERM)
    assert seconds < 5
    assert server.temp_folders() == [], f"SIGTERM (exit {code}) left {server.temp_folders()}"


def test_requests_during_full_rebuilds_are_always_answered(serve, tmp_path):
    """A full rebuild swaps each bundle folder for a new one; a request in flight at that moment gets
    an answer (the file, 404, or 503 "rebuilding"), never a dropped connection."""
    site = small_site(tmp_path, {"static/note.txt": "v0\n"})
    server = serve(site)
    failures: list[str] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            for path in ("/public/", "/public/note.txt", "/public/no-such-page/"):
                try:
                    status = server.get(path).status
                except OSError as exc:  # (http.client's RemoteDisconnected is one)
                    failures.append(f"{path}: {exc!r}")
                    continue
                if status not in (200, 404, 503):
                    failures.append(f"{path}: HTTP {status}")

    thread = threading.Thread(target=hammer)
    thread.start()
    try:
        for n in range(1, 6):
            edit(site / "static/note.txt", f"v{n}\n")
            eventually(lambda: server.get("/public/note.txt").text == f"v{n}\n", 15, message=f"note.txt v{n} not served; server output:\n{server.log}")
    finally:
        stop.set()
        thread.join()
    assert not failures, failures[:5]
