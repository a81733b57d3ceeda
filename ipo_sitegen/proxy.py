"""Reverse-proxy configuration: one nginx `server {}` that serves the public bundle at `/` and the
restricted bundle under a prefix, behind authentication.

Why generate it: the restricted bundle is only as private as the web server in front of it, and the
details that keep it private are easy to get wrong by hand (an `alias` without its trailing slash
serves files next to the bundle; an `add_header` in one location silently drops every security header
inherited from the server). The output is plain nginx, commented, meant to be read and reviewed.

The file holds two `map` blocks and one `server` block, so it belongs inside `http {}`: put it in
`/etc/nginx/conf.d/` (Debian and the nginx.org packages include that folder there) or write
`include /path/to/ipo-sitegen.conf;` inside `http {}` next to `include mime.types;`.

Nothing here reads the site: the options are the whole input, so the same options give the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path

AUTH_MODES = ("basic", "mtls", "sso")
DEFAULT_PREFIX = "/restricted/"
DEFAULT_LISTEN = "8080"
DEFAULT_REALM = "Restricted: registered IP offices"

# What the built-in theme needs, and nothing more: its own CSS and scripts (no inline script or
# style), images from the bundle (data: for browser-generated icons), its own forms (search).
DEFAULT_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; manifest-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)

# The theme fingerprints assets as assets/NAME.<10 hex digits>.css|js: their content never changes.
FINGERPRINTED = r"assets/[^/]+\.[0-9a-f]{10}\.(?:css|js)$"

# nginx syntax characters: a value holding one could end a directive and start another.
_UNSAFE = re.compile(r"[;{}\"'\\\s]")
_UNSAFE_PATH = re.compile(r"[;{}\"'\\$\n\r\t]")
_UNSAFE_QUOTED = re.compile(r"[\"\\$\n\r]")


class ProxyError(ValueError):
    """An option that cannot give a working, safe configuration; `hint` says what to do."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text} ({self.hint})" if self.hint else text


@dataclass(frozen=True)
class NginxOptions:
    """Everything the generated server block depends on. Paths are made absolute by `checked()`."""

    public: Path = Path("build/public")
    restricted: Path = Path("build/restricted")
    prefix: str = DEFAULT_PREFIX
    auth: str = "basic"
    htpasswd: Path | None = None
    client_ca: Path | None = None
    sso_url: str | None = None
    sso_login: str | None = None
    realm: str = DEFAULT_REALM
    server_name: str = "_"
    listen: str = DEFAULT_LISTEN
    tls_cert: Path | None = None
    tls_key: Path | None = None
    csp: str = DEFAULT_CSP
    gzip_static: bool | None = None  # None: on when either bundle holds precompressed .gz files

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None


def _absolute(path: Path | None, what: str) -> Path | None:
    if path is None:
        return None
    path = Path(path).expanduser().absolute()
    if _UNSAFE_PATH.search(str(path)):
        raise ProxyError(f"{what} path {str(path)!r} holds a character nginx would read as syntax",
                         "use a path without ; { } quotes $ or backslashes")
    return path


def _has_precompressed(folder: Path) -> bool:
    return folder.is_dir() and any(p.with_suffix("").is_file() for p in folder.rglob("*.gz"))


