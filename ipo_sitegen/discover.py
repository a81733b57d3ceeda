"""Read `content/` into a `Site`: front matter, bodies, URLs and attachments.

This is the only stage that touches the content folder. It refuses anything that could make
output escape its folder (symlinks leaving content/, unsafe file names or slugs) and reports
every problem with the file and line, so that one run lists all of them.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import os
import posixpath
import re
import unicodedata
from collections.abc import Callable
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .content import Attachment, Page, Site
from .errors import Problems

FRONT_MATTER_KEYS = ("title", "audience", "summary", "labels", "weight", "slug", "draft", "publish_date", "expiry_date")
# First URL segments that the generator itself writes at the root of a bundle.
RESERVED_ROOT = {"assets", "labels", "search", "recent", "changes", "history", "404.html", "sitemap.xml",
                 "robots.txt", "manifest.json", "feed.xml", "index.html"}
_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_~-]*(\.[A-Za-z0-9_~-]+)*$")
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SURROGATE = re.compile("[\udc80-\udcff]")


@lru_cache(maxsize=1 << 16)  # every file name again on each plan of `serve`
def slugify(name: str) -> str:
    """Make a URL segment from a file or folder name: ASCII, lower case, hyphens."""
    text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9._~-]+", "-", text).strip("-.")
    return re.sub(r"-{2,}", "-", text)


@lru_cache(maxsize=1 << 12)
def label_slug(label: str) -> str:
    """The URL segment of a label's page: slugify's, with a digest of the label when it drops letters
    that have no ASCII form (日本, Ελλάδα): such labels are as welcome as Latin ones. "" for a label
    with no letter or digit."""
    slug = slugify(label)
    if all(not char.isalnum() or unicodedata.normalize("NFKD", char).encode("ascii", "ignore") for char in label):
        return slug
    digest = hashlib.blake2b(unicodedata.normalize("NFC", label).casefold().encode(), digest_size=4).hexdigest()
    return f"{slug}-{digest}" if slug else digest


def utf8_name(path: Path, problems: Problems) -> bool:
    """Is the name of `path` UTF-8? If not (os keeps its bytes as surrogates), report it."""
    if path.name.isascii() or not _SURROGATE.search(path.name):
        return True
    problems.error(path, None, "the name is not UTF-8 (its bytes are shown as \\xNN)",
                   "rename it in UTF-8 (in a shell, '?' matches each odd byte: mv r?sum?.md resume.md)")
    return False


def is_safe_segment(segment: str) -> bool:
    return bool(_SAFE_SEGMENT.match(segment))


def decode_utf8(data: bytes, path: Path, problems: Problems) -> str | None:
    """Decode UTF-8 (a leading BOM is allowed) or report the line of the first bad byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.error(path, line, f"invalid UTF-8 (byte 0x{data[exc.start]:02x})", "save the file as UTF-8 in your editor")
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_front_matter(text: str, path: Path, problems: Problems) -> tuple[str, str, int] | None:
    """Return (yaml text, body, line where the body starts) or report a missing front matter."""
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        problems.error(path, 1, "missing front matter", "start the file with a '---' line, then 'title: ...' and 'audience: ...', then '---'")
        return None
    for number, line in enumerate(lines[1:], start=2):
        if line.rstrip() in ("---", "..."):
            # The body starts at its first non-blank line: blank lines there mean nothing in Markdown,
            # and a body that starts with text is its own normalised form (history keeps no copy).
            start = number
            while start < len(lines) - 1 and not lines[start].strip():
                start += 1
            return "\n".join(lines[1 : number - 1]), "\n".join(lines[start:]), start + 1
    problems.error(path, 1, "front matter is not closed", "add a line with '---' after the front-matter keys")
    return None


