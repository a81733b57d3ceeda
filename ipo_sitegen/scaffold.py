"""`sitegen init` and `sitegen new`: starter files that build as they are."""

from __future__ import annotations

import posixpath
from pathlib import Path

from .config import DEFAULT_TIERS, load_config
from .discover import is_safe_segment

STARTER: dict[str, str] = {
    "sitegen.toml": """\
[site]
title = "My Support Space"
language = "en"

[audiences]
tiers = ["public", "registered", "internal"]    # least to most restricted

[bundles.public]
tier = "public"
# base_url = "https://support.example.org/"

[bundles.restricted]
tier = "registered"
# base_url = "https://support.example.org/restricted/"

[bundles.internal]
tier = "internal"

[history]
recent = 10
show_authors = true
""",
    ".gitignore": "/build/\n.sitegen-cache/\n",
    "content/_index.md": """\
---
title: Welcome
audience: public
---
This is the home page of every bundle. Start with the [getting started guide](guides/getting-started.md).

::: audience registered

Registered readers see this paragraph; the public bundle never contains it.

:::
""",
    "content/guides/_index.md": """\
---
title: Guides
audience: public
summary: Step-by-step guides.
---
Guides for everyone. Some pages below are for registered readers only.
""",
    "content/guides/getting-started.md": """\
---
title: Getting started
summary: Your first steps.
labels: [general-public]
weight: 10
---
!!! tip
    Pages inherit the audience of their section (`public` here).

Registered offices can read the [installation guide](installation.md).
""",
    "content/guides/installation.md": """\
---
title: Installation
audience: registered
summary: Installing the platform in an office.
labels: [it-professionals]
weight: 20
---
## Requirements

| Component | Minimum |
|-----------|---------|
| CPU       | 4 cores |
| Memory    | 16 GiB  |

```bash
sudo systemctl enable --now platform
```
""",
    "content/staff/_index.md": """\
---
title: Staff notes
audience: internal
---
Work in progress, for staff only.
""",
}


def create_site(target: Path, force: bool = False) -> list[Path]:
    if target.exists() and any(target.iterdir()) and not force:
        raise FileExistsError(f"{target} is not empty")
    written = []
    for relative, text in STARTER.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def new_page(root: Path, relative: str, title: str | None = None, audience: str | None = None) -> Path:
    """Create content/RELATIVE with front matter; refuses paths that leave content/."""
    config = load_config(root)
    clean = posixpath.normpath(relative.replace("\\", "/")).removeprefix("content/")
    if relative.endswith(("/", "\\")) or "." in posixpath.basename(clean) and not clean.endswith(".md"):
        raise ValueError(f"'{relative}' is not a page file: give one, such as guides/setup.md (guides/_index.md for a section)")
    if not clean.endswith(".md"):
        clean += ".md"
    if clean.startswith("../") or clean.startswith("/") or not all(is_safe_segment(p) or p == "_index.md" for p in clean.split("/")):
        raise ValueError(f"'{relative}' is not a safe path inside content/ (use letters, digits and '-')")
    tiers = config.tiers or DEFAULT_TIERS
    if audience is not None and audience not in tiers:
        raise ValueError(f"unknown audience '{audience}'; use one of: {', '.join(tiers)}")
    path = config.content_dir / clean
    if path.exists():
        raise FileExistsError(f"{path} already exists")
    name = posixpath.basename(clean)[:-3]
    if name == "_index":
        name = posixpath.basename(posixpath.dirname(clean)) or "home"
    title = title or name.replace("-", " ").replace("_", " ").capitalize()
    lines = ["---", f"title: {title!r}" if ":" in title or "#" in title else f"title: {title}"]
    lines.append(f"audience: {audience}" if audience else "# audience: inherited from the section (no audience anywhere means the most restricted tier)")
    lines += ["# summary: one line for lists, feeds and search", "labels: []", "draft: true", "---", "",
              "Write here. Remove `draft: true` when the page is ready.", ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