def checked(options: NginxOptions) -> NginxOptions:
    """Validate and normalise the options; raise ProxyError naming the option and the fix."""
    prefix = options.prefix.strip()
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    if not prefix.endswith("/"):
        prefix += "/"
    if prefix == "/" or "//" in prefix or _UNSAFE.search(prefix) or any(p in (".", "..") for p in prefix.split("/")):
        raise ProxyError(f"--prefix {options.prefix!r} is not a usable URL path", "use a plain path such as /restricted/")
    if options.auth not in AUTH_MODES:
        raise ProxyError(f"--auth {options.auth!r} is unknown", f"choose one of: {', '.join(AUTH_MODES)}")
    if not re.fullmatch(r"[A-Za-z0-9._*~^:\[\]-]+( [A-Za-z0-9._*~^:\[\]-]+)*", options.server_name):
        raise ProxyError(f"--server-name {options.server_name!r} is not a list of host names", "e.g. support.example.org, or _ for any")
    for name, value in (("--listen", options.listen), ("--sso-url", options.sso_url or ""), ("--sso-login", options.sso_login or "")):
        if _UNSAFE.search(value):
            raise ProxyError(f"{name} {value!r} holds a character nginx would read as syntax", "remove spaces, ; { } quotes and backslashes")
    for name, value in (("--realm", options.realm), ("--csp", options.csp)):
        if _UNSAFE_QUOTED.search(value):
            raise ProxyError(f"{name} {value!r} holds a character nginx would read as syntax", 'remove " $ backslashes and line breaks')
    if "$" in (options.server_name + options.listen + (options.sso_url or "")):
        raise ProxyError("only --sso-login may use nginx variables ($...)")
    if not re.fullmatch(r"(\[[0-9a-fA-F:.]+\]:|[A-Za-z0-9.-]+:)?[0-9]{1,5}|unix:/\S+", options.listen):
        raise ProxyError(f"--listen {options.listen!r} is not a port or ADDRESS:PORT", "e.g. 8080, 127.0.0.1:8080 or [::]:443")

    public, restricted = _absolute(options.public, "--public"), _absolute(options.restricted, "--restricted")
    if public == restricted or public in restricted.parents or restricted in public.parents:
        raise ProxyError("--public and --restricted must be separate folders, neither inside the other",
                         "point them at build/public and build/restricted")
    top = prefix.strip("/").split("/")[0]
    if (public / top).exists():
        raise ProxyError(f"the public bundle has {public / top}, which the prefix {prefix} would hide",
                         "choose another --prefix, or rename that section")

    tls_cert, tls_key = _absolute(options.tls_cert, "--tls-cert"), _absolute(options.tls_key, "--tls-key")
    if (tls_cert is None) != (tls_key is None):
        raise ProxyError("--tls-cert and --tls-key go together", "pass both, or neither for plain HTTP")
    htpasswd = _absolute(options.htpasswd, "--htpasswd")
    client_ca = _absolute(options.client_ca, "--client-ca")
    if options.auth == "basic" and htpasswd is None:
        raise ProxyError("--auth basic needs --htpasswd FILE", "create one with `htpasswd -c FILE USER` (apache2-utils) or `openssl passwd -apr1`")
    if options.auth == "mtls" and (client_ca is None or tls_cert is None):
        raise ProxyError("--auth mtls needs --client-ca FILE and a server certificate (--tls-cert, --tls-key)",
                         "client certificates only exist over TLS; --client-ca is the CA that issued the offices' certificates")
    if options.auth == "sso" and not options.sso_url:
        raise ProxyError("--auth sso needs --sso-url URL", "the endpoint that answers 2xx for a signed-in user and 401/403 otherwise")
    if options.sso_url and not re.match(r"https?://", options.sso_url):
        raise ProxyError(f"--sso-url {options.sso_url!r} must be an http:// or https:// URL")

    gzip_static = options.gzip_static
    if gzip_static is None:
        gzip_static = _has_precompressed(public) or _has_precompressed(restricted)
    return replace(options, public=public, restricted=restricted, prefix=prefix, htpasswd=htpasswd, client_ca=client_ca,
                   tls_cert=tls_cert, tls_key=tls_key, gzip_static=gzip_static)


def _listen(options: NginxOptions) -> str:
    return f"listen {options.listen} ssl;" if options.tls else f"listen {options.listen};"


def _quoted(value: str) -> str:
    return f'"{value}"'


def _path(path: Path | str | None) -> str:
    """A path as an nginx argument: quoted only when it has to be (a space)."""
    return _quoted(str(path)) if " " in str(path) else str(path)