def parse_front_matter(yaml_text: str, path: Path, problems: Problems) -> tuple[dict[str, Any], dict[str, int]] | None:
    """Parse the YAML mapping and remember the file line of each key (front matter starts at line 2)."""
    loader = _Loader(yaml_text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = mark.line + 2 if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        problems.error(path, line, f"malformed YAML front matter: {problem}", "check the indentation and quote values that contain ':' or '#'")
        return None
    except (ValueError, TypeError, OverflowError) as exc:  # a value YAML reads but cannot make: 2024-02-30
        line, key = _unmakeable(node)
        problems.error(path, line, f"'{key}' holds no real date or value: {exc}", "write a date that exists, as YYYY-MM-DD (e.g. 2024-02-29)")
        return None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problems.error(path, 2, "front matter must be 'key: value' lines", "e.g. 'title: My page'")
        return None
    lines: dict[str, int] = {}
    for key, _ in node.value if node is not None else ():
        name, line = str(key.value), key.start_mark.line + 2
        if name in lines:  # YAML would quietly keep the last: a second `audience:` must never decide alone
            problems.error(path, line, f"'{name}' is given twice (also on line {lines[name]})", f"keep one '{name}:' line")
            return None
        lines[name] = line
    return data, lines


def _unmakeable(node: yaml.Node | None) -> tuple[int, str]:
    """(file line, key) of the first value of a front-matter mapping that YAML cannot make."""
    maker = yaml.SafeLoader("")
    for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
        try:
            maker.construct_object(value, deep=True)
        except (ValueError, TypeError, OverflowError, yaml.YAMLError):
            return key.start_mark.line + 2, str(key.value)
    return 2, "front matter"


_SIMPLE_LINE = re.compile(r"^(title|audience|draft):[ \t]*(.*?)[ \t]*$")
_PLAIN = re.compile(r"^[^\s\"'\[\]{}|>&*!%@`#,?:-][^#]*$")


def quick_front_matter(yaml_text: str) -> dict[str, Any] | None:
    """title, audience and draft from simple `key: value` lines, without a YAML parser.

    For reading thousands of past revisions quickly. Returns None whenever a value is anything but
    a plain one-line scalar (quotes, lists, ': ' or ' #' inside…), so that YAML decides those.
    """
    data: dict[str, Any] = {}
    for line in yaml_text.split("\n"):
        match = _SIMPLE_LINE.match(line)
        if not match:
            if line.startswith(("title", "audience", "draft")):
                return None
            continue
        key, value = match.groups()
        if key in data:
            return None  # (given twice: YAML's reading reports it)
        if not value or not _PLAIN.match(value) or ": " in value or " #" in value:
            return None
        if key == "draft":
            if value not in ("true", "false"):
                return None
            data[key] = value == "true"
        else:
            data[key] = value
    return data


def _as_date(value: Any) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip()[:10])
        except ValueError:
            return None
    return None


