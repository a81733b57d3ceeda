"""Content errors as values.

Editors are not programmers: every problem names the file, the line and the fix. Problems are
collected rather than raised one at a time so that a single run reports all of them at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    path: str
    line: int | None
    message: str
    hint: str = ""
    severity: str = "error"  # "error" or "warning"

    def format(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        text = f"{where}: {self.severity}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def _order(problem: Problem) -> tuple:
    """By file, then line (a problem of the whole file first: its line is None), then message."""
    return (problem.path, problem.line is not None, problem.line or 0, problem.message, problem.hint)


@dataclass
class Problems:
    """Collects problems across a whole run; `--strict` turns warnings into errors."""

    root: Path | None = None
    items: list[Problem] = field(default_factory=list)

    def _where(self, path: Path | str) -> str:
        if isinstance(path, Path) and self.root is not None:
            try:
                path = path.relative_to(self.root).as_posix()
            except ValueError:
                path = path.as_posix()
        # A name that is not UTF-8 (its bytes kept as surrogates) is shown with \xNN escapes: printable.
        return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")

    def error(self, path: Path | str, line: int | None, message: str, hint: str = "") -> None:
        self.items.append(Problem(self._where(path), line, message, hint, "error"))

    def warning(self, path: Path | str, line: int | None, message: str, hint: str = "") -> None:
        self.items.append(Problem(self._where(path), line, message, hint, "warning"))

    def extend(self, other: "Problems | list[Problem]") -> None:
        self.items.extend(other.items if isinstance(other, Problems) else other)

    @property
    def errors(self) -> list[Problem]:
        return sorted((p for p in self.items if p.severity == "error"), key=_order)

    @property
    def warnings(self) -> list[Problem]:
        return sorted((p for p in self.items if p.severity == "warning"), key=_order)

    def has_errors(self, strict: bool = False) -> bool:
        return bool(self.errors) or (strict and bool(self.warnings))


class BuildError(Exception):
    """Raised when a run cannot produce output; carries every problem found."""

    def __init__(self, problems: list[Problem], summary: str = "") -> None:
        self.problems = problems
        super().__init__(summary or f"{len(problems)} problem(s)")


class UsageError(Exception):
    """A problem with how the command was called (exit code 2), not with the content."""