def nginx_config(options: NginxOptions) -> str:
    """The configuration text for already `checked()` options."""
    o = options
    prefix = o.prefix
    bare = prefix.rstrip("/")
    location_re = re.escape(prefix)
    scheme = "https" if o.tls else "http"
    out: list[str] = []
    add = out.append

    add("# nginx configuration for an ipo-sitegen site, written by `sitegen proxy nginx`.")
    add("#")
    host = o.server_name.split()[0] if o.server_name != "_" else "HOST"
    add(f"#   {o.public}/  ->  {scheme}://{host}/  (public, open to everyone)")
    add(f"#   {o.restricted}/  ->  {scheme}://{host}{prefix}  (restricted, authentication: {o.auth})")
    add("#")
    add("# Include this file inside `http { }`, after `include mime.types;` (it holds two `map` blocks and")
    add("# one `server` block): drop it into /etc/nginx/conf.d/, or write `include /path/to/this.conf;`.")
    add("# Check with `nginx -t`, then `nginx -s reload`. Regenerate rather than edit: the same options")
    add("# always give the same file.")
    add("")
    add("# Cache policy per response, decided on the normalised URI (after nginx has resolved `..`, %2e")
    add("# and double slashes), so it always agrees with the location that serves the request.")
    add("#   fingerprinted assets (assets/NAME.<hash>.css|js) never change: cache them for a year;")
    add("#   everything else is revalidated on each visit, so a new build shows at once;")
    add("#   restricted responses are `private`: shared caches and CDNs must never keep them.")
    add("map $uri $sitegen_cache_control {")
    add(f'    "~^{location_re}{FINGERPRINTED}"  "private, max-age=31536000, immutable";')
    add(f'    "~^{re.escape(bare)}(?:/|$)"  "private, no-cache";')
    add(f'    "~^/{FINGERPRINTED}"  "public, max-age=31536000, immutable";')
    add('    default  "no-cache";')
    add("}")
    add("")
    add("# Search engines must never index the restricted bundle, even if a link to it leaks.")
    add("# (An empty value sends no header.)")
    add("map $uri $sitegen_robots_tag {")
    add(f'    "~^{re.escape(bare)}(?:/|$)"  "noindex, nofollow";')
    add('    default  "";')
    add("}")
    add("")
    add("server {")
    add(f"    {_listen(o)}")
    add(f"    server_name {o.server_name};")
    if o.tls:
        add("")
        add("    # TLS: the server certificate and a modern protocol set.")
        add(f"    ssl_certificate     {_path(o.tls_cert)};")
        add(f"    ssl_certificate_key {_path(o.tls_key)};")
        add("    ssl_protocols TLSv1.2 TLSv1.3;")
        add("    ssl_prefer_server_ciphers off;")
    if o.auth == "mtls":
        add("")
        add("    # Mutual TLS: offices present a certificate issued by this CA. `optional` keeps the public")
        add("    # bundle open to everyone without a certificate; the restricted location below refuses requests")
        add("    # without one (403). A certificate that fails verification is refused everywhere (400).")
        add(f"    ssl_client_certificate {_path(o.client_ca)};")
        add("    ssl_verify_client optional;")
        add("    ssl_verify_depth 2;")
    add("")
    add("    # Static files only: no directory listings, no version in error pages, GET and HEAD only.")
    add("    autoindex off;")
    add("    server_tokens off;")
    add("    charset utf-8;")
    add("    index index.html;")
    add("    # Redirects (such as /guide -> /guide/) keep the host and port the browser used.")
    add("    absolute_redirect off;")
    add("    # The default, written out because the path checks rely on it: //restricted/ is /restricted/.")
    add("    merge_slashes on;")
    add("    if ($request_method !~ ^(?:GET|HEAD)$) {")
    add("        return 405;")
    add("    }")
    add("")
    if o.gzip_static:
        add("    # The build wrote precompressed copies (FILE.gz): send them to browsers that accept gzip.")
        add("    gzip_static on;")
        add("    gzip_vary on;")
    else:
        add("    # No precompressed FILE.gz copies were found in the bundles. If you add them, turn this on")
        add("    # (or regenerate with --gzip-static):")
        add("    # gzip_static on;")
        add("    # gzip_vary on;")
    add("")
    add("    # Response headers, for every response (`always`: 401, 403 and 404 too).")
    add("    # Keep every add_header here: nginx drops ALL inherited add_header directives in a location")
    add("    # that has one of its own, which would silently remove these.")
    add(f"    add_header Content-Security-Policy {_quoted(o.csp)} always;")
    add('    add_header X-Content-Type-Options "nosniff" always;')
    add('    add_header X-Frame-Options "DENY" always;')
    add('    add_header Referrer-Policy "same-origin" always;')
    add('    add_header Cross-Origin-Opener-Policy "same-origin" always;')
    if o.tls:
        add('    add_header Strict-Transport-Security "max-age=31536000" always;')
    add("    add_header Cache-Control $sitegen_cache_control always;")
    add("    add_header X-Robots-Tag $sitegen_robots_tag always;")
    add("")
    add("    # The public bundle, at the root. Pretty URLs: /guide/ serves guide/index.html and /guide")
    add("    # redirects to /guide/ (so the bundle's relative links resolve); anything else is its 404 page.")
    add(f"    root {_path(o.public)};")
    add("    error_page 404 /404.html;")
    add("    location / {")
    add("        try_files $uri $uri/ =404;")
    add("    }")
    add("")
    add(f"    # {bare} without the slash: send the browser to the bundle ({prefix} asks for credentials).")
    add(f"    location = {bare} {{")
    add(f"        return 301 {prefix};")
    add("    }")
    add("")
    add("    # The restricted bundle. `^~` stops nginx from trying regular-expression locations, so no")
    add(f"    # other location can ever answer for a URI under {prefix}. Both the location and the alias end")
    add("    # with a slash: without it, /restricted../ would reach the folder next to the bundle.")
    add(f"    location ^~ {prefix} {{")
    for line in _auth_lines(o):
        add("        " + line if line else "")
    add("")
    add(f"        alias {_path(f'{o.restricted}/')};")
    add("        try_files $uri $uri/ =404;")
    add(f"        error_page 404 {prefix}404.html;")
    add("    }")
    if o.auth == "sso":
        add("")
        add("    # The single-sign-on check, as a subrequest per restricted request: the endpoint sees the")
        add("    # browser's cookies and Authorization header, answers 2xx to let the request through and")
        add("    # 401 or 403 to refuse it. `internal`: browsers cannot call it through this server.")
        add("    location = /_sitegen/auth {")
        add("        internal;")
        add(f"        proxy_pass {o.sso_url};")
        if o.sso_url.startswith("https://"):
            add("        proxy_ssl_server_name on;  # send the endpoint's host name (SNI)")
            add("        # nginx does not check the endpoint's certificate unless told to, with a CA file:")
            add("        # proxy_ssl_verify on;")
            add("        # proxy_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;")
        add("        proxy_pass_request_body off;")
        add('        proxy_set_header Content-Length "";')
        add("        proxy_set_header X-Original-URI $request_uri;")
        add("        proxy_set_header X-Original-Method $request_method;")
        add("        proxy_set_header X-Forwarded-Host $host;")
        add("        proxy_set_header X-Forwarded-Proto $scheme;")
        add("    }")
        if o.sso_login:
            add("")
            add("    # A browser that is not signed in goes to the sign-in page instead of a bare 401.")
            add("    location @sitegen_login {")
            add(f"        return 302 {o.sso_login};")
            add("    }")
    add("}")
    return "\n".join(out) + "\n"