def make_page(source: str, data: dict[str, Any], lines: dict[str, int], body: str, body_line: int,
              path: Path, tiers: tuple[str, ...], problems: Problems) -> Page | None:
    """Check the front matter's keys and types and build a Page (without its URL yet)."""
    ok = True

    def bad(key: str, message: str, hint: str = "") -> None:
        nonlocal ok
        ok = False
        problems.error(path, lines.get(key, 2), message, hint)

    for key in data:
        if key not in FRONT_MATTER_KEYS:
            close = difflib.get_close_matches(str(key), FRONT_MATTER_KEYS, n=1)
            bad(str(key), f"unknown front-matter key '{key}'",
                f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(FRONT_MATTER_KEYS)}")
    title = data.get("title")
    if title is None or (isinstance(title, str) and not title.strip()):
        problems.error(path, 2, "missing title", "add a line 'title: ...' to the front matter")
        ok = False
    elif not isinstance(title, str):
        bad("title", f"title must be text, not {title!r}", 'put it in quotes: title: "..."')
    audience = data.get("audience")
    if audience is not None and (not isinstance(audience, str) or audience not in tiers):
        bad("audience", f"unknown audience '{audience}'", f"use one of: {', '.join(tiers)}")
    for key in ("summary", "slug"):
        if data.get(key) is not None and not isinstance(data[key], str):
            bad(key, f"{key} must be text, not {data[key]!r}", f'put it in quotes: {key}: "..."')
    labels = data.get("labels", [])
    if isinstance(labels, str):
        labels = [labels]
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        bad("labels", "labels must be a list of names", "e.g. labels: [examiners, it-professionals]")
        labels = []
    elif not all(label_slug(label) for label in labels):
        empty = next(label for label in labels if not label_slug(label))
        bad("labels", f"label {empty!r} has no letter or digit", "name labels with words, e.g. labels: [examiners, it-professionals]")
        labels = []
    weight = data.get("weight")
    if weight is not None and (isinstance(weight, bool) or not isinstance(weight, int)):
        bad("weight", f"weight must be a whole number, not {weight!r}", "e.g. weight: 10")
    draft = data.get("draft", False)
    if not isinstance(draft, bool):
        bad("draft", f"draft must be true or false, not {draft!r}")
    dates = {}
    for key in ("publish_date", "expiry_date"):
        if data.get(key) is not None:
            dates[key] = _as_date(data[key])
            if dates[key] is None:
                bad(key, f"{key} must be a date, not {data[key]!r}", "write it as YYYY-MM-DD")
    slug = data.get("slug")
    if isinstance(slug, str) and not is_safe_segment(slug):
        bad("slug", f"slug '{slug}' is not a single safe URL segment",
            "use letters, digits, '-' and '_' only (no '/', '..' or spaces), e.g. slug: key-generation")
    if not ok:
        return None
    return Page(
        source=source, title=title.strip(), body=body, body_line=body_line,
        audience=audience, summary=(data.get("summary") or "").strip(), labels=tuple(dict.fromkeys(labels)),
        weight=weight, slug=slug, draft=draft, publish_date=dates.get("publish_date"),
        expiry_date=dates.get("expiry_date"), key_lines=lines,
    )


def _walk(content: Path, problems: Problems) -> tuple[list[str], list[str]]:
    """List Markdown files and attachments (by source: their path inside content/, posix),
    refusing symlinks that leave content/.

    Top-down, in name order (as os.walk with sorted names would), with os.scandir and path
    strings: a directory entry knows whether it is a link without one more system call per file,
    and no Path object is made per file (`serve` lists the whole site again after every save)."""
    root = content.resolve()
    markdown: list[str] = []
    others: list[str] = []
    folders = [(str(content), "")]  # (folder, its source prefix)
    while folders:
        here, prefix = folders.pop()
        with os.scandir(here) as found:
            entries = sorted(found, key=lambda entry: entry.name)
        below: list[tuple[str, str]] = []
        for entry in entries:
            name = entry.name
            if not utf8_name(Path(entry.path), problems):
                continue
            if entry.is_dir():
                if name.startswith("."):
                    continue
                if not entry.is_symlink():
                    below.append((entry.path, f"{prefix}{name}/"))
                    continue
                path = Path(entry.path)
                target = path.resolve()
                if not target.is_relative_to(root):
                    problems.error(path, None, f"symlink leaves content/ (points to {target})", "replace the link by a real folder inside content/")
                else:
                    problems.warning(path, None, "symlinked folder is not followed", "move the files here or link single files")
                continue
            if name.startswith(".") or name.endswith(("~", ".swp", ".swx", ".tmp")) or name.startswith("#"):
                continue  # hidden files, editor backups and swap files
            if entry.is_symlink():
                path = Path(entry.path)
                target = path.resolve()
                if not target.is_relative_to(root):
                    problems.error(path, None, f"symlink leaves content/ (points to {target})", "copy the file into content/ instead of linking it")
                    continue
                if not target.is_file():
                    problems.error(path, None, "broken symlink", "remove it or point it at a file inside content/")
                    continue
            if name.endswith(".md"):
                markdown.append(prefix + name)
                continue
            if name.lower().endswith((".md", ".markdown")):
                problems.warning(Path(entry.path), None, "not read as a page: page files end in '.md' (lower case)",
                                 f"rename it to {name.rsplit('.', 1)[0]}.md, or it is only an attachment")
            others.append(prefix + name)
        folders += reversed(below)
    return markdown, others


