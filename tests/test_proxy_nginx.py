"""`sitegen proxy nginx` on a real nginx: the demo site's public and restricted bundles behind the
generated configuration, in each authentication mode, with only 127.0.0.1 traffic.

nginx runs as a foreground child (`daemon off`, one process) on a free port, with every path it writes
(pid, logs, temporary files) under the test's tmp_path, and is stopped at teardown. Without nginx these
tests skip locally and fail in CI (CI=true): scripts/test.sh installs it. $SITEGEN_NGINX picks another
nginx binary.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import http.server
import ipaddress
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from helpers import build_ok, copy_demo_site, run

from ipo_sitegen.proxy import DEFAULT_CSP, NginxOptions, ProxyError, checked, nginx_config

REPO = Path(__file__).resolve().parents[1]
USER, PASSWORD = "office-xb", "correct horse battery"
RESTRICTED_MARK = b"restricted edition"  # the footer of every restricted page (base.html)
INTERNAL_MARK = b"internal edition"


# ---- nginx as a child process ----------------------------------------------------------------------
def nginx_binary() -> str | None:
    """$SITEGEN_NGINX when set (another build of nginx), else nginx on PATH or where packages put it."""
    chosen = os.environ.get("SITEGEN_NGINX")
    if chosen:
        return chosen if os.access(chosen, os.X_OK) else None
    found = shutil.which("nginx")
    if found:
        return found
    for candidate in ("/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="module")
def nginx() -> str:
    binary = nginx_binary()
    if binary is None:
        reason = "nginx is not installed (apt-get install nginx; scripts/test.sh does it)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"the reverse-proxy tests cannot run in CI: {reason}")
        pytest.skip(reason)
    return binary


def _mime_types(binary: str, folder: Path) -> Path:
    """nginx's own mime.types (next to its configured nginx.conf), or a minimal one written here."""
    info = subprocess.run([binary, "-V"], capture_output=True, text=True).stderr
    match = re.search(r"--conf-path=(\S+)", info)
    if match and (Path(match.group(1)).parent / "mime.types").is_file():
        return Path(match.group(1)).parent / "mime.types"
    path = folder / "mime.types"
    path.write_text("types {\n text/html html; text/css css; application/javascript js; application/json json;\n"
                    " application/xml xml; text/plain txt; image/png png; application/pdf pdf;\n}\n")
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Nginx:
    """One nginx serving the generated `server {}` (included inside http {}, as users are told to)."""

    def __init__(self, binary: str, folder: Path, generated: str, port: int) -> None:
        self.folder, self.port = folder, port
        for sub in ("logs", "temp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "generated.conf").write_text(generated, encoding="utf-8")
        temp = folder / "temp"
        (folder / "nginx.conf").write_text(f"""\
worker_processes 1;
master_process off;
events {{ worker_connections 64; }}
http {{
    include {_mime_types(binary, folder)};
    default_type application/octet-stream;
    access_log {folder}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {folder}/generated.conf;
}}
""", encoding="utf-8")
        self.command = [binary, "-p", str(folder), "-c", str(folder / "nginx.conf"),
                        "-g", f"daemon off; pid {folder}/nginx.pid; error_log {folder}/logs/error.log info;"]
        test = subprocess.run([*self.command, "-t"], capture_output=True, text=True)
        assert test.returncode == 0, f"nginx -t refused the generated configuration:\n{test.stderr}\n{generated}"
        self.process = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 15
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {self.process.stderr.read().decode()}\n{self.error_log()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError(f"nginx did not listen on 127.0.0.1:{port}\n{self.error_log()}")
                time.sleep(0.05)

    def error_log(self) -> str:
        path = self.folder / "logs" / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stderr.close()


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class Client:
    """Raw HTTP(S) to 127.0.0.1: the path is sent exactly as given (no normalisation, no redirects)."""

    def __init__(self, port: int, tls: ssl.SSLContext | None = None, headers: dict[str, str] | None = None) -> None:
        self.port, self.tls, self.headers = port, tls, headers or {}

    def with_headers(self, **headers: str) -> Client:
        return Client(self.port, self.tls, {**self.headers, **{k.replace("_", "-"): v for k, v in headers.items()}})

    def get(self, path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Response:
        if self.tls is not None:
            connection = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.tls, timeout=10)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.putrequest(method, path, skip_accept_encoding=True)
            for name, value in {**self.headers, **(headers or {})}.items():
                connection.putheader(name, value)
            connection.endheaders()
            answer = connection.getresponse()
            return Response(answer.status, answer.headers, answer.read())
        finally:
            connection.close()


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ---- the demo site and its credentials -------------------------------------------------------------
@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """The demo site (this repository's content/) built into a temporary folder; returns build/."""
    site = copy_demo_site(tmp_path_factory.mktemp("demo"))
    build_ok(site)
    return site / "build"


def htpasswd_line(user: str, password: str) -> str:
    """apr1 through the openssl CLI when present (what most guides use), else nginx's {SHA} scheme."""
    if shutil.which("openssl"):
        done = subprocess.run(["openssl", "passwd", "-apr1", password], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.startswith("$apr1$"):
            return f"{user}:{done.stdout.strip()}\n"
    return f"{user}:{{SHA}}{base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()}\n"


def generate(demo: Path, **options) -> str:
    """The configuration through the CLI, as a user runs it."""
    args = ["proxy", "nginx", "--public", demo / "public", "--restricted", demo / "restricted", "--root", demo.parent]
    for name, value in options.items():
        args += [f"--{name.replace('_', '-')}", value]
    result = run(args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def basic_server(nginx, demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nginx-basic")
    (folder / "offices.htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    port = free_port()
    server = Nginx(nginx, folder, generate(demo, htpasswd=folder / "offices.htpasswd", listen=f"127.0.0.1:{port}"), port)
    yield Client(port)
    server.stop()


# ---- basic authentication, headers, pretty URLs ----------------------------------------------------
def test_public_pages_are_served_to_everyone(basic_server):
    home = basic_server.get("/")
    assert home.status == 200 and b"public edition" in home.body
    assert basic_server.get("/access/").status == 200
    assert basic_server.get("/feed.xml").status == 200
    assert basic_server.get("/sitemap.xml").status == 200


def test_restricted_pages_need_the_password(basic_server):
    anonymous = basic_server.get("/restricted/")
    assert anonymous.status == 401
    assert anonymous.header("WWW-Authenticate").startswith("Basic")
    assert RESTRICTED_MARK not in anonymous.body
    wrong = basic_server.get("/restricted/", headers={"Authorization": basic(USER, "wrong")})
    assert wrong.status == 401
    signed_in = basic_server.get("/restricted/", headers={"Authorization": basic(USER, PASSWORD)})
    assert signed_in.status == 200 and RESTRICTED_MARK in signed_in.body
    page = basic_server.get("/restricted/administration/signing-keys/", headers={"Authorization": basic(USER, PASSWORD)})
    assert page.status == 200 and b"Generating a key pair" in page.body


def test_pretty_urls_redirect_folders_to_their_slash(basic_server):
    moved = basic_server.get("/access")
    assert moved.status == 301 and moved.header("Location") == "/access/"
    # Under the prefix the redirect comes after authentication: it tells nothing about what exists.
    assert basic_server.get("/restricted/administration").status == 401
    moved = basic_server.get("/restricted/administration", headers={"Authorization": basic(USER, PASSWORD)})
    assert moved.status == 301 and moved.header("Location") == "/restricted/administration/"
    bare = basic_server.get("/restricted")
    assert bare.status == 301 and bare.header("Location") == "/restricted/" and RESTRICTED_MARK not in bare.body


def test_each_bundle_has_its_own_404_page(basic_server, demo):
    missing = basic_server.get("/no/such/page/")
    assert missing.status == 404 and missing.body == (demo / "public" / "404.html").read_bytes()
    assert basic_server.get("/restricted/no/such/page/").status == 401
    missing = basic_server.get("/restricted/no/such/page/", headers={"Authorization": basic(USER, PASSWORD)})
    assert missing.status == 404 and missing.body == (demo / "restricted" / "404.html").read_bytes()


def test_no_directory_listings(basic_server):
    for path in ("/assets/", "/search/../assets/", "/labels/../assets"):
        answer = basic_server.get(path)
        assert answer.status in (301, 403, 404), path
        assert b"Index of" not in answer.body and b".css" not in answer.body
    answer = basic_server.get("/restricted/assets/", headers={"Authorization": basic(USER, PASSWORD)})
    assert answer.status in (403, 404) and b"Index of" not in answer.body and b".css" not in answer.body


def test_only_get_and_head(basic_server):
    assert basic_server.get("/", method="POST").status == 405
    assert basic_server.get("/", method="HEAD").status == 200


SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy", "X-Frame-Options")


def test_security_headers_on_every_response(basic_server):
    authorised = {"Authorization": basic(USER, PASSWORD)}
    answers = {
        "public page": basic_server.get("/access/"),
        "public 404": basic_server.get("/nowhere"),
        "restricted 401": basic_server.get("/restricted/access/"),
        "restricted page": basic_server.get("/restricted/access/", headers=authorised),
        "restricted 404": basic_server.get("/restricted/nowhere", headers=authorised),
    }
    for what, answer in answers.items():
        for name in SECURITY_HEADERS:
            assert answer.header(name), f"{what}: no {name}"
        csp = answer.header("Content-Security-Policy")
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert answer.header("X-Content-Type-Options") == "nosniff"
        assert answer.header("Referrer-Policy") == "same-origin"
        assert "nginx/" not in answer.header("Server")
    for what in ("restricted 401", "restricted page", "restricted 404"):
        assert "noindex" in answers[what].header("X-Robots-Tag"), what
        assert "private" in answers[what].header("Cache-Control"), what
    for what in ("public page", "public 404"):
        assert answers[what].header("X-Robots-Tag") == "", what
        assert "private" not in answers[what].header("Cache-Control")


def test_fingerprinted_assets_are_cached_for_a_year(basic_server, demo):
    authorised = {"Authorization": basic(USER, PASSWORD)}
    assets = sorted(p.name for p in (demo / "public" / "assets").iterdir())
    assert any(re.fullmatch(r"style\.[0-9a-f]{10}\.css", name) for name in assets)
    for name in assets:
        public = basic_server.get(f"/assets/{name}")
        assert public.status == 200 and public.header("Cache-Control") == "public, max-age=31536000, immutable"
        restricted = basic_server.get(f"/restricted/assets/{name}", headers=authorised)
        assert restricted.status == 200 and restricted.header("Cache-Control") == "private, max-age=31536000, immutable"
        assert restricted.header("X-Robots-Tag").startswith("noindex")
    assert basic_server.get("/access/").header("Cache-Control") == "no-cache"
    css = basic_server.get(f"/assets/{assets[0]}")
    assert css.header("Content-Type").split(";")[0] in ("text/css", "application/javascript", "text/javascript")


# Requests that try to reach restricted (or internal) files around the authentication.
TRICKS = [
    "/restricted", "/restricted/", "/restricted/index.html", "//restricted/", "///restricted//index.html",
    "/restricted//access/", "/./restricted/", "/restricted/./index.html", "/access/../restricted/",
    "/access/%2e%2e/restricted/", "/%2e%2e/restricted/", "/access/%2E%2E/restricted/index.html",
    "/restricted%2f", "/restricted%2Findex.html", "/restricted%2f%2e%2e%2frestricted/", "/%72estricted/",
    "/restricted/%2e%2e/restricted/index.html", "/restricted/..%2frestricted/", "/restricted/access/..//",
    "/restricted..", "/restricted../", "/restricted../restricted/index.html", "/restricted%2e%2e/restricted/",
    "/Restricted/", "/RESTRICTED/index.html", "/restricted/index.html%00", "/restricted/index.html%20",
    "/restricted;/", "/restricted/;", "/restricted\\index.html", "/..%2frestricted/index.html",
    "/../restricted/index.html", "/restricted/../../restricted/index.html", "/restricted?/", "/restricted#/",
    "/restricted/manifest.json", "/restricted/search/docs.js", "/restricted/assets/",
    "/../internal/index.html", "/restricted/../internal/", "/restricted/%2e%2e/internal/index.html",
    "/restricted..%2finternal/index.html", "/internal/", "/build/restricted/",
]


def _assert_nothing_restricted(answer: Response, path: str) -> None:
    assert answer.status != 200, f"{path} answered 200"
    assert RESTRICTED_MARK not in answer.body and INTERNAL_MARK not in answer.body, f"{path} leaked a page"
    assert b'"bundle": "restricted"' not in answer.body, f"{path} leaked the manifest"
    if answer.status in (301, 302):
        location = answer.header("Location")
        assert location in ("/restricted/", "/access/", "/restricted/access/") or location.startswith("/restricted"), (path, location)


def test_path_tricks_never_serve_restricted_files(basic_server):
    for path in TRICKS:
        _assert_nothing_restricted(basic_server.get(path), path)


def test_path_tricks_with_credentials_stay_inside_the_bundles(basic_server):
    authorised = {"Authorization": basic(USER, PASSWORD)}
    for path in ("/restricted/../internal/", "/restricted../internal/index.html", "/restricted/%2e%2e/%2e%2e/internal/",
                 "/restricted/..%2f..%2finternal/index.html", "/../internal/index.html"):
        answer = basic_server.get(path, headers=authorised)
        assert INTERNAL_MARK not in answer.body and answer.status != 200, path


# ---- every link of both bundles, through nginx -----------------------------------------------------
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, set[str]]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs) -> None:
        values = dict(attrs)
        classes = set((values.get("class") or "").split())
        for name in ("href", "src"):
            if values.get(name):
                self.links.append((tag, values[name], classes))
        if tag == "script" and not values.get("src"):
            self.inline.append("<script> without src")
        if tag == "style":
            self.inline.append("<style> element")
        for name, value in attrs:
            if name == "style" or name.startswith("on"):
                self.inline.append(f"{name}= attribute on <{tag}>")
            if name in ("href", "src", "action") and (value or "").strip().lower().startswith("javascript:"):
                self.inline.append(f"javascript: URL on <{tag}>")


def _pages(bundle: Path) -> list[str]:
    """Every HTML page of a bundle as the URL path a reader uses (folder/ for folder/index.html)."""
    urls = []
    for path in sorted(bundle.rglob("*.html")):
        relative = path.relative_to(bundle).as_posix()
        if relative == "404.html":
            continue
        urls.append(relative[: -len("index.html")] if relative.endswith("index.html") else relative)
    return urls


def _crawl(client: Client, bundle: Path, mount: str, headers: dict[str, str]) -> tuple[int, int, list[str]]:
    broken: list[str] = []
    checked: dict[str, int] = {}
    pages = _pages(bundle)
    for url in pages:
        page_url = mount + url
        answer = client.get(page_url, headers=headers)
        if answer.status != 200:
            broken.append(f"page {page_url}: {answer.status}")
            continue
        parser = _Links()
        parser.feed(answer.body.decode("utf-8"))
        for inline in parser.inline:
            broken.append(f"{page_url}: {inline} (the Content-Security-Policy would block it)")
        for tag, href, classes in parser.links:
            if href.startswith("#") or re.match(r"[a-z][a-z0-9+.-]*:", href, re.IGNORECASE):
                continue  # fragments, and absolute links: external sites and locked links to other bundles' hosts
            target = urljoin(f"http://127.0.0.1{page_url}", href)
            path = urlsplit(target).path
            if not path.startswith(mount):
                broken.append(f"{page_url}: {href} leaves {mount}")
                continue
            if path not in checked:
                checked[path] = client.get(path, headers=headers).status
            if checked[path] != 200:
                broken.append(f"{page_url}: <{tag}> {href} -> {path}: {checked[path]}")
    return len(pages), len(checked), broken


def test_every_link_of_both_bundles_resolves_through_nginx(basic_server, demo):
    pages, targets, broken = _crawl(basic_server, demo / "public", "/", {})
    assert broken == []
    assert pages > 20 and targets > 20
    pages, targets, broken = _crawl(basic_server, demo / "restricted", "/restricted/", {"Authorization": basic(USER, PASSWORD)})
    assert broken == []
    assert pages > 30 and targets > 30


# ---- mutual TLS ------------------------------------------------------------------------------------
def _certificates(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, a client certificate from the CA and one from a stranger."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    paths: dict[str, Path] = {}

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def save(label: str, key, certificate) -> None:
        paths[label + ".key"] = folder / f"{label}.key"
        paths[label + ".pem"] = folder / f"{label}.pem"
        paths[label + ".key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                            serialization.NoEncryption()))
        paths[label + ".pem"].write_bytes(certificate.public_bytes(serialization.Encoding.PEM))

    def authority(label: str):
        key = ec.generate_private_key(ec.SECP256R1())
        certificate = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(name(label)).public_key(key.public_key())
                       .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
                       .not_valid_after(now + datetime.timedelta(days=30))
                       .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                       .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                                    key_encipherment=False, data_encipherment=False, key_agreement=False,
                                                    encipher_only=False, decipher_only=False), critical=True)
                       .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                       .sign(key, hashes.SHA256()))
        save(label, key, certificate)
        return key, certificate

    def leaf(label: str, issuer, usage, san=None) -> None:
        issuer_key, issuer_certificate = issuer
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(label)).issuer_name(issuer_certificate.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        save(label, key, builder.sign(issuer_key, hashes.SHA256()))

    offices_ca = authority("offices-ca")
    leaf("server", offices_ca, ExtendedKeyUsageOID.SERVER_AUTH, [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    leaf("office-xb", offices_ca, ExtendedKeyUsageOID.CLIENT_AUTH)
    leaf("stranger", authority("stranger-ca"), ExtendedKeyUsageOID.CLIENT_AUTH)
    return paths


@pytest.fixture(scope="module")
def mtls_server(nginx, demo, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nginx-mtls")
    certs = _certificates(folder)
    port = free_port()
    text = generate(demo, auth="mtls", client_ca=certs["offices-ca.pem"], tls_cert=certs["server.pem"],
                    tls_key=certs["server.key"], listen=f"127.0.0.1:{port}")
    server = Nginx(nginx, folder, text, port)

    def client(certificate: str | None) -> Client:
        context = ssl.create_default_context(cafile=str(certs["offices-ca.pem"]))
        if certificate:
            context.load_cert_chain(str(certs[certificate + ".pem"]), str(certs[certificate + ".key"]))
        return Client(port, context)

    yield client
    server.stop()


def test_mtls_public_is_open_restricted_needs_a_client_certificate(mtls_server):
    anonymous, office, stranger = mtls_server(None), mtls_server("office-xb"), mtls_server("stranger")
    home = anonymous.get("/")
    assert home.status == 200 and b"public edition" in home.body
    assert "max-age" in home.header("Strict-Transport-Security")
    refused = anonymous.get("/restricted/")
    assert refused.status in (400, 403) and RESTRICTED_MARK not in refused.body
    assert "private" in refused.header("Cache-Control") and "noindex" in refused.header("X-Robots-Tag")
    served = office.get("/restricted/")
    assert served.status == 200 and RESTRICTED_MARK in served.body
    assert office.get("/restricted/administration/signing-keys/").status == 200
    try:
        foreign = stranger.get("/restricted/")
    except (ssl.SSLError, ConnectionError):
        pass  # refusing the handshake is as good as refusing the request
    else:
        assert foreign.status in (400, 403) and RESTRICTED_MARK not in foreign.body


def test_mtls_path_tricks_without_a_certificate(mtls_server):
    anonymous = mtls_server(None)
    for path in TRICKS:
        _assert_nothing_restricted(anonymous.get(path), path)


# ---- single sign-on through auth_request -----------------------------------------------------------
class _SSO(http.server.BaseHTTPRequestHandler):
    """200 for the cookie `session=valid` or the header `X-Office-Token: valid`, 401 otherwise."""

    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        _SSO.seen.append((self.path, self.headers.get("X-Original-URI", "")))
        ok = "session=valid" in self.headers.get("Cookie", "") or self.headers.get("X-Office-Token") == "valid"
        self.send_response(200 if ok else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def sso_endpoint():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SSO)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/check"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def sso_server(nginx, demo, sso_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nginx-sso")
    port = free_port()
    server = Nginx(nginx, folder, generate(demo, auth="sso", sso_url=sso_endpoint, listen=f"127.0.0.1:{port}"), port)
    yield Client(port)
    server.stop()


def test_sso_asks_the_endpoint_for_restricted_pages_only(sso_server):
    _SSO.seen.clear()
    assert sso_server.get("/access/").status == 200
    assert _SSO.seen == []  # the public bundle never bothers the single-sign-on service
    refused = sso_server.get("/restricted/access/")
    assert refused.status == 401 and RESTRICTED_MARK not in refused.body
    assert _SSO.seen == [("/check", "/restricted/access/")]
    assert sso_server.get("/restricted/access/", headers={"Cookie": "session=forged"}).status == 401
    served = sso_server.get("/restricted/access/", headers={"Cookie": "theme=dark; session=valid"})
    assert served.status == 200 and RESTRICTED_MARK in served.body
    assert sso_server.get("/restricted/", headers={"X-Office-Token": "valid"}).status == 200
    assert "noindex" in served.header("X-Robots-Tag") and "private" in served.header("Cache-Control")
    # The subrequest location is internal: browsers cannot reach the endpoint through this server.
    assert sso_server.get("/_sitegen/auth").status == 404


def test_sso_path_tricks_without_a_session(sso_server):
    for path in TRICKS:
        _assert_nothing_restricted(sso_server.get(path), path)


def test_sso_login_redirect(nginx, demo, sso_endpoint, tmp_path):
    port = free_port()
    text = generate(demo, auth="sso", sso_url=sso_endpoint, listen=f"127.0.0.1:{port}",
                    sso_login="https://sso.example.org/login?rd=$scheme://$http_host$request_uri")
    server = Nginx(nginx, tmp_path / "nginx", text, port)
    try:
        client = Client(port)
        moved = client.get("/restricted/access/")
        assert moved.status == 302
        assert moved.header("Location") == f"https://sso.example.org/login?rd=http://127.0.0.1:{port}/restricted/access/"
        assert client.get("/restricted/access/", headers={"Cookie": "session=valid"}).status == 200
    finally:
        server.stop()


# ---- another prefix, precompressed files -----------------------------------------------------------
def test_custom_prefix(nginx, demo, tmp_path):
    folder = tmp_path / "nginx"
    folder.mkdir()
    (folder / "offices.htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    port = free_port()
    text = generate(demo, htpasswd=folder / "offices.htpasswd", listen=f"127.0.0.1:{port}", prefix="offices")
    server = Nginx(nginx, folder, text, port)
    try:
        client = Client(port)
        assert client.get("/offices/").status == 401
        assert client.get("/offices/", headers={"Authorization": basic(USER, PASSWORD)}).status == 200
        assert client.get("/offices").header("Location") == "/offices/"
        assert client.get("/restricted/").status == 404
        for path in ("/offices%2f", "//offices//", "/x/../offices/", "/offices../restricted/"):
            _assert_nothing_restricted(client.get(path), path)
    finally:
        server.stop()


def test_precompressed_files_are_sent_when_the_build_made_them(nginx, demo, tmp_path):
    import gzip

    bundles = tmp_path / "bundles"
    shutil.copytree(demo / "public", bundles / "public")
    shutil.copytree(demo / "restricted", bundles / "restricted")
    for path in (bundles / "public").rglob("*.html"):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    (tmp_path / "offices.htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    port = free_port()
    text = generate(bundles, htpasswd=tmp_path / "offices.htpasswd", listen=f"127.0.0.1:{port}")
    assert "\n    gzip_static on;" in text
    server = Nginx(nginx, tmp_path / "nginx", text, port)
    try:
        answer = Client(port).get("/access/", headers={"Accept-Encoding": "gzip"})
        assert answer.status == 200 and answer.header("Content-Encoding") == "gzip"
        assert gzip.decompress(answer.body) == (bundles / "public" / "access" / "index.html").read_bytes()
        assert "Accept-Encoding" in answer.header("Vary")
    finally:
        server.stop()


# ---- the generator's own checks (no nginx needed) --------------------------------------------------
def test_options_are_checked_with_a_hint(tmp_path):
    public, restricted = tmp_path / "public", tmp_path / "restricted"
    cases = {
        "--auth basic needs --htpasswd": NginxOptions(public, restricted),
        "--auth mtls needs --client-ca": NginxOptions(public, restricted, auth="mtls"),
        "--auth sso needs --sso-url": NginxOptions(public, restricted, auth="sso"),
        "separate folders": NginxOptions(public, public / "restricted", htpasswd=tmp_path / "h"),
        "go together": NginxOptions(public, restricted, htpasswd=tmp_path / "h", tls_cert=tmp_path / "c"),
        "not a usable URL path": NginxOptions(public, restricted, htpasswd=tmp_path / "h", prefix="/"),
        "not a list of host names": NginxOptions(public, restricted, htpasswd=tmp_path / "h", server_name="x; include /etc/passwd"),
        "syntax": NginxOptions(public, restricted, htpasswd=tmp_path / "h", auth="sso", sso_url="http://a/;return 200"),
        "not a port": NginxOptions(public, restricted, htpasswd=tmp_path / "h", listen="eighty"),
    }
    for message, options in cases.items():
        with pytest.raises(ProxyError, match=re.escape(message)):
            checked(options)
    (public / "restricted").mkdir(parents=True)
    with pytest.raises(ProxyError, match="would hide"):
        checked(NginxOptions(public, restricted, htpasswd=tmp_path / "h"))


def test_prefix_is_normalised_and_output_is_stable(tmp_path):
    options = checked(NginxOptions(tmp_path / "p", tmp_path / "r", prefix="offices", htpasswd=tmp_path / "h"))
    assert options.prefix == "/offices/"
    text = nginx_config(options)
    assert text == nginx_config(options)
    assert "location ^~ /offices/ {" in text and f"alias {tmp_path}/r/;" in text
    assert DEFAULT_CSP in text
    # Every add_header at server level: one in a location would drop all of them there (see the comment).
    directives = [line for line in text.splitlines() if line.strip().startswith("add_header")]
    assert len(directives) == 7 and all(line.startswith("    add_header") for line in directives)


def test_cli_usage_errors_and_help(tmp_path):
    result = run(["proxy", "nginx", "--public", tmp_path / "p", "--restricted", tmp_path / "r"])
    assert result.exit_code == 2 and "--htpasswd" in result.output
    help_text = run(["proxy", "nginx", "--help"]).output
    for option in ("--prefix", "--auth", "--htpasswd", "--client-ca", "--sso-url", "--listen", "--tls-cert", "--out", "/restricted/"):
        assert option in help_text
    out = tmp_path / "site.conf"
    result = run(["proxy", "nginx", "--public", tmp_path / "p", "--restricted", tmp_path / "r", "--htpasswd", tmp_path / "h", "--out", out])
    assert result.exit_code == 0 and out.read_text().startswith("# nginx configuration")
    assert "server_name support.example.org www.support.example.org;" in nginx_config(checked(NginxOptions(
        tmp_path / "p", tmp_path / "r", htpasswd=tmp_path / "h", server_name="support.example.org www.support.example.org")))


def test_cli_warns_when_the_prefix_differs_from_base_url(demo, tmp_path):
    """Locked links in the public bundle point at bundles.restricted.base_url: the proxy must serve that path."""
    args = ["proxy", "nginx", "--public", demo / "public", "--restricted", demo / "restricted", "--htpasswd", tmp_path / "h"]
    assert "warning" not in run([*args, "--root", demo.parent]).output
    result = run([*args, "--root", demo.parent, "--prefix", "/offices/"])
    assert result.exit_code == 0 and "warning: --prefix /offices/ differs" in result.stderr
    assert "https://support.example.org/restricted/" in result.stderr and "warning" not in result.stdout
