"""Processes: how many workers to start, and how a process treats its memory around large stages."""

from __future__ import annotations

import ctypes
import gc
import os
from collections.abc import Iterator
from contextlib import contextmanager


def default_workers() -> int:
    return os.cpu_count() or 1


def give_back_memory() -> None:
    """Return the heap memory this process has freed to the system, before forking workers.

    glibc keeps freed memory for reuse, so after a stage that made and dropped large arrays the
    process stays as large as at its peak; each forked worker would start that large and count it
    again. A no-op where the C library has no malloc_trim (macOS, musl)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError, TypeError):  # (TypeError: no C library handle, as on Windows)
        pass


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for stages that make a great many small objects which
    live until the stage ends (the collector would walk them again and again for nothing). The
    collector runs again afterwards, as before."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