# What this process read already, by file, with the file's (mtime, size) then: `sitegen serve`
# reads the whole site again after every save, and most files did not change.
_PARSED: dict[tuple[str, str, tuple[str, ...]], tuple[tuple[int, int], Page]] = {}
_HASHED: dict[str, tuple[tuple[int, int], Attachment]] = {}


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def _read_page_cached(content: Path, source: str, tiers: tuple[str, ...], problems: Problems) -> Page | None:
    """`_read_page`, skipped for a file whose size and mtime did not change since this process read
    it. A fresh copy is returned: later stages set its URL and tier."""
    full = os.path.join(content, source)
    stamp = _stamp(full)
    if stamp is None:
        return _read_page(content / source, source, tiers, problems)
    key = (full, source, tiers)
    cached = _PARSED.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1].copy()
    page = _read_page(content / source, source, tiers, problems)
    if page is not None:
        _ = (page.is_index, page.folder, page.section)  # derived now, so that every copy keeps them
        _PARSED[key] = (stamp, page.copy())
    else:
        _PARSED.pop(key, None)
    return page


def _attachment(content: Path, source: str) -> Attachment:
    """An attachment with the SHA-256 of its bytes, hashed again only when its size or mtime changed
    (attachments can be large: scans, videos)."""
    full = os.path.join(content, source)
    stamp = _stamp(full)
    cached = _HASHED.get(full)
    if stamp is not None and cached is not None and cached[0] == stamp:
        return dataclasses.replace(cached[1])
    data = (content / source).read_bytes()
    attachment = Attachment(source, "", hashlib.sha256(data).hexdigest(), len(data))
    if stamp is not None:
        _HASHED[full] = (stamp, dataclasses.replace(attachment))
    return attachment


def _read_page(path: Path, source: str, tiers: tuple[str, ...], problems: Problems) -> Page | None:
    text = decode_utf8(path.read_bytes(), path, problems)
    if text is None:
        return None
    if "\x00" in text:
        problems.error(path, text[: text.index("\x00")].count("\n") + 1, "NUL byte in a text file", "this does not look like a Markdown file")
        return None
    split = split_front_matter(text, path, problems)
    if split is None:
        return None
    yaml_text, body, body_line = split
    parsed = parse_front_matter(yaml_text, path, problems)
    if parsed is None:
        return None
    return make_page(source, parsed[0], parsed[1], body, body_line, path, tiers, problems)


def _segment(name: str, path: Callable[[], Path], problems: Problems) -> str | None:
    """The URL segment of a file or folder name; `path` makes the path an error names (only then:
    a Path for every page of a large site, on every save under `serve`, costs more than the rest)."""
    segment = slugify(name)
    if not segment or not is_safe_segment(segment):
        problems.error(path(), None, f"file name '{name}' cannot become a URL", "rename it using letters, digits and '-'")
        return None
    return segment


