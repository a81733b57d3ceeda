"""The `sitegen` command line: thin wrappers that parse options and call the pipeline.

Exit codes: 0 success, 1 content errors or leaks, 2 usage errors (click's own convention), 130 interrupted.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from . import __version__
from .build import Options, build, plan
from .errors import BuildError, Problem, UsageError
from .report import Reporter

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _print_problems(problems: list[Problem], reporter: Reporter) -> None:
    for problem in problems:
        click.echo(problem.format(), err=True)


def _fail(error: BuildError, outcome: str = "Nothing was written; the previous output is untouched.") -> None:
    for problem in error.problems:
        click.echo(problem.format(), err=True)
    errors = sum(1 for p in error.problems if p.severity == "error") or len(error.problems)
    click.echo(f"Failed: {errors} problem(s) ({error}). {outcome}", err=True)
    sys.exit(1)


def _site_root(root: str | None) -> Path:
    return Path(root or ".").resolve()


class _Commands(click.Group):
    """The command group, ending an interruption as a shell expects. Ctrl-C and SIGTERM (a CI job
    cancelled, `timeout`, `docker stop`) stop a command the same way: a build removes its staging
    folder and keeps the previous output. Exit 130 (128 + SIGINT), not 1, which says: content errors."""

    def main(self, *args, **kwargs):  # type: ignore[override] (click's signature)
        held = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _interrupted) if held else None
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
            if isinstance(code, int) and code:  # (click hands back the code of a ctx.exit(code))
                sys.exit(code)
            return code
        except (click.Abort, KeyboardInterrupt):
            click.echo("Interrupted: any output folder is as it was before this command.", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except UsageError as exc:  # (from any command: how it was called, not what the site holds)
            click.echo(f"Error: {exc}", err=True)
            sys.exit(2)
        except BuildError as exc:  # (from a command that does not report problems itself: `new` outside a site)
            _fail(exc, "Nothing was changed.")
        finally:
            if held:
                signal.signal(signal.SIGTERM, previous)


def _interrupted(signum, frame) -> None:
    raise KeyboardInterrupt


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, prog_name="sitegen")
def main() -> None:
    """Build gated static sites: one Markdown tree, one bundle per audience.

    \b
    Typical use, at the root of a site (the folder with sitegen.toml):
      sitegen build                 build every bundle into build/
      sitegen build --bundle public only the public bundle
      sitegen check                 validate content without writing anything
      sitegen audit build/public    check a built bundle for leaks
      sitegen new guides/setup.md   start a new page

    Pages declare `audience:` in their front matter (public < registered < internal by default);
    a page with no audience anywhere in its section chain is treated as the most restricted.
    """


def _common_build_options(func):
    func = click.option("--root", type=click.Path(file_okay=False), help="Site folder (default: the current folder).")(func)
    func = click.option("--bundle", "bundles", multiple=True, metavar="NAME", help="Build only this bundle (repeatable).")(func)
    func = click.option("--drafts", is_flag=True, help="Include drafts, embargoed and expired pages (a preview: never publish it).")(func)
    func = click.option("--strict", is_flag=True, help="Treat warnings as errors.")(func)
    func = click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes for rendering (default: CPU count).")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="Print only problems (the default when not on a terminal).")(func)
    func = click.option("--verbose", "-v", is_flag=True, help="Print each stage with timings.")(func)
    return func


@main.command(context_settings=CONTEXT)
@_common_build_options
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: ROOT/build).")
@click.option("--no-cache", is_flag=True, help="Ignore .sitegen-cache/ (the output is the same either way).")
def build_cmd(root, bundles, drafts, strict, jobs, quiet, verbose, out, no_cache) -> None:
    """Build the bundles into build/<bundle>/ and audit them.

    Each bundle is written to a staging folder, audited for leaks, and only then swapped in whole:
    a failed build leaves the previous output untouched.
    """
    reporter = Reporter(quiet=quiet, verbose=verbose)
    options = Options(tuple(bundles), Path(out).resolve() if out else None, drafts, strict, jobs, cache=not no_cache)
    try:
        result = build(_site_root(root), options, reporter)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except BuildError as exc:
        _fail(exc)
        return
    _print_problems(result.warnings, reporter)
    summary = ", ".join(f"{name} ({count} pages)" for name, count in result.pages.items())
    reporter.info(f"Built {summary} into {result.out} in {result.seconds:.2f} s.")


build_cmd.name = "build"


@main.command(context_settings=CONTEXT)
@click.option("--root", type=click.Path(file_okay=False), help="Site folder (default: the current folder).")
@click.option("--bundle", "bundles", multiple=True, metavar="NAME", help="Serve only this bundle (repeatable).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (keep 127.0.0.1 unless you mean to share).")
@click.option("--port", "-p", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the site in a web browser.")
@click.option("--out", type=click.Path(file_okay=False), help="Build here instead of a private temporary folder.")
@click.option("--drafts", is_flag=True, help="Include drafts and embargoed pages.")
def serve(root, bundles, host, port, open_browser, out, drafts) -> None:
    """Preview every audience side by side, rebuilt and reloaded as you save.

    \b
    Bundles are served at /public/, /restricted/, /internal/ with a "viewing as" bar that switches
    audience on the same page. Content, templates, static files and sitegen.toml are watched, and
    so are commits, checkouts and .mailmap (dates, authors, "Recently updated"); open pages
    reload after each rebuild, and a failed rebuild shows its errors over the page while the last
    good version stays online. Nothing is written to build/ unless --out is given.
    """
    from .serve import serve as run

    options = Options(tuple(bundles), Path(out).resolve() if out else None, drafts, False, None)
    try:
        run(_site_root(root), options, host, port, open_browser, lambda message: click.echo(message, err=True))
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except BuildError as exc:
        _fail(exc)
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


@main.command(context_settings=CONTEXT)
@_common_build_options
def check(root, bundles, drafts, strict, jobs, quiet, verbose) -> None:
    """Validate the site (config, front matter, audiences, links) without writing anything."""
    reporter = Reporter(quiet=quiet, verbose=verbose)
    try:
        result = plan(_site_root(root), Options(tuple(bundles), None, drafts, strict, jobs), reporter)
    except UsageError as exc:
        raise click.UsageError(str(exc)) from exc
    except BuildError as exc:
        _fail(exc)
        return
    _print_problems(result.problems.warnings, reporter)
    reporter.info(f"OK: {len(result.site.pages)} pages, {len(result.site.attachments)} attachments, no errors.")


@main.command(context_settings=CONTEXT)
@click.argument("folders", nargs=-1, type=click.Path(exists=True, file_okay=False))
@click.option("--root", type=click.Path(file_okay=False), help="Site folder (default: the current folder).")
@click.option("--no-cache", "no_cache", is_flag=True,
              help="Work out the fingerprints and scan every file again, whatever .sitegen-cache/ remembers.")
def audit(folders, root, no_cache) -> None:
    """Check built bundles for material above their tier (default: every bundle in build/).

    Each FOLDER is a built bundle such as build/public; its manifest.json says which bundle it is.
    Every file is scanned for titles, headings, sentences, URLs and attachments of pages and blocks
    the bundle may not show. Exit 1 on any leak. `sitegen build` runs this automatically.

    What `sitegen build` worked out is reused while the site and the generator are the same:
    the fingerprints (saved for the exact state of content/, templates, config and git), and the
    verdict on each file whose bytes were found clean against them, which is then read and hashed
    but not scanned again (.sitegen-cache/; --no-cache ignores it).
    """
    from .audit import audit_folders
    from .workers import default_workers

    site_root = _site_root(root)
    paths = [Path(f) for f in folders] or sorted(p.parent for p in (site_root / "build").glob("*/manifest.json"))
    if not paths:
        raise click.UsageError("no bundle to audit: build first (sitegen build) or pass a folder like build/public")
    try:
        leaks, notes = audit_folders(site_root, paths, default_workers(), cached=not no_cache)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except BuildError as exc:
        _fail(exc, "Nothing was audited.")
        return
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if leaks:
        _fail(BuildError([leak.problem() for leak in leaks], "leaks found"), "Do not publish these bundles.")
    click.echo(f"Audit passed: {', '.join(p.name for p in paths)} {'holds' if len(paths) == 1 else 'hold'} nothing above {'its' if len(paths) == 1 else 'their'} tier.")


@main.command(context_settings=CONTEXT)
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Write into a folder that is not empty.")
def init(directory, force) -> None:
    """Create a small working site in DIRECTORY (sitegen.toml, content/ with every tier)."""
    from .scaffold import create_site

    target = Path(directory)
    try:
        written = create_site(target, force=force)
    except FileExistsError as exc:
        raise click.UsageError(f"{exc}; choose an empty folder or pass --force") from exc
    click.echo(f"Created {len(written)} files in {target}. Next: cd {target} && sitegen build")


@main.command(context_settings=CONTEXT)
@click.argument("path")
@click.option("--root", type=click.Path(file_okay=False), help="Site folder (default: the current folder).")
@click.option("--title", help="Page title (default: made from the file name).")
@click.option("--audience", help="Audience tier (default: inherited from the section).")
def new(path, root, title, audience) -> None:
    """Create a page at content/PATH with front matter filled in (e.g. guides/setup.md)."""
    from .scaffold import new_page

    try:
        written = new_page(_site_root(root), path, title=title, audience=audience)
    except (FileExistsError, ValueError) as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"Created {written}")


# --- Delivering the bundles: reverse-proxy configuration, archives, signatures ----------------------


@main.group(context_settings=CONTEXT)
def proxy() -> None:
    """Write reverse-proxy configuration for the built bundles."""


@proxy.command("nginx", context_settings=CONTEXT)
@click.option("--public", default="build/public", show_default=True, type=click.Path(file_okay=False), help="Folder of the public bundle, served at /.")
@click.option("--restricted", default="build/restricted", show_default=True, type=click.Path(file_okay=False), help="Folder of the restricted bundle.")
@click.option("--prefix", default="/restricted/", show_default=True, help="URL path of the restricted bundle (match its base_url in sitegen.toml).")
@click.option("--auth", type=click.Choice(["basic", "mtls", "sso"]), default="basic", show_default=True,
              help="How offices authenticate for the prefix: HTTP basic (--htpasswd), client certificates (--client-ca, "
                   "needs --tls-cert/--tls-key) or auth_request to a single-sign-on endpoint (--sso-url).")
@click.option("--htpasswd", type=click.Path(dir_okay=False), help="basic: the htpasswd file (htpasswd -c FILE USER, or openssl passwd -apr1).")
@click.option("--realm", default="Restricted: registered IP offices", show_default=True, help="basic: the name browsers show in the login prompt.")
@click.option("--client-ca", type=click.Path(dir_okay=False), help="mtls: PEM file of the CA that issues the offices' client certificates.")
@click.option("--sso-url", help="sso: endpoint answering 2xx for a signed-in user and 401/403 otherwise (gets the request's cookies).")
@click.option("--sso-login", help="sso: where to send a browser that gets 401, e.g. 'https://sso.example.org/login?rd=$scheme://$host$request_uri'.")
@click.option("--server-name", default="_", show_default=True, help="server_name: the host name(s) of the site ('_' answers any).")
@click.option("--listen", default="8080", show_default=True, help="Port or ADDRESS:PORT to listen on (443 with --tls-cert in production).")
@click.option("--tls-cert", type=click.Path(dir_okay=False), help="PEM server certificate (chain): listen with TLS and send HSTS.")
@click.option("--tls-key", type=click.Path(dir_okay=False), help="PEM private key of --tls-cert.")
@click.option("--csp", help="Content-Security-Policy to send (default: the built-in theme's needs: only this site's own files).")
@click.option("--gzip-static/--no-gzip-static", default=None, help="Serve precompressed FILE.gz copies (default: on when the bundles have them).")
@click.option("--out", type=click.Path(dir_okay=False), help="Write the configuration to this file (default: standard output).")
@click.option("--root", type=click.Path(file_okay=False), help="Site folder, to compare --prefix with base_url (default: the current folder).")
def proxy_nginx(public, restricted, prefix, auth, htpasswd, realm, client_ca, sso_url, sso_login, server_name, listen,
                tls_cert, tls_key, csp, gzip_static, out, root) -> None:
    """Write an nginx server configuration for the public and restricted bundles.

    \b
    The public bundle is served at /, the restricted one under --prefix, both with pretty URLs
    (/guide/ is guide/index.html), their own 404.html, no directory listings, security headers
    (Content-Security-Policy, X-Content-Type-Options, Referrer-Policy, frame-ancestors), a year
    of caching for fingerprinted assets, and `X-Robots-Tag: noindex` with `Cache-Control: private`
    on everything under the prefix.
    \b
    The file holds `map` and `server` blocks: include it inside `http { }` after
    `include mime.types;` (e.g. copy it to /etc/nginx/conf.d/), then `nginx -t && nginx -s reload`.
    \b
    Examples:
      sitegen proxy nginx --htpasswd /etc/nginx/offices.htpasswd --out site.conf
      sitegen proxy nginx --auth mtls --client-ca offices-ca.pem --tls-cert site.pem --tls-key site.key --listen 443
      sitegen proxy nginx --auth sso --sso-url http://127.0.0.1:4180/oauth2/auth
    """
    from .proxy import DEFAULT_CSP, NginxOptions, ProxyError, checked, nginx_config

    options = NginxOptions(
        public=Path(public), restricted=Path(restricted), prefix=prefix, auth=auth,
        htpasswd=Path(htpasswd) if htpasswd else None, client_ca=Path(client_ca) if client_ca else None,
        sso_url=sso_url, sso_login=sso_login, realm=realm, server_name=server_name, listen=listen,
        tls_cert=Path(tls_cert) if tls_cert else None, tls_key=Path(tls_key) if tls_key else None,
        csp=csp or DEFAULT_CSP, gzip_static=gzip_static,
    )
    try:
        options = checked(options)
    except ProxyError as exc:
        raise click.UsageError(str(exc)) from exc
    _warn_prefix_mismatch(_site_root(root), options.prefix, Path(restricted).name)
    text = nginx_config(options)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"Wrote {out}: include it inside http {{ }}, then run `nginx -t`.", err=True)
    else:
        click.echo(text, nl=False)


def _warn_prefix_mismatch(site_root: Path, prefix: str, bundle_name: str) -> None:
    """Locked links in other bundles point at base_url: a different proxy prefix would break them."""
    from .config import load_config
    from .proxy import restricted_base_path

    try:
        bundle = load_config(site_root).bundle(bundle_name)
    except (BuildError, KeyError):
        return
    path = restricted_base_path(bundle.base_url)
    if path and path != prefix:
        click.echo(f"warning: --prefix {prefix} differs from the path of bundles.{bundle_name}.base_url ({bundle.base_url}); "
                   "locked links will point elsewhere", err=True)


@main.command("package", context_settings=CONTEXT)
@click.argument("bundle")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for the archive and its checksum (default: ROOT/dist).")
@click.option("--sign", "key", type=click.Path(exists=True, dir_okay=False), help="Sign the archive with this Ed25519 private key (sitegen keygen).")
@click.option("--root", type=click.Path(file_okay=False), help="Site folder (default: the current folder).")
def package_cmd(bundle, out, key, root) -> None:
    """Write a reproducible archive of a built bundle, its SHA-256 checksum and, with --sign, a signature.

    \b
    BUNDLE is a bundle name from sitegen.toml (its folder build/BUNDLE) or a bundle folder.
    Writes into dist/:
      BUNDLE.tar.gz          the bundle under BUNDLE/, with BUNDLE/SHA256SUMS listing every file
      BUNDLE.tar.gz.sha256   the archive's SHA-256 (sha256sum -c BUNDLE.tar.gz.sha256)
      BUNDLE.tar.gz.sig      with --sign: Ed25519 signature of the archive (sitegen verify, or openssl)
    \b
    The same bundle gives the same bytes: sorted entries, owner 0, modes 0644/0755, one timestamp
    (SOURCE_DATE_EPOCH, else the current git commit's time, else 1970-01-01), gzip without name or time.
    """
    from .package import DEFAULT_OUT, PackageError, package

    site_root = _site_root(root)
    folder, name = _bundle_folder(site_root, bundle)
    try:
        result = package(folder, Path(out) if out else site_root / DEFAULT_OUT, name, Path(key) if key else None)
    except PackageError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    signed = f", signed ({result.signature.name})" if result.signature else ", not signed"
    click.echo(f"Packaged {result.files} files into {result.archive} (sha256 {result.sha256}){signed}.")
    click.echo(f"Timestamps: {result.mtime} from {result.mtime_source}. Checksum: {result.checksum.name}.")


def _bundle_folder(site_root: Path, bundle: str) -> tuple[Path, str]:
    """A configured bundle name means build/NAME; otherwise BUNDLE must be a folder."""
    from .config import load_config

    try:
        names = [b.name for b in load_config(site_root).bundles]
    except BuildError:
        names = []
    if bundle in names:
        folder = site_root / "build" / bundle
        if not folder.is_dir():
            raise click.UsageError(f"bundle '{bundle}' is not built yet ({folder} is missing): run `sitegen build` first")
        return folder, bundle
    folder = Path(bundle)
    if folder.is_dir():
        return folder, folder.resolve().name
    known = f"; configured bundles: {', '.join(names)}" if names else ""
    raise click.UsageError(f"'{bundle}' is neither a bundle name nor a folder{known}")


@main.command(context_settings=CONTEXT)
@click.argument("archive", type=click.Path(exists=True, dir_okay=False))
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="The sender's Ed25519 public key (PEM): check the signature ARCHIVE.sig.")
@click.option("--checksum", type=click.Path(dir_okay=False), help="The checksum file (default: ARCHIVE.sha256).")
@click.option("--signature", type=click.Path(dir_okay=False), help="The signature file (default: ARCHIVE.sig).")
def verify(archive, key, checksum, signature) -> None:
    """Check a received archive before use: checksum file, every file inside, and the signature.

    Exit 0 when everything matches, 1 (with every mismatch named) otherwise. Without --key only the
    checksums are checked, which proves integrity but not who sent the archive.
    """
    from .package import verify as verify_archive

    result = verify_archive(Path(archive), Path(key) if key else None,
                            Path(checksum) if checksum else None, Path(signature) if signature else None)
    if not result.ok:
        for problem in result.problems:
            click.echo(f"error: {problem}", err=True)
        click.echo(f"Verification FAILED for {archive}: {len(result.problems)} problem(s). Do not use this archive.", err=True)
        sys.exit(1)
    for line in result.checked:
        click.echo(f"ok: {line}")
    if key:
        click.echo(f"Verified {archive}: intact and signed by the expected key.")
    else:
        click.echo(f"Verified {archive}: intact. The signature was NOT checked: pass --key PUBKEY to know who made it.")


@main.command(context_settings=CONTEXT)
@click.option("--out", "prefix", default="sitegen-signing", show_default=True, help="Write PREFIX.key (private, mode 0600) and PREFIX.pub.")
@click.option("--force", is_flag=True, help="Replace existing key files.")
def keygen(prefix, force) -> None:
    """Create an Ed25519 key pair for signing archives (sitegen package --sign PREFIX.key).

    Keep PREFIX.key secret (a CI secret, never in git); give PREFIX.pub and the printed fingerprint
    to the offices, who check archives with `sitegen verify ARCHIVE --key PREFIX.pub`.
    """
    import subprocess

    from .package import generate_keys

    try:
        private, public, key_print = generate_keys(Path(prefix), force=force)
    except FileExistsError as exc:
        raise click.UsageError(str(exc)) from exc
    click.echo(f"Wrote {private} (private, keep it secret) and {public} (public, give it to the offices).")
    click.echo(f"Fingerprint (SHA-256 of the DER public key): {key_print}")
    try:
        ignored = subprocess.run(["git", "-C", str(private.parent), "check-ignore", "-q", private.name],
                                 capture_output=True, timeout=30).returncode
    except (OSError, subprocess.SubprocessError):
        ignored = 128
    if ignored == 1:
        click.echo(f"warning: {private} is inside a git work tree and not ignored: move it out, or add it to .gitignore", err=True)


if __name__ == "__main__":  # pragma: no cover
    main()
