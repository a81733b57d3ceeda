"""Jinja2 theme rendering: pages, section indexes, label pages, 404, sitemap and robots.txt.

The environment autoescapes and uses StrictUndefined (a typo in a template is an error, not an
empty string). A site overrides any built-in template by a file of the same name in `templates/`.
Everything handed to templates comes from one bundle's pages: a template cannot print what the
bundle does not hold, because it is never given it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from .config import Bundle, Config
from .content import Page
from .discover import label_slug
from .links import relative_url
from .nav import Navigation


def make_environment(config: Config) -> Environment:
    """The theme's Jinja2 environment, shared while the site's templates stay the same (compiling
    the theme costs more than rendering a page: `serve` would pay it on every keystroke)."""
    folder = config.templates_dir
    state = tuple(sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*") if p.is_file())) if folder.is_dir() else ()
    return _environment(folder, state)


_DICT_ATTRIBUTES = frozenset(dir(dict))
_jinja_getattr = Environment.getattr  # (called directly: super() would add a lookup to every other attribute read)


class _ThemeEnvironment(Environment):
    """Jinja2's environment, with `a.b` read from a dict by key without trying an attribute first.

    Jinja2 tries getattr(a, "b") and then a["b"]; a plain dict has no attributes but its methods,
    so for any other name the first try always fails, and a failed getattr raises (about 1 µs).
    Templates read the dicts we hand them (site, sidebar, history items…) three million times
    for a site of 5,000 pages. The result is Jinja2's in every case: a method name goes the usual way."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                pass
        return _jinja_getattr(self, obj, attribute)


@lru_cache(maxsize=4)
def _environment(templates_dir: Path, state: tuple) -> Environment:
    loaders = [FileSystemLoader(str(templates_dir))] if templates_dir.is_dir() else []
    loaders.append(PackageLoader("ipo_sitegen", "theme/templates"))
    env = _ThemeEnvironment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(["html", "xml"], default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # one environment per build: templates do not change under it
    )
    return env


@lru_cache(maxsize=4096)
def label_url(label: str) -> str:
    return f"labels/{label_slug(label)}/"


@dataclass
class PageView:
    """What a template may know of a page, with URLs already relative to the page being written."""

    title: str
    href: str
    summary: str
    tier: str
    locked: bool
    labels: list[tuple[str, str]]


@dataclass
class SectionViews:
    """What every page of one section shows of the others, made once per section."""

    pages: dict[str, PageView]  # the section's pages by source, each linked as "../name/"
    ancestors: list[PageView]  # home and the enclosing sections' indexes, outermost first
    index: PageView | None  # the section's own index