def _assign_urls(site: Site, content: Path, problems: Problems) -> None:
    """Pretty URLs: the section folders' segments (or their slugs), then the page's slug or stem."""
    folder_urls: dict[str, str] = {"": ""}

    def folder_url(folder: str) -> str | None:
        if folder in folder_urls:
            return folder_urls[folder]
        parent = folder_url(posixpath.dirname(folder))
        index = site.index_of(folder)
        name = posixpath.basename(folder)
        segment = index.slug if index is not None and index.slug else _segment(name, lambda: content / folder, problems)
        url = None if parent is None or segment is None else f"{parent}{segment}/"
        folder_urls[folder] = url
        return url

    owners: dict[str, str] = {}
    for source in sorted(site.pages):
        page = site.pages[source]
        if page.is_index:
            url = folder_url(page.folder)
        else:
            base = folder_url(page.folder)
            stem = page.slug or _segment(posixpath.basename(source)[:-3], lambda: content / source, problems)
            url = None if base is None or stem is None else f"{base}{stem}/"
        if url is None:
            continue
        page.url = url
        first = url.split("/", 1)[0]
        if first in RESERVED_ROOT:
            problems.error(content / source, page.line_of("slug"), f"URL '{url}' is reserved for generated pages",
                           f"rename the file or set a slug other than: {', '.join(sorted(RESERVED_ROOT))}")
        elif url in owners:
            problems.error(content / source, page.line_of("slug"), f"duplicate URL '{url}', also produced by content/{owners[url]}",
                           "rename one of the files or give one a different 'slug'")
        else:
            owners[url] = source
    for source in sorted(site.attachments):
        attachment = site.attachments[source]
        base = folder_url(attachment.folder)
        url = None if base is None else base + posixpath.basename(source)
        if url is not None and url.split("/", 1)[0] in RESERVED_ROOT:
            problems.error(content / source, None, f"'{url}' is a file the generator writes itself",
                           "rename the attachment or move it into a section folder")
        elif url is not None and url in owners:
            problems.error(content / source, None, f"duplicate URL '{url}', also produced by content/{owners[url]}", "rename one of them")
        elif url is not None and posixpath.basename(url) == "index.html" and url[: -len("index.html")] in owners:
            page_url = url[: -len("index.html")]  # (a page's URL is the folder whose index.html it writes)
            problems.error(content / source, None, f"'{url}' would replace the page content/{owners[page_url]} (its URL is '{page_url}')",
                           "rename the attachment")
        elif url is not None:
            attachment.url = url
            owners[url] = source


def discover(content: Path, tiers: tuple[str, ...], problems: Problems) -> Site:
    """Read every page and attachment under `content`; problems are collected, not raised."""
    site = Site()
    if not content.is_dir():
        problems.error(content, None, "no content/ folder", "create it and add an _index.md (or run `sitegen init`)")
        return site
    markdown, others = _walk(content, problems)
    for source in markdown:
        page = _read_page_cached(content, source, tiers, problems)
        if page is not None:
            site.pages[source] = page
    for source in others:
        name = posixpath.basename(source)
        if not is_safe_segment(name):
            problems.error(content / source, None, f"attachment name '{name}' is not URL-safe", "rename it using letters, digits, '-', '_' and one extension")
            continue
        site.attachments[source] = _attachment(content, source)
    _add_missing_sections(site, content, problems)
    _assign_urls(site, content, problems)
    _check_labels(site, content, problems)
    return site


def _check_labels(site: Site, content: Path, problems: Problems) -> None:
    """Labels spelled differently that would share one label page (Access, access)."""
    spellings: dict[str, dict[str, str]] = {}  # URL segment -> label as spelled -> the first page that spells it so
    for source, page in sorted(site.pages.items()):
        for label in page.labels:
            spellings.setdefault(label_slug(label), {}).setdefault(label, source)
    for slug, spelled in sorted(spellings.items()):
        first, *others = sorted(spelled.items(), key=lambda item: (item[1], item[0]))
        for label, source in others:
            problems.error(content / source, site.pages[source].line_of("labels"),
                           f"label '{label}' and label '{first[0]}' (content/{first[1]}) would share one page, labels/{slug}/",
                           "spell the label the same way on every page")


def _add_missing_sections(site: Site, content: Path, problems: Problems) -> None:
    """A folder without `_index.md` still is a section: give it a title made from its name."""
    folders = {posixpath.dirname(s) for s in site.pages}  # a folder of attachments only is no section
    for folder in list(folders):
        while folder:
            folders.add(folder)
            folder = posixpath.dirname(folder)
    if "_index.md" not in site.pages:
        problems.error(content / "_index.md", None, "the home page content/_index.md is missing", "create it with a title and an introduction")
    for folder in sorted(folders):
        if folder and site.index_of(folder) is None:
            problems.warning(content / folder, None, "folder has no _index.md; its title is made from its name",
                             "add an _index.md with a title and an audience")
            name = posixpath.basename(folder)
            site.pages[f"{folder}/_index.md"] = Page(
                source=f"{folder}/_index.md", title=name.replace("-", " ").replace("_", " ").capitalize(),
                body="", body_line=1, synthetic=True)
