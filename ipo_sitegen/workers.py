"""Processes: how many workers to start, and how a process treats its memory around large stages."""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

T = TypeVar("T")


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


@contextmanager
def forking() -> Iterator[None]:
    """Around the start of forked workers: this process's freed memory is given back first (see
    give_back_memory), and the objects it has are frozen out of the collector while they run.

    A worker inherits the parent's objects; each of its full collections would walk them all, and
    writing the collector's marks into them makes the kernel copy every page of memory they are
    on. Frozen, they are never walked (nor collected: they were alive at the fork)."""
    give_back_memory()
    frozen = gc.get_freeze_count()
    gc.freeze()
    try:
        yield
    finally:
        if not frozen:  # (what a caller froze for its own reasons stays frozen)
            gc.unfreeze()


def quiet_worker() -> None:
    """What a forked worker does first: Ctrl-C, which the terminal sends to every process, is the
    parent's to handle, once; SIGTERM, which its pool sends when the parent stops early, ends it at
    once (not as the KeyboardInterrupt the parent turns it into: a traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()


def _die_with_parent() -> None:
    """On Linux, end this worker when the process that forked it ends, even by SIGKILL: left
    behind, it would try to send its result there and print a traceback. Elsewhere, nothing."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError, TypeError):
        return
    if os.getppid() != parent:  # (it ended before this process asked)
        os._exit(1)


_task: Callable | None = None  # what a forked Beside process runs (inherited, not pickled)


def _run_task() -> object:
    assert _task is not None
    return _task()


class Beside(Generic[T]):
    """`task` run in a forked process while this one goes on: `get()` waits for what it returns
    (pickled back). With one worker, `get()` runs it here instead."""

    def __init__(self, task: Callable[[], T], workers: int) -> None:
        global _task
        self.task, self.pool, self.pending = task, None, None
        if workers > 1:
            _task = task
            try:
                with forking():
                    self.pool = multiprocessing.get_context("fork").Pool(1, quiet_worker)
                    self.pending = self.pool.apply_async(_run_task)
            finally:
                _task = None

    def get(self) -> T:
        if self.pool is None:
            return self.task()
        try:
            return self.pending.get()
        finally:
            self.close()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool = None


def detached(task: Callable[[], object]) -> None:
    """Run `task` in a process of its own that this one does not wait for (nor its caller: it
    holds none of this process's files or pipes open, so `subprocess.run(capture_output=True)`
    of a command that uses this returns when the command does). Forked twice, so that the task's
    process is never left a zombie of a long-lived parent (`serve`)."""
    child = os.fork()
    if child == 0:
        try:
            if os.fork() == 0:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                task()
        finally:
            os._exit(0)
    os.waitpid(child, 0)
