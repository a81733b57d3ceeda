"""Site configuration from `sitegen.toml`.

Unknown keys and wrong types are errors that name the key: a typo such as `tier = "publc"` or
`[bundle.public]` must never be silently ignored, because in a gated build a silent default can
publish the wrong thing.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BuildError, Problem, Problems

CONFIG_NAME = "sitegen.toml"
DEFAULT_TIERS = ("public", "registered", "internal")
DEFAULT_BUNDLES = {"public": "public", "restricted": "registered", "internal": "internal"}


@dataclass(frozen=True)
class Bundle:
    """One output folder, built for one audience tier."""

    name: str
    tier: str
    rank: int  # position of `tier` in the tier order: 0 is the least restricted
    base_url: str | None = None


@dataclass(frozen=True)
class HistoryConfig:
    recent: int = 10
    show_authors: bool = True


@dataclass(frozen=True)
class Config:
    root: Path
    title: str = "Documentation"
    language: str = "en"
    tiers: tuple[str, ...] = DEFAULT_TIERS
    bundles: tuple[Bundle, ...] = ()
    history: HistoryConfig = field(default_factory=HistoryConfig)

    @property
    def content_dir(self) -> Path:
        return self.root / "content"

    @property
    def templates_dir(self) -> Path:
        return self.root / "templates"

    @property
    def static_dir(self) -> Path:
        return self.root / "static"

    def bundle(self, name: str) -> Bundle:
        for bundle in self.bundles:
            if bundle.name == name:
                return bundle
        raise KeyError(name)

    def fingerprint(self) -> str:
        """A stable text of everything in the config that affects rendering (for caches)."""
        return repr((self.title, self.language, self.tiers, self.bundles, self.history))


# The schema: table -> key -> (type, required). Types are checked exactly (bool is not an int).
_SCHEMA: dict[str, dict[str, tuple[type | tuple[type, ...], bool]]] = {
    "site": {"title": (str, False), "language": (str, False)},
    "audiences": {"tiers": (list, False)},
    "history": {"recent": (int, False), "show_authors": (bool, False)},
}
_BUNDLE_SCHEMA: dict[str, tuple[type, bool]] = {"tier": (str, True), "base_url": (str, False)}


_WEB_URL = re.compile(r"^https?://[^/\s\"'<>?#]+(/[^\s\"'<>]*)?$", re.IGNORECASE)  # (locked links, the sitemap and robots.txt hold it)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    valid = ", ".join(sorted(choices))
    return f"did you mean '{close[0]}'? valid keys: {valid}" if close else f"valid keys: {valid}"


def _type_name(kind: Any) -> str:
    return {str: "a string", int: "an integer", bool: "true or false", list: "a list", dict: "a table"}.get(
        kind, str(kind)
    )


def _line(text: str, table: str, key: str | None = None) -> int | None:
    """The line of `[table]` (or of `key = …` inside it) in the TOML text, for error messages."""
    lines = text.split("\n")
    header = re.compile(r"^\s*\[\s*" + re.escape(table).replace("\\.", "\\s*\\.\\s*") + r"\s*\]")
    start = next((i for i, line in enumerate(lines) if header.match(line)), None)
    if key is None:
        return None if start is None else start + 1
    pattern = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
    for i in range(0 if start is None else start + 1, len(lines)):
        if start is not None and i > start and lines[i].lstrip().startswith("["):
            break
        if pattern.match(lines[i]):
            return i + 1
    return None if start is None else start + 1


def _check_table(data: Any, name: str, schema: dict[str, tuple[Any, bool]], text: str, problems: Problems) -> dict:
    if not isinstance(data, dict):
        problems.error(CONFIG_NAME, _line(text, name), f"[{name}] must be a table")
        return {}
    for key, value in data.items():
        if key not in schema:
            problems.error(CONFIG_NAME, _line(text, name, key), f"unknown key '{key}' in [{name}]", _suggest(key, list(schema)))
            continue
        kind, _ = schema[key]
        if isinstance(value, bool) and kind is int or not isinstance(value, kind):
            problems.error(CONFIG_NAME, _line(text, name, key), f"'{name}.{key}' must be {_type_name(kind)}, not {value!r}")
    for key, (_, required) in schema.items():
        if required and key not in data:
            problems.error(CONFIG_NAME, _line(text, name), f"[{name}] is missing the required key '{key}'")
    return data


def load_config(root: Path) -> Config:
    """Read and validate `root/sitegen.toml`; raise BuildError listing every problem."""
    root = root.resolve()
    path = root / CONFIG_NAME
    problems = Problems(root=root)
    if not path.is_file():
        raise BuildError(
            [Problem(CONFIG_NAME, None, f"no {CONFIG_NAME} in {root}", "run the command in a site folder, or create one with `sitegen init DIR`")],
            "no configuration")
    try:
        text = path.read_text(encoding="utf-8")
        raw = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        at = re.search(r"\(at line (\d+), column \d+\)", str(exc))  # (tomllib names the place only in its message before 3.14)
        line = getattr(exc, "lineno", None) or (int(at.group(1)) if at else None)
        raise BuildError([Problem(CONFIG_NAME, line, f"invalid TOML: {exc}", "see https://toml.io for the syntax")], "configuration errors") from exc

    known = set(_SCHEMA) | {"bundles"}
    for key in raw:
        if key not in known:
            problems.error(CONFIG_NAME, _line(text, key) or _line(text, "", key), f"unknown table or key '{key}'", _suggest(key, sorted(known)))

    site = _check_table(raw.get("site", {}), "site", _SCHEMA["site"], text, problems)
    audiences = _check_table(raw.get("audiences", {}), "audiences", _SCHEMA["audiences"], text, problems)
    history = _check_table(raw.get("history", {}), "history", _SCHEMA["history"], text, problems)
    recent = history.get("recent", 10)
    if isinstance(recent, int) and not isinstance(recent, bool) and recent < 0:
        problems.error(CONFIG_NAME, _line(text, "history", "recent"), f"'history.recent' must be 0 or more, not {recent}", "0 shows no recent changes on the home page")

    tiers = tuple(audiences.get("tiers", DEFAULT_TIERS)) if isinstance(audiences.get("tiers", []), list) else DEFAULT_TIERS
    if not tiers or not all(isinstance(t, str) and t.isidentifier() for t in tiers) or len(set(tiers)) != len(tiers):
        problems.error(CONFIG_NAME, _line(text, "audiences", "tiers"), "'audiences.tiers' must be a non-empty list of distinct names", 'e.g. tiers = ["public", "registered", "internal"]')
        tiers = DEFAULT_TIERS

    raw_bundles = raw.get("bundles")
    if raw_bundles is None:
        raw_bundles = {name: {"tier": tier} for name, tier in DEFAULT_BUNDLES.items() if tier in tiers}
    bundles: list[Bundle] = []
    if not isinstance(raw_bundles, dict) or not raw_bundles:
        problems.error(CONFIG_NAME, None, "[bundles] must hold at least one [bundles.NAME] table")
        raw_bundles = {}
    for name, table in sorted(raw_bundles.items(), key=lambda item: str(item[0])):
        data = _check_table(table, f"bundles.{name}", _BUNDLE_SCHEMA, text, problems)
        if not (isinstance(name, str) and name.replace("-", "").replace("_", "").isalnum()):
            problems.error(CONFIG_NAME, None, f"bundle name '{name}' is not a plain folder name", "use letters, digits, '-' or '_'")
            continue
        tier = data.get("tier")
        if isinstance(tier, str) and tier not in tiers:
            problems.error(CONFIG_NAME, _line(text, f"bundles.{name}", "tier"), f"bundles.{name}.tier '{tier}' is not a tier", f"tiers are: {', '.join(tiers)}")
            continue
        base_url = data.get("base_url")
        if isinstance(base_url, str) and base_url and not _WEB_URL.match(base_url):
            problems.error(CONFIG_NAME, _line(text, f"bundles.{name}", "base_url"), f"bundles.{name}.base_url '{base_url}' is not a web address",
                           "write it in full, e.g. base_url = \"https://support.example.org/restricted/\"")
            continue
        if isinstance(base_url, str) and base_url and not base_url.endswith("/"):
            base_url += "/"
        if isinstance(tier, str):
            bundles.append(Bundle(name, tier, tiers.index(tier), base_url or None))
    bundles.sort(key=lambda b: (b.rank, b.name))

    if problems.has_errors():
        raise BuildError(problems.errors, "configuration errors")
    return Config(
        root=root,
        title=site.get("title", "Documentation"),
        language=site.get("language", "en"),
        tiers=tiers,
        bundles=tuple(bundles),
        history=HistoryConfig(recent=history.get("recent", 10), show_authors=history.get("show_authors", True)),
    )
