"""Progress and messages: informative on a terminal, quiet and parseable in CI."""

from __future__ import annotations

import sys
import time

import click


class Reporter:
    """Stage messages go to stderr, only when wanted: `--quiet` or a non-TTY (CI) silences them,
    `--verbose` forces them. Problems are printed by the CLI whatever the setting."""

    def __init__(self, quiet: bool = False, verbose: bool = False) -> None:
        self.interactive = sys.stderr.isatty() and not quiet
        self.verbose = verbose
        self.quiet = not (self.interactive or verbose)
        self.started = time.perf_counter()

    def step(self, message: str) -> None:
        if self.verbose or self.interactive:
            click.echo(f"[{time.perf_counter() - self.started:6.2f}s] {message}", err=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            click.echo(message, err=True)