def _auth_lines(o: NginxOptions) -> list[str]:
    if o.auth == "basic":
        return [
            "# HTTP basic authentication against an htpasswd file (one office account per line; create",
            "# entries with `htpasswd FILE USER` or `openssl passwd -apr1`). Use TLS: basic sends the",
            "# password with every request.",
            f"auth_basic {_quoted(o.realm)};",
            f"auth_basic_user_file {_path(o.htpasswd)};",
        ]
    if o.auth == "mtls":
        return [
            "# Only a client certificate that the CA above issued and nginx verified gets through.",
            "if ($ssl_client_verify != SUCCESS) {",
            "    return 403;",
            "}",
        ]
    lines = [
        "# Ask the single-sign-on endpoint (location /_sitegen/auth below) about every request.",
        "auth_request /_sitegen/auth;",
    ]
    if o.sso_login:
        lines.append("error_page 401 = @sitegen_login;")
    return lines


def restricted_base_path(base_url: str | None) -> str | None:
    """The path of a configured base_url ("https://host/restricted/" -> "/restricted/"), to compare with --prefix."""
    if not base_url:
        return None
    match = re.match(r"[a-z][a-z0-9+.-]*://[^/]*(/.*)?$", base_url, re.IGNORECASE)
    return (match.group(1) or "/") if match else None
