"""The `sitegen` command line: thin wrappers that parse options and call the pipeline.

Exit codes: 0 success, 1 content errors or leaks, 2 usage errors (click's own convention).
"""

from __future__ import annotations

import sys
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


@click.group(context_settings=CONTEXT)
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
    func = click.option("--drafts", is_flag=True, help="Include drafts and embargoed pages.")(func)
    func = click.option("--strict", is_flag=True, help="Treat warnings as errors.")(func)
    func = click.option("--jobs", "-j", type=click.IntRange(min=1), help="Worker processes for rendering (default: CPU count).")(func)
    func = click.option("--quiet", "-q", is_flag=True, help="Print only problems (the default when not on a terminal).")(func)
    func = click.option("--verbose", "-v", is_flag=True, help="Print each stage with timings.")(func)
    return func


@main.command(context_settings=CONTEXT)
@_common_build_options
@click.option("--out", type=click.Path(file_okay=False), help="Output folder (default: ROOT/build).")
def build_cmd(root, bundles, drafts, strict, jobs, quiet, verbose, out) -> None:
    """Build the bundles into build/<bundle>/ and audit them.

    Each bundle is written to a staging folder, audited for leaks, and only then swapped in whole:
    a failed build leaves the previous output untouched.
    """
    reporter = Reporter(quiet=quiet, verbose=verbose)
    options = Options(tuple(bundles), Path(out).resolve() if out else None, drafts, strict, jobs)
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
def audit(folders, root) -> None:
    """Check built bundles for material above their tier (default: every bundle in build/).

    Each FOLDER is a built bundle such as build/public; its manifest.json says which bundle it is.
    Every file is scanned for titles, headings, sentences, URLs and attachments of pages and blocks
    the bundle may not show. Exit 1 on any leak. `sitegen build` runs this automatically.
    """
    from .audit import audit_folders

    site_root = _site_root(root)
    paths = [Path(f) for f in folders] or sorted(p.parent for p in (site_root / "build").glob("*/manifest.json"))
    if not paths:
        raise click.UsageError("no bundle to audit: build first (sitegen build) or pass a folder like build/public")
    try:
        leaks, notes = audit_folders(site_root, paths)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except BuildError as exc:
        _fail(exc)
        return
    for note in notes:
        click.echo(f"warning: {note}", err=True)
    if leaks:
        _fail(BuildError([leak.problem() for leak in leaks], "leaks found"), "Do not publish these bundles.")
    click.echo(f"Audit passed: {', '.join(p.name for p in paths)} hold nothing above their tier.")


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


if __name__ == "__main__":  # pragma: no cover
    main()