class ThemeRenderer:
    """Renders the pages of one bundle; every URL it produces is relative to the current page."""

    def __init__(self, env: Environment, config: Config, bundle: Bundle, nav: Navigation, assets: dict[str, str]) -> None:
        self.env = env
        self.config = config
        self.bundle = bundle
        self.nav = nav
        self.assets = assets
        self._sections: dict[str, SectionViews] = {}

    def _site(self) -> dict[str, Any]:
        return {"title": self.config.title, "language": self.config.language, "bundle": self.bundle.name,
                "tier": self.bundle.tier, "tiers": self.config.tiers, "base_url": self.bundle.base_url}

    def view(self, page: Page, here: str, labels: bool = False) -> PageView:
        """With `labels` (the page being written), its labels' links too: lists never show them,
        and a sidebar has dozens of entries."""
        return PageView(
            title=page.title, href=relative_url(here, page.url), summary=page.summary,
            tier=self.config.tiers[page.rank], locked=page.rank > 0,
            labels=[(label, relative_url(here, label_url(label))) for label in page.labels] if labels else [],
        )

    def common(self, here: str, title: str) -> dict[str, Any]:
        depth = here.count("/")
        root = "../" * depth
        return {
            "site": self._site(), "root": root or "./", "title": title,
            "assets": {name: root + path for name, path in self.assets.items()},
            "home": relative_url(here, ""),
        }

    def section_views(self, page: Page) -> SectionViews:
        """The views of the pages of `page`'s section (not the home page's), which link to one
        another as "../name/" and to their ancestors alike from whichever of them is written.

        A sidebar holds dozens of entries: made per page, their views were a fifth of its cost."""
        views = self._sections.get(page.section)
        if views is None:
            section_url = page.url[: page.url.rstrip("/").rfind("/") + 1]  # "a/b/" for "a/b/c/"
            among = section_url + "\x00/"  # a page of the section that none of its pages is
            index = self.nav.index_of(page.section)
            views = SectionViews({p.source: self.view(p, among) for p in self.nav.siblings(page)},
                                 [self.view(p, among) for p in self.nav.ancestors(page)],
                                 self.view(index, among) if index else None)
            self._sections[page.section] = views
        return views

    def page(self, page: Page, content: str, toc: list[dict], extra: dict[str, Any] | None = None) -> str:
        here = page.url
        sidebar = self.nav.sidebar(page)
        previous, following = self.nav.neighbours(page)
        kids = self.nav.children_of(page)
        children = [self.view(p, here) for p in kids]
        if page.is_home:  # (its sidebar lists its children, with hrefs relative to the home page)
            views = SectionViews({p.source: v for p, v in zip(kids, children)}, [], None)
        else:
            views = self.section_views(page)
        own = self.view(page, here, labels=True)
        context = self.common(here, page.title)
        context.update(
            page=own,
            content=Markup(content),
            toc=toc,
            breadcrumbs=views.ancestors,
            sidebar={
                "ancestors": views.ancestors,
                "items": [{"page": own if i.current else views.pages[i.page.source], "current": i.current,
                           "children": children[: len(i.children)]} for i in sidebar.items],
                "hidden_before": sidebar.hidden_before, "hidden_after": sidebar.hidden_after,
                "section": views.index,
            },
            previous=views.pages[previous.source] if previous else None,
            next=views.pages[following.source] if following else None,
            children=children,
            updated=None,
            recent=[],
        )
        if extra:
            context.update(extra)
        template = "home.html" if page.is_home else "section.html" if page.is_index else "page.html"
        return self.env.get_template(template).render(context)

    def render(self, template: str, here: str, title: str, **values: Any) -> str:
        """Render any theme template for the file at `here` (URLs in `values` already relative)."""
        context = self.common(here, title)
        context.update(values)
        return self.env.get_template(template).render(context)

    def labels_index(self, labels: dict[str, list[Page]]) -> str:
        here = "labels/"
        context = self.common(here, "Labels")
        context["labels"] = [{"name": name, "href": relative_url(here, label_url(name)), "count": len(pages)}
                             for name, pages in sorted(labels.items(), key=lambda item: item[0].casefold())]
        return self.env.get_template("labels.html").render(context)

    def label(self, name: str, pages: list[Page]) -> str:
        here = label_url(name)
        context = self.common(here, f"Label: {name}")
        context.update(label=name, pages=[self.view(p, here) for p in sorted(pages, key=lambda p: (p.title.casefold(), p.source))],
                       all_labels=relative_url(here, "labels/"))
        return self.env.get_template("label.html").render(context)

    def not_found(self) -> str:
        # Served by web servers at any depth: with a base_url, links are absolute to it.
        context = self.common("", "Page not found")
        if self.bundle.base_url:
            context["root"] = self.bundle.base_url
            context["home"] = self.bundle.base_url
            context["assets"] = {name: self.bundle.base_url + path for name, path in self.assets.items()}
        return self.env.get_template("404.html").render(context)

    def sitemap(self, pages: list[Page]) -> str:
        base = self.bundle.base_url or ""
        return self.env.get_template("sitemap.xml").render(urls=[(base + p.url) or "./" for p in sorted(pages, key=lambda p: p.url)])

    def robots(self) -> str:
        if self.bundle.rank == 0:
            lines = ["User-agent: *", "Allow: /"]
            if self.bundle.base_url:
                lines.append(f"Sitemap: {self.bundle.base_url}sitemap.xml")
        else:
            lines = [f"# {self.bundle.name}: for {self.bundle.tier} readers only; never index it.", "User-agent: *", "Disallow: /"]
        return "\n".join(lines) + "\n"


def theme_static_dir() -> Path:
    return Path(__file__).parent / "theme" / "static"
