"""Worker processes: how many to start, and what the parent does before it forks them."""

from __future__ import annotations

import ctypes
import os


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
